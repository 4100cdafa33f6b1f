"""Verifiers of maze plans: the paper's wall penalty, plan smoothness, and goal checks.

They score *world-coordinate* plans [B, H, 2] (what :meth:`MazePlanner.decode` returns; the
search decodes before scoring), and need no simulator.

**Wall penalty** (the classical-search paper's ``MazeVerifier``, §5.2 of our spec of its code):
every wall cell is a box of half-size unit/2 = 2 around its centre, inflated by the ball radius
0.7 (the paper inflates for its ultra maze; we always do, since the ball is 0.7 wide in every
maze, so "inside" means the simulated ball would touch the wall). A waypoint inside a box has
depth = its distance to the nearest face of that box that is *open* (not shared with an adjacent
wall cell), i.e. how far it must move to leave the wall through free space; a box with no open
face (the inside of a thick wall) adds one cell size to its nearest-face distance. A waypoint's
depth is its maximum over boxes (0 when clear), and reward = -sum_h depth_h^2 (differentiable almost
everywhere; 0 = a plan that never touches a wall). Scale-free thresholds follow from it:
:meth:`WallPenalty.threshold` turns a tolerance in cell units into a reward threshold.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np
import torch

from .._device_checks import prompt_rows
from ..verifiers.base import Verifier
from .envs import GOAL_TOL, RADIUS, check_maze_name, maze as _maze


def _finite(v) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _check_plans(xy: torch.Tensor, name: str = "plans") -> None:
    if not isinstance(xy, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of world-coordinate waypoints [B, H, 2], got {type(xy).__name__}")
    if xy.dim() != 3 or xy.shape[-1] != 2:
        raise ValueError(f"{name} must be world-coordinate waypoints [B, H, 2], got shape {tuple(xy.shape)}")


class WallPenalty(Verifier):
    """reward = -sum over waypoints of the squared wall depth (see the module doc).

    Args:
        maze_name: 'medium', 'large', 'giant' or 'ultra'.
        radius: inflation of the wall boxes (default the ball radius 0.7; 0 for bare boxes).
        open_faces: measure depth to open faces only (the paper); False: to the nearest face.
        substeps: also score points interpolated between consecutive waypoints (k - 1 per gap,
            each weighted 1/k); 1 = waypoints only (the paper). The paper's penalty cannot see a
            segment that jumps across a wall between two clear waypoints; local search can make
            such plans (docs/maze.md).
        batch_size: max plans per evaluation (memory: B * H * substeps * walls * 4 floats).
    """

    differentiable = True

    def __init__(self, maze_name: str, *, radius: float = RADIUS, open_faces: bool = True, substeps: int = 1,
                 batch_size: Optional[int] = 4096):
        m = _maze(check_maze_name(maze_name))
        if not isinstance(open_faces, bool):  # a truthy 1 or "no" would switch the faces on by accident
            raise ValueError(f"open_faces must be True or False, got {open_faces!r}")
        if not _finite(radius) or radius < 0:
            raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
        if not isinstance(substeps, int) or isinstance(substeps, bool) or substeps < 1:
            raise ValueError(f"substeps must be an integer >= 1, got {substeps!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
        self.substeps = substeps
        self.maze = m
        self.radius = float(radius)
        self.batch_size = batch_size
        centers, opened = [], []
        for i, j in m.wall_cells:
            centers.append(m.ij_to_xy((i, j)))
            # faces: -x (left, j-1), +x (right, j+1), -y (down, i-1), +y (up, i+1)
            opened.append([m.is_free_cell((i, j - 1)), m.is_free_cell((i, j + 1)), m.is_free_cell((i - 1, j)), m.is_free_cell((i + 1, j))])
        self._centers = torch.tensor(np.array(centers), dtype=torch.float64)
        opened = torch.tensor(opened, dtype=torch.bool)
        self._open = opened if open_faces else torch.ones_like(opened)
        self._closed_extra = torch.where(self._open.any(1), 0.0, m.unit).to(torch.float64)
        self.half = m.unit / 2 + self.radius

    def depth(self, xy: torch.Tensor) -> torch.Tensor:
        """Wall depth of each waypoint: [B, H] (0 = clear)."""
        _check_plans(xy)
        c = self._centers.to(xy.device, xy.dtype)
        rel = xy[:, :, None, :] - c[None, None]  # [B, H, W, 2]
        h = self.half
        faces = torch.stack([h + rel[..., 0], h - rel[..., 0], h + rel[..., 1], h - rel[..., 1]], dim=-1)  # [B, H, W, 4]
        inside = (faces > 0).all(-1)
        op = self._open.to(xy.device)
        big = torch.full_like(faces, float("inf"))
        to_open = torch.where(op, faces, big).amin(-1)
        to_any = faces.amin(-1) + self._closed_extra.to(xy.device, xy.dtype)
        d = torch.where(op.any(-1), to_open, to_any)
        d = torch.where(inside, d, torch.zeros_like(d))
        return d.amax(-1)

    def forward(self, x0, cond=None):
        if self.substeps == 1:
            return -(self.depth(x0) ** 2).sum(1)
        _check_plans(x0)
        k = self.substeps
        f = torch.arange(k, device=x0.device, dtype=x0.dtype)[None, None, :, None] / k
        pts = x0[:, :-1, None] * (1 - f) + x0[:, 1:, None] * f  # [B, H-1, k, 2]; f = 0 are the waypoints
        d2 = self.depth(pts.reshape(x0.shape[0], -1, 2)) ** 2
        w = torch.full((k,), 1.0 / k, device=x0.device, dtype=d2.dtype)
        w[0] = 1.0
        inner = (d2.reshape(x0.shape[0], -1, k) * w).sum((1, 2))
        return -(inner + (self.depth(x0[:, -1:]) ** 2).sum(1))

    def threshold(self, tolerance: Optional[float] = None) -> float:
        """Reward threshold that allows one waypoint ``tolerance`` cells deep: -(tolerance * unit)^2.

        Default: the ball radius (0.7 = 0.175 cells), i.e. a plan may bring one waypoint's centre
        up to a bare wall box (the ball grazing the wall), which the ball survives by sliding;
        0 accepts only plans that never touch a wall. In cell units, so the same for every maze.
        """
        if tolerance is None:
            tolerance = self.radius / self.maze.unit if self.radius > 0 else RADIUS / self.maze.unit
        if not _finite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be a finite number >= 0 (cells), got {tolerance!r}")
        return -float(tolerance * self.maze.unit) ** 2


class Smoothness(Verifier):
    """reward = -sum_h |w_{h+1} - 2 w_h + w_{h-1}|^2 / unit^2: penalises jerky plans (second differences)."""

    differentiable = True

    def __init__(self, unit: float = 4.0):
        if not _finite(unit) or unit <= 0:
            raise ValueError(f"unit must be a finite length > 0, got {unit!r}")
        self.unit = float(unit)

    def forward(self, x0, cond=None):
        _check_plans(x0)
        acc = x0[:, 2:] - 2 * x0[:, 1:-1] + x0[:, :-2]
        return -(acc ** 2).sum((1, 2)) / self.unit ** 2


class Sum(Verifier):
    """A weighted sum of verifiers, e.g. ``Sum([WallPenalty('large'), Smoothness()], [1.0, 0.1])``."""

    def __init__(self, verifiers, weights=None):
        self.verifiers = list(verifiers)
        if not self.verifiers or not all(isinstance(v, Verifier) for v in self.verifiers):
            raise TypeError("verifiers must be a non-empty list of tts_fast.Verifier")
        weights = [1.0] * len(self.verifiers) if weights is None else list(weights)
        if len(weights) != len(self.verifiers) or not all(_finite(w) for w in weights):
            raise ValueError(f"weights must be one finite number per verifier ({len(self.verifiers)}), got {weights!r}")
        self.weights = [float(w) for w in weights]
        self.differentiable = all(v.differentiable for v in self.verifiers)
        rows = {v.num_prompts for v in self.verifiers} - {None}
        if len(rows) > 1:
            raise ValueError(f"the verifiers of a Sum hold different numbers of prompt rows: {sorted(rows)}")
        self.num_prompts = rows.pop() if rows else None

    def forward(self, x0, cond=None):
        return sum(w * v(x0, cond) for w, v in zip(self.weights, self.verifiers))


class GoalReached(Verifier):
    """1.0 when a plan's last waypoint lies within ``tol`` of its row's goal, else 0.0.

    With inpainting every plan of a :class:`MazePlanner` ends on its goal, so this checks the
    conditioning (and plans built by other means); whether the goal is *reached* when the plan
    is executed is measured in the simulator (:mod:`tts_fast.maze.execute`).

    Args:
        goals: [P, 2] world goal of each prompt row (e.g. ``planner.goals``), indexed by cond.
    """

    differentiable = False

    def __init__(self, goals, tol: float = GOAL_TOL):
        try:
            g = torch.as_tensor(np.asarray(goals, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"goals must be finite world xy: [2] or [P, 2] (one per prompt row), got {goals!r}") from None
        if g.dim() not in (1, 2) or g.shape[-1] != 2 or g.numel() < 2 or not bool(torch.isfinite(g).all()):
            raise ValueError(f"goals must be finite world xy: [2] or [P, 2] (one per prompt row), got shape {tuple(g.shape)}")
        if not _finite(tol) or tol < 0:
            raise ValueError(f"tol must be a finite distance >= 0, got {tol!r}")
        self.goals = g.reshape(-1, 2)
        self.tol = float(tol)
        self.num_prompts = int(self.goals.shape[0]) if self.goals.shape[0] > 1 else None

    def forward(self, x0, cond=None):
        _check_plans(x0)
        g = self.goals.to(x0.device, x0.dtype)
        if self.num_prompts is None:
            g = g.expand(x0.shape[0], 2)  # one goal serves every row
        else:
            g = g[prompt_rows(cond, x0.shape[0], self.num_prompts, x0.device, "this GoalReached")]
        return ((x0[:, -1] - g).norm(dim=-1) <= self.tol).to(x0.dtype)


def plan_stats(maze_name: str, xy: torch.Tensor) -> dict:
    """Per-plan diagnostics of plans ``xy`` [B, H, 2] (world coordinates): wall penalty, max depth,
    waypoints in walls, path length, each [B]."""
    _check_plans(xy, "xy")
    wp = WallPenalty(maze_name)
    with torch.no_grad():
        d = wp.depth(xy.double())
    return {
        "penalty": (d ** 2).sum(1),
        "max_depth": d.amax(1),
        "in_wall": (d > 0).sum(1),
        "length": (xy[:, 1:] - xy[:, :-1]).norm(dim=-1).sum(1),
    }


__all__ = ["WallPenalty", "Smoothness", "Sum", "GoalReached", "plan_stats"]
