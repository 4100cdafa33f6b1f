"""A Diffuser-style trajectory diffusion planner for PointMaze, as a :class:`tts_fast.Denoiser`.

The model (Janner et al. 2022, as used by the classical-search paper on PointMaze) is a temporal
1-D UNet over a sequence of H waypoints (x, y): residual blocks of 1-D convolutions (kernel 5,
GroupNorm, Mish) with a sinusoidal time embedding, downsampled twice. It predicts x0 directly
(``predict_epsilon=False`` as in the paper's maze setup), with a cosine schedule of 256 train
timesteps. Waypoints are every ``stride``-th position of the dataset's trajectories, so a plan of
H waypoints spans (H - 1) * stride environment steps.

**Conditioning = inpainting.** A search's prompt rows are *tasks*: (start, goal) pairs held by
the :class:`MazePlanner`; particle rows carry ``cond`` = their task's index. ``forward`` writes
the task's start and goal into the first and last waypoint of x_t before the network sees it and
into the x0-prediction it returns, so every method (and every local-search gradient, which flows
through the inpainted x0) sees plans that start and end at the right places. The search code has
no special case for it.

**Coordinates.** Model space holds *normalised* coordinates: the maze interior (inside the outer
wall ring) maps to [-1, 1] per axis. :meth:`MazePlanner.decode` un-normalises to world xy
(ogbench's coordinates, metres of the simulator), so verifiers score world-coordinate plans
[B, H, 2]; decode is affine, so gradients pass through it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import schedules as _schedules
from .._arguments import check_int
from .._embeddings import sinusoidal_embedding
from .._device_checks import prompt_rows
from ..models.base import Denoiser, per_sample_timesteps
from .envs import check_maze_name, maze as _maze

TRAIN_STEPS = 256


def planner_schedule() -> _schedules.VPSchedule:
    """The planner's schedule: cosine betas over 256 train timesteps (the paper's PointMaze model)."""
    return _schedules.cosine(TRAIN_STEPS)


# ----------------------------------------------------------------------------------------------
# the network


class _Block(nn.Module):
    def __init__(self, cin, cout, k=5, groups=8):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, padding=k // 2)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x):
        return F.mish(self.norm(self.conv(x)))


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, temb):
        super().__init__()
        self.b1, self.b2 = _Block(cin, cout), _Block(cout, cout)
        self.time = nn.Sequential(nn.Mish(), nn.Linear(temb, cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.b1(x) + self.time(e)[:, :, None]
        return self.b2(h) + self.skip(x)


class TemporalUnet(nn.Module):
    """Diffuser's temporal UNet: [B, C, H] sequences, H divisible by 2^(len(dim_mults) - 1).

    Args:
        transition_dim: channels of a waypoint (2: x, y).
        dim: base width; dim_mults: widths per resolution.
    """

    def __init__(self, transition_dim: int = 2, dim: int = 32, dim_mults: Sequence[int] = (1, 2, 4)):
        super().__init__()
        check_int(transition_dim, "transition_dim", 1)
        # the residual blocks' GroupNorm takes 8 groups
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 8 or dim % 8:
            raise ValueError(f"dim must be a positive multiple of 8 (the blocks' GroupNorm has 8 groups), got {dim!r}")
        if (isinstance(dim_mults, (str, bytes)) or not hasattr(dim_mults, "__len__") or len(dim_mults) < 1
                or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in dim_mults)):
            raise ValueError(f"dim_mults must be a non-empty sequence of integers >= 1, got {dim_mults!r}")
        self.config = {"transition_dim": transition_dim, "dim": dim, "dim_mults": list(dim_mults)}
        dims = [transition_dim] + [dim * m for m in dim_mults]
        temb = dim * 4
        self.dim = dim
        self.time_mlp = nn.Sequential(nn.Linear(dim, temb), nn.Mish(), nn.Linear(temb, temb))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        pairs = list(zip(dims[:-1], dims[1:]))
        for k, (cin, cout) in enumerate(pairs):
            last = k == len(pairs) - 1
            self.downs.append(nn.ModuleList([_ResBlock(cin, cout, temb), _ResBlock(cout, cout, temb),
                                             nn.Conv1d(cout, cout, 3, stride=2, padding=1) if not last else nn.Identity()]))
        mid = dims[-1]
        self.mid1, self.mid2 = _ResBlock(mid, mid, temb), _ResBlock(mid, mid, temb)
        for k, (cin, cout) in enumerate(reversed(pairs[1:])):
            self.ups.append(nn.ModuleList([_ResBlock(cout * 2, cin, temb), _ResBlock(cin, cin, temb),
                                           nn.ConvTranspose1d(cin, cin, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(_Block(dim, dim), nn.Conv1d(dim, transition_dim, 1))
        self.levels = len(dim_mults)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % (2 ** (self.levels - 1)):
            raise ValueError(f"horizon {x.shape[-1]} must be divisible by {2 ** (self.levels - 1)}")
        e = self.time_mlp(sinusoidal_embedding(t, self.dim, layout="sin_first"))
        skips = []
        for r1, r2, down in self.downs:
            x = r2(r1(x, e), e)
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid1(x, e), e)
        for r1, r2, up in self.ups:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(r2(r1(x, e), e))
        return self.final(x)


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------------------------
# normalisation


class Normalizer:
    """Affine map between world xy and model space: the maze interior <-> [-1, 1] per axis."""

    def __init__(self, maze_name: str):
        low, high = _maze(maze_name).bounds()
        self.center = torch.tensor((low + high) / 2, dtype=torch.float32)
        self.half = torch.tensor((high - low) / 2, dtype=torch.float32)

    def normalize(self, xy: torch.Tensor) -> torch.Tensor:
        return (xy - self.center.to(xy)) / self.half.to(xy)

    def unnormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.half.to(z) + self.center.to(z)


# ----------------------------------------------------------------------------------------------
# the Denoiser


def _as_tasks(maze_name: str, tasks) -> torch.Tensor:
    """Validated [P, 2, 2] float64 world (start, goal) pairs."""
    m = _maze(maze_name)
    try:
        arr = np.asarray(tasks, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"tasks must be [P, 2, 2] (start xy, goal xy) pairs of numbers, got {tasks!r}") from None
    if arr.ndim == 2 and arr.shape == (2, 2):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (2, 2) or arr.shape[0] < 1:
        raise ValueError(f"tasks must be [P, 2, 2] (start xy, goal xy) pairs, got shape {arr.shape}")
    for k, (s, g) in enumerate(arr):
        m.check_position(s, f"start of task row {k}")
        m.check_position(g, f"goal of task row {k}")
    return torch.from_numpy(arr)


class MazePlanner(Denoiser):
    """The trajectory diffusion planner of one maze as a :class:`tts_fast.Denoiser`.

    ``x0 = planner(x_t, t, cond)``: x_t [B, H, 2] normalised waypoints, t [B] train timesteps,
    cond [B] task rows. Start and goal are inpainted (see the module doc).

    Args:
        net: a trained :class:`TemporalUnet`.
        maze_name: 'medium', 'large', 'giant' or 'ultra'.
        tasks: [P, 2, 2] world (start xy, goal xy) of each prompt row; checked against the walls.
        horizon: waypoints per plan (divisible by 4); stride: environment steps between waypoints.
    """

    def __init__(self, net: TemporalUnet, maze_name: str, tasks, *, horizon: int, stride: int,
                 schedule: Optional[_schedules.Schedule] = None, device="cpu", meta: Optional[dict] = None):
        self.maze = _maze(check_maze_name(maze_name))
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 4 or horizon % 4:
            raise ValueError(f"horizon must be an integer >= 4 divisible by 4, got {horizon!r}")
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:1', ... or a torch.device, got {device!r}") from None
        self.dtype = torch.float32
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.schedule = schedule if schedule is not None else planner_schedule()
        self.horizon, self.stride = horizon, stride
        self.sample_shape = (horizon, 2)
        self.normalizer = Normalizer(maze_name)
        self.tasks = _as_tasks(maze_name, tasks)
        self.num_prompts = int(self.tasks.shape[0])
        t = torch.as_tensor(self.tasks, dtype=torch.float32)
        self._start = self.normalizer.normalize(t[:, 0]).to(self.device)
        self._goal = self.normalizer.normalize(t[:, 1]).to(self.device)
        self.meta = dict(meta or {})

    def __repr__(self):
        return (f"MazePlanner({self.maze.name!r}, {self.num_prompts} tasks, horizon={self.horizon}, stride={self.stride}, "
                f"{num_params(self.net):,} params)")

    def with_tasks(self, tasks) -> "MazePlanner":
        """The same network with other (start, goal) rows."""
        return MazePlanner(self.net, self.maze.name, tasks, horizon=self.horizon, stride=self.stride,
                           schedule=self.schedule, device=self.device, meta=self.meta)

    def with_horizon(self, horizon: int) -> "MazePlanner":
        """The same network sampling plans of another length (the UNet is convolutional)."""
        return MazePlanner(self.net, self.maze.name, self.tasks, horizon=horizon, stride=self.stride,
                           schedule=self.schedule, device=self.device, meta=self.meta)

    @property
    def starts(self) -> torch.Tensor:
        return self.tasks[:, 0]

    @property
    def goals(self) -> torch.Tensor:
        return self.tasks[:, 1]

    def _rows(self, cond, n: int) -> torch.Tensor:
        if cond is None and self.num_prompts != 1:
            raise ValueError(f"this planner holds {self.num_prompts} tasks: pass cond (the task row of each plan)")
        if cond is not None and not isinstance(cond, torch.Tensor):
            cond = torch.as_tensor(cond)
        # Range-checked on every device without a host read (deferred in a search run; clamped meanwhile).
        return prompt_rows(cond, n, self.num_prompts, self.device, f"this MazePlanner's {self.num_prompts} tasks")

    def inpaint(self, x: torch.Tensor, cond) -> torch.Tensor:
        """x [B, H, 2] (normalised) with each row's start and goal written into its first and last waypoint."""
        rows = self._rows(cond, x.shape[0])
        start, goal = self._start[rows].to(x.dtype), self._goal[rows].to(x.dtype)
        return torch.cat([start[:, None], x[:, 1:-1], goal[:, None]], dim=1)

    def forward(self, x_t, t, cond=None):
        if x_t.dim() != 3 or x_t.shape[1:] != self.sample_shape:
            raise ValueError(f"x_t must be [B, {self.horizon}, 2], got {tuple(x_t.shape)}")
        t = per_sample_timesteps(t, x_t.shape[0], x_t.device)
        x = self.inpaint(x_t, cond)
        x0 = self.net(x.transpose(1, 2).float(), t.float()).transpose(1, 2).to(x_t.dtype)
        return self.inpaint(x0, cond)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """World xy [B, H, 2] of normalised plans (affine, differentiable)."""
        return self.normalizer.unnormalize(x0)

    def encode(self, xy: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize(xy)

    def to(self, device) -> "MazePlanner":
        return MazePlanner(self.net, self.maze.name, self.tasks, horizon=self.horizon, stride=self.stride,
                           schedule=self.schedule, device=device, meta=self.meta)
