"""Train the diffusion policy and the IQL twin-Q critic of one offline dataset (seeded).

    python -m tts_fast.rl.train --env halfcheetah --dataset medium --data ~/rl_data/minari --out tts_fast/rl/weights

(``~/rl_data``: the folder given to ``python -m tts_fast.rl.generate --out``, any folder outside the
repository.) The command uses one CPU
thread unless told otherwise (``--threads``, :mod:`tts_fast._threads`); the shipped agents were
trained that way. The diffusion policy imitates the dataset's actions, which SAC policies took
(:mod:`tts_fast.rl.generate`): it is the search's prior, not the behaviour policy itself.

- **Policy**: denoising score matching on the dataset's (s, a): eps-prediction MSE at uniform
  train timesteps of the VP-linear schedule; AdamW, EMA of the weights (saved).
- **Critic**: IQL (Kostrikov et al. 2022), in-sample: V(s) by expectile regression (tau) of
  min(Q1, Q2)_target(s, a) over dataset actions; Q_i(s, a) by MSE to r + gamma (1 - terminal) V(s');
  Polyak-averaged target Q networks. No action outside the dataset is ever queried in training.

Both are written into one file ``{out}/{env}_{dataset}.pt`` (atomically) with the dataset's
fingerprint, the settings and the measured training times.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from .. import _threads as threads
from .._io import atomic_path
from .._training import train_step
from .._user_errors import command
from .critic import ACTIVATIONS, TwinQ
from .datasets import Transitions, fingerprint, load, transitions
from .fast_critic import train_critic_fast
from .envs import DATASETS, TASKS
from .policy import ActionScoreNet, policy_schedule
from .weights import check_writable, record_shipped_hash

POLICY = dict(width=128, blocks=3, temb=32)  # small: search calls it 15 N times per action on one CPU core
CRITIC = dict(width=256, layers=2)
DEFAULTS = dict(policy_steps=20_000, critic_steps=20_000, batch=256, lr=3e-4, ema=0.999, gamma=0.99, tau=0.7, polyak=0.005, seed=0,
                critic_activation="mish")


def _tensors(tr: Transitions) -> dict:
    return {k: torch.from_numpy(getattr(tr, k)) for k in ("observations", "actions", "rewards", "next_observations", "terminals")}


def diffusion_loss(net: ActionScoreNet, s, a, alpha_bar, gen) -> torch.Tensor:
    """eps-prediction MSE at uniform train timesteps (denoising score matching)."""
    t = torch.randint(0, alpha_bar.numel(), (a.shape[0],), generator=gen)
    eps = torch.randn(a.shape, generator=gen)
    ab = alpha_bar[t][:, None]
    a_t = ab.sqrt() * a + (1 - ab).sqrt() * eps
    return F.mse_loss(net(a_t, t.float(), s), eps)


def train_policy(tr: Transitions, steps: int, *, batch: int, lr: float, ema: float, seed: int, log=print) -> tuple[ActionScoreNet, dict]:
    """The EMA weights of an :class:`ActionScoreNet` trained on ``tr`` for ``steps`` steps, and its log."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = ActionScoreNet(tr.observations.shape[1], tr.actions.shape[1], **POLICY)
    net.normalizer.set(tr.observations.mean(0), tr.observations.std(0))
    ema_net = copy.deepcopy(net)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    d = _tensors(tr)
    ab = policy_schedule().alpha_bar.float()
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        idx = torch.randint(0, len(tr), (batch,), generator=gen)
        loss = diffusion_loss(net, d["observations"][idx], d["actions"][idx], ab, gen)
        train_step(net, ema_net, opt, loss, step, ema)
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"policy step {step + 1}/{steps}: loss {np.mean(losses[-500:]):.4f} ({time.perf_counter() - t0:.0f} s)")
    return ema_net.eval(), {"steps": steps, "seconds": time.perf_counter() - t0, "final_loss": float(np.mean(losses[-500:]))}


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """IQL's asymmetric square |tau - 1(diff < 0)| diff^2, averaged (diff = target - V)."""
    w = torch.where(diff < 0, 1.0 - tau, tau)
    return (w * diff.pow(2)).mean()


def train_critic(tr: Transitions, steps: int, *, batch: int, lr: float, gamma: float, tau: float, polyak: float, seed: int,
                 log=print) -> tuple[TwinQ, dict]:
    """An IQL :class:`TwinQ` trained on ``tr`` for ``steps`` steps, and its log (losses, mean Q on the data).

    The reference loop, one network at a time: :func:`tts_fast.rl.fast_critic.train_critic_fast`
    computes the same weights (to float rounding) as one batched computation, and is what
    :func:`train` uses; tests compare the two.
    """
    torch.manual_seed(seed + 1)
    gen = torch.Generator().manual_seed(seed + 1)
    critic = TwinQ(tr.observations.shape[1], tr.actions.shape[1], **CRITIC)
    critic.normalizer.set(tr.observations.mean(0), tr.observations.std(0))
    target = copy.deepcopy(critic)
    for p in target.parameters():
        p.requires_grad_(False)
    opt_v = torch.optim.Adam(critic.v.parameters(), lr=lr)
    opt_q = torch.optim.Adam(list(critic.q1.parameters()) + list(critic.q2.parameters()), lr=lr)
    d = _tensors(tr)
    t0, lv, lq = time.perf_counter(), [], []
    for step in range(steps):
        idx = torch.randint(0, len(tr), (batch,), generator=gen)
        s, a, r, s2, done = (d[k][idx] for k in ("observations", "actions", "rewards", "next_observations", "terminals"))
        with torch.no_grad():
            q_t = target.q(s, a)
        loss_v = expectile_loss(q_t - critic.value(s), tau)
        opt_v.zero_grad(set_to_none=True)
        loss_v.backward()
        opt_v.step()
        with torch.no_grad():
            y = r + gamma * (1.0 - done) * critic.value(s2)
        q1, q2 = critic.qs(s, a)
        loss_q = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        opt_q.zero_grad(set_to_none=True)
        loss_q.backward()
        opt_q.step()
        with torch.no_grad():
            for pt, p in zip(target.parameters(), critic.parameters()):
                pt.lerp_(p, polyak)
        lv.append(float(loss_v.detach()))
        lq.append(float(loss_q.detach()))
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"critic step {step + 1}/{steps}: V loss {np.mean(lv[-500:]):.3f}, Q loss {np.mean(lq[-500:]):.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
    with torch.no_grad():
        q_data = float(critic.q(d["observations"][:10_000], d["actions"][:10_000]).mean())
    return critic.eval(), {"steps": steps, "seconds": time.perf_counter() - t0, "v_loss": float(np.mean(lv[-500:])),
                           "q_loss": float(np.mean(lq[-500:])), "mean_q_on_data": q_data}


def train(env: str, dataset: str, data_path: str, out: str, *, source: str = "tts_fast", overwrite: bool = False, log=print,
          **settings) -> str:
    """Train policy and critic on a local Minari dataset; write ``{out}/{env}_{dataset}.pt``; return its path.

    An existing file there (a shipped agent's, say) is replaced only with ``overwrite=True``; the check
    comes before any work. Writing into the shipped folder records the new file's sha256 in its
    ``hashes.json``.
    """
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    path = os.path.join(out, f"{env}_{dataset}.pt")
    check_writable(path, overwrite, "training would replace")
    cfg = {**DEFAULTS, **settings}
    ds = load(env, dataset, path=data_path, source=source)
    tr = transitions(ds)
    fp = fingerprint(ds)
    log(f"{fp['dataset_id']}: {fp['transitions']} transitions, {fp['episodes']} episodes, mean return {fp['return_mean']:.1f}")
    policy, plog = train_policy(tr, cfg["policy_steps"], batch=cfg["batch"], lr=cfg["lr"], ema=cfg["ema"], seed=cfg["seed"], log=log)
    critic, clog = train_critic_fast(tr, cfg["critic_steps"], batch=cfg["batch"], lr=cfg["lr"], gamma=cfg["gamma"], tau=cfg["tau"],
                                     polyak=cfg["polyak"], seed=cfg["seed"], activation=cfg["critic_activation"], log=log, **CRITIC)
    ck = {"kind": "tts_fast_rl_agent", "config": {"env": env, "dataset": dataset, "policy": policy.config, "critic": critic.config},
          "policy": policy.state_dict(), "critic": critic.state_dict(),
          "meta": {"dataset": fp, "settings": cfg, "policy_training": plog, "critic_training": clog,
                   "torch": str(torch.__version__), "threads": torch.get_num_threads()}}
    os.makedirs(out, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(ck, tmp)
    record_shipped_hash(path)
    log(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB); policy {plog['seconds']:.0f} s, critic {clog['seconds']:.0f} s")
    return path


# what each training setting means, for --help
SETTING_HELP = dict(
    policy_steps="training steps of the diffusion policy", critic_steps="training steps of the IQL critic",
    batch="transitions per training step", lr="learning rate (AdamW)", ema="EMA decay of the saved policy weights",
    gamma="discount factor of the critic", tau="IQL expectile of V", polyak="Polyak rate of the target Q networks",
    seed="seed of the initialisation and of the batches",
    critic_activation="the critic MLPs' activation: " + " or ".join(ACTIVATIONS),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.rl.train``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.rl.train",
                                description="Train the diffusion policy and the IQL twin-Q critic of one offline dataset "
                                "(seeded) and write them into one file, OUT/ENV_DATASET.pt.")
    p.add_argument("--env", required=True, choices=sorted(TASKS), help="the MuJoCo task")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset of the task")
    p.add_argument("--data", required=True, metavar="DIR", help="the local Minari data folder (the one holding tts_fast/ENV/...)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the agent file")
    p.add_argument("--source", default="tts_fast", choices=("tts_fast", "mujoco"),
                   help="datasets regenerated by tts_fast.rl.generate (default) or Minari's mujoco ones")
    for k, v in DEFAULTS.items():
        choices = tuple(ACTIVATIONS) if k == "critic_activation" else None
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=v, choices=choices, help=f"{SETTING_HELP[k]} (default {v})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing agent file at OUT/ENV_DATASET.pt (a shipped one "
                   "included); without it the command refuses before any work")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.rl.train")
def main(argv=None) -> None:
    """``python -m tts_fast.rl.train``: parse ``argv`` and train."""
    a = vars(build_parser().parse_args(argv))
    threads.apply(a["threads"])
    settings = {k: a[k] for k in DEFAULTS}
    train(a["env"], a["dataset"], a["data"], a["out"], source=a["source"], overwrite=a["overwrite"], **settings)


if __name__ == "__main__":
    sys.exit(main())
