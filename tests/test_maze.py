"""tts_fast.maze: layouts, dataset generator, planner inpainting, verifiers, execution, search methods."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tts_fast as tts
from tts_fast.maze import data, envs, execute
from tts_fast.maze.planner import MazePlanner, TemporalUnet
from tts_fast.maze.weights import load_planner, trained_mazes
from tts_fast.maze.verifiers import GoalReached, Smoothness, Sum, WallPenalty, plan_stats

needs_ogbench = pytest.mark.skipif(not envs.ogbench_available(), reason="ogbench not installed (pip install 'tts_fast[maze]')")
needs_weights = pytest.mark.skipif("medium" not in trained_mazes(), reason="the shipped medium planner weights are missing")


def tiny_planner(maze="medium", tasks=None, horizon=16, seed=0):
    torch.manual_seed(seed)
    net = TemporalUnet(dim=8, dim_mults=(1, 2, 2))
    m = envs.maze(maze)
    tasks = tasks if tasks is not None else [np.stack(m.task_xy(k)) for k in (1, 2, 3)]
    return MazePlanner(net, maze, tasks, horizon=horizon, stride=10)


# -- layouts and environments ------------------------------------------------------------------


def test_import_tts_fast_does_not_import_the_simulator():
    code = ("import sys, tts_fast as tts; p = tts.maze.load_planner; w = tts.maze.WallPenalty('medium'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ogbench', 'mujoco', 'gymnasium')]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_ultra_layout_is_the_published_one():
    m = envs.maze("ultra")
    assert m.shape == (21, 21) and len(m.wall_cells) == 242 and len(m.free_cells) == 199
    assert m.fingerprint() == envs.ULTRA_SHA256_PREFIX
    assert m.task_distances() == [148, 90, 134, 76, 82]
    assert envs.maze("giant").task_distances() == [30, 26, 30, 26, 17]


def test_geometry_round_trip():
    m = envs.maze("large")
    for ij in m.free_cells:
        assert m.xy_to_ij(m.ij_to_xy(ij)) == ij
    assert tuple(m.ij_to_xy((1, 1))) == (0.0, 0.0)


@needs_ogbench
@pytest.mark.parametrize("name", envs.MAZES)
def test_layouts_equal_ogbench(name):
    env = envs.make_env(name)
    u = env.unwrapped
    assert np.array_equal(u.maze_map, envs.maze(name).maze_map)
    assert [(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in u.task_infos] == envs.maze(name).tasks
    assert env.spec.max_episode_steps == envs.MAX_EPISODE_STEPS[name]
    assert u._maze_unit == envs.UNIT and u._offset_x == envs.OFFSET and u._goal_tol == envs.GOAL_TOL
    assert u.model.geom("pointbody").size[0] == pytest.approx(envs.RADIUS)
    ob, _ = env.reset(options=dict(task_id=1))
    ob2, *_ = env.step(np.ones(2, dtype=np.float32))
    assert np.all(ob2 > ob)  # the ball moved
    env.close()


def test_simulator_without_ogbench_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ogbench", None)
    with pytest.raises(ImportError, match=r"pip install --no-build-isolation 'tts_fast\[maze\]'"):
        envs.make_env("medium")


def test_unknown_maze_errors():
    for fn in (envs.maze, WallPenalty, load_planner, data.dataset_path, envs.make_env):
        with pytest.raises(ValueError, match=r"(maze_name|name) must be one of medium, large, giant, ultra; got 'umaze' \(an unknown maze\)"):
            fn("umaze")


# -- dataset generator ---------------------------------------------------------------------------


@needs_ogbench
def test_oracle_subgoal_matches_ogbench():
    m = envs.maze("large")
    u = envs.make_env("large").unwrapped
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = m.ij_to_xy(m.free_cells[rng.integers(len(m.free_cells))]) + rng.uniform(-1.5, 1.5, 2)
        g = m.ij_to_xy(m.free_cells[rng.integers(len(m.free_cells))]) + rng.uniform(-1, 1, 2)
        want, _ = u.get_oracle_subgoal(a, g)
        assert np.array_equal(data.oracle_subgoal(m, a, g), want)


@needs_ogbench
def test_generator_seeded_and_ogbench_format(tmp_path):
    """(Its speed is measured by benchmarks/maze.py --generator, not asserted here.)"""
    d1 = data.generate("medium", 3, 301, seed=5)
    d2 = data.generate("medium", 3, 301, seed=5)
    d3 = data.generate("medium", 3, 301, seed=6)
    for k in ("observations", "actions", "terminals", "qpos", "qvel"):
        assert np.array_equal(d1[k], d2[k]) and d1[k].dtype == np.float32
    assert not np.array_equal(d1["observations"], d3["observations"])
    assert d1["observations"].shape == (903, 2) and d1["terminals"].sum() == 3 and d1["terminals"][300] == 1
    assert np.abs(d1["actions"]).max() <= 1.0 and d1["_meta"]["goals_reached"] > 0
    assert d1["_meta"]["steps_per_second"] > 0
    # positions stay in free space and follow the action (qpos += 0.2 a, walls permitting)
    m = envs.maze("medium")
    assert all(m.is_free_cell(m.xy_to_ij(xy)) for xy in d1["observations"][::7])
    step = np.linalg.norm(np.diff(d1["observations"][:300], axis=0), axis=1)
    assert step.max() <= 0.2 * np.sqrt(2) + 1e-3
    path = str(tmp_path / "d.npz")
    data.save_npz(path, d1)
    import ogbench

    ds = ogbench.load_dataset(path)
    assert ds["observations"].shape == (900, 2) and "next_observations" in ds  # ogbench drops the last step of episodes
    assert np.array_equal(data.load(path)["actions"], d1["actions"])


def test_generator_and_execution_refuse_nonsense():
    """Checked before a simulator is made (no ogbench needed)."""
    for kw, match in ((dict(noise=float("inf")), "noise"), (dict(noise=float("nan")), "noise"), (dict(seed=-1), "seed")):
        with pytest.raises(ValueError, match=match):
            data.generate("medium", 1, 10, **kw)
    with pytest.raises(ValueError, match="episodes"):
        data.generate("medium", True, 10)
    plan = execute.straight_line([0.0, 0.0], [8.0, 4.0], 10)
    for kw, match in ((dict(stride=0), "stride"), (dict(gain=float("nan")), "gain"), (dict(max_steps=0), "max_steps")):
        with pytest.raises(ValueError, match=match):
            execute.rollout(None, plan, **{"stride": 10, **kw}, task_id=1, seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        execute.rollout(None, np.full((4, 2), np.nan), 10, 1, 0)
    with pytest.raises(ValueError, match="horizon"):
        execute.straight_line([0.0, 0.0], [1.0, 1.0], 1)


# -- planner and inpainting ------------------------------------------------------------------------


def test_inpainting_fixes_start_and_goal():
    p = tiny_planner()
    x = torch.randn(6, 16, 2)
    cond = torch.tensor([0, 1, 2, 2, 1, 0])
    t = torch.full((6,), 100.0)
    x0 = p(x, t, cond)
    z_start, z_goal = p.encode(p.starts.float()), p.encode(p.goals.float())
    assert torch.allclose(x0[:, 0], z_start[cond]) and torch.allclose(x0[:, -1], z_goal[cond])
    xy = p.decode(x0)
    assert torch.allclose(xy[:, 0], p.starts.float()[cond], atol=1e-5) and torch.allclose(xy[:, -1], p.goals.float()[cond], atol=1e-5)
    # the model never sees x_t's own endpoint values: they are replaced by the task's
    y = x.clone()
    y[:, 0] += 5.0
    y[:, -1] -= 3.0
    assert torch.allclose(p(y, t, cond), x0)
    assert torch.allclose(p.encode(p.decode(x0)), x0, atol=1e-6)


def test_planner_validates_input():
    m = envs.maze("medium")
    good = np.stack(m.task_xy(1))
    with pytest.raises(ValueError, match="start of task row 0 .* inside wall cell"):
        tiny_planner(tasks=[[[8.0, 0.0], good[1]]])  # (8, 0) is the centre of wall cell (1, 3)
    with pytest.raises(ValueError, match="goal of task row 1 .* outside the maze"):
        tiny_planner(tasks=[good, [good[0], [-20.0, 0.0]]])
    with pytest.raises(ValueError, match="deep into a wall"):
        tiny_planner(tasks=[[[5.5, 0.0], good[1]]])  # in a free cell, but the ball (0.7) reaches into the wall at x = 6
    p = tiny_planner()
    with pytest.raises(ValueError, match="cond holds prompt rows outside"):
        p(torch.randn(2, 16, 2), torch.zeros(2), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="x_t must be"):
        p(torch.randn(2, 15, 2), torch.zeros(2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="pass cond"):
        p(torch.randn(2, 16, 2), torch.zeros(2), None)
    with pytest.raises(ValueError, match="horizon"):
        p.with_horizon(18)
    with pytest.raises(ValueError, match="device"):
        p.to("gpu")


@needs_weights
def test_broken_planner_files_are_named_with_what_was_expected(tmp_path):
    """Truncated, random, empty, foreign-pickle and wrong-kind files (a zoo checkpoint, another
    maze's planner, a bare state dict): a ValueError naming the file, never torch.load's raw error."""
    import shutil

    sys.path.insert(0, os.path.dirname(__file__))
    from _bad_files import bad_weight_files
    from tts_fast.maze.weights import weights_path

    for kind, path in bad_weight_files(tmp_path, weights_path("medium"), "pointmaze_medium.pt").items():
        with pytest.raises(ValueError, match="is not a tts_fast maze planner checkpoint") as e:
            load_planner("medium", weights_dir=os.path.dirname(path), device="cpu")
        assert path in str(e.value) and "`weights_only` set to `False`" not in str(e.value), kind
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(tts.zoo.weights_path("unet"), wrong / "pointmaze_medium.pt")
    with pytest.raises(ValueError, match=r"pointmaze_medium.pt is not a tts_fast maze planner checkpoint: it holds kind='unet'"):
        load_planner("medium", weights_dir=str(wrong), device="cpu")
    shutil.copy(weights_path("large"), wrong / "pointmaze_medium.pt")
    with pytest.raises(ValueError, match=r"pointmaze_medium.pt is the planner of maze 'large', not of 'medium'"):
        load_planner("medium", weights_dir=str(wrong), device="cpu")
    torch.save(tiny_planner().net.state_dict(), wrong / "pointmaze_medium.pt")
    with pytest.raises(ValueError, match=r"not a tts_fast maze planner checkpoint \(expected a dict with keys kind, config, state_dict"):
        load_planner("medium", weights_dir=str(wrong), device="cpu")
    with pytest.raises(FileNotFoundError, match="train them"):
        load_planner("medium", weights_dir=str(tmp_path / "missing"))


def test_broken_dataset_files_are_named(tmp_path):
    bad = tmp_path / "d.npz"
    bad.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match=r"d.npz is not a maze dataset"):
        data.load(str(bad))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz is not a maze dataset: it lacks observations"):
        data.load(str(tmp_path / "other.npz"))


# -- verifiers ----------------------------------------------------------------------------------


def test_wall_penalty_values():
    v = WallPenalty("medium")
    pts = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [6.0, 0.0], [8.0, 0.0], [-3.0, -3.0]]], dtype=torch.float64)
    # free; free (clear of the inflated box at 5.3); 0.7 into wall (1,3) through its open left face;
    # wall centre: 2.7 to its only open face; outer corner (no open face): 1.7 + one cell
    assert torch.allclose(v.depth(pts), torch.tensor([[0.0, 0.0, 0.7, 2.7, 5.7]], dtype=torch.float64))
    assert v(pts).item() == pytest.approx(-(0.7**2 + 2.7**2 + 5.7**2))
    assert v.threshold(0.1) == pytest.approx(-0.16) and v.threshold(0) == 0.0
    bare = WallPenalty("medium", radius=0.0, open_faces=False)
    assert bare.depth(pts)[0, 2].item() == 0.0 and bare.depth(pts)[0, 3].item() == pytest.approx(2.0)
    # the expert's data never enters the inflated walls by more than contact softness
    m = envs.maze("medium")
    oracle = torch.as_tensor(execute.oracle_plan("medium", *m.task_xy(1), 40))[None]
    assert v(oracle).item() == 0.0
    # substeps: a segment jumping across wall (1, 3) between two clear waypoints
    jump = torch.tensor([[[0.0, 0.0], [16.0, 0.0]]], dtype=torch.float64)  # cells (1, 1) -> (1, 5)
    assert v(jump).item() == 0.0
    dense = WallPenalty("medium", substeps=4)
    # interpolated points (8, 0) and (12, 0): centres of walls (1, 3) and (1, 4), 2.7 from their open faces
    assert dense(jump).item() == pytest.approx(-2 * 2.7**2 / 4)
    assert dense(oracle).item() == 0.0 and dense(pts).item() < v(pts).item()
    with pytest.raises(ValueError, match="substeps"):
        WallPenalty("medium", substeps=0)


def test_wall_penalty_gradient_matches_finite_differences():
    v = WallPenalty("large")
    rng = np.random.default_rng(0)
    # points scattered over the maze, nudged off the kinks (box faces and the face-distance ties)
    xy = torch.tensor(rng.uniform(-2, 38, size=(4, 12, 2)), dtype=torch.float64)
    xy[..., 1] = xy[..., 1] * 28 / 40
    assert (v.depth(xy) > 0).sum() >= 8
    x = xy.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(v(x).sum(), x)
    eps = 1e-6
    fd = torch.zeros_like(xy)
    for idx in np.ndindex(*xy.shape):
        e = torch.zeros_like(xy)
        e[idx] = eps
        fd[idx] = (v(xy + e).sum() - v(xy - e).sum()) / (2 * eps)
    assert torch.allclose(g, fd, atol=1e-5)
    assert torch.autograd.gradcheck(lambda z: v(z), (xy[:1].clone().requires_grad_(True),))


def test_smoothness_goal_and_sum():
    line = torch.as_tensor(execute.straight_line([0.0, 0.0], [8.0, 4.0], 10))[None]
    zig = line.clone()
    zig[0, 1::2, 1] += 1.0
    s = Smoothness()
    assert s(line).item() == pytest.approx(0.0, abs=1e-12) and s(zig).item() < 0
    g = GoalReached([[8.0, 4.0], [0.0, 0.0]])
    assert g(line, torch.tensor([0])).item() == 1.0 and g(line, torch.tensor([1])).item() == 0.0
    both = Sum([WallPenalty("medium"), s], [1.0, 0.5])
    assert both.differentiable
    assert both(zig).item() == pytest.approx(WallPenalty("medium")(zig).item() + 0.5 * s(zig).item())
    st = plan_stats("medium", line)
    assert st["length"].item() == pytest.approx(float(np.hypot(8, 4)))


def test_goal_reached_rows_and_bad_input():
    """One goal serves every prompt row; several are indexed by cond (range-checked)."""
    line = torch.as_tensor(execute.straight_line([0.0, 0.0], [8.0, 4.0], 10))[None].expand(3, -1, -1)
    one = GoalReached([8.0, 4.0])
    assert one.num_prompts is None and one(line, torch.tensor([0, 3, 7])).tolist() == [1.0, 1.0, 1.0]
    two = GoalReached([[8.0, 4.0], [0.0, 0.0]])
    assert two(line, torch.tensor([0, 1, 0])).tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"cond holds prompt rows outside \[0, 2\)"):
        two(line, torch.tensor([0, 2, 0]))
    with pytest.raises(ValueError, match="cond"):
        two(line)
    with pytest.raises(ValueError, match="goals"):
        GoalReached([[8.0, float("nan")]])
    with pytest.raises(ValueError, match="goals"):
        GoalReached([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="tol"):
        GoalReached([8.0, 4.0], tol=-1.0)


def test_verifier_options_refuse_nonsense():
    for kw, match in ((dict(radius=float("inf")), "radius"), (dict(radius=float("nan")), "radius"), (dict(batch_size=0), "batch_size")):
        with pytest.raises(ValueError, match=match):
            WallPenalty("medium", **kw)
    with pytest.raises(ValueError, match="tolerance"):
        WallPenalty("medium").threshold(float("nan"))
    with pytest.raises(ValueError, match="unit"):
        Smoothness(0.0)
    with pytest.raises(ValueError, match="weights"):
        Sum([Smoothness(), Smoothness()], [1.0, float("nan")])
    with pytest.raises(ValueError, match="weights"):
        Sum([Smoothness(), Smoothness()], [1.0])


def test_planner_rows_on_a_device_are_checked_without_a_host_read():
    """The meta device stands in for a GPU (reading its values raises): the task rows' range check
    is recorded for the run's one host read, and the plan still comes out (rows clamped)."""
    from tts_fast._device_checks import Collector, collect

    p = tiny_planner().to("meta")
    col = Collector()
    with collect(col):
        x0 = p(torch.randn(2, 16, 2, device="meta"), torch.zeros(2, device="meta"), torch.tensor([0, 7], device="meta"))
    assert x0.device.type == "meta" and x0.shape == (2, 16, 2)
    assert any("cond holds prompt rows outside [0, 3)" in m for m in col._flags)


# -- execution --------------------------------------------------------------------------------


@needs_ogbench
def test_execution_oracle_succeeds_and_wall_plan_fails():
    eps = [(1, 0), (4, 1)]
    tasks = execute.episode_tasks("medium", eps)
    assert np.array_equal(tasks, execute.episode_tasks("medium", eps))  # seeded resets
    oracle = [execute.oracle_plan("medium", s, g, 40) for s, g in tasks]
    out = execute.evaluate("medium", oracle, eps, 10)
    assert all(o["success"] for o in out)
    # task 1 of medium: the straight line crosses walls; the ball gets stuck
    line = [execute.straight_line(s, g, 40) for s, g in tasks[:1]]
    assert not execute.evaluate("medium", line, eps[:1], 10)[0]["success"]
    assert WallPenalty("medium")(torch.as_tensor(np.array(line))).item() < -1


# -- the shipped planner and the search methods -------------------------------------------------------


@needs_weights
def test_shipped_planner_plans_medium():
    p = load_planner("medium", device="cpu")
    assert p.num_prompts == 5 and p.sample_shape == (p.horizon, 2)
    v = WallPenalty("medium")
    res = tts.search(p, v, "bon", n_particles=4, num_steps=16, seed=0, progress=False)
    assert res.samples.shape == (5, p.horizon, 2)
    assert torch.allclose(res.samples[:, 0], p.starts.float(), atol=1e-4)
    assert torch.allclose(res.samples[:, -1], p.goals.float(), atol=1e-4)
    # the trained planner mostly stays out of the walls (an untrained one is far off)
    assert v(res.samples.double()).mean().item() > -5.0
    if envs.ogbench_available():
        eps = [(k, 0) for k in range(1, 6)]
        q = p.with_tasks(execute.episode_tasks("medium", eps))
        res = tts.search(q, v, "bon", n_particles=4, num_steps=16, seed=0, progress=False)
        out = execute.evaluate("medium", res.samples.double().numpy(), eps, q.stride)
        assert sum(o["success"] for o in out) >= 3


METHODS = [
    ("bon", {}),
    ("bfs_best", {}),
    ("dfs", {"threshold": -0.16}),
    ("local", {"local_steps": 2, "rho": 0.04, "mu": 0.01}),
    ("bfs_best", {"local_steps": 2, "rho": 0.04, "mu": 0.01}),
    ("dfs", {"threshold": -0.16, "local_steps": 2, "rho": 0.04}),
]


@pytest.mark.parametrize("method,opts", METHODS, ids=[f"{m}{'+local' if 'rho' in o else ''}" for m, o in METHODS])
def test_methods_end_to_end(method, opts):
    p = tiny_planner()
    v = WallPenalty("medium")
    budget = 3 * 2 * 6 * 2 * 3
    res = tts.search(p, v, method, n_particles=2, num_steps=6, seed=1, budget=budget, progress=False, **opts)
    assert res.samples.shape == (3, 16, 2) and res.nfe.model <= budget
    assert torch.allclose(res.samples[:, -1], p.goals.float(), atol=1e-4)
    assert torch.allclose(res.rewards.double(), v(res.samples.double()).double(), atol=1e-4)
    if "rho" in opts:
        assert res.nfe.model_grad > 0


@needs_weights
def test_dfs_spends_more_on_harder_tasks():
    # Three rows of an easy pair (start and goal one cell apart, no wall between) and three of
    # medium's task 4 (10 cells around walls). DFS is not told which is which: its threshold (one
    # waypoint a ball radius deep) fails more often on the long task, so it backtracks more there.
    m = envs.maze("medium")
    easy = np.stack([m.ij_to_xy((1, 1)), m.ij_to_xy((2, 1))])
    hard = np.stack(m.task_xy(4))
    p = load_planner("medium", [easy] * 3 + [hard] * 3, device="cpu")
    v = WallPenalty("medium")
    res = tts.search(p, v, "dfs", threshold=v.threshold(), start=12, backtrack=12, every=1, n_particles=4, num_steps=16,
                     seed=0, budget=6 * 4 * 16 * 4, progress=False)
    nfe = res.nfe_per_prompt.float()
    assert nfe[:3].mean() < nfe[3:].mean(), nfe.tolist()
    assert res.nfe.model <= 6 * 4 * 16 * 4
