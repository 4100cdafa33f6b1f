"""Offline datasets in Minari format, loaded from a local Minari data path only (never downloaded).

Two kinds of ids are understood:
- the regenerated ones, ``tts_fast/{env}/{dataset}-v0`` (see :mod:`tts_fast.rl.generate`);
- the official Minari ones, ``mujoco/{env}/{dataset}-v0``, when a user has them locally.

:func:`load` finds a dataset under ``path`` (default: $MINARI_DATASETS_PATH, else Minari's
``~/.minari/datasets``) and raises a clear error naming the id and the folder when it is not
there. :func:`transitions` flattens it into (s, a, r, s', done) arrays for training.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._extras import require
from .envs import check_dataset_name, task

SOURCES = ("tts_fast", "mujoco")


def default_path() -> str:
    """Minari's local data folder: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return os.environ.get("MINARI_DATASETS_PATH") or os.path.join(os.path.expanduser("~"), ".minari", "datasets")


def dataset_id(env: str, dataset: str, source: str = "tts_fast") -> str:
    """``{source}/{env}/{dataset}-v0`` after checking every part ('tts_fast' or 'mujoco' for source)."""
    task(env)
    check_dataset_name(dataset)
    if source not in SOURCES:
        raise ValueError(f"unknown dataset source {source!r}; known sources: {', '.join(SOURCES)}")
    return f"{source}/{env}/{dataset}-v0"


def load(env: str, dataset: str, *, path: Optional[str] = None, source: str = "tts_fast"):
    """The local :class:`minari.MinariDataset` ``{source}/{env}/{dataset}-v0`` under ``path``.

    Raises:
        ValueError: unknown env, dataset or source name; a dataset whose observation/action sizes
            are not the env's.
        FileNotFoundError: ``path`` is missing, or the dataset is not in it (the message names both
            and how to regenerate it; nothing is downloaded).
    """
    ds_id = dataset_id(env, dataset, source)
    folder = os.path.abspath(path or default_path())
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the local Minari data path {folder!r} does not exist (looking for dataset {ds_id!r}); "
                                "pass path= (--data on the command line) or set MINARI_DATASETS_PATH")
    ds_folder = os.path.join(folder, *ds_id.split("/"))
    if not os.path.isdir(os.path.join(ds_folder, "data")):
        raise FileNotFoundError(f"Minari dataset {ds_id!r} is not in the local data path {folder!r} (no {ds_folder}/data); "
                                f"regenerate it with `python -m tts_fast.rl.generate --env {env} --out DIR` and pass path=DIR/minari "
                                "(tts_fast never downloads datasets)")
    minari = require("minari", "rl", "tts_fast.rl.datasets.load")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = folder
    try:
        ds = minari.load_dataset(ds_id, download=False)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    check_sizes(ds, env, ds_id)
    return ds


def check_sizes(ds, env: str, name: str) -> None:
    """ValueError naming ``name`` when the dataset's observation/action sizes are not those of ``env``."""
    t = task(env)
    obs, act = ds.observation_space.shape, ds.action_space.shape
    if obs != (t.obs_dim,) or act != (t.act_dim,):
        raise ValueError(f"dataset {name!r} has observations {obs} and actions {act}, but env {env!r} has ({t.obs_dim},) and ({t.act_dim},)")


@dataclass
class Transitions:
    """Flat offline data: observations/next_observations [T, obs_dim], actions [T, act_dim],
    rewards [T], terminals [T] (1 where the episode terminated, not where it was truncated),
    episode_returns [E]."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    episode_returns: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def transitions(ds) -> Transitions:
    """The (s, a, r, s', terminal) arrays of every episode of a Minari dataset, in episode order (float32)."""
    obs, act, rew, nxt, term, rets = [], [], [], [], [], []
    for ep in ds.iterate_episodes():
        o = np.asarray(ep.observations, dtype=np.float32)
        obs.append(o[:-1])
        nxt.append(o[1:])
        act.append(np.asarray(ep.actions, dtype=np.float32))
        rew.append(np.asarray(ep.rewards, dtype=np.float32))
        term.append(np.asarray(ep.terminations, dtype=np.float32))
        rets.append(float(np.sum(ep.rewards)))
    if not act:
        raise ValueError(f"dataset {ds.spec.dataset_id!r} holds no episodes")
    return Transitions(np.concatenate(obs), np.concatenate(act), np.concatenate(rew), np.concatenate(nxt), np.concatenate(term),
                       np.asarray(rets))


def fingerprint(ds) -> dict:
    """What identifies a dataset's content: sizes, return statistics and the sha256 of its arrays."""
    tr = transitions(ds)
    h = hashlib.sha256()
    for a in (tr.observations, tr.actions, tr.rewards, tr.next_observations, tr.terminals):
        h.update(np.ascontiguousarray(a).tobytes())
    r = tr.episode_returns
    return {"dataset_id": ds.spec.dataset_id, "episodes": int(len(r)), "transitions": int(len(tr)),
            "return_mean": float(r.mean()), "return_std": float(r.std()), "return_min": float(r.min()), "return_max": float(r.max()),
            "sha256": h.hexdigest()}
