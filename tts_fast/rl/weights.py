"""The shipped agents: one file per (env, dataset) holding the diffusion policy and the twin-Q critic.

    import tts_fast as tts
    policy = tts.rl.load_policy("halfcheetah", "medium", states)  # a tts.Denoiser; prompt rows = states
    q = tts.rl.q_verifier("halfcheetah", "medium", states)       # min(Q1, Q2)(s, a0), differentiable
    res = tts.search(policy, q, "bon", n_particles=4, num_steps=15, batch_size=len(states))

Files are ``{dir}/{env}_{dataset}.pt`` (dir: given, else $TTS_FAST_RL_WEIGHTS, else the shipped
folder), written by ``python -m tts_fast.rl.train``; :mod:`tts_fast.rl.distill` adds the
one-step policy of a search under the key ``distilled``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

from .._checkpoints import build_network, expect_dict, expect_state_dict, load_checkpoint as _load, weights_folder
from .._devices import resolve_device
from .critic import QVerifier, TwinQ
from .envs import DATASETS, TASKS, check_dataset_name, task
from .policy import ActionScoreNet, DiffusionPolicy

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
_WHAT = "a tts_fast offline-RL agent checkpoint"
_KEYS = ("kind", "config", "policy", "critic")


HASHES = os.path.join(WEIGHTS_DIR, "hashes.json")  # sha256 of every shipped agent file, by file name


def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_hashes() -> dict:
    """{file name: sha256} of the shipped agent files, as recorded in ``weights/hashes.json``."""
    with open(HASHES, encoding="utf-8") as f:
        return json.load(f)


def changed_shipped_files() -> list[str]:
    """The shipped agent files whose bytes no longer match their recorded sha256 (or that are missing or unrecorded)."""
    recorded = shipped_hashes()
    present = {f for f in os.listdir(WEIGHTS_DIR) if f.endswith(".pt")}
    return sorted(f for f in recorded.keys() | present if f not in recorded or f not in present
                  or file_sha256(os.path.join(WEIGHTS_DIR, f)) != recorded[f])


def in_shipped_folder(path: str) -> bool:
    """Whether ``path`` lies in the package's shipped weights folder."""
    return os.path.dirname(os.path.abspath(path)) == os.path.abspath(WEIGHTS_DIR)


def check_writable(path: str, overwrite: bool, what: str) -> None:
    """Refuse to replace an existing agent file, or to change a shipped one, unless ``overwrite``.

    FileExistsError (an OSError: the commands end it in one line, exit status 2) naming the file and
    ``--overwrite``. ``what``: the change, for the message (e.g. 'training would replace').
    """
    if overwrite:
        return
    if os.path.exists(path):
        shipped = " (a shipped agent file)" if in_shipped_folder(path) else ""
        raise FileExistsError(f"{what} {path}{shipped}, which exists: pass --overwrite (overwrite=True) to replace it, "
                              "or write elsewhere (--out / --weights-dir)")


def record_shipped_hash(path: str) -> None:
    """After writing an agent file into the shipped folder: record its new sha256 in ``weights/hashes.json``."""
    if not in_shipped_folder(path):
        return
    from .._io import atomic_write_text

    table = shipped_hashes() if os.path.exists(HASHES) else {}
    table[os.path.basename(path)] = file_sha256(path)
    atomic_write_text(HASHES, json.dumps(table, indent=1, sort_keys=True) + "\n")


def weights_path(env: str, dataset: str, weights_dir: Optional[str] = None) -> str:
    """``{dir}/{env}_{dataset}.pt`` after checking both names."""
    task(env)
    check_dataset_name(dataset)
    return os.path.join(weights_folder(weights_dir, "TTS_FAST_RL_WEIGHTS", WEIGHTS_DIR), f"{env}_{dataset}.pt")


def _check_structure(ck: dict, path: str) -> None:
    expect_dict(ck["config"], path, "the config of " + _WHAT, ("env", "dataset", "policy", "critic"))
    expect_state_dict(ck["policy"], path, _WHAT)
    expect_state_dict(ck["critic"], path, _WHAT)


def load_checkpoint(env: str, dataset: str, weights_dir: Optional[str] = None) -> dict:
    """The agent checkpoint of (env, dataset): {'kind', 'config', 'policy', 'critic', 'meta'[, 'distilled']}.

    Raises FileNotFoundError for a missing file (naming how to train it) and ValueError for a file
    that is not an agent checkpoint, or one trained on another env or dataset.
    """
    path = weights_path(env, dataset, weights_dir)
    ck = _load(path, what=_WHAT, expected=f"a dict with keys {', '.join(_KEYS)} (written by python -m tts_fast.rl.train)", keys=_KEYS,
               kinds=("tts_fast_rl_agent",), check=_check_structure,
               missing=f"no agent weights for {env!r} / {dataset!r} at {path}; train them with "
                       f"`python -m tts_fast.rl.train --env {env} --dataset {dataset} --data MINARI_PATH --out DIR` and pass weights_dir=DIR")
    if (ck["config"]["env"], ck["config"]["dataset"]) != (env, dataset):
        raise ValueError(f"{path} holds the agent of {ck['config']['env']!r} / {ck['config']['dataset']!r}, not of {env!r} / {dataset!r}")
    return ck


def trained_agents(weights_dir: Optional[str] = None) -> list[tuple[str, str]]:
    """(env, dataset) pairs with agent weights in the (shipped) folder."""
    return [(e, d) for e in TASKS for d in DATASETS if os.path.isfile(weights_path(e, d, weights_dir))]


def load_policy(env: str, dataset: str, states, *, device=None, weights_dir: Optional[str] = None) -> DiffusionPolicy:
    """The behaviour diffusion policy of (env, dataset) holding ``states`` [P, obs_dim] as its prompt rows.

    ``device``: 'cpu', 'cuda', ... (default 'auto': CUDA when available).
    """
    ck = load_checkpoint(env, dataset, weights_dir)
    net = build_network(ActionScoreNet, ck["config"]["policy"], ck["policy"], weights_path(env, dataset, weights_dir))
    return DiffusionPolicy(net, states, env=env, device=resolve_device(device), meta=ck.get("meta"))


def load_critic(env: str, dataset: str, weights_dir: Optional[str] = None) -> TwinQ:
    """The IQL twin-Q critic of (env, dataset), in eval mode on the CPU."""
    ck = load_checkpoint(env, dataset, weights_dir)
    return build_network(TwinQ, ck["config"]["critic"], ck["critic"], weights_path(env, dataset, weights_dir))


def q_verifier(env: str, dataset: str, states, *, device=None, weights_dir: Optional[str] = None) -> QVerifier:
    """The Q-function verifier min(Q1, Q2)(s, a0) of (env, dataset) holding ``states`` [P, obs_dim].

    ``device``: 'cpu', 'cuda', ... (default 'auto': CUDA when available).
    """
    return QVerifier(load_critic(env, dataset, weights_dir), states, device=resolve_device(device))
