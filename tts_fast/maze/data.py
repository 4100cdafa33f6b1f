"""The offline PointMaze dataset, regenerated the way ogbench made its 'navigate' datasets.

ogbench's public datasets cannot be downloaded here, so we regenerate them with the same expert
(ogbench ``data_gen_scripts/generate_locomaze.py``, point / navigate): every episode starts in a
uniformly drawn free cell with a goal drawn from the 'vertex' (non-hallway) cells; at each step
the action is the unit vector toward the centre of the next cell on a shortest path (BFS over
cells, ogbench's ``get_oracle_subgoal``) plus N(0, noise^2) noise, clipped to [-1, 1]; the
environment does not terminate at the goal: on success a new goal is drawn and the episode goes
on for its fixed length. Settings of the official files: noise 0.5; medium and large 1000
episodes x 1001 steps, giant 500 x 2001 (about 1M transitions each); validation = 10 % more
episodes. The BFS is cached per goal cell (the same subgoals as ogbench's per-step BFS, thousands
of steps per second per core instead of hundreds).

**Our data are regenerated, not the official files**: numbers measured with planners trained on
them are not directly comparable with results trained on the official datasets.

The output is ogbench's npz format (observations, actions, terminals, qpos, qvel; float32),
written atomically, loadable with ``ogbench.load_dataset`` and with
``ogbench.make_env_and_datasets(name, dataset_path=...)`` (which wants the '-val' file beside it)::

    python -m tts_fast.maze.data --maze medium --out ~/.cache/tts_fast/maze      # 1M transitions
    python -m tts_fast.maze.data --maze large --episodes 20 --out /tmp/d          # a quick look

Seeding: ogbench draws the start/goal noise from the *global* ``np.random``; the generator seeds
it (and draws everything else from it too), so the same seed gives the same file.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
from typing import Optional

import numpy as np

from .._io import atomic_write_bytes
from .._user_errors import command
from .envs import MAZES, check_maze_name, make_env, maze

# (episodes, steps per episode) of the official 'navigate' datasets; ultra: ~1M as suggested by the
# feasibility study (its official size is not published).
OFFICIAL_SIZES = {"medium": (1000, 1001), "large": (1000, 1001), "giant": (500, 2001), "ultra": (333, 3001)}
NOISE = 0.5
DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "tts_fast", "maze")


def vertex_cells(m) -> list[tuple[int, int]]:
    """Free cells that are not straight hallway cells (ogbench's goal cells)."""
    mm = m.maze_map
    out = []
    for i, j in m.free_cells:
        if mm[i - 1, j] == 0 and mm[i + 1, j] == 0 and mm[i, j - 1] == 1 and mm[i, j + 1] == 1:
            continue
        if mm[i, j - 1] == 0 and mm[i, j + 1] == 0 and mm[i - 1, j] == 1 and mm[i + 1, j] == 1:
            continue
        out.append((i, j))
    return out


def oracle_subgoal(m, xy, goal_xy) -> np.ndarray:
    """ogbench's ``get_oracle_subgoal`` from the cached BFS tables: centre of the next cell."""
    nxt = m.next_cells(m.xy_to_ij(goal_xy))[m.xy_to_ij(xy)]
    return m.ij_to_xy(nxt)


def generate(name: str, episodes: int, steps: int, *, noise: float = NOISE, seed: int = 0, log=None) -> dict:
    """Roll out the noisy expert: a dict of float32 arrays in ogbench's format.

    Args:
        name: maze name. episodes, steps: episode count and fixed length (transitions each).
        noise: std of the Gaussian action noise. seed: seeds the global np.random (see module doc).
    """
    check_maze_name(name, "name")
    for label, v, low in (("episodes", episodes, 1), ("steps", steps, 2)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {v!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0 (action noise std), got {noise!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32 - episodes:
        raise ValueError(f"seed must be an integer in [0, 2**32 - episodes) (numpy's seed range), got {seed!r}")
    m = maze(name)
    env = make_env(name, terminate_at_goal=False, max_episode_steps=steps)
    u = env.unwrapped
    np.random.seed(seed)
    u.action_space.seed(seed)
    cells, verts = m.free_cells, vertex_cells(m)
    n = episodes * steps
    obs = np.empty((n, 2), np.float32)
    act = np.empty((n, 2), np.float32)
    qpos = np.empty((n, 2), np.float32)
    qvel = np.empty((n, 2), np.float32)
    term = np.zeros(n, np.float32)
    k = 0
    t0 = time.perf_counter()
    goals_reached = 0
    for ep in range(episodes):
        init_ij = cells[np.random.randint(len(cells))]
        goal_ij = verts[np.random.randint(len(verts))]
        ob, _ = u.reset(seed=seed + ep if ep == 0 else None, options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))
        for s in range(steps):
            xy = u.get_xy()
            sub = oracle_subgoal(m, xy, u.cur_goal_xy)
            d = sub - xy
            a = d / (np.linalg.norm(d) + 1e-6)
            a = np.clip(a + np.random.normal(0.0, noise, 2), -1.0, 1.0)
            obs[k], act[k], qpos[k], qvel[k] = ob, a, u.data.qpos, u.data.qvel
            ob, _, _, _, info = u.step(a)
            if info["success"]:
                goals_reached += 1
                u.set_goal(goal_ij=verts[np.random.randint(len(verts))])
            k += 1
        term[k - 1] = 1.0
        if log is not None and (ep + 1) % max(1, episodes // 10) == 0:
            dt = time.perf_counter() - t0
            log(f"  {name}: episode {ep + 1}/{episodes}, {k / dt:,.0f} steps/s")
    env.close()
    seconds = time.perf_counter() - t0
    return {"observations": obs, "actions": act, "terminals": term, "qpos": qpos, "qvel": qvel,
            "_meta": dict(maze=name, episodes=episodes, steps=steps, noise=noise, seed=seed, seconds=seconds,
                          steps_per_second=n / seconds, goals_reached=goals_reached)}


def save_npz(path: str, data: dict) -> None:
    """ogbench's compressed npz format, written atomically (metadata as a JSON string under 'meta')."""
    import json

    buf = io.BytesIO()
    arrays = {k: v for k, v in data.items() if not k.startswith("_")}
    np.savez_compressed(buf, **arrays, meta=np.array(json.dumps(data.get("_meta", {}))))
    atomic_write_bytes(path, buf.getvalue())


def dataset_path(name: str, folder: Optional[str] = None, val: bool = False) -> str:
    """Where the dataset of maze ``name`` lives: ``{folder}/pointmaze-{name}-navigate-v0[-val].npz``.

    folder: given, else $TTS_FAST_MAZE_DATA, else ~/.cache/tts_fast/maze.
    """
    folder = folder or os.environ.get("TTS_FAST_MAZE_DATA") or DEFAULT_DIR
    return os.path.join(folder, f"pointmaze-{check_maze_name(name, 'name')}-navigate-v0{'-val' if val else ''}.npz")


def load(path: str) -> dict:
    """The arrays of a dataset file (observations, actions, terminals, qpos, qvel)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no dataset at {path}; generate it with `python -m tts_fast.maze.data --maze NAME --out DIR`")
    keys = ("observations", "actions", "terminals")
    try:
        with np.load(path) as z:
            out = {k: z[k] for k in z.files if k != "meta"}
    except Exception as e:  # noqa: BLE001 - a bad file surfaces as BadZipFile, ValueError, EOFError, OSError, ...
        raise ValueError(f"{path} is not a maze dataset: it could not be read as an npz file ({type(e).__name__}: {e}); "
                         f"expected ogbench's npz with {', '.join(keys)}, ... (regenerate it with python -m tts_fast.maze.data)") from None
    missing = [k for k in keys if k not in out]
    if missing:
        raise ValueError(f"{path} is not a maze dataset: it lacks {', '.join(missing)} (it holds {sorted(out)})")
    return out


def make(name: str, folder: Optional[str] = None, *, episodes: Optional[int] = None, steps: Optional[int] = None,
         noise: float = NOISE, seed: int = 0, val_seed: Optional[int] = None, log=print) -> tuple[str, str]:
    """Generate and save the train and validation files; returns their paths."""
    e0, s0 = OFFICIAL_SIZES[check_maze_name(name, "name")]
    episodes, steps = episodes or e0, steps or s0
    paths = dataset_path(name, folder), dataset_path(name, folder, val=True)
    for path, n_ep, sd in ((paths[0], episodes, seed), (paths[1], max(1, episodes // 10), 10_000 + seed if val_seed is None else val_seed)):
        d = generate(name, n_ep, steps, noise=noise, seed=sd, log=log)
        save_npz(path, d)
        meta = d["_meta"]
        if log is not None:
            log(f"{path}: {n_ep * steps:,} transitions in {meta['seconds']:.1f} s ({meta['steps_per_second']:,.0f} steps/s), "
                f"{meta['goals_reached']} goals reached, {os.path.getsize(path) / 2**20:.1f} MiB")
    return paths


@command("python -m tts_fast.maze.data")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tts_fast.maze.data", description=__doc__.split("\n\n")[0])
    p.add_argument("--maze", required=True, choices=MAZES)
    p.add_argument("--out", default=None, help=f"output folder (default $TTS_FAST_MAZE_DATA or {DEFAULT_DIR})")
    p.add_argument("--episodes", type=int, default=None, help="episodes (default: the official size)")
    p.add_argument("--steps", type=int, default=None, help="steps per episode (default: the official length)")
    p.add_argument("--noise", type=float, default=NOISE)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        p.error("--episodes must be >= 1")
    if args.steps is not None and args.steps < 2:
        p.error("--steps must be >= 2")
    make(args.maze, args.out, episodes=args.episodes, steps=args.steps, noise=args.noise, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
