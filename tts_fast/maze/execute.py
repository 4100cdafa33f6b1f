"""Execute plans in the real MuJoCo PointMaze (ogbench) with a simple tracking controller.

As in the classical-search paper's PointMaze code: the plan is made once from the reset state
(open loop) and followed with action = clip(gain * (target_{t+1} - obs_t), -1, 1), gain 5 (one
step moves at most 0.2, so gain 5 reaches a target within 0.2 in one step). Our plans have a
waypoint every ``stride`` steps, so the target at step t is the plan linearly interpolated at
t / stride; after the plan's end the target stays at its last waypoint (the goal). The episode
succeeds when the ball comes within 1.0 of the goal within the environment's step limit (1000
steps for medium/large/giant, 3000 for ultra).

Episodes are fixed by (task id, seed): ogbench's reset draws the start and goal noise from the
global ``np.random``, so we seed it right before each reset (:func:`reset_episode`).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .envs import check_maze_name, make_env, maze as _maze

GAIN = 5.0


def reset_episode(env, task_id: int, seed: int):
    """Reset to task ``task_id`` (1..5) with start/goal noise from ``seed``: (obs, goal_xy)."""
    np.random.seed(seed)
    ob, info = env.reset(seed=seed, options=dict(task_id=int(task_id)))
    return np.asarray(ob, dtype=np.float64), np.asarray(info["goal"], dtype=np.float64)


def episode_tasks(maze_name: str, episodes: Sequence[tuple[int, int]], env=None) -> np.ndarray:
    """[E, 2, 2] world (start, goal) of each (task_id, seed) episode, read from the simulator."""
    own = env is None
    env = env or make_env(maze_name)
    try:
        out = np.stack([np.stack(reset_episode(env, k, s)) for k, s in episodes])
    finally:
        if own:
            env.close()
    return out


def _check_stride(stride) -> None:
    if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1 (environment steps between waypoints), got {stride!r}")


def track(plan_xy: np.ndarray, stride: int, t: int) -> np.ndarray:
    """The controller's target at step t: the plan interpolated at t / stride (clamped at its end)."""
    u = min(t / stride, len(plan_xy) - 1)
    i = min(int(np.floor(u)), len(plan_xy) - 2)
    f = u - i
    return (1 - f) * plan_xy[i] + f * plan_xy[i + 1]


def rollout(env, plan_xy, stride: int, task_id: int, seed: int, *, gain: float = GAIN, max_steps: Optional[int] = None,
            record: bool = False) -> dict:
    """Reset the episode (task_id, seed), follow the plan, report success.

    Args:
        plan_xy: [H, 2] world waypoints (its first should be the reset observation).
        stride: environment steps between waypoints.
    Returns:
        {'success', 'steps' (to success, or the limit), 'final_dist', 'path' (if record)}.
    """
    plan_xy = np.asarray(plan_xy, dtype=np.float64)
    if plan_xy.ndim != 2 or plan_xy.shape[1] != 2 or plan_xy.shape[0] < 2:
        raise ValueError(f"plan must be [H >= 2, 2] world waypoints, got {plan_xy.shape}")
    if not np.isfinite(plan_xy).all():
        raise ValueError("plan holds non-finite waypoints (NaN or inf)")
    _check_stride(stride)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain <= 0:
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1):
        raise ValueError(f"max_steps must be an integer >= 1 or None (the environment's limit), got {max_steps!r}")
    ob, goal = reset_episode(env, task_id, seed)
    limit = max_steps or env.spec.max_episode_steps
    u = env.unwrapped
    path = [ob.copy()] if record else None
    success, t = False, 0
    for t in range(limit):
        target = track(plan_xy, stride, t + 1)
        a = np.clip(gain * (target - ob), -1.0, 1.0)
        ob, _, _, _, info = u.step(a)
        if record:
            path.append(ob.copy())
        if info["success"]:
            success = True
            break
    out = {"success": bool(success), "steps": t + 1, "final_dist": float(np.linalg.norm(ob - goal))}
    if record:
        out["path"] = np.array(path)
    return out


def evaluate(maze_name: str, plans_xy, episodes: Sequence[tuple[int, int]], stride: int, env=None, **kw) -> list[dict]:
    """Roll out plan e for episode e = (task_id, seed); one result dict per episode."""
    check_maze_name(maze_name)
    _check_stride(stride)
    plans_xy = np.asarray(plans_xy)
    if len(plans_xy) != len(episodes):
        raise ValueError(f"got {len(plans_xy)} plans for {len(episodes)} episodes")
    own = env is None
    env = env or make_env(maze_name)
    try:
        return [rollout(env, p, stride, k, s, **kw) for p, (k, s) in zip(plans_xy, episodes)]
    finally:
        if own:
            env.close()


def straight_line(start, goal, horizon: int) -> np.ndarray:
    """A straight-line plan [H, 2] (a baseline that ignores walls)."""
    if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool) or horizon < 2:
        raise ValueError(f"horizon must be an integer >= 2 (waypoints), got {horizon!r}")
    w = np.linspace(0.0, 1.0, horizon)[:, None]
    return (1 - w) * np.asarray(start)[None] + w * np.asarray(goal)[None]


def oracle_plan(maze_name: str, start, goal, horizon: int) -> np.ndarray:
    """Shortest path over cells (cell centres, then the goal), resampled to H waypoints (a reference plan)."""
    m = _maze(maze_name)
    gi = m.xy_to_ij(goal)
    nxt = m.next_cells(gi)
    pts = [np.asarray(start, dtype=np.float64)]
    c = m.xy_to_ij(start)
    while tuple(c) != tuple(gi):
        c = tuple(nxt[c])
        pts.append(m.ij_to_xy(c))
    pts[-1] = np.asarray(goal, dtype=np.float64)
    if len(pts) == 1:
        pts.append(pts[0])
    pts = np.array(pts)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    q = np.linspace(0, s[-1], horizon)
    return np.stack([np.interp(q, s, pts[:, 0]), np.interp(q, s, pts[:, 1])], axis=1)


__all__ = ["reset_episode", "episode_tasks", "track", "rollout", "evaluate", "straight_line", "oracle_plan", "GAIN"]
