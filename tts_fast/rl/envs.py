"""The locomotion tasks of tts_fast.rl: names, gymnasium ids, D4RL normalisation constants.

Scores are D4RL-normalised, 100 * (return - random) / (expert - random), with D4RL's constants
(the v2 datasets' reference returns). Our datasets are regenerated on gymnasium's MuJoCo v5
environments, so the scores are "D4RL-like (v5, self-generated)": not comparable with published
D4RL numbers. Reacher has no D4RL constants; its constants here are a uniform-random policy's
return (-43) and 0, so its "score" only serves the smoke task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    """One environment: its short name, gymnasium id, sizes and normalisation constants."""

    name: str
    gym_id: str
    obs_dim: int
    act_dim: int
    random_score: float
    expert_score: float
    max_episode_steps: int


TASKS = {
    "reacher": Task("reacher", "Reacher-v5", 10, 2, -43.0, 0.0, 50),
    "hopper": Task("hopper", "Hopper-v5", 11, 3, -20.272305, 3234.3, 1000),
    "halfcheetah": Task("halfcheetah", "HalfCheetah-v5", 17, 6, -280.178953, 12135.0, 1000),
    "walker2d": Task("walker2d", "Walker2d-v5", 17, 6, 1.629008, 4592.3, 1000),
}
DATASETS = ("medium", "medium-replay", "medium-expert")


def task(env: str) -> Task:
    """The :class:`Task` of a short env name ('reacher', 'hopper', 'halfcheetah', 'walker2d')."""
    if env not in TASKS:
        raise ValueError(f"unknown env {env!r}; known envs: {', '.join(TASKS)}")
    return TASKS[env]


def check_dataset_name(dataset: str) -> str:
    """``dataset`` if it is one of 'medium', 'medium-replay', 'medium-expert'; else a ValueError naming it."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    return dataset


def normalized_score(env: str, returns) -> np.ndarray:
    """D4RL-normalised score(s) of episode return(s): 100 * (R - random) / (expert - random)."""
    t = task(env)
    try:
        r = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"returns must be a number or an array of numbers (episode returns), got {returns!r}") from None
    if not np.isfinite(r).all():
        raise ValueError("returns must be finite (episode returns); got NaN or inf")
    return 100.0 * (r - t.random_score) / (t.expert_score - t.random_score)


def make_env(env: str, **kw):
    """A gymnasium MuJoCo v5 environment of a short env name (needs the extra ``rl``)."""
    from .._extras import require

    from .._mujoco_log import route_warnings

    gym = require("gymnasium", "rl", "tts_fast.rl.make_env")
    route_warnings(require("mujoco", "rl", "tts_fast.rl.make_env"))  # no MUJOCO_LOG.TXT in the user's folder, no warning on stdout
    return gym.make(task(env).gym_id, **kw)
