"""tts_fast.maze against independently computed values (by hand, closed form, tiny brute force).

Each test's docstring names the broken variants it catches. The training tests run train() for a
few steps on a hand-made dataset (no simulator); the dataset-generator tests need ogbench.
"""

import json
import math
import os
import sys

import numpy as np
import pytest
import torch

from tts_fast import _training, schedules
from tts_fast.maze import data, envs, execute
from tts_fast.maze import train as tr
from tts_fast.maze.planner import MazePlanner, Normalizer, TemporalUnet, num_params
from tts_fast.maze.verifiers import GoalReached, Smoothness, Sum, WallPenalty, plan_stats

needs_ogbench = pytest.mark.skipif(not envs.ogbench_available(), reason="ogbench not installed (pip install 'tts_fast[maze]')")

# medium is 8 x 8 cells of 4: the interior spans x, y in [-2, 22] (centre 10, half-width 12)
MED_CENTER, MED_HALF = 10.0, 12.0


def _free_by_hand(layout: str):
    rows = layout.strip().splitlines()
    return [[c != "#" for c in r] for r in rows]


# -- layouts and geometry ------------------------------------------------------------------------


def test_medium_map_cells_and_coordinates_by_hand():
    """The parsed map, cell centres (4 j - 4, 4 i - 4), the cell of a point and the interior bounds.
    Catches: a wrong unit/offset or swapped i/j in ij_to_xy or xy_to_ij, a wrong rounding, bounds
    off by a cell."""
    m = envs.maze("medium")
    free = _free_by_hand(envs._LAYOUTS["medium"])
    assert m.shape == (8, 8)
    assert [[v == 0 for v in r] for r in m.maze_map.tolist()] == free
    assert len(m.free_cells) == sum(map(sum, free)) == 26 and len(m.wall_cells) == 64 - 26
    assert m.ij_to_xy((2, 5)).tolist() == [16.0, 4.0] and m.ij_to_xy((6, 1)).tolist() == [0.0, 20.0]
    assert m.xy_to_ij((16.0, 4.0)) == (2, 5)
    assert m.xy_to_ij((1.99, -1.99)) == (1, 1) and m.xy_to_ij((2.0, 2.0)) == (2, 2)  # cell (1, 1) spans [-2, 2)
    low, high = m.bounds()
    assert low.tolist() == [-2.0, -2.0] and high.tolist() == [22.0, 22.0]
    lo, hi = envs.maze("large").bounds()  # 9 rows x 12 columns
    assert lo.tolist() == [-2.0, -2.0] and hi.tolist() == [38.0, 26.0]
    assert m.task_xy(4)[0].tolist() == [16.0, 20.0] and m.task_xy(4)[1].tolist() == [0.0, 20.0]


def _bfs_by_hand(layout, start, goal):
    free = _free_by_hand(layout)
    seen, frontier, d = {start}, [start], 0
    while frontier:
        if goal in frontier:
            return d
        nxt = []
        for i, j in frontier:
            for c in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if free[c[0]][c[1]] and c not in seen:
                    seen.add(c)
                    nxt.append(c)
        frontier, d = nxt, d + 1
    return -1


@pytest.mark.parametrize("name", ["medium", "large"])
def test_cell_distances_equal_a_brute_force_bfs(name):
    """Shortest cell distances of every task and of a sample of cell pairs; the next cell of the
    oracle is a neighbour one step closer. Catches: a wrong BFS step, neighbour set or table."""
    m = envs.maze(name)
    lay = envs._LAYOUTS[name]
    assert m.task_distances() == [_bfs_by_hand(lay, s, g) for s, g in m.tasks]
    cells = m.free_cells
    for a in cells[::3]:
        for b in cells[::5]:
            d = _bfs_by_hand(lay, a, b)
            assert m.cell_distance(a, b) == d
            n = tuple(m.next_cells(b)[a])
            if a == b:
                assert n == a
            else:
                assert abs(n[0] - a[0]) + abs(n[1] - a[1]) == 1 and _bfs_by_hand(lay, n, b) == d - 1


def test_wall_depth_and_position_checks_by_hand():
    """Maze.wall_depth: how far the 0.7-ball reaches into the nearest wall box; check_position
    accepts exactly the points at least 0.7 from every wall. Catches: a wrong radius or half-size."""
    m = envs.maze("medium")
    assert m.wall_depth((0.0, 0.0)) == 0.0
    assert m.wall_depth((5.5, 0.0)) == pytest.approx(0.2)  # the wall box of cell (1, 3) starts at x = 6
    assert m.wall_depth((5.3, 0.0)) == 0.0
    assert m.check_position((5.3, 0.0)).tolist() == [5.3, 0.0]
    with pytest.raises(ValueError, match=r"^position \(5\.5, 0\.0\) puts the ball \(radius 0\.7\) 0\.200 deep into a wall of maze 'medium'"):
        m.check_position((5.5, 0.0))


@pytest.mark.parametrize("name", envs.MAZES)
def test_vertex_cells_equal_the_hallway_rule_by_hand(name):
    """vertex_cells = free cells that are not straight hallway cells (free above and below with walls
    left and right, or the transpose), in the order of the free cells. Catches: either hallway test
    changed (e.g. a dead end counted as a hallway), a `continue` turned into `break`."""
    free = _free_by_hand(envs._LAYOUTS[name])
    want = []
    for i, row in enumerate(free):
        for j, f in enumerate(row):
            if not f:
                continue
            up, down, left, right = free[i - 1][j], free[i + 1][j], free[i][j - 1], free[i][j + 1]
            if (up and down and not left and not right) or (left and right and not up and not down):
                continue
            want.append((i, j))
    got = [tuple(map(int, c)) for c in data.vertex_cells(envs.maze(name))]
    assert got == want
    assert 0 < len(want) < len(envs.maze(name).free_cells)


def test_position_check_messages_in_full():
    """check_position names the position, its cell and the maze; a point that is not one finite
    (x, y) pair is refused as such (3 numbers, NaN). Catches: the default label changed, `or` of
    the shape/finite test turned into `and`."""
    m = envs.maze("medium")
    with pytest.raises(ValueError, match=r"^position \(8\.0, 0\.0\) is inside wall cell \(1, 3\) of maze 'medium'; it must lie in a free cell$"):
        m.check_position((8.0, 0.0))
    for bad in ((1.0, 2.0, 3.0), (float("nan"), 0.0), (0.0, float("inf"))):
        with pytest.raises(ValueError, match=r"^position must be a finite \(x, y\) pair"):
            m.check_position(bad)


def test_planner_rows_message_in_full():
    """A task row out of range is named with the planner's task count. Catches: the holder's
    description dropped from the message."""
    m = envs.maze("medium")
    p = MazePlanner(_net(), "medium", [np.stack(m.task_xy(1)), np.stack(m.task_xy(2))], horizon=8, stride=1)
    with pytest.raises(ValueError, match=r"^cond holds prompt rows outside \[0, 2\) \(this MazePlanner's 2 tasks\)$"):
        p(torch.randn(2, 8, 2), torch.zeros(2), torch.tensor([0, 2]))


def test_vertex_cells_of_medium_listed_by_hand():
    """Medium's 26 free cells hold 5 hallway cells: (3, 3), (4, 5) and (6, 2) between walls above and
    below, (5, 1) and (5, 6) between walls left and right. Catches: the hallway rules changed."""
    verts = set(map(lambda c: tuple(map(int, c)), data.vertex_cells(envs.maze("medium"))))
    hall = {(3, 3), (4, 5), (6, 2), (5, 1), (5, 6)}
    free = set(map(lambda c: tuple(map(int, c)), envs.maze("medium").free_cells))
    assert hall <= free and verts == free - hall


# -- normalisation, inpainting, the planner's arguments ----------------------------------------------


def test_normalizer_maps_the_interior_to_the_unit_square():
    """medium: world [-2, 22]^2 <-> [-1, 1]^2 (centre 10, half 12). Catches: a wrong centre/scale."""
    n = Normalizer("medium")
    xy = torch.tensor([[-2.0, 22.0], [10.0, 10.0], [4.0, 16.0]])
    want = (xy - MED_CENTER) / MED_HALF
    assert torch.allclose(n.normalize(xy), want) and want[0].tolist() == [-1.0, 1.0]
    assert torch.allclose(n.unnormalize(want), xy)


def _net():
    torch.manual_seed(0)
    return TemporalUnet(dim=8, dim_mults=(1, 2, 2))


def test_a_one_task_planner_needs_no_cond_and_two_tasks_need_it():
    """cond may be omitted only when the planner holds one task (rows all 0). Catches: the test
    `num_prompts != 1` changed to another count (one task then refuses cond=None, or two accept it)."""
    m = envs.maze("medium")
    one = MazePlanner(_net(), "medium", np.stack(m.task_xy(1)), horizon=8, stride=1)  # stride 1 is allowed
    assert one.num_prompts == 1 and one.stride == 1
    x0 = one(torch.randn(3, 8, 2), torch.full((3,), 5.0))
    s, g = (torch.tensor(v, dtype=torch.float32) for v in m.task_xy(1))
    assert torch.allclose(x0[:, 0], ((s - MED_CENTER) / MED_HALF).expand(3, 2))
    assert torch.allclose(x0[:, -1], ((g - MED_CENTER) / MED_HALF).expand(3, 2))
    two = MazePlanner(_net(), "medium", [np.stack(m.task_xy(1)), np.stack(m.task_xy(2))], horizon=8, stride=1)
    with pytest.raises(ValueError, match="holds 2 tasks: pass cond"):
        two(torch.randn(3, 8, 2), torch.zeros(3))


def test_planner_argument_edges():
    """Zero tasks are refused; stride 1 and horizon 4 are accepted, stride 0 is not. Catches: the
    task-count check reading the wrong axis, `stride < 1` turned into `stride <= 1`."""
    m = envs.maze("medium")
    task = np.stack(m.task_xy(1))
    with pytest.raises(ValueError, match=r"tasks must be \[P, 2, 2\].*\(0, 2, 2\)"):
        MazePlanner(_net(), "medium", np.zeros((0, 2, 2)), horizon=8, stride=1)
    assert MazePlanner(_net(), "medium", task, horizon=4, stride=1).sample_shape == (4, 2)
    for bad in (0, -1, True, 1.0):
        with pytest.raises(ValueError, match="stride"):
            MazePlanner(_net(), "medium", task, horizon=8, stride=bad)


def test_tasks_and_goals_are_float64_whatever_their_input():
    """Integer task and goal lists become float64 (the documented [P, 2, 2] float64 tasks).
    Catches: the float64 conversion dropped (integer lists would stay int64)."""
    p = MazePlanner(_net(), "medium", [[0, 0], [20, 0]], horizon=8, stride=1)
    assert p.tasks.dtype == torch.float64 and p.tasks.tolist() == [[[0.0, 0.0], [20.0, 0.0]]]
    g = GoalReached([[8, 4], [0, 0]])
    assert g.goals.dtype == torch.float64 and g.goals.tolist() == [[8.0, 4.0], [0.0, 0.0]]


def test_unet_horizon_message_names_the_power_of_two():
    """Four levels halve three times: the horizon must be divisible by 2^3 = 8 (12 is refused, 16
    accepted). Catches: 2 * (levels - 1) for 2 ** (levels - 1) (the same for three levels)."""
    net = TemporalUnet(dim=8, dim_mults=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="horizon 12 must be divisible by 8"):
        net(torch.zeros(1, 2, 12), torch.zeros(1))
    assert net(torch.zeros(1, 2, 16), torch.zeros(1)).shape == (1, 2, 16)


def test_planner_copies_keep_schedule_meta_and_shape():
    """to(), with_tasks() and with_horizon() keep the schedule, meta, stride (and the rest).
    Catches: a copy falling back to the default cosine(256) schedule or dropping meta."""
    m = envs.maze("medium")
    sch = schedules.cosine(64)
    p = MazePlanner(_net(), "medium", np.stack(m.task_xy(1)), horizon=8, stride=3, schedule=sch, meta={"k": 1})
    for q in (p.to("cpu"), p.with_tasks(np.stack(m.task_xy(2))), p.with_horizon(12)):
        assert q.schedule is sch and q.meta == {"k": 1} and q.stride == 3 and q.net is p.net
    assert p.to("cpu").horizon == 8 and p.with_horizon(12).sample_shape == (12, 2)
    assert torch.equal(p.with_tasks(np.stack(m.task_xy(2))).goals[0], torch.tensor(m.task_xy(2)[1]))
    assert MazePlanner(_net(), "medium", np.stack(m.task_xy(1)), horizon=8, stride=3).schedule.num_train_timesteps == 256


# -- verifiers and plan statistics ---------------------------------------------------------------


PTS = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [6.0, 0.0], [8.0, 0.0], [-3.0, -3.0]]], dtype=torch.float64)
# depths (see test_maze.test_wall_penalty_values): 0, 0, 0.7, 2.7, 1.7 + 4


def test_plan_stats_by_hand():
    """penalty = sum of squared depths, max depth, waypoints in walls, polyline length.
    Catches: a wrong power in the penalty, max/sum swapped, a wrong in-wall count or length."""
    st = plan_stats("medium", PTS)
    assert st["penalty"].item() == pytest.approx(0.7**2 + 2.7**2 + 5.7**2)
    assert st["max_depth"].item() == pytest.approx(5.7)
    assert st["in_wall"].tolist() == [3]
    assert st["length"].item() == pytest.approx(3 + 3 + 2 + math.sqrt(11**2 + 3**2))
    two = torch.cat([PTS, torch.zeros(1, 5, 2, dtype=torch.float64)])
    st2 = plan_stats("medium", two)
    assert st2["penalty"].tolist()[1] == 0.0 and st2["in_wall"].tolist() == [3, 0] and st2["length"].tolist()[1] == 0.0
    assert st2["penalty"].shape == (2,)


def test_smoothness_is_in_cell_units():
    """-sum |second difference|^2 / unit^2: for (0,0), (1,0), (0,0) the difference is (-2, 0), so
    -4/16 with unit 4 and -4/4 with unit 2. Catches: multiplying by unit^2, a wrong difference."""
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    assert Smoothness()(x).item() == pytest.approx(-0.25)
    assert Smoothness(2.0)(x).item() == pytest.approx(-1.0)
    y = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [3.0, 0.0], [3.0, 3.0]]], dtype=torch.float64)
    # differences (1, -2) and (-2, 4): 1 + 4 + 4 + 16 = 25
    assert Smoothness(1.0)(y).item() == pytest.approx(-25.0)


def test_wall_penalty_threshold_and_substeps_by_hand():
    """threshold = -(tolerance * unit)^2 with the ball radius in cells as default; substeps weight
    interpolated points 1/k. Catches: a wrong default tolerance or scale, wrong weights."""
    v = WallPenalty("medium")
    assert v.threshold() == pytest.approx(-0.49) and WallPenalty("medium", radius=0.0).threshold() == pytest.approx(-0.49)
    assert v.threshold(0.5) == pytest.approx(-4.0) and v.threshold(0) == 0.0
    assert WallPenalty("medium", radius=1.0).threshold() == pytest.approx(-1.0)
    # waypoints (6, 0) (0.7 deep) and (8, 0) (2.7 deep), k = 2: the midpoint (7, 0) is 1.7 deep
    seg = torch.tensor([[[6.0, 0.0], [8.0, 0.0]]], dtype=torch.float64)
    assert WallPenalty("medium", substeps=2)(seg).item() == pytest.approx(-(0.7**2 + 1.7**2 / 2 + 2.7**2))
    assert v(seg).item() == pytest.approx(-(0.7**2 + 2.7**2))
    # radius 0: the box of wall (1, 3) starts at x = 6 exactly, so (6.5, 0) is 0.5 deep
    assert WallPenalty("medium", radius=0.0).depth(torch.tensor([[[6.5, 0.0]]], dtype=torch.float64)).item() == pytest.approx(0.5)


def test_wall_depth_uses_the_faces_open_to_free_cells():
    """(11, 0) lies in wall (1, 4) of medium, 1 from its left face, but that face is shared with
    wall (1, 3): the way out is up, into free cell (2, 4), 2 + 0.7 away; nothing else reaches
    there. Catches: the open-face test reading the wrong neighbour (e.g. j - 2, free (1, 2))."""
    v = WallPenalty("medium")
    x = torch.tensor([[[11.0, 0.0], [13.0, 0.0]]], dtype=torch.float64)
    # (13, 0): 1.7 to the open right face (free (1, 5)), 2.7 up
    assert v.depth(x)[0].tolist() == pytest.approx([2.7, 1.7])
    assert WallPenalty("medium", open_faces=False).depth(x)[0].tolist() == pytest.approx([1.7, 1.7])


def test_wall_penalty_batch_size_is_checked():
    """batch_size must be an int >= 1 or None: 2.5, True, 0 are refused; 1 and None accepted.
    Catches: the `or` of the type test turned into `and` (2.5 and True would pass)."""
    for bad in (2.5, True, 0, -3):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or None"):
            WallPenalty("medium", batch_size=bad)
    assert WallPenalty("medium", batch_size=1).batch_size == 1 and WallPenalty("medium", batch_size=None).batch_size is None
    assert WallPenalty("medium", batch_size=1)(PTS.expand(3, -1, -1)).tolist() == [pytest.approx(-(0.7**2 + 2.7**2 + 5.7**2))] * 3


def test_goal_reached_and_sum_by_hand():
    """GoalReached: |last - goal| <= tol (inclusive); Sum: the weighted sum, holding its verifiers'
    prompt rows. Catches: < for <=, the first waypoint for the last, weights dropped, the rows lost."""
    x = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]], dtype=torch.float64)
    assert GoalReached([0.0, 0.0], tol=5.0)(x).item() == 1.0 and GoalReached([0.0, 0.0], tol=4.99)(x).item() == 0.0
    assert GoalReached([3.0, 4.0], tol=0.0)(x).item() == 1.0
    rows = Sum([Smoothness(1.0), GoalReached([[0.0, 0.0], [3.0, 4.0]])])
    assert rows.num_prompts == 2 and Sum([Smoothness(1.0)]).num_prompts is None  # a Sum holds its verifiers' rows
    s = Sum([Smoothness(1.0), WallPenalty("medium")], [2.0, -1.0])
    y = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [6.0, 0.0]]], dtype=torch.float64)
    # smoothness: (-2, 0) and (7, 0): -(4 + 49); wall: (6, 0) is 0.7 deep
    assert s(y).item() == pytest.approx(2.0 * -53.0 - 1.0 * -(0.7**2))


# -- execution helpers -------------------------------------------------------------------------------


def test_execution_arguments_by_hand():
    """A plan count unequal to the episode count is named with both counts; max_steps must be an
    integer >= 1 (2.5 and True refused before any simulator); a 2-waypoint straight line is the
    start and the goal. Catches: the message lost, the `or` of the type test turned into `and`,
    horizon 2 refused, a plan of 3 columns let through (`and` for `or`), env_id's argument name."""
    with pytest.raises(ValueError, match=r"^got 2 plans for 1 episodes$"):
        execute.evaluate("medium", np.zeros((2, 4, 2)), [(1, 0)], 10)
    plan = execute.straight_line([0.0, 0.0], [8.0, 4.0], 4)
    for bad in (2.5, True, 0):
        with pytest.raises(ValueError, match="max_steps must be an integer >= 1 or None"):
            execute.rollout(None, plan, 10, 1, 0, max_steps=bad)
    assert execute.straight_line([1.0, 2.0], [3.0, 5.0], 2).tolist() == [[1.0, 2.0], [3.0, 5.0]]
    for bad in (np.zeros((4, 3)), np.zeros((1, 2)), np.zeros(4)):
        with pytest.raises(ValueError, match=r"plan must be \[H >= 2, 2\] world waypoints"):
            execute.rollout(None, bad, 10, 1, 0)
    with pytest.raises(ValueError, match="^name must be one of"):
        envs.env_id("umaze")
    assert envs.env_id("giant") == "pointmaze-giant-v0"


@needs_ogbench
def test_rollout_reports_steps_distance_and_path():
    """A 5-step rollout that cannot reach the goal: steps = 5, the recorded path has the reset
    observation then one point per step (each at most 0.2 per axis from the last: |a| <= 1), and
    final_dist = |last point - goal|. Catches: a figure renamed or dropped, the path not returned."""
    m = envs.maze("medium")
    env = envs.make_env("medium")
    ob, goal = execute.reset_episode(env, 1, 0)
    out = execute.rollout(env, execute.oracle_plan("medium", ob, goal, 40), 10, 1, 0, max_steps=5, record=True)
    env.close()
    assert set(out) == {"success", "steps", "final_dist", "path"}
    assert out["success"] is False and out["steps"] == 5
    path = out["path"]
    assert path.shape == (6, 2) and np.array_equal(path[0], ob)
    assert np.abs(np.diff(path, axis=0)).max() <= 0.2 + 1e-6 and np.abs(path[-1] - path[0]).max() > 0.1
    assert out["final_dist"] == pytest.approx(float(np.linalg.norm(path[-1] - goal)))
    assert out["final_dist"] > m.unit  # task 1 goes across the maze


@needs_ogbench
def test_generate_counts_the_goals_reached(monkeypatch):
    """_meta's goals_reached = the simulator's successes during the rollout (0 in 2 steps, some in a
    long zero-noise run). Catches: the count starting at 1 or not incremented."""
    real = data.make_env
    counted = []

    def make_env(*a, **kw):
        env = real(*a, **kw)
        u = env.unwrapped
        step = u.step

        def counting(action):
            r = step(action)
            counted[-1] += bool(r[-1]["success"])
            return r

        u.step = counting
        return env

    monkeypatch.setattr(data, "make_env", make_env)
    for eps, steps in ((1, 2), (2, 300)):
        counted.append(0)
        d = data.generate("medium", eps, steps, noise=0.0, seed=1)
        assert d["_meta"]["goals_reached"] == counted[-1]
    assert counted[0] == 0 and counted[1] > 0


def test_track_straight_line_and_oracle_plan_by_hand():
    """track: the plan interpolated at t / stride, held at its end; straight_line: evenly spaced;
    oracle_plan: cell centres resampled by arc length. Catches: wrong interpolation or clamping."""
    plan = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 20.0]])
    assert execute.track(plan, 4, 0).tolist() == [0.0, 0.0]
    assert execute.track(plan, 4, 1).tolist() == [2.5, 0.0]
    assert execute.track(plan, 4, 6).tolist() == [10.0, 10.0]
    assert execute.track(plan, 4, 8).tolist() == [10.0, 20.0] and execute.track(plan, 4, 100).tolist() == [10.0, 20.0]
    assert execute.straight_line([0.0, 0.0], [8.0, 4.0], 5).tolist() == [[0, 0], [2, 1], [4, 2], [6, 3], [8, 4]]
    # medium (1, 1) -> (2, 2): via (1, 2) or (2, 1); 8 units of path, 5 waypoints 2 apart
    m = envs.maze("medium")
    p = execute.oracle_plan("medium", m.ij_to_xy((1, 1)), m.ij_to_xy((2, 2)), 5)
    assert p[0].tolist() == [0.0, 0.0] and p[-1].tolist() == [4.0, 4.0]
    assert np.allclose(np.linalg.norm(np.diff(p, axis=0), axis=1), 2.0)
    assert p[2].tolist() in ([4.0, 0.0], [0.0, 4.0])


# -- training: windows, batches, schedule, loss ---------------------------------------------------------


def test_windows_by_hand():
    """Episodes end at the terminals; a window of H waypoints every k steps spans (H - 1) k steps and
    fits length - span times. Catches: wrong episode starts, lengths or counts, short episodes kept."""
    term = np.zeros(30)
    term[[4, 9, 13, 29]] = 1  # episodes [0, 4], [5, 9], [10, 13], [14, 29]: lengths 5, 5, 4, 16
    st, cnt = tr.windows(np.zeros((30, 2)), term, 3, 2)  # span 4: the length-4 episode is too short
    assert st.tolist() == [0, 5, 14] and cnt.tolist() == [1, 1, 12]
    st, cnt = tr.windows(np.zeros((30, 2)), term, 1, 7)  # span 0: every episode, every step
    assert st.tolist() == [0, 5, 10, 14] and cnt.tolist() == [5, 5, 4, 16]
    with pytest.raises(ValueError, match="no episode is longer than a plan of 30 steps"):
        tr.windows(np.zeros((30, 2)), term, 4, 10)


def test_sample_batch_draws_valid_windows_uniformly_over_episodes():
    """Each row is obs[s + off + k * arange(H)] with off < count of a random episode; episodes are
    drawn uniformly, offsets uniformly within one; seeded. Catches: windows crossing episode ends,
    a wrong stride, offsets not scaled by the episode's count, one draw reused."""
    obs = torch.arange(30, dtype=torch.float64)[:, None]  # row value = its index
    starts, counts = np.array([0, 5, 14]), np.array([1, 1, 12])
    b = tr.sample_batch(obs, starts, counts, 3, 2, 3000, torch.Generator().manual_seed(0))
    assert b.shape == (3000, 3, 1)
    first = b[:, 0, 0].long()
    valid = {0, 5} | set(range(14, 26))
    assert set(first.tolist()) == valid  # every window start appears, and only those
    assert torch.equal(b[:, :, 0].long(), first[:, None] + 2 * torch.arange(3)[None])
    per_episode = [(first == 0).sum().item(), (first == 5).sum().item(), (first >= 14).sum().item()]
    assert all(abs(n - 1000) < 120 for n in per_episode), per_episode  # 1/3 each (sd ~26)
    again = tr.sample_batch(obs, starts, counts, 3, 2, 3000, torch.Generator().manual_seed(0))
    assert torch.equal(b, again)


def test_learning_rate_warmup_and_cosine_by_hand():
    """The maze's shape (warm-up 300, floor 0.05): linear warm-up peak (s + 1) / w for s < w, then
    peak (0.05 + 0.95 (1 + cos(pi (s - w) / (T - w))) / 2). Catches: `* warmup` for `/ warmup`, a
    wrong floor or phase. (train() passing these settings on is checked by the learning rates of
    test_train_reports_what_it_did.)"""

    def lr(step, total, peak, warmup=300):
        return _training.warmup_cosine_lr(step, total, peak, warmup=warmup, floor=0.05)

    assert lr(0, 1000, 1.0) == pytest.approx(1 / 300)
    assert lr(149, 1000, 2.0) == pytest.approx(1.0)
    assert lr(299, 1000, 1.0) == pytest.approx(1.0)
    assert lr(300, 1000, 1.0) == pytest.approx(1.0)
    assert lr(650, 1000, 1.0) == pytest.approx(0.525)  # a quarter turn: cos = 0
    assert lr(1000, 1000, 1.0) == pytest.approx(0.05)
    assert lr(3, 10, 0.1, warmup=4) == pytest.approx(0.1)
    assert lr(1, 10, 0.1, warmup=4) == pytest.approx(0.05)
    assert lr(7, 10, 0.1, warmup=4) == pytest.approx(0.1 * (0.05 + 0.95 * 0.5))  # (7 - 4) / (10 - 4) = 1/2: cos = 0


class _Recorder(torch.nn.Module):
    """A stand-in network: records its input and returns a fixed prediction."""

    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, []

    def forward(self, x, t):
        self.seen.append((x.clone(), t.clone()))
        return self.out(x)


def test_diffusion_loss_inpaints_the_endpoints_and_scores_the_inside():
    """The network sees x_t = sqrt(a) x0 + sqrt(1 - a) eps with the clean start and goal written
    in, [B, 2, H] and float timesteps in [0, T); the loss is the MSE of the inner waypoints only.
    Catches: endpoints not inpainted (or the wrong slice), a wrong alpha_bar view, the endpoints
    scored, the timesteps not passed."""
    b, h = 5, 8
    x0 = torch.zeros(b, h, 2)
    x0[:, 0], x0[:, -1] = 100.0, -50.0
    x0[:, 1:-1] = 1.0
    ab = torch.linspace(0.1, 0.9, 256)
    net = _Recorder(lambda x: torch.zeros_like(x))
    loss = tr.diffusion_loss(net, x0, ab, torch.Generator().manual_seed(3))
    assert loss.item() == pytest.approx(1.0)  # the inner waypoints are 1, predicted 0; endpoints not scored
    (x, t), = net.seen
    assert x.shape == (b, 2, h) and t.dtype == torch.float32 and t.shape == (b,)
    assert torch.equal(t, t.round()) and 0 <= t.min() and t.max() < 256
    xt = x.transpose(1, 2)
    assert torch.equal(xt[:, 0], x0[:, 0]) and torch.equal(xt[:, -1], x0[:, -1])
    # the inside is q(x_t | x0) at each row's own timestep: replay the generator's draws
    g = torch.Generator().manual_seed(3)
    t2 = torch.randint(0, 256, (b,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = ab[t2][:, None, None]
    assert torch.equal(t2.float(), t)
    assert torch.allclose(xt[:, 1:-1], (a.sqrt() * x0 + (1 - a).sqrt() * eps)[:, 1:-1])
    # alpha_bar = 1 everywhere: x_t = x0 exactly; a perfect network has zero loss
    net1 = _Recorder(lambda x: x)
    assert tr.diffusion_loss(net1, x0, torch.ones(256), torch.Generator().manual_seed(0)).item() == 0.0
    assert torch.equal(net1.seen[0][0].transpose(1, 2), x0)


# -- train() on a hand-made dataset -----------------------------------------------------------------


TRAIN_EPISODES, TRAIN_LEN, VAL_EPISODES, VAL_LEN = 4, 12, 2, 10


def _write_dataset(folder):
    """Train: 4 episodes of 12 steps; val: 2 of 10; every position distinct (no simulator needed)."""
    for val, (e, n) in ((False, (TRAIN_EPISODES, TRAIN_LEN)), (True, (VAL_EPISODES, VAL_LEN))):
        k = np.arange(e * n, dtype=np.float32)
        obs = np.stack([k * 0.25 + (7.0 if val else 0.0), 20.0 - k * 0.125], 1).astype(np.float32)
        term = np.zeros(e * n, np.float32)
        term[n - 1::n] = 1.0
        data.save_npz(data.dataset_path("medium", str(folder), val=val),
                      {"observations": obs, "actions": np.zeros_like(obs), "terminals": term})
        yield obs


def _all_windows(obs, ep_len, h, k):
    """Every window of h waypoints every k steps inside one episode, normalised, as tuples."""
    z = (obs.astype(np.float64) - MED_CENTER) / MED_HALF
    out = set()
    for e0 in range(0, len(obs), ep_len):
        for s in range(e0, e0 + ep_len - (h - 1) * k):
            out.add(tuple(np.round(z[s + k * np.arange(h)], 4).ravel().tolist()))
    return out


def _run_train(tmp_path, monkeypatch, steps=20, batch=4, seed=0, ema_decay=0.5):
    obs_tr, obs_val = list(_write_dataset(tmp_path))
    calls, lrs, params, logs = [], [], [], []
    real_loss, real_step = tr.diffusion_loss, _training.train_step

    def loss(net, x0, ab, gen):
        out = real_loss(net, x0, ab, gen)
        calls.append((net, x0.detach().clone(), out.item(), ab))
        return out

    def step(net, ema, opt, l, i, decay):
        if not params:
            params.append([p.detach().clone() for p in net.parameters()])
        lrs.append(opt.param_groups[0]["lr"])
        real_step(net, ema, opt, l, i, decay)
        params.append([p.detach().clone() for p in net.parameters()])

    monkeypatch.setattr(tr, "diffusion_loss", loss)
    monkeypatch.setattr(_training, "train_step", step)  # the shared loop's optimiser step
    ema, info = tr.train("medium", steps=steps, batch=batch, lr=0.01, ema_decay=ema_decay, seed=seed, data_dir=str(tmp_path),
                         horizon=4, stride=2, log=logs.append)
    return ema, info, dict(calls=calls, lrs=lrs, params=params, logs=logs, obs_tr=obs_tr, obs_val=obs_val)


def test_train_reports_what_it_did(tmp_path, monkeypatch):
    """A 30-step run: the plan shape, the transitions, the final loss (the 0.99-running mean of the
    step losses), the validation loss (the mean of 8 batches of 256 windows of the validation file,
    scored with the EMA network), a log line every 3 steps (after steps 3, 6, ..., 30; with 20
    steps, every 2, a log after steps 1, 3, ... would print the same lines), the warm-up learning rates, and the
    returned network = the EMA of the trained weights. Catches: no network/optimizer, wrong batch
    or stride passed on, windows of the wrong file, a wrong running mean, val on the raw network,
    a missing or wrong figure, logs at the wrong steps ((step - 1) for (step + 1)), the schedule
    not applied."""
    steps, batch, decay = 30, 4, 0.5
    ema, info, rec = _run_train(tmp_path, monkeypatch, steps=steps, batch=batch, ema_decay=decay)
    assert info["plan"] == {"horizon": 4, "stride": 2}
    assert info["train_transitions"] == TRAIN_EPISODES * TRAIN_LEN and isinstance(info["train_transitions"], int)
    assert 0 < info["seconds"] < 60
    calls = rec["calls"]
    assert len(calls) == steps + 8
    train_calls, val_calls = calls[:steps], calls[steps:]
    assert all(c[1].shape == (batch, 4, 2) for c in train_calls) and all(c[1].shape == (256, 4, 2) for c in val_calls)
    assert all(c[0] is ema for c in val_calls) and all(c[0] is not ema for c in train_calls)
    ab = calls[0][3]
    assert ab.dtype == torch.float32 and ab.numel() == 256 and ab[0] > 0.99 and ab[-1] < 0.01
    # every window is one of the file's: 4 waypoints 2 steps apart inside one episode, normalised
    win_tr = _all_windows(rec["obs_tr"], TRAIN_LEN, 4, 2)
    win_val = _all_windows(rec["obs_val"], VAL_LEN, 4, 2)
    assert len(win_tr) == TRAIN_EPISODES * (TRAIN_LEN - 6) and len(win_val) == VAL_EPISODES * (VAL_LEN - 6)
    for c, allowed in [(c, win_tr) for c in train_calls] + [(c, win_val) for c in val_calls]:
        for w in c[1].double().numpy():
            assert tuple(np.round(w, 4).ravel().tolist()) in allowed
    seen_val = {tuple(np.round(w, 4).ravel().tolist()) for c in val_calls for w in c[1].double().numpy()}
    assert seen_val == win_val  # 2048 draws cover the 8 validation windows
    # the figures
    running = None
    for c in train_calls:
        running = c[2] if running is None else 0.99 * running + 0.01 * c[2]
    assert info["final_loss"] == pytest.approx(running, rel=1e-12)
    assert info["val_loss"] == pytest.approx(float(np.mean([c[2] for c in val_calls])), rel=1e-12)
    assert rec["logs"] and [int(line.split("step ")[1].split("/")[0]) for line in rec["logs"]] == list(range(3, 31, 3))
    assert all(f"/{steps} loss " in line and line.startswith("  medium step") for line in rec["logs"])
    assert rec["lrs"] == pytest.approx([0.01 * (s + 1) / 300 for s in range(steps)])
    # the returned network is the EMA: e_0 = w_0, e_s = e_{s-1} + (1 - d_s) (w_s - e_{s-1}), d_s = min(d, (s+1)/(s+10))
    e = [p.clone() for p in rec["params"][0]]
    for s in range(steps):
        d = min(decay, (1 + s) / (10 + s))
        e = [ei + (1 - d) * (wi - ei) for ei, wi in zip(e, rec["params"][s + 1])]
    got = list(ema.parameters())
    assert len(got) == len(e) and all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got, e))
    assert not torch.equal(rec["params"][0][0], rec["params"][-1][0])  # the weights did move
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    assert num_params(ema) == num_params(TemporalUnet(**tr.NET))


def test_train_is_deterministic_by_seed(tmp_path, monkeypatch):
    """Same seed: identical weights and losses; another seed: different. Catches: an unseeded
    initialisation, batch or validation draw."""
    runs = []
    for k, seed in enumerate((0, 0, 1)):
        d = tmp_path / str(k)
        d.mkdir()
        runs.append(_run_train(d, monkeypatch, steps=3, seed=seed)[:2])
    (a, ia), (b, ib), (c, ic) = runs
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (ia["final_loss"], ia["val_loss"]) == (ib["final_loss"], ib["val_loss"])
    assert not all(torch.equal(sa[k], sc[k]) for k in sa) and ia["val_loss"] != ic["val_loss"]


def test_train_defaults_to_the_maze_plan(tmp_path, monkeypatch):
    """Without horizon/stride the maze's PLAN is used (medium: 40 waypoints every 10 steps); the
    dataset's episodes must then be longer than 390 steps. Catches: wrong plan defaults."""
    assert tr.PLAN["medium"] == {"horizon": 40, "stride": 10} and tr.PLAN["ultra"] == {"horizon": 256, "stride": 10}
    list(_write_dataset(tmp_path))
    with pytest.raises(ValueError, match="no episode is longer than a plan of 390 steps"):
        tr.train("medium", steps=1, batch=2, lr=1e-3, ema_decay=0.9, seed=0, data_dir=str(tmp_path), log=None)


def test_train_parser_defaults():
    """The documented defaults: 12000 steps, batch 64, lr 1e-3, seed 0, the maze's horizon/stride.
    Catches: a default or an option name changed."""
    a = tr.build_parser().parse_args(["--maze", "medium", "--out", "o"])
    assert (a.steps, a.batch, a.lr, a.seed, a.horizon, a.stride, a.data) == (12000, 64, 1e-3, 0, None, None, None)
    a = tr.build_parser().parse_args(["--maze", "large", "--out", "o", "--seed", "7", "--horizon", "8", "--stride", "3"])
    assert (a.maze, a.seed, a.horizon, a.stride) == ("large", 7, 8, 3)
    assert tr.DEFAULTS == dict(steps=12000, batch=64, lr=1e-3, ema=0.999, seed=0)


def test_train_parser_requires_the_maze_and_a_positive_lr():
    """--maze and --out are required; --lr is a float > 0. Catches: --maze made optional, --lr's type
    dropped (a string would reach the optimiser)."""
    p = tr.build_parser()
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "o"])
    assert p.parse_args(["--maze", "medium", "--out", "o", "--lr", "0.01"]).lr == 0.01
    for bad in ("0", "-1", "x"):
        with pytest.raises(SystemExit):
            p.parse_args(["--maze", "medium", "--out", "o", "--lr", bad])


def test_train_main_writes_a_loadable_planner(tmp_path, capsys):
    """python -m tts_fast.maze.train on a tiny dataset: the checkpoint's config and meta say what was
    trained, and load_planner rebuilds it with that plan shape, on the device asked for; a checkpoint
    without tensors is named. Catches: wrong meta figures, the device dropped, the checkpoint's
    description lost from the message, the parser's prog dropped."""
    from tts_fast.maze.weights import load_planner, weights_path

    list(_write_dataset(tmp_path))
    out = tmp_path / "w"
    rc = tr.main(["--maze", "medium", "--out", str(out), "--data", str(tmp_path), "--steps", "2", "--batch", "3",
                  "--seed", "4", "--horizon", "4", "--stride", "2", "--threads", "1"])
    assert rc == 0
    ck = torch.load(weights_path("medium", str(out)), weights_only=False)
    assert ck["kind"] == "pointmaze_planner"
    assert ck["config"] == {"net": {"transition_dim": 2, "dim": 32, "dim_mults": [1, 2, 4]}, "horizon": 4, "stride": 2, "maze": "medium"}
    meta = ck["meta"]
    assert (meta["steps"], meta["batch"], meta["seed"], meta["lr"], meta["train_transitions"]) == (2, 3, 4, 1e-3, 48)
    assert meta["params"] == sum(v.numel() for v in ck["state_dict"].values())
    assert "val " in capsys.readouterr().out
    p = load_planner("medium", weights_dir=str(out), device="cpu")
    assert p.horizon == 4 and p.stride == 2 and p.num_prompts == 5
    # the device asked for is the planner's (the meta device stands in for a GPU)
    q = load_planner("medium", weights_dir=str(out), device="meta")
    assert q.device.type == "meta" and next(q.net.parameters()).device.type == "meta"
    # a checkpoint whose state dict holds no tensors is named as not a planner checkpoint
    ck["state_dict"] = {"w": 1}
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(ck, weights_path("medium", str(bad)))
    with pytest.raises(ValueError, match=r"pointmaze_medium.pt is not a tts_fast maze planner checkpoint \(expected a state dict"):
        load_planner("medium", weights_dir=str(bad), device="cpu")
    assert tr.build_parser().prog == "python -m tts_fast.maze.train"


# -- the dataset generator (ogbench) ------------------------------------------------------------


@needs_ogbench
def test_generate_reports_its_settings():
    """_meta holds the maze, sizes, noise, seed and the rate n / seconds. Catches: a setting dropped."""
    d = data.generate("medium", 2, 5, noise=0.25, seed=3)
    meta = d["_meta"]
    assert {k: meta[k] for k in ("maze", "episodes", "steps", "noise", "seed")} == dict(maze="medium", episodes=2, steps=5,
                                                                                       noise=0.25, seed=3)
    assert meta["steps_per_second"] == pytest.approx(10 / meta["seconds"])
    assert d["terminals"].tolist() == [0, 0, 0, 0, 1] * 2
    # noise 0: the action is the unit vector toward the next cell's centre (a zero-noise expert)
    z = data.generate("medium", 1, 3, noise=0.0, seed=0)
    assert np.allclose(np.linalg.norm(z["actions"], axis=1), 1.0, atol=1e-4)


@needs_ogbench
def test_make_writes_train_and_a_tenth_for_validation(tmp_path, monkeypatch):
    """make(): the train file holds `episodes` episodes from `seed`, the validation file
    max(1, episodes // 10) from 10000 + seed (or val_seed); the defaults are the official sizes;
    the saved meta holds the settings. Catches: // 11, the defaults not applied, the file not
    saved, the validation seed."""
    logs = []
    tr_path, val_path = data.make("medium", str(tmp_path), episodes=20, steps=4, seed=2, log=logs.append)
    assert (tr_path, val_path) == (data.dataset_path("medium", str(tmp_path)), data.dataset_path("medium", str(tmp_path), val=True))
    a, v = data.load(tr_path), data.load(val_path)
    assert a["observations"].shape == (80, 2) and a["terminals"].sum() == 20
    assert v["observations"].shape == (8, 2) and v["terminals"].sum() == 2
    assert np.array_equal(a["observations"], data.generate("medium", 20, 4, seed=2)["observations"])
    assert np.array_equal(v["observations"], data.generate("medium", 2, 4, seed=10_002)["observations"])
    with np.load(val_path) as z:
        meta = json.loads(str(z["meta"]))
    assert {k: meta[k] for k in ("maze", "episodes", "steps", "noise", "seed")} == dict(maze="medium", episodes=2, steps=4,
                                                                                       noise=0.5, seed=10_002)
    logs = [line for line in logs if not line.startswith("  medium: episode")]  # generate()'s progress
    assert len(logs) == 2 and logs[0].startswith(f"{tr_path}: 80 transitions") and logs[1].startswith(f"{val_path}: 8 transitions")
    # 5 episodes: still one validation episode; val_seed overrides
    _, val_path = data.make("medium", str(tmp_path / "b"), episodes=5, steps=3, seed=0, val_seed=9, log=None)
    assert np.array_equal(data.load(val_path)["observations"], data.generate("medium", 1, 3, seed=9)["observations"])
    # the defaults are the official sizes (shrunk here)
    monkeypatch.setitem(data.OFFICIAL_SIZES, "medium", (3, 6))
    tr_path, val_path = data.make("medium", str(tmp_path / "c"), log=None)
    assert data.load(tr_path)["observations"].shape == (18, 2) and data.load(val_path)["observations"].shape == (6, 2)
    tr_path, _ = data.make("medium", str(tmp_path / "d"), steps=2, log=None)
    assert data.load(tr_path)["observations"].shape == (6, 2)


# -- the simulator's edges ------------------------------------------------------------------------------


def test_the_missing_simulator_message_in_full(monkeypatch):
    """The whole ImportError text (install command, pinned version, the missing module). Catches: the
    message altered."""
    monkeypatch.setitem(sys.modules, "ogbench", None)
    with pytest.raises(ImportError) as e:
        envs.make_env("medium")
    assert str(e.value) == ("the PointMaze environments need ogbench (MuJoCo): pip install --no-build-isolation "
                            "'tts_fast[maze]' (ogbench==1.2.2); missing: ogbench")


@needs_ogbench
def test_ultra_env_takes_the_callers_options():
    """_make_ultra passes keyword options on (terminate_at_goal) and ignores the registry's
    maze_type. Catches: the keyword arguments dropped."""
    e = envs._make_ultra(terminate_at_goal=False, maze_type="giant", loco_env_type="ant", maze_env_type="maze")
    assert e._terminate_at_goal is False and np.array_equal(e.maze_map, envs.maze("ultra").maze_map)
    assert envs._make_ultra()._terminate_at_goal is True
    env = envs.make_env("ultra", terminate_at_goal=False)
    assert env.unwrapped._terminate_at_goal is False and env.spec.max_episode_steps == 3000
    env.close()


@needs_ogbench
def test_reset_episode_is_float64_and_seeded():
    """(obs, goal) as float64, the same for the same seed, the goal within 1 of the task's goal cell
    centre (ogbench's U(-1, 1) noise). Catches: a wrong seed or task passed on."""
    env = envs.make_env("medium")
    ob, goal = execute.reset_episode(env, 3, 5)
    ob2, goal2 = execute.reset_episode(env, 3, 5)
    env.close()
    assert ob.dtype == np.float64 and goal.dtype == np.float64
    assert np.array_equal(ob, ob2) and np.array_equal(goal, goal2)
    s, g = envs.maze("medium").task_xy(3)
    assert np.abs(ob[:2] - s).max() <= 1.0 + 1e-9 and np.abs(goal - g).max() <= 1.0 + 1e-9


# -- survivors of a fresh sample (seed 23) ---------------------------------------------------------------


def test_goal_reached_scores_in_the_plans_dtype_and_a_sum_passes_the_rows_on():
    """Against GoalReached returning the bool comparison (``.to(None)`` keeps torch.bool), a Sum
    calling its verifiers without cond (a GoalReached of two rows then refuses the call), and a
    Sum's refusal of a non-verifier without its message (TypeError(None))."""
    x = torch.tensor([[[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        got = GoalReached([0.0, 0.0], tol=0.5)(x.to(dtype))
        assert got.dtype == dtype and got.tolist() == [0.0, 1.0]
    two = GoalReached([[3.0, 4.0], [0.0, 0.0]])
    s = Sum([two, Smoothness(1.0)], [2.0, 0.0])
    assert s(x, torch.tensor([0, 1])).tolist() == [2.0, 2.0]
    assert s(x, torch.tensor([1, 0])).tolist() == [0.0, 0.0]
    for bad in ([], [two, "not a verifier"]):
        with pytest.raises(TypeError, match=r"^verifiers must be a non-empty list of tts_fast.Verifier$"):
            Sum(bad)


@needs_ogbench
def test_generate_draws_independent_noise_for_each_action_coordinate(monkeypatch):
    """Against one noise draw added to both coordinates (``np.random.normal(0, noise)`` without the
    size 2). The expert is made to point along +x (the oracle subgoal is always one unit to the
    right), so an action is (clip(1 + e0), clip(e1)): with a shared draw, every step whose
    x-component is below 1 has a0 - 1 == a1."""
    monkeypatch.setattr(data, "oracle_subgoal", lambda m, xy, goal: np.asarray(xy) + np.array([1.0, 0.0]))
    a = data.generate("medium", 1, 40, noise=0.3, seed=4)["actions"].astype(np.float64)
    below = a[:, 0] < 1.0 - 1e-6
    assert below.sum() >= 5  # about half the steps draw e0 < 0
    assert not np.isclose(a[below, 0] - 1.0, a[below, 1], atol=1e-5).any()
    assert (a[:, 1] < 0).any() and (a[:, 1] > 0).any()


# -- survivors of a fresh sample (seed 23, skip 40) ------------------------------------------------------


def test_dataset_folder_from_the_argument_the_environment_or_the_cache(monkeypatch, tmp_path):
    """Against `folder or env and DEFAULT_DIR` for `folder or env or DEFAULT_DIR` ($TTS_FAST_MAZE_DATA
    then ignored, and without it no folder at all), and load's missing-file message lost."""
    monkeypatch.setenv("TTS_FAST_MAZE_DATA", str(tmp_path))
    assert data.dataset_path("medium") == str(tmp_path / "pointmaze-medium-navigate-v0.npz")
    assert data.dataset_path("medium", "given", val=True) == os.path.join("given", "pointmaze-medium-navigate-v0-val.npz")
    monkeypatch.delenv("TTS_FAST_MAZE_DATA")
    assert data.dataset_path("medium") == os.path.join(data.DEFAULT_DIR, "pointmaze-medium-navigate-v0.npz")
    missing = str(tmp_path / "none.npz")
    with pytest.raises(FileNotFoundError, match=r"^no dataset at .*none\.npz; generate it with `python -m tts_fast\.maze\.data --maze NAME --out DIR`$"):
        data.load(missing)


def test_wall_depth_is_zero_for_a_ball_clear_of_the_walls():
    """Against `q < 1` for `q < 0` in Maze.wall_depth: a ball 0.5 short of a wall would count as
    inside it (a negative depth) instead of clear (0)."""
    m = envs.Maze("medium")
    for c in m.free_cells:
        i, j = c
        if (i, j + 1) in {tuple(w) for w in m.wall_cells}:
            break
    centre = np.asarray(m.ij_to_xy(c))
    reach = m.unit / 2 + m.radius  # the ball touches the wall box at this distance from the wall cell's centre
    to_wall = m.unit - reach  # from the free cell's centre, moving towards the wall (+x)
    assert m.wall_depth(centre + [to_wall - 0.5, 0.0]) == 0.0  # 0.5 short of touching
    assert m.wall_depth(centre + [to_wall + 0.3, 0.0]) == pytest.approx(0.3)  # 0.3 into it


def test_evaluate_closes_only_the_simulator_it_made(monkeypatch):
    """Against `own = None` (the simulator evaluate() opened itself never closed)."""
    made = []

    class FakeEnv:
        closed = False

        def close(self):
            self.closed = True

    monkeypatch.setattr(execute, "make_env", lambda name: made.append(FakeEnv()) or made[-1])
    monkeypatch.setattr(execute, "rollout", lambda env, p, stride, k, s, **kw: {"task": k, "seed": s})
    assert execute.evaluate("medium", np.zeros((2, 4, 2)), [(1, 0), (2, 5)], 3) == [{"task": 1, "seed": 0}, {"task": 2, "seed": 5}]
    assert len(made) == 1 and made[0].closed
    mine = FakeEnv()
    execute.evaluate("medium", np.zeros((1, 4, 2)), [(1, 0)], 3, env=mine)
    assert not mine.closed and len(made) == 1


def test_a_verifier_names_bad_plans_as_plans():
    """Against _check_plans' default name garbled ('XXplansXX must be ...')."""
    for v in (Smoothness(1.0), GoalReached([0.0, 0.0]), WallPenalty("medium")):
        with pytest.raises(ValueError, match=r"^plans must be world-coordinate waypoints \[B, H, 2\], got shape \(2, 4, 3\)$"):
            v(torch.zeros(2, 4, 3, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"^plans must be a tensor of world-coordinate waypoints \[B, H, 2\], got list$"):
            v.forward([[0.0, 0.0]])


@needs_ogbench
def test_rollout_records_its_path_only_when_asked():
    """Against record defaulting to True (every rollout of an evaluation then carries its whole
    path): without record=True the result holds the three figures only (sample seed 23, skip 80)."""
    env = envs.make_env("medium")
    try:
        ob, goal = execute.reset_episode(env, 1, 0)
        out = execute.rollout(env, execute.oracle_plan("medium", ob, goal, 40), 10, 1, 0, max_steps=3)
    finally:
        env.close()
    assert set(out) == {"success", "steps", "final_dist"} and out["steps"] == 3
