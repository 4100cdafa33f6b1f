"""The shipped agents: one file per (env, dataset) holding the diffusion policy and the twin-Q critic.

    import tts_fast as tts
    policy = tts.rl.policy("halfcheetah", "medium", states)      # a tts.Denoiser; prompt rows = states
    q = tts.rl.q_verifier("halfcheetah", "medium", states)       # min(Q1, Q2)(s, a0), differentiable
    res = tts.search(policy, q, "bon", n_particles=4, num_steps=15, batch_size=len(states))

Files are ``{dir}/{env}_{dataset}.pt`` (dir: given, else $TTS_FAST_RL_WEIGHTS, else the shipped
folder), written by ``python -m tts_fast.rl.train``; :mod:`tts_fast.rl.distill` adds the
one-step policy of a search under the key ``distilled``.
"""

from __future__ import annotations

import functools
import os
from typing import Optional

import torch

from .._checkpoints import expect_dict, expect_state_dict, load_weights
from .critic import QVerifier, TwinQ
from .envs import DATASETS, TASKS, check_dataset_name, task
from .policy import ActionScoreNet, DiffusionPolicy

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
_WHAT = "a tts_fast offline-RL agent checkpoint"
_KEYS = ("kind", "config", "policy", "critic")


def weights_path(env: str, dataset: str, weights_dir: Optional[str] = None) -> str:
    """``{dir}/{env}_{dataset}.pt`` after checking both names."""
    task(env)
    check_dataset_name(dataset)
    folder = weights_dir or os.environ.get("TTS_FAST_RL_WEIGHTS") or WEIGHTS_DIR
    return os.path.join(folder, f"{env}_{dataset}.pt")


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime: float) -> dict:
    ck = expect_dict(load_weights(path, _WHAT, f"a dict with keys {', '.join(_KEYS)} (written by python -m tts_fast.rl.train)"),
                     path, _WHAT, _KEYS)
    if ck["kind"] != "tts_fast_rl_agent":
        raise ValueError(f"{path} is not {_WHAT}: it holds kind={ck['kind']!r} (expected 'tts_fast_rl_agent')")
    expect_dict(ck["config"], path, "the config of " + _WHAT, ("env", "dataset", "policy", "critic"))
    expect_state_dict(ck["policy"], path, _WHAT)
    expect_state_dict(ck["critic"], path, _WHAT)
    return ck


def load_checkpoint(env: str, dataset: str, weights_dir: Optional[str] = None) -> dict:
    """The agent checkpoint of (env, dataset): {'kind', 'config', 'policy', 'critic', 'meta'[, 'distilled']}.

    Raises FileNotFoundError for a missing file (naming how to train it) and ValueError for a file
    that is not an agent checkpoint, or one trained on another env or dataset.
    """
    path = weights_path(env, dataset, weights_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no agent weights for {env!r} / {dataset!r} at {path}; train them with "
                                f"`python -m tts_fast.rl.train --env {env} --dataset {dataset} --data MINARI_PATH --out DIR` "
                                "and pass weights_dir=DIR")
    ck = _load(path, os.path.getmtime(path))
    if (ck["config"]["env"], ck["config"]["dataset"]) != (env, dataset):
        raise ValueError(f"{path} holds the agent of {ck['config']['env']!r} / {ck['config']['dataset']!r}, not of {env!r} / {dataset!r}")
    return ck


def trained_agents(weights_dir: Optional[str] = None) -> list[tuple[str, str]]:
    """(env, dataset) pairs with agent weights in the (shipped) folder."""
    return [(e, d) for e in TASKS for d in DATASETS if os.path.isfile(weights_path(e, d, weights_dir))]


def _build(cls, config: dict, state: dict, path: str):
    try:
        net = cls(**config)
        net.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as e:  # config or weights of another network
        raise ValueError(f"{path} does not hold a {cls.__name__} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return net.eval()


def _device(device):
    return ("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "auto") else device


def policy(env: str, dataset: str, states, *, device=None, weights_dir: Optional[str] = None) -> DiffusionPolicy:
    """The behaviour diffusion policy of (env, dataset) holding ``states`` [P, obs_dim] as its prompt rows."""
    ck = load_checkpoint(env, dataset, weights_dir)
    net = _build(ActionScoreNet, ck["config"]["policy"], ck["policy"], weights_path(env, dataset, weights_dir))
    return DiffusionPolicy(net, states, env=env, device=_device(device), meta=ck.get("meta"))


def critic(env: str, dataset: str, weights_dir: Optional[str] = None) -> TwinQ:
    """The IQL twin-Q critic of (env, dataset)."""
    ck = load_checkpoint(env, dataset, weights_dir)
    return _build(TwinQ, ck["config"]["critic"], ck["critic"], weights_path(env, dataset, weights_dir))


def q_verifier(env: str, dataset: str, states, *, device=None, weights_dir: Optional[str] = None) -> QVerifier:
    """The Q-function verifier min(Q1, Q2)(s, a0) of (env, dataset) holding ``states`` [P, obs_dim]."""
    return QVerifier(critic(env, dataset, weights_dir), states, device=_device(device))
