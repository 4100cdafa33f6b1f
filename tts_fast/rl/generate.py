"""The seeded recipe that regenerates D4RL-like datasets in Minari format.

D4RL's recipe, on gymnasium's MuJoCo v5 environments:

1. Train a behaviour policy with stable-baselines3's SAC (128 x 128 networks, one CPU thread,
   seeded), evaluating it every ``eval_every`` environment steps (``eval_episodes`` deterministic
   episodes, seeded) and saving each checkpoint with its measured return.
2. Pick checkpoints by measured return: *medium* = the first checkpoint whose return reaches the
   recipe's ``medium_return`` (D4RL's medium policies reach about a third of the expert's);
   *expert* = the best checkpoint.
3. Datasets: ``medium`` = rollouts of the medium policy (stochastic actions, as D4RL), recorded
   in Minari format; ``medium-replay`` = SAC's replay buffer up to the medium
   checkpoint, in collection order; ``medium-expert`` = medium plus as many transitions of the
   expert policy's rollouts. Written as Minari datasets (``EpisodeBuffer``s and
   ``create_dataset_from_buffers``, the format of Minari's ``DataCollector``).

Everything is seeded (SAC, environment resets, action sampling), so the same recipe gives the
same arrays on the same software stack; :func:`tts_fast.rl.datasets.fingerprint` records them.

    python -m tts_fast.rl.generate --env halfcheetah --out ~/rl_data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import _threads as threads
from .._extras import require
from .._io import atomic_path
from .._user_errors import command
from .envs import DATASETS, check_dataset_name, make_env, task


@dataclass(frozen=True)
class Recipe:
    """How one env's behaviour policies and datasets are made (steps are environment steps)."""

    env: str
    sac_steps: int
    eval_every: int
    eval_episodes: int
    medium_return: float
    dataset_steps: int  # transitions of the medium (and of the expert) rollouts
    learning_starts: int = 5000
    net: tuple = (128, 128)
    seed: int = 0


RECIPES = {
    # the cheap smoke task: SAC solves Reacher in a few thousand steps
    "reacher": Recipe("reacher", sac_steps=12_000, eval_every=2_000, eval_episodes=10, medium_return=-12.0,
                      dataset_steps=20_000, learning_starts=1000),
    # D4RL halfcheetah-medium returns about 4.8k; 200k transitions instead of D4RL's 1M (documented).
    # 150k SAC steps so that the best ("expert") checkpoint is past the medium one (reached at 90k);
    # the first 90k steps do not depend on sac_steps (constant learning rate, a buffer that never fills)
    "halfcheetah": Recipe("halfcheetah", sac_steps=150_000, eval_every=10_000, eval_episodes=3, medium_return=4500.0,
                          dataset_steps=200_000),
    # D4RL's medium policies reach about a third of its expert's return (hopper: 3234): 1100. Its
    # hopper-medium returns about 1.4k, but our SAC (128 x 128, seed 0) hovered at 600-1200 from 60k
    # to 120k steps (measured, 37 min of one core) and did not pass 1.4k
    "hopper": Recipe("hopper", sac_steps=150_000, eval_every=10_000, eval_episodes=5, medium_return=1100.0,
                     dataset_steps=200_000),
}


# the fields a SAC run depends on; the others (medium_return, dataset_steps) only choose and collect,
# so a finished run is reused when they change
TRAINING_FIELDS = ("env", "sac_steps", "eval_every", "eval_episodes", "learning_starts", "net", "seed")


def recipe(env: str) -> Recipe:
    """The :class:`Recipe` of an env ('reacher', 'halfcheetah', 'hopper')."""
    task(env)
    if env not in RECIPES:
        raise ValueError(f"no dataset recipe for env {env!r}; recipes exist for: {', '.join(RECIPES)}")
    return RECIPES[env]


def evaluate_sb3(model, env_name: str, episodes: int, seed: int, deterministic: bool = True) -> float:
    """Mean return of an SB3 policy over ``episodes`` episodes with reset seeds seed, seed+1, ..."""
    env = make_env(env_name)
    total = 0.0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            a, _ = model.predict(obs, deterministic=deterministic)
            obs, r, term, trunc, _ = env.step(a)
            total += float(r)
            done = term or trunc
    env.close()
    return total / episodes


def train_behaviour(rc: Recipe, out: str, log=print) -> dict:
    """Train SAC by the recipe, saving ``{out}/sac/step_{k}.zip``, the replay buffer and a log of returns.

    Returns the log: {'recipe', 'checkpoints': [{'step', 'return', 'path', 'seconds'}], 'seconds'}.
    SAC runs with the caller's torch threads (the command's default is one, as for the shipped data).
    """
    sb3 = require("stable_baselines3", "rl", "tts_fast.rl.generate")
    from stable_baselines3.common.callbacks import BaseCallback

    folder = os.path.join(out, rc.env, "sac")
    os.makedirs(folder, exist_ok=True)
    env = make_env(rc.env)
    model = sb3.SAC("MlpPolicy", env, seed=rc.seed, device="cpu", buffer_size=rc.sac_steps, learning_starts=rc.learning_starts,
                    policy_kwargs={"net_arch": list(rc.net)}, verbose=0)
    checkpoints = []
    t0 = time.perf_counter()

    class _Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % rc.eval_every == 0:
                path = os.path.join(folder, f"step_{self.num_timesteps}.zip")
                self.model.save(path)
                ret = evaluate_sb3(self.model, rc.env, rc.eval_episodes, seed=10_000 + rc.seed)
                checkpoints.append({"step": self.num_timesteps, "return": ret, "path": os.path.relpath(path, out),
                                    "seconds": time.perf_counter() - t0})
                log(f"[{rc.env}] step {self.num_timesteps}: return {ret:.1f} ({time.perf_counter() - t0:.0f} s)")
                # a stopped run keeps its checkpoints' returns and the replay buffer up to the last one
                _save_replay(self.model.replay_buffer, folder)
                _write_log(folder, rc, checkpoints, t0, done=False)
            return True

    model.learn(total_timesteps=rc.sac_steps, callback=_Eval())
    _save_replay(model.replay_buffer, folder)
    return _write_log(folder, rc, checkpoints, t0, done=True)


def _save_replay(rb, folder: str) -> None:
    """SB3's replay buffer (one env), in collection order, to ``{folder}/replay.npz`` (written whole or not at all)."""
    n = rb.pos if not rb.full else rb.buffer_size
    with atomic_path(os.path.join(folder, "replay.npz")) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the temporary name
            np.savez(f, observations=rb.observations[:n, 0], next_observations=rb.next_observations[:n, 0], actions=rb.actions[:n, 0],
                     rewards=rb.rewards[:n, 0], dones=rb.dones[:n, 0], timeouts=rb.timeouts[:n, 0])


def _write_log(folder: str, rc: Recipe, checkpoints: list, t0: float, done: bool) -> dict:
    import torch

    info = {"recipe": asdict(rc), "checkpoints": checkpoints, "seconds": time.perf_counter() - t0, "finished": done,
            "torch_threads": torch.get_num_threads()}
    with open(os.path.join(folder, "log.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def reuse_log(log_path: str, rc: Recipe) -> dict:
    """The SAC log at ``log_path``, for recipe ``rc``: a ValueError naming the fields when the run
    was launched with other :data:`TRAINING_FIELDS`; other fields (what is chosen and collected)
    follow ``rc``, and the launch recipe stays on record as ``launched_with``."""
    with open(log_path) as f:
        info = json.load(f)
    ours, theirs = json.loads(json.dumps(asdict(rc))), info["recipe"]
    diff = [k for k in TRAINING_FIELDS if theirs.get(k) != ours[k]]
    if diff:
        was = ", ".join(f"{k}={theirs.get(k)!r}" for k in diff)
        now = ", ".join(f"{k}={ours[k]!r}" for k in diff)
        raise ValueError(f"{log_path} was trained by another recipe ({was}; this one has {now}); remove it or use another --out")
    return dict(info, recipe=ours, launched_with=theirs)


def choose_checkpoints(info: dict) -> tuple[dict, dict]:
    """(medium, expert) checkpoints of a training log: the first reaching ``medium_return``; the best."""
    cks = info["checkpoints"]
    target = info["recipe"]["medium_return"]
    reached = [c for c in cks if c["return"] >= target]
    if not reached:
        best = max(c["return"] for c in cks)
        raise RuntimeError(f"no SAC checkpoint of {info['recipe']['env']} reached the medium return {target} (best {best:.1f}); "
                           "train longer (Recipe.sac_steps)")
    return reached[0], max(cks, key=lambda c: c["return"])


def collect(env_name: str, policy, steps: int, dataset_id: str, seed: int):
    """Roll ``policy(obs) -> action`` for whole episodes until ``steps`` transitions; a Minari dataset of them.

    Reset seeds are seed, seed+1, ...; the last episode is cut (truncated) at exactly ``steps``
    transitions. Episodes are recorded as Minari ``EpisodeBuffer``s and written with
    ``minari.create_dataset_from_buffers`` (what ``DataCollector`` writes, without its jax
    dependency). Returns the :class:`minari.MinariDataset` created under $MINARI_DATASETS_PATH.
    """
    minari = require("minari", "rl", "tts_fast.rl.generate.collect")
    env = make_env(env_name)
    episodes, done_steps, k = [], 0, 0
    while done_steps < steps:
        obs, _ = env.reset(seed=seed + k)
        k += 1
        o, a, r, te, tr = [obs], [], [], [], []
        while True:
            act = np.asarray(policy(obs), dtype=np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            done_steps += 1
            trunc = trunc or (done_steps >= steps and not term)  # the cut episode ends truncated, as D4RL's timeouts
            o.append(obs), a.append(act), r.append(rew), te.append(term), tr.append(trunc)
            if term or trunc:
                break
        episodes.append(_episode_buffer()(seed=seed + k - 1, observations=np.asarray(o, np.float64), actions=np.asarray(a, np.float32),
                                             rewards=np.asarray(r, np.float64), terminations=np.asarray(te), truncations=np.asarray(tr)))
    env.close()
    return _create(minari, env_name, episodes, dataset_id, "stable-baselines3 SAC (tts_fast.rl.generate)",
                   f"{steps} transitions of a policy's rollouts (reset seeds from {seed}), by tts_fast.rl.generate.collect")


def _episode_buffer():
    return require("minari.data_collector.episode_buffer", "rl", "tts_fast.rl.generate").EpisodeBuffer


def _create(minari, env_name: str, episodes: list, dataset_id: str, algorithm: str, description: str):
    t = task(env_name)
    return minari.create_dataset_from_buffers(dataset_id, episodes, env=make_env(env_name), eval_env=t.gym_id, algorithm_name=algorithm,
                                              author="tts_fast", description=description,
                                              code_permalink="tts_fast/rl/generate.py",
                                              ref_min_score=t.random_score, ref_max_score=t.expert_score)


def sb3_policy(path: str, seed: int, deterministic: bool = False):
    """``obs -> action`` of a saved SB3 SAC checkpoint; stochastic actions come from a seeded torch generator."""
    import torch

    sb3 = require("stable_baselines3", "rl", "tts_fast.rl.generate")
    model = sb3.SAC.load(path, device="cpu")
    torch.manual_seed(seed)  # SB3 samples the squashed Gaussian with torch's global generator
    return lambda obs: model.predict(obs, deterministic=deterministic)[0]


def replay_dataset(env_name: str, replay_npz: str, until: int, dataset_id: str):
    """Minari dataset of SAC's replay buffer up to transition ``until`` (D4RL's medium-replay), split into episodes."""
    minari = require("minari", "rl", "tts_fast.rl.generate.replay_dataset")
    z = np.load(replay_npz)
    n = min(until, len(z["actions"]))
    ends = np.flatnonzero((z["dones"][:n] > 0) | (z["timeouts"][:n] > 0))
    episodes, start = [], 0
    for e in list(ends) + ([n - 1] if not len(ends) or ends[-1] != n - 1 else []):
        sl = slice(start, e + 1)
        obs = np.concatenate([z["observations"][sl], z["next_observations"][e:e + 1]])
        timeout = bool(z["timeouts"][e]) or e == n - 1 and not z["dones"][e]
        term = np.zeros(e + 1 - start, bool)
        term[-1] = bool(z["dones"][e]) and not bool(z["timeouts"][e])
        trunc = np.zeros(e + 1 - start, bool)
        trunc[-1] = timeout
        episodes.append(_episode_buffer()(observations=obs.astype(np.float64), actions=z["actions"][sl].astype(np.float32),
                                             rewards=z["rewards"][sl].astype(np.float64), terminations=term, truncations=trunc))
        start = e + 1
    return _create(minari, env_name, episodes, dataset_id, "stable-baselines3 SAC replay buffer",
                   f"the first {n} transitions of a SAC replay buffer, by tts_fast.rl.generate.replay_dataset")


def generate(env: str, out: str, datasets=DATASETS, log=print) -> dict:
    """The whole recipe of one env: SAC, checkpoint choice, the datasets under ``{out}/minari``.

    Args:
        datasets: which of 'medium', 'medium-replay', 'medium-expert' to write (default: all).
    Returns (and writes to ``{out}/{env}/generation.json``) the training log, chosen checkpoints and
    the datasets' fingerprints.
    """
    for d in datasets:
        check_dataset_name(d)
    from .datasets import dataset_id, fingerprint, load

    rc = recipe(env)
    os.environ["MINARI_DATASETS_PATH"] = os.path.join(out, "minari")
    log_path = os.path.join(out, env, "sac", "log.json")
    if os.path.isfile(log_path):  # SAC already trained by this recipe: reuse it (the slow part)
        info = reuse_log(log_path, rc)
    else:
        info = train_behaviour(rc, out, log=log)
    medium, expert = choose_checkpoints(info)
    t0 = time.perf_counter()
    ds_ids = {d: dataset_id(env, d) for d in datasets}
    if "medium" in datasets or "medium-expert" in datasets:
        collect(env, sb3_policy(os.path.join(out, medium["path"]), rc.seed + 1), rc.dataset_steps, dataset_id(env, "medium"), seed=20_000)
    if "medium-replay" in datasets:
        replay = os.path.join(out, env, "sac", "replay.npz")
        if not os.path.isfile(replay):
            raise FileNotFoundError(f"{replay} is missing (the SAC run was stopped before it finished): medium-replay needs it")
        replay_dataset(env, replay, medium["step"], ds_ids["medium-replay"])
    if "medium-expert" in datasets:
        collect(env, sb3_policy(os.path.join(out, expert["path"]), rc.seed + 2), rc.dataset_steps, f"tts_fast/{env}/expert-v0",
                seed=30_000)
        minari = require("minari", "rl", "tts_fast.rl.generate")
        minari.combine_datasets([minari.load_dataset(dataset_id(env, "medium")), minari.load_dataset(f"tts_fast/{env}/expert-v0")],
                                ds_ids["medium-expert"])
    out_info = {"env": env, "training": info, "medium_checkpoint": medium, "expert_checkpoint": expert,
                "collection_seconds": time.perf_counter() - t0,
                "datasets": {d: fingerprint(load(env, d, path=os.environ["MINARI_DATASETS_PATH"])) for d in ds_ids}}
    with open(os.path.join(out, env, "generation.json"), "w") as f:
        json.dump(out_info, f, indent=1)
    return out_info


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.rl.generate``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.rl.generate",
                                description="Regenerate D4RL-like datasets in Minari format by a seeded recipe: train SAC "
                                "behaviour policies, pick checkpoints by return, record their rollouts.")
    p.add_argument("--env", required=True, choices=sorted(RECIPES), help="the MuJoCo task")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for SAC checkpoints and the Minari datasets (not the repository)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS, help="which datasets to write (default: all)")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.rl.generate")
def main(argv=None) -> None:
    """``python -m tts_fast.rl.generate``: parse ``argv`` and generate."""
    a = build_parser().parse_args(argv)
    threads.apply(a.threads)
    info = generate(a.env, a.out, datasets=a.datasets)
    print(json.dumps(info["datasets"], indent=1))


if __name__ == "__main__":
    sys.exit(main())
