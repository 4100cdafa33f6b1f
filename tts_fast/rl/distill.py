"""Self-distillation: a one-step policy trained on the actions the search chooses.

    python -m tts_fast.rl.distill --env halfcheetah --dataset medium --data ~/rl_data/minari

1. Draw ``states`` dataset states (seeded) and run the search on them, ``batch`` states per
   ``tts.search`` call, with the dataset's policy and Q verifier. The teacher is one of
   :data:`TEACHERS`: ``paper`` (the paper's method: local search with its per-dataset R, J, rho,
   mu, + best-of-N), ``bfs`` (bfs_best) or ``bon`` (best-of-N), each at N = ``n_particles`` (8).
2. Behaviour cloning on the search's output: a deterministic MLP pi(s) = tanh(MLP(s)) fitted by
   MSE to the chosen actions (``q_weighted``: each pair weighted by softmax(beta * (Q - V)) over
   the batch, an AWR-style variant that leans on the pairs the critic likes most).
3. The result goes into the agent file under ``distilled[teacher]`` (with the teacher's options,
   timings and loss), so one file holds a distilled policy per teacher; :func:`distilled_actor`
   acts with one at 1 NFE per action.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import _threads as threads
from .._arg_types import positive_int
from .._checkpoints import build_network
from .._io import atomic_path
from .._user_errors import command
from .critic import mlp
from .datasets import load, transitions
from .evaluate import paper_local
from .policy import SAMPLING_STEPS, StateNormalizer, as_states, check_sizes
from .weights import check_writable, in_shipped_folder, load_checkpoint, load_critic, load_policy, q_verifier, record_shipped_hash, weights_path


# teacher name -> (tts.search method, whether the paper's per-dataset local-search options apply)
TEACHERS = {"paper": ("bon", True), "bfs": ("bfs_best", False), "bon": ("bon", False)}


def check_teacher(teacher: str) -> str:
    """``teacher`` after checking it names one of :data:`TEACHERS` (a ValueError naming them otherwise)."""
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, got {teacher!r}")
    return teacher


class OneStepPolicy(nn.Module):
    """a = tanh(MLP(normalised s)): [B, act_dim] actions in [-1, 1] from raw states [B, obs_dim]."""

    def __init__(self, obs_dim: int, act_dim: int, width: int = 256, layers: int = 2):
        super().__init__()
        check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, layers=layers)
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "width": width, "layers": layers}
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.normalizer = StateNormalizer(obs_dim)
        self.net = mlp(obs_dim, width, layers, act_dim)

    def forward(self, s):
        return torch.tanh(self.net(self.normalizer(s)))


def search_actions(env: str, dataset: str, states: np.ndarray, *, method: str, n_particles: int, batch: int, seed: int,
                   weights_dir: Optional[str] = None, **options) -> tuple[np.ndarray, float]:
    """The search's chosen action [S, act_dim] for each state, and the model NFE it spent per state."""
    from ..search.api import search

    pol = load_policy(env, dataset, states[:1], device="cpu", weights_dir=weights_dir)
    q = q_verifier(env, dataset, states[:1], device="cpu", weights_dir=weights_dir)
    out, nfe = [], 0
    for k in range(0, len(states), batch):
        s = torch.from_numpy(states[k:k + batch])
        res = search(pol.with_states(s), q.with_states(s), method, n_particles=n_particles, num_steps=SAMPLING_STEPS, batch_size=len(s),
                     seed=seed + k, progress=False, **options)
        out.append(res.samples.detach().numpy())
        nfe += int(res.nfe_per_prompt.sum())
    return np.concatenate(out), nfe / len(states)


def distill(env: str, dataset: str, data_path: str, *, teacher: str = "paper", states: int = 20_000, batch: int = 500,
            n_particles: int = 8, steps: int = 5_000, lr: float = 1e-3, q_weighted: bool = False, beta: float = 1.0, seed: int = 0,
            weights_dir: Optional[str] = None, overwrite: bool = False, log=print, **options) -> str:
    """Distil the search ``teacher`` into a :class:`OneStepPolicy`, saved into the agent file under
    ``distilled[teacher]``; returns the file's path.

    ``options`` are extra ``tts.search`` keywords; for ``teacher='paper'`` they default to the
    paper's local search of (env, dataset) (``paper_local``). Replacing that teacher's earlier
    policy, or writing into a shipped agent file at all, needs ``overwrite=True``; the check comes
    before any work.
    """
    check_teacher(teacher)
    for name, v in (("states", states), ("batch", batch), ("n_particles", n_particles), ("steps", steps)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    path = weights_path(env, dataset, weights_dir)
    if not overwrite:
        if teacher in load_checkpoint(env, dataset, weights_dir).get("distilled", {}):
            raise FileExistsError(f"{path} already holds a policy distilled from teacher {teacher!r}: pass --overwrite "
                                  "(overwrite=True) to replace it")
        if in_shipped_folder(path):
            check_writable(path, False, "distilling would change")
    method, paper = TEACHERS[teacher]
    if paper and not options:
        options = paper_local(env, dataset)
    tr = transitions(load(env, dataset, path=data_path))
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(tr), size=min(states, len(tr)), replace=False)
    s = tr.observations[idx]
    t0 = time.perf_counter()
    a, nfe = search_actions(env, dataset, s, method=method, n_particles=n_particles, batch=batch, seed=seed, weights_dir=weights_dir,
                            **options)
    t_search = time.perf_counter() - t0
    log(f"search actions for {len(s)} states: {t_search:.0f} s, {nfe:.0f} NFE per state")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = OneStepPolicy(tr.observations.shape[1], tr.actions.shape[1])
    net.normalizer.set(tr.observations.mean(0), tr.observations.std(0))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    S, A = torch.from_numpy(s), torch.from_numpy(a.astype(np.float32))
    if q_weighted:
        crit = load_critic(env, dataset, weights_dir)
        with torch.no_grad():
            adv = crit.q(S, A) - crit.value(S)
    t1, losses = time.perf_counter(), []
    for step in range(steps):
        b = torch.randint(0, len(S), (256,), generator=gen)
        err = (net(S[b]) - A[b]).pow(2).sum(1)
        if q_weighted:
            w = torch.softmax(beta * adv[b], 0) * len(b)
            loss = (w * err).mean()
        else:
            loss = err.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        mse = float(F.mse_loss(net(S), A))
    log(f"distilled {steps} steps: {time.perf_counter() - t1:.0f} s, MSE to the search's actions {mse:.4f}")
    ck = dict(load_checkpoint(env, dataset, weights_dir))
    ck["distilled"] = dict(ck.get("distilled", {}))
    meta = {"teacher": {"name": teacher, "method": method, "n_particles": n_particles, "options": options, "nfe_per_state": nfe},
            "states": len(s), "steps": steps, "lr": lr, "q_weighted": q_weighted, "beta": beta, "seed": seed,
            "search_seconds": t_search, "train_seconds": time.perf_counter() - t1, "mse": mse}
    ck["distilled"][teacher] = {"config": net.config, "state_dict": net.state_dict(), "meta": meta}
    with atomic_path(path) as tmp:
        torch.save(ck, tmp)
    record_shipped_hash(path)
    return path


def distilled_teachers(env: str, dataset: str, weights_dir: Optional[str] = None) -> list[str]:
    """The teachers whose distilled policies the agent file of (env, dataset) holds."""
    return [t for t in TEACHERS if t in load_checkpoint(env, dataset, weights_dir).get("distilled", {})]


def distilled_policy(env: str, dataset: str, teacher: str = "paper", weights_dir: Optional[str] = None) -> OneStepPolicy:
    """The one-step policy distilled from ``teacher`` on (env, dataset); a ValueError naming the file when it has none."""
    check_teacher(teacher)
    ck = load_checkpoint(env, dataset, weights_dir)
    path = weights_path(env, dataset, weights_dir)
    if teacher not in ck.get("distilled", {}):
        raise ValueError(f"{path} holds no policy distilled from teacher {teacher!r}; make it with "
                         f"`python -m tts_fast.rl.distill --env {env} --dataset {dataset} --teacher {teacher} ...`")
    d = ck["distilled"][teacher]
    return build_network(OneStepPolicy, d["config"], d["state_dict"], path)


def distilled_actor(env: str, dataset: str, teacher: str = "paper", weights_dir: Optional[str] = None):
    """An evaluation actor (see :mod:`tts_fast.rl.evaluate`) of the policy distilled from ``teacher``: 1 NFE per action."""
    net = distilled_policy(env, dataset, teacher, weights_dir)

    def act(states: np.ndarray, step: int):
        with torch.no_grad():
            a = net(as_states(states, net.obs_dim, "cpu"))
        return a.numpy(), np.ones(len(states))

    return act


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.rl.distill``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.rl.distill",
                                description="Self-distillation: train a one-step policy on the actions a search chooses on "
                                "dataset states, and store it in the agent's file.")
    p.add_argument("--env", required=True, help="the MuJoCo task of the agent (e.g. halfcheetah)")
    p.add_argument("--dataset", required=True, help="its dataset (e.g. medium)")
    p.add_argument("--data", required=True, metavar="DIR", help="the local Minari data folder")
    p.add_argument("--teacher", default="paper", choices=sorted(TEACHERS),
                   help="the search distilled: the paper's local search + best-of-N, bfs_best or best-of-N")
    p.add_argument("--states", type=positive_int, default=20_000, help="dataset states the teacher searches on (default 20000)")
    p.add_argument("--n", type=positive_int, default=8, help="particles of the teacher's search (default 8)")
    p.add_argument("--steps", type=positive_int, default=5_000, help="training steps of the one-step policy (default 5000)")
    p.add_argument("--q-weighted", action="store_true", help="weight each (state, action) pair by how much the critic likes it")
    p.add_argument("--weights-dir", default=None, metavar="DIR", help="folder of the agent files (default: the shipped ones)")
    p.add_argument("--overwrite", action="store_true", help="write into a shipped agent file, or replace this teacher's earlier "
                   "distilled policy; without it the command refuses before any work")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.rl.distill")
def main(argv=None) -> None:
    """``python -m tts_fast.rl.distill``: parse ``argv`` and distil."""
    a = build_parser().parse_args(argv)
    threads.apply(a.threads)
    distill(a.env, a.dataset, a.data, teacher=a.teacher, states=a.states, n_particles=a.n, steps=a.steps, q_weighted=a.q_weighted,
            weights_dir=a.weights_dir or os.path.dirname(weights_path(a.env, a.dataset)), overwrite=a.overwrite)


if __name__ == "__main__":
    sys.exit(main())
