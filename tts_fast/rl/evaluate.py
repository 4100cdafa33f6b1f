"""Evaluation of offline-RL agents in the live MuJoCo environments: the paper's protocol.

Seeds x episodes environments run side by side; at every environment step the states of all the
live ones go to the agent in one call (for a search agent: one ``tts.search`` whose prompt rows
are those states). Episode e of seed k resets with seed ``k + 1001 + e`` (the official
``exp_tts.py``). Scores are D4RL-normalised returns; a seed's score is the mean of its episodes.

Error bars: the official seeds share initial states (seed k's episode e + 1 starts where seed k + 1's
episode e does: 5 seeds x 10 episodes hold 14 distinct initial states), so a deterministic policy
repeats episodes across seeds and the standard error over seeds says nothing (it is about 0).
:attr:`Evaluation.episode_stderr` is the honest one: episodes that share an initial state are
averaged first, then the standard error is taken over the distinct initial states.

An *actor* is ``act(states [P, obs_dim] float32, step) -> (actions [P, act_dim], nfe [P])``: nfe is
the model NFE spent on each row's action (the library's ``res.nfe_per_prompt`` for a search).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .envs import make_env, normalized_score, task
from .policy import SAMPLING_STEPS

Actor = Callable[[np.ndarray, int], tuple]
SATURATED = 0.99  # |action coordinate| from which it counts as at the edge of the action box


@dataclass
class Evaluation:
    """Outcome of :func:`evaluate_actor`: returns and scores [seeds, episodes], NFE per action, wall seconds.

    ``saturation``: the fraction of all action coordinates taken with ``|a| >= SATURATED`` (at the
    edge of the [-1, 1] action box), the sign of a search that exploits its critic out of the data.
    """

    env: str
    returns: np.ndarray
    scores: np.ndarray
    nfe_per_action: float
    seconds: float
    steps: int
    extrapolated: bool = False
    saturation: float = 0.0
    lengths: Optional[np.ndarray] = None  # [seeds, episodes] environment steps each episode lived
    resets: Optional[np.ndarray] = None  # [seeds, episodes] the reset seed of each episode

    @property
    def episode_stderr(self) -> float:
        """Standard error of the mean score over the distinct initial states (module doc)."""
        return stderr_over_resets(self.scores, self.resets if self.resets is not None else np.arange(self.scores.size).reshape(self.scores.shape))

    @property
    def length_mean(self) -> float:
        return float(np.mean(self.lengths)) if self.lengths is not None else float("nan")

    @property
    def length_max(self) -> int:
        return int(np.max(self.lengths)) if self.lengths is not None else -1

    @property
    def seed_scores(self) -> np.ndarray:
        return self.scores.mean(axis=1)

    @property
    def score(self) -> float:
        """Mean normalised score over seeds."""
        return float(self.seed_scores.mean())

    @property
    def stderr(self) -> float:
        """Standard error of the mean over seeds (0 for one seed)."""
        s = self.seed_scores
        return float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else 0.0


def reset_seeds(seeds, episodes: int) -> np.ndarray:
    """[len(seeds), episodes] reset seeds of the official protocol: seed k's episode e resets with k + 1001 + e."""
    return np.array([[k + 1001 + e for e in range(episodes)] for k in seeds], dtype=np.int64)


def stderr_over_resets(scores, resets) -> float:
    """Standard error of the mean of ``scores`` [seeds, episodes] over distinct initial states.

    Episodes with the same reset seed (``resets``, same shape) are averaged first; the standard error
    is then that of the mean of those group means (0 for a single initial state).
    """
    scores, resets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(resets).ravel()
    if scores.shape != resets.shape:
        raise ValueError(f"scores and resets must have the same shape, got {scores.size} and {resets.size} values")
    groups = np.unique(resets)
    means = np.array([scores[resets == g].mean() for g in groups])
    return float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else 0.0


def evaluate_actor(env: str, act: Actor, *, seeds=range(5), episodes: int = 10, max_steps: Optional[int] = None,
             extrapolate: bool = False, progress: bool = True, desc: str = "") -> Evaluation:
    """Run ``len(seeds) * episodes`` episodes of ``env`` with ``act``, all live environments batched.

    Args:
        env: short env name ('halfcheetah', 'hopper', 'reacher', ...).
        act: the actor (see the module doc).
        seeds: evaluation seeds (the official protocol: 0..4); episodes: per seed (official: 10).
        max_steps: cut episodes at this many steps (default: the env's limit).
        extrapolate: with ``max_steps`` below the limit, normalise ``return * limit / max_steps``
            (the return's per-step rate carried to a whole episode: right for HalfCheetah, whose
            episodes never terminate; refused for envs that terminate).
        progress: a tqdm bar over environment steps.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one evaluation seed")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    limit = task(env).max_episode_steps if max_steps is None else max_steps
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_steps must be an integer >= 1 or None, got {max_steps!r}")
    if extrapolate and env in ("hopper", "walker2d"):
        raise ValueError(f"extrapolate=True is refused for env {env!r}: its episodes terminate, so a cut return does not scale")
    envs = [make_env(env) for _ in range(len(seeds) * episodes)]
    resets = reset_seeds(seeds, episodes)
    obs = np.stack([envs[j * episodes + i].reset(seed=int(resets[j, i]))[0] for j in range(len(seeds)) for i in range(episodes)])
    live = np.ones(len(envs), bool)
    returns = np.zeros(len(envs))
    lengths = np.zeros(len(envs), dtype=np.int64)
    nfe_sum, n_actions, n_saturated = 0.0, 0, 0
    t0 = time.perf_counter()
    bar = _bar(progress, limit, desc or env)
    step = 0
    while live.any() and step < limit:
        idx = np.flatnonzero(live)
        actions, nfe = act(obs[idx].astype(np.float32), step)
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)  # the MuJoCo action box
        nfe_sum += float(np.sum(nfe))
        n_actions += len(idx)
        n_saturated += int(np.sum(np.abs(actions) >= SATURATED))
        for j, i in enumerate(idx):
            o, r, term, trunc, _ = envs[i].step(actions[j])
            returns[i] += r
            lengths[i] += 1
            obs[i] = o
            if term or trunc:
                live[i] = False
        step += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(live=int(live.sum()), ret=f"{returns.mean():.0f}")
    if bar is not None:
        bar.close()
    for e in envs:
        e.close()
    returns = returns.reshape(len(seeds), episodes)
    full = task(env).max_episode_steps
    # only a cut scales: when every episode ended on its own before max_steps, the returns are whole
    scale = full / step if extrapolate and live.any() and step < full else 1.0
    return Evaluation(env, returns, normalized_score(env, returns * scale), nfe_sum / max(n_actions, 1), time.perf_counter() - t0, step,
                      extrapolated=scale != 1.0, saturation=n_saturated / max(n_actions * task(env).act_dim, 1),
                      lengths=lengths.reshape(len(seeds), episodes), resets=resets)


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def search_actor(policy, verifier, method, *, n_particles: int, num_steps: int = SAMPLING_STEPS, seed: int = 0,
                 budget_per_state: Optional[int] = None, **options) -> Actor:
    """An actor that picks each action by ``tts.search(policy.with_states(s), verifier.with_states(s), method, ...)``.

    The search seed of environment step k is ``seed * 1_000_003 + k`` (same seed, same episode).
    ``budget_per_state``: model-NFE cap per action (the call's budget is it times the live states).
    Returns each row's best sample (``res.samples``) and ``res.nfe_per_prompt``.
    """
    from ..search.api import search

    if budget_per_state is not None and (not isinstance(budget_per_state, int) or budget_per_state < 1):
        raise ValueError(f"budget_per_state must be an integer >= 1 or None, got {budget_per_state!r}")

    def act(states: np.ndarray, step: int):
        s = torch.from_numpy(states)
        budget = None if budget_per_state is None else budget_per_state * len(states)
        res = search(policy.with_states(s), verifier.with_states(s), method, n_particles=n_particles, num_steps=num_steps,
                     batch_size=len(states), seed=seed * 1_000_003 + step, budget=budget, progress=False, **options)
        return res.samples.detach().cpu().numpy(), res.nfe_per_prompt.cpu().numpy()

    return act


# The official per-dataset local-search settings (R recurrence rounds, J x0-ascent steps, rho, mu),
# from the paper's code (search/utils.py::get_hyper_params); sigma = 0 and one MC sample there.
PAPER_LOCAL = {
    ("halfcheetah", "medium-expert"): (1, 1, 0.008, 0.02),
    ("hopper", "medium-expert"): (1, 4, 0.001, 0.00),
    ("walker2d", "medium-expert"): (1, 1, 0.005, 0.10),
    ("halfcheetah", "medium"): (1, 4, 0.003, 0.05),
    ("hopper", "medium"): (4, 4, 0.003, 0.02),
    ("walker2d", "medium"): (1, 6, 0.003, 0.08),
    ("halfcheetah", "medium-replay"): (1, 6, 0.005, 0.03),
    ("hopper", "medium-replay"): (1, 1, 0.003, 0.20),
    ("walker2d", "medium-replay"): (2, 4, 0.003, 0.03),
}


def paper_local(env: str, dataset: str) -> dict:
    """The paper's local-search options of (env, dataset) as ``tts.search`` keywords
    (local_steps, iter_steps, rho, mu, sigma=0); a ValueError naming the pair when it has none."""
    if (env, dataset) not in PAPER_LOCAL:
        raise ValueError(f"the paper has no local-search settings for env {env!r} / dataset {dataset!r}; "
                         f"it has: {', '.join(f'{e}-{d}' for e, d in PAPER_LOCAL)}")
    r, j, rho, mu = PAPER_LOCAL[(env, dataset)]
    return dict(local_steps=r, iter_steps=j, rho=rho, mu=mu, sigma=0.0)
