"""Maze layouts (embedded, no ogbench needed) and the real MuJoCo PointMaze environments of ogbench.

Geometry (ogbench ``locomaze/maze.py``): the maze is a grid of cells of size ``UNIT = 4``; cell
(i, j) has its centre at xy = (4 j - 4, 4 i - 4) (offset 4); every wall cell is a box of
half-size 2 around its centre; the agent is a ball of radius ``RADIUS = 0.7``; an episode
succeeds when the ball centre comes within ``GOAL_TOL = 1.0`` of the goal. Each maze has 5 fixed
evaluation tasks (start cell, goal cell); ogbench's ``reset`` adds U(-1, 1) noise per axis to
both, drawn from the *global* ``np.random`` (seed it before each reset).

The layouts of medium, large and giant are those of the pip package ``ogbench==1.2.2`` (the
tests check them against ``env.unwrapped.maze_map``). **Ultra** is not in the pip package: its
21x21 map and 5 tasks are transcribed from the official code of Zhang et al. 2025, "Inference-time
Scaling of Diffusion Models through Classical Search" (github.com/XiangchengZhang/
Diffusion-inference-scaling, file ``pointmaze/ogbench/ogbench/locomaze/maze.py``, branch
``maze_type == 'ultra'``; 242 walls, sha256 of the uint8 map begins 4d8ca2a92238476d), with the
3000-step limit of its registration. :func:`make_env` registers it as ``pointmaze-ultra-v0`` by
subclassing ogbench's point-maze class (no fork of ogbench).

Only :func:`make_env` (and what calls it) imports ogbench / MuJoCo / gymnasium.
"""

from __future__ import annotations

import functools
import hashlib
from collections import deque

import numpy as np

from .._mujoco_log import route_warnings

UNIT = 4.0
OFFSET = 4.0
RADIUS = 0.7
GOAL_TOL = 1.0

_LAYOUTS = {
    "medium": """
########
#..##..#
#..#...#
##...###
#..#...#
#.#..#.#
#...#..#
########""",
    "large": """
############
#....#.....#
#.##.#.#.#.#
#......#...#
#.####.###.#
#..#.#.....#
##.#.#.#.###
#..#...#...#
############""",
    "giant": """
################
#.#......##....#
#.#.##.#.#..##.#
#...#..#...#...#
#.###.######.#.#
#...#...#....#.#
###.#.#..#.#.###
#...#..#...#...#
#.#.#.######.#.#
#.###...#...##.#
#.....#...#....#
################""",
    "ultra": """
#####################
#...#.........#.....#
###.#.#######.#.###.#
#...#.......#...#...#
#.#########.#####.###
#.#.......#.#.....#.#
#.###.###.#.#.#####.#
#...#.#.#...#.#.....#
###.#.#.#####.#.###.#
#.#...#.....#...#...#
#.#####.#.#######.###
#.....#.#.....#...#.#
###.###.#####.#.###.#
#...#...#.#...#...#.#
#.###.###.#.#####.#.#
#.#...#...#.......#.#
#.#.###.###########.#
#.#...#.............#
#.###.###########.#.#
#.................#.#
#####################""",
}

_TASKS = {
    "medium": [((1, 1), (6, 6)), ((6, 1), (1, 6)), ((5, 3), (4, 2)), ((6, 5), (6, 1)), ((2, 6), (1, 1))],
    "large": [((1, 1), (7, 10)), ((5, 4), (7, 1)), ((7, 4), (1, 10)), ((3, 8), (5, 4)), ((1, 1), (5, 4))],
    "giant": [((1, 1), (10, 14)), ((1, 14), (10, 1)), ((8, 14), (1, 1)), ((8, 3), (5, 12)), ((5, 9), (3, 8))],
    "ultra": [((1, 1), (19, 19)), ((1, 17), (17, 19)), ((1, 1), (19, 1)), ((19, 1), (1, 19)), ((1, 1), (9, 19))],
}

MAX_EPISODE_STEPS = {"medium": 1000, "large": 1000, "giant": 1000, "ultra": 3000}
MAZES = tuple(_LAYOUTS)
ULTRA_SHA256_PREFIX = "4d8ca2a92238476d"


def _parse(text: str) -> np.ndarray:
    rows = [r for r in text.strip().splitlines()]
    return np.array([[1 if c == "#" else 0 for c in r] for r in rows], dtype=np.int64)


def check_maze_name(name, argument: str = "maze_name") -> str:
    if not isinstance(name, str) or name not in _LAYOUTS:
        raise ValueError(f"{argument} must be one of {', '.join(MAZES)}; got {name!r} (an unknown maze)")
    return name


class Maze:
    """A maze layout and its geometry (pure numpy; no simulator).

    Attributes:
        name: 'medium', 'large', 'giant' or 'ultra'.
        maze_map: [rows, cols] int array, 1 = wall (ogbench's ``maze_map``).
        tasks: the 5 evaluation tasks as ((init_i, init_j), (goal_i, goal_j)).
        max_episode_steps: the environment's step limit.
    """

    unit = UNIT
    offset = OFFSET
    radius = RADIUS
    goal_tol = GOAL_TOL

    def __init__(self, name: str):
        self.name = check_maze_name(name, "name")
        self.maze_map = _parse(_LAYOUTS[name])
        self.maze_map.setflags(write=False)
        self.tasks = [tuple(map(tuple, t)) for t in _TASKS[name]]
        self.max_episode_steps = MAX_EPISODE_STEPS[name]
        self.free_cells = [tuple(c) for c in np.argwhere(self.maze_map == 0)]
        self.wall_cells = [tuple(c) for c in np.argwhere(self.maze_map == 1)]

    def __repr__(self):
        return f"Maze({self.name!r}, {self.maze_map.shape[0]}x{self.maze_map.shape[1]}, {len(self.free_cells)} free cells)"

    @property
    def shape(self):
        return self.maze_map.shape

    def fingerprint(self) -> str:
        """First 16 hex digits of the sha256 of the uint8 map."""
        return hashlib.sha256(self.maze_map.astype(np.uint8).tobytes()).hexdigest()[:16]

    def ij_to_xy(self, ij) -> np.ndarray:
        i, j = ij
        return np.array([j * self.unit - self.offset, i * self.unit - self.offset], dtype=np.float64)

    def xy_to_ij(self, xy) -> tuple[int, int]:
        """The cell containing xy (ogbench's rounding)."""
        i = int(np.floor((xy[1] + self.offset + 0.5 * self.unit) / self.unit))
        j = int(np.floor((xy[0] + self.offset + 0.5 * self.unit) / self.unit))
        return i, j

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) xy corners of the interior (inside the outer wall ring)."""
        rows, cols = self.maze_map.shape
        low = np.array([-self.offset + self.unit / 2] * 2)
        high = np.array([(cols - 2) * self.unit - self.offset + self.unit / 2, (rows - 2) * self.unit - self.offset + self.unit / 2])
        return low, high

    def is_free_cell(self, ij) -> bool:
        i, j = ij
        return 0 <= i < self.maze_map.shape[0] and 0 <= j < self.maze_map.shape[1] and self.maze_map[i, j] == 0

    def wall_depth(self, xy) -> float:
        """How deep the ball (radius 0.7) at xy reaches into a wall box (0 = clear)."""
        xy = np.asarray(xy, dtype=np.float64)
        w = np.array([self.ij_to_xy(c) for c in self.wall_cells])
        q = np.abs(xy[None] - w) - (self.unit / 2 + self.radius)
        inside = (q < 0).all(1)
        return float((-q.max(1))[inside].max()) if inside.any() else 0.0

    def check_position(self, xy, what: str = "position") -> np.ndarray:
        """xy as a float array; a clear error when it is not a valid free position of this maze."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise ValueError(f"{what} must be a finite (x, y) pair, got {xy.tolist()}")
        ij = self.xy_to_ij(xy)
        if not self.is_free_cell(ij):
            inside = "outside the maze" if not (0 <= ij[0] < self.shape[0] and 0 <= ij[1] < self.shape[1]) else f"inside wall cell {ij}"
            raise ValueError(f"{what} {tuple(np.round(xy, 3).tolist())} is {inside} of maze {self.name!r}; it must lie in a free cell")
        d = self.wall_depth(xy)
        if d > 1e-9:
            raise ValueError(
                f"{what} {tuple(np.round(xy, 3).tolist())} puts the ball (radius {self.radius}) {d:.3f} deep into a wall of maze "
                f"{self.name!r}; it must be at least {self.radius} from every wall"
            )
        return xy

    def task_xy(self, task_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free (start_xy, goal_xy) of task 1..5."""
        if not isinstance(task_id, int) or not 1 <= task_id <= len(self.tasks):
            raise ValueError(f"task_id must be an integer in 1..{len(self.tasks)}, got {task_id!r}")
        s, g = self.tasks[task_id - 1]
        return self.ij_to_xy(s), self.ij_to_xy(g)

    # -- shortest paths over cells (BFS, cached per goal cell) ------------------------------------

    def next_cells(self, goal_ij) -> np.ndarray:
        """[rows, cols, 2] the neighbour cell the oracle moves to from each cell (ogbench's rule)."""
        return _next_cells(self.name, tuple(goal_ij))

    def cell_distance(self, start_ij, goal_ij) -> int:
        return int(_bfs(self.name, tuple(goal_ij))[tuple(start_ij)])

    def task_distances(self) -> list[int]:
        return [self.cell_distance(s, g) for s, g in self.tasks]


@functools.lru_cache(maxsize=None)
def maze(name: str) -> Maze:
    """The :class:`Maze` called ``name`` ('medium', 'large', 'giant', 'ultra')."""
    return Maze(check_maze_name(name, "name"))


@functools.lru_cache(maxsize=4096)
def _bfs(name: str, goal_ij) -> np.ndarray:
    m = maze(name).maze_map
    dist = np.full(m.shape, -1, dtype=np.int64)
    if m[goal_ij] != 0:
        raise ValueError(f"goal cell {goal_ij} is a wall of maze {name!r}")
    dist[goal_ij] = 0
    q = deque([goal_ij])
    while q:
        i, j = q.popleft()
        for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            ni, nj = i + di, j + dj
            if 0 <= ni < m.shape[0] and 0 <= nj < m.shape[1] and m[ni, nj] == 0 and dist[ni, nj] < 0:
                dist[ni, nj] = dist[i, j] + 1
                q.append((ni, nj))
    dist.setflags(write=False)
    return dist


@functools.lru_cache(maxsize=4096)
def _next_cells(name: str, goal_ij) -> np.ndarray:
    """ogbench's ``get_oracle_subgoal`` as a table: from each cell, the first neighbour (in the order
    up, left, down, right) with a strictly smaller BFS value (unreached cells count as -1, as there)."""
    m = maze(name).maze_map
    dist = _bfs(name, goal_ij)
    out = np.zeros((*m.shape, 2), dtype=np.int64)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            best = (i, j)
            for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
                ni, nj = i + di, j + dj
                if 0 <= ni < m.shape[0] and 0 <= nj < m.shape[1] and m[ni, nj] == 0 and dist[ni, nj] < dist[best]:
                    best = (ni, nj)
            out[i, j] = best
    out.setflags(write=False)
    return out


# ----------------------------------------------------------------------------------------------
# the simulator (ogbench, lazily imported)

_ULTRA_ID = "pointmaze-ultra-v0"


def _require_ogbench():
    try:
        import gymnasium  # noqa: F401
        import mujoco
        import ogbench  # noqa: F401  (registers the pointmaze-* ids)
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the PointMaze environments need ogbench (MuJoCo): pip install --no-build-isolation 'tts_fast[maze]' "
            f"(ogbench==1.2.2); missing: {e.name}"
        ) from None
    route_warnings(mujoco)  # no MUJOCO_LOG.TXT in the user's folder, no warning on stdout


@functools.lru_cache(maxsize=1)
def _ultra_class():
    from ogbench.locomaze.maze import make_maze_env

    # ogbench defines its maze class inside a factory: take it from a (cheap) stock instance.
    base = type(make_maze_env("point", "maze", maze_type="medium"))
    ultra = maze("ultra")

    class UltraPointMaze(base):
        """ogbench's point maze with the 'ultra' layout and tasks of Zhang et al. 2025 (see module doc)."""

        def update_tree(self, tree):
            # Called by ogbench's __init__ after it set the stock map and before MuJoCo builds the
            # model: swap in the ultra layout here so that the walls are built from it.
            self.maze_map = np.array(ultra.maze_map)
            self._maze_type = "ultra"
            super().update_tree(tree)

        def set_tasks(self):
            self.task_infos = [
                dict(task_name=f"task{k + 1}", init_ij=s, init_xy=self.ij_to_xy(s), goal_ij=g, goal_xy=self.ij_to_xy(g))
                for k, (s, g) in enumerate(ultra.tasks)
            ]
            if self._reward_task_id == 0:
                self._reward_task_id = 1

    return UltraPointMaze


def _make_ultra(**kwargs):
    kwargs.pop("loco_env_type", None)
    kwargs.pop("maze_env_type", None)
    kwargs.pop("maze_type", None)
    return _ultra_class()(maze_type="medium", **kwargs)


def register_ultra() -> None:
    """Register ``pointmaze-ultra-v0`` with gymnasium (idempotent)."""
    _require_ogbench()
    import gymnasium
    from gymnasium.envs.registration import register

    if _ULTRA_ID not in gymnasium.registry:
        register(id=_ULTRA_ID, entry_point=f"{__name__}:_make_ultra", max_episode_steps=MAX_EPISODE_STEPS["ultra"])


def env_id(name: str) -> str:
    return f"pointmaze-{check_maze_name(name, 'name')}-v0"


def make_env(name: str, **kwargs):
    """The ogbench PointMaze environment ``pointmaze-{name}-v0`` (gymnasium, with its step limit).

    Keyword arguments go to ogbench's maze class (e.g. ``terminate_at_goal=False``) or to
    ``gymnasium.make`` (``max_episode_steps``). No dataset is downloaded.
    """
    check_maze_name(name, "name")
    _require_ogbench()
    import gymnasium

    if name == "ultra":
        register_ultra()
    return gymnasium.make(env_id(name), **kwargs)


def ogbench_available() -> bool:
    try:
        import ogbench  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = [
    "Maze", "maze", "MAZES", "UNIT", "OFFSET", "RADIUS", "GOAL_TOL", "MAX_EPISODE_STEPS", "make_env", "env_id",
    "register_ultra", "ogbench_available", "check_maze_name",
]
