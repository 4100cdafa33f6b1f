"""The shipped planners: one file per maze holding the temporal UNet, its horizon and waypoint stride.

    import tts_fast as tts
    planner = tts.maze.load_planner("large")          # a tts.Denoiser; prompt rows = the maze's 5 tasks

Files are ``{dir}/pointmaze_{maze}.pt`` (dir: given, else $TTS_FAST_MAZE_WEIGHTS, else the shipped
folder), written by ``python -m tts_fast.maze.train``.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .._checkpoints import build_network, expect_dict, expect_state_dict, load_checkpoint as _load, weights_folder
from .._devices import resolve_device
from .envs import MAZES, check_maze_name, maze as _maze
from .planner import MazePlanner, TemporalUnet

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
_WHAT = "a tts_fast maze planner checkpoint"
_KEYS = ("kind", "config", "state_dict")
_CONFIG_KEYS = ("net", "horizon", "stride")


def weights_path(maze_name: str, weights_dir: Optional[str] = None) -> str:
    """``{dir}/pointmaze_{maze}.pt``; dir: given, else $TTS_FAST_MAZE_WEIGHTS, else the shipped folder."""
    folder = weights_folder(weights_dir, "TTS_FAST_MAZE_WEIGHTS", WEIGHTS_DIR)
    return os.path.join(folder, f"pointmaze_{check_maze_name(maze_name)}.pt")


def _check_structure(ck: dict, path: str) -> None:
    expect_dict(ck["config"], path, "the config of " + _WHAT, _CONFIG_KEYS)
    expect_dict(ck["config"]["net"], path, "the network config of " + _WHAT, ("transition_dim", "dim", "dim_mults"))
    expect_state_dict(ck["state_dict"], path, _WHAT)


def load_checkpoint(maze_name: str, weights_dir: Optional[str] = None) -> dict:
    """The planner checkpoint of a maze: {'kind': 'pointmaze_planner', 'config', 'state_dict', 'meta'}.

    Raises FileNotFoundError for a missing file and ValueError naming the file for one that is not a
    planner checkpoint of this maze (truncated, corrupted, another kind of file, another maze's).
    """
    path = weights_path(maze_name, weights_dir)
    ck = _load(path, what=_WHAT, expected=f"a dict with keys {', '.join(_KEYS)}, meta (written by python -m tts_fast.maze.train)",
               keys=_KEYS, kinds=("pointmaze_planner",), check=_check_structure,
               missing=f"no planner weights for maze {maze_name!r} at {path}; train them with "
                       f"`python -m tts_fast.maze.train --maze {maze_name} --out DIR` and pass weights_dir=DIR")
    trained_on = ck["config"].get("maze")
    if trained_on is not None and trained_on != maze_name:
        raise ValueError(f"{path} is the planner of maze {trained_on!r}, not of {maze_name!r} (its coordinates would be wrong)")
    return ck


def trained_mazes(weights_dir: Optional[str] = None) -> list[str]:
    """Mazes with planner weights in the (shipped) weights folder."""
    return [m for m in MAZES if os.path.isfile(weights_path(m, weights_dir))]


def load_planner(maze_name: str, tasks=None, *, horizon: Optional[int] = None, device=None,
                 weights_dir: Optional[str] = None) -> MazePlanner:
    """The pretrained planner of a maze.

    Args:
        maze_name: 'medium', 'large' or 'giant' (shipped; 'ultra' after training it).
        tasks: [P, 2, 2] world (start, goal) pairs, one per prompt row (default: the maze's 5
            evaluation tasks without noise).
        horizon: waypoints per plan (default: the training horizon).
        device: 'cpu', 'cuda', ... (default 'auto': CUDA when available).
    """
    check_maze_name(maze_name)
    ck = load_checkpoint(maze_name, weights_dir)
    net = build_network(TemporalUnet, ck["config"]["net"], ck["state_dict"], weights_path(maze_name, weights_dir),
                        what="TemporalUnet planner")
    m = _maze(maze_name)
    if tasks is None:
        tasks = [np.stack(m.task_xy(k)) for k in range(1, len(m.tasks) + 1)]
    return MazePlanner(net, maze_name, tasks, horizon=ck["config"]["horizon"] if horizon is None else horizon, stride=ck["config"]["stride"],
                       device=resolve_device(device), meta=ck.get("meta"))
