"""tts_fast.rl: Minari datasets, the action diffusion policy and Q verifier, search, evaluation, distillation."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tts_fast as tts
from tts_fast.rl import datasets, distill, envs, generate, train
from tts_fast.rl.critic import QVerifier, TwinQ
from tts_fast.rl.policy import ActionScoreNet, DiffusionPolicy

# Each test says what it really needs: the simulator (gymnasium + MuJoCo) or also the data layer
# (Minari + h5py); a machine with the simulator but not Minari still runs the simulator's tests.
HAVE_SIM = all(importlib.util.find_spec(m) is not None for m in ("gymnasium", "mujoco"))
HAVE_DATA = HAVE_SIM and all(importlib.util.find_spec(m) is not None for m in ("minari", "h5py"))
needs_sim = pytest.mark.skipif(not HAVE_SIM, reason="needs the MuJoCo simulator: gymnasium and mujoco "
                               "(pip install --no-build-isolation 'tts_fast[rl]')")
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="needs the simulator and Minari datasets: gymnasium, mujoco, minari, h5py "
                                "(pip install --no-build-isolation 'tts_fast[rl]')")
needs_weights = pytest.mark.skipif(("halfcheetah", "medium") not in tts.rl.trained_agents(),
                                   reason="the shipped halfcheetah-medium agent is missing")


def random_policy(seed, act_dim=2):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1, 1, act_dim).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 300-transition Reacher dataset (seeded uniform-random actions) and an agent trained on it for a few steps."""
    if not HAVE_DATA:
        pytest.skip("needs the simulator and Minari datasets (the extra 'rl')")
    root = tmp_path_factory.mktemp("rl")
    path = str(root / "minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = path
    try:
        generate.collect("reacher", random_policy(0), 300, "tts_fast/reacher/medium-v0", seed=0)
        generate.collect("reacher", random_policy(0), 300, "tts_fast/reacher/medium-replay-v0", seed=0)  # same recipe again
        generate.collect("reacher", random_policy(1), 300, "tts_fast/reacher/medium-expert-v0", seed=0)  # other action seed
        # a reacher dataset under a halfcheetah name: the size check must refuse it
        generate.collect("reacher", random_policy(0), 60, "tts_fast/halfcheetah/medium-v0", seed=0)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    weights = str(root / "weights")
    train.train("reacher", "medium", path, weights, policy_steps=60, critic_steps=60, batch=32, log=lambda *a: None)
    return {"path": path, "weights": weights}


# -- names, constants, extras ---------------------------------------------------------------------


def test_d4rl_normalisation_constants():
    assert envs.normalized_score("halfcheetah", -280.178953) == pytest.approx(0.0)
    assert envs.normalized_score("halfcheetah", 12135.0) == pytest.approx(100.0)
    assert envs.normalized_score("hopper", [-20.272305, 3234.3]) == pytest.approx([0.0, 100.0])
    assert envs.normalized_score("walker2d", 1.629008 + 0.5 * (4592.3 - 1.629008)) == pytest.approx(50.0)


def test_unknown_names_are_named():
    with pytest.raises(ValueError, match="unknown env 'ant'"):
        envs.task("ant")
    with pytest.raises(ValueError, match="unknown dataset 'expert'"):
        datasets.dataset_id("hopper", "expert")
    with pytest.raises(ValueError, match="unknown dataset source 'd4rl'"):
        datasets.dataset_id("hopper", "medium", source="d4rl")
    with pytest.raises(ValueError, match="no dataset recipe for env 'walker2d'"):
        generate.recipe("walker2d")
    with pytest.raises(ValueError, match="no local-search settings for env 'reacher'"):
        tts.rl.paper_local("reacher", "medium")
    assert tts.rl.paper_local("halfcheetah", "medium") == dict(local_steps=1, iter_steps=4, rho=0.003, mu=0.05, sigma=0.0)
    assert tts.rl.paper_local("hopper", "medium")["local_steps"] == 4


def test_import_tts_fast_rl_needs_no_extra():
    code = ("import sys, tts_fast as tts; tts.rl.policy; tts.rl.QVerifier; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'mujoco', 'minari', 'stable_baselines3')]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_missing_minari_names_the_extra(monkeypatch, tmp_path):
    (tmp_path / "tts_fast" / "hopper" / "medium-v0" / "data").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "minari", None)  # import minari now raises ImportError
    with pytest.raises(ImportError, match=r"tts_fast\[rl\]"):
        datasets.load("hopper", "medium", path=str(tmp_path))


def test_missing_local_path_and_dataset_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*'tts_fast/hopper/medium-v0'"):
        datasets.load("hopper", "medium", path=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="'mujoco/hopper/medium-v0' is not in the local data path"):
        datasets.load("hopper", "medium", path=str(tmp_path), source="mujoco")


# -- Minari datasets -----------------------------------------------------------------------------


@needs_data
def test_minari_round_trip_replays_in_the_simulator(tiny):
    ds = datasets.load("reacher", "medium", path=tiny["path"])
    tr = datasets.transitions(ds)
    assert len(tr) == 300 and tr.observations.shape == (300, 10) and tr.actions.shape == (300, 2)
    assert len(tr.episode_returns) == 6  # Reacher episodes are 50 steps
    assert tr.terminals.sum() == 0  # Reacher only truncates
    # the stored actions, replayed from the same reset seeds, give back the stored observations and rewards
    env = envs.make_env("reacher")
    for k, ep in enumerate(ds.iterate_episodes()):
        obs, _ = env.reset(seed=k)
        np.testing.assert_allclose(ep.observations[0], obs, rtol=0, atol=1e-12)
        for t, a in enumerate(ep.actions):
            obs, r, *_ = env.step(a)
            np.testing.assert_allclose(ep.observations[t + 1], obs, rtol=0, atol=1e-12)
            assert ep.rewards[t] == pytest.approx(r, abs=1e-12)
    np.testing.assert_allclose(tr.episode_returns.sum(), tr.rewards.sum(), rtol=1e-5)


@needs_data
def test_fingerprint_is_the_recipe(tiny):
    fp = {d: datasets.fingerprint(datasets.load("reacher", d, path=tiny["path"])) for d in envs.DATASETS}
    assert fp["medium"]["sha256"] == fp["medium-replay"]["sha256"]  # same seeds, same arrays
    assert fp["medium"]["sha256"] != fp["medium-expert"]["sha256"]  # another action seed
    assert fp["medium"]["transitions"] == 300 and fp["medium"]["episodes"] == 6


@needs_data
def test_dataset_of_another_env_is_refused(tiny):
    with pytest.raises(ValueError, match=r"dataset 'tts_fast/halfcheetah/medium-v0' has observations \(10,\) and actions \(2,\), "
                                         r"but env 'halfcheetah' has \(17,\) and \(6,\)"):
        datasets.load("halfcheetah", "medium", path=tiny["path"])


@needs_data
def test_replay_buffer_becomes_episodes(tmp_path, monkeypatch):
    # 7 transitions: an episode that terminates at t=2, one that times out at t=5, one cut at t=6
    obs = np.arange(7 * 10, dtype=np.float32).reshape(7, 10)
    nxt = np.concatenate([obs[1:], obs[-1:]])  # within an episode s' is the next s
    nxt[[2, 5, 6]] = obs[[2, 5, 6]] + 0.5  # the last s' of each episode is its own
    dones = np.array([0, 0, 1, 0, 0, 1, 0], np.float32)
    timeouts = np.array([0, 0, 0, 0, 0, 1, 0], np.float32)
    z = dict(observations=obs, next_observations=nxt, actions=np.tile([[0.1, -0.2]], (7, 1)).astype(np.float32),
             rewards=np.arange(7, dtype=np.float32), dones=dones, timeouts=timeouts)
    np.savez(tmp_path / "replay.npz", **z)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    generate.replay_dataset("reacher", str(tmp_path / "replay.npz"), 7, "tts_fast/reacher/medium-replay-v0")
    tr = datasets.transitions(datasets.load("reacher", "medium-replay", path=str(tmp_path / "minari")))
    np.testing.assert_array_equal(tr.observations, obs)
    np.testing.assert_array_equal(tr.next_observations, nxt)
    np.testing.assert_array_equal(tr.rewards, z["rewards"])
    np.testing.assert_array_equal(tr.terminals, [0, 0, 1, 0, 0, 0, 0])  # a timeout is not a terminal
    np.testing.assert_allclose(tr.episode_returns, [3, 12, 6])
    generate.replay_dataset("reacher", str(tmp_path / "replay.npz"), 4, "tts_fast/reacher/medium-v0")  # "up to that point"
    assert len(datasets.transitions(datasets.load("reacher", "medium", path=str(tmp_path / "minari")))) == 4


# -- policy and critic -----------------------------------------------------------------------------


def tiny_agent(obs_dim=5, act_dim=3, seed=0):
    torch.manual_seed(seed)
    return ActionScoreNet(obs_dim, act_dim, width=32, blocks=1, temb=8), TwinQ(obs_dim, act_dim, width=32, layers=2)


def test_policy_is_a_denoiser_with_state_rows():
    net, crit = tiny_agent()
    states = torch.randn(4, 5)
    pol = DiffusionPolicy(net, states)
    assert pol.num_prompts == 4 and pol.sample_shape == (3,)
    x = torch.randn(8, 3)
    t = torch.full((8,), 500.0)
    cond = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    a0 = pol(x, t, cond)
    assert a0.shape == (8, 3) and bool((a0.abs() <= 1).all())
    # the rows are the states: swapping the states swaps the predictions
    swapped = pol.with_states(states[[1, 0, 2, 3]])(x, t, torch.tensor([1, 1, 0, 0, 2, 2, 3, 3]))
    torch.testing.assert_close(swapped, a0)
    with pytest.raises(ValueError, match=r"states must be \[P, 5\]"):
        pol.with_states(torch.randn(4, 6))
    with pytest.raises(ValueError, match="finite"):
        pol.with_states(torch.full((1, 5), float("nan")))
    with pytest.raises(ValueError, match="pass cond"):
        pol(x, t, None)
    with pytest.raises(ValueError, match=r"x_t must be \[B, 3\]"):
        pol(torch.randn(8, 4), t, cond)


def test_q_verifier_is_min_of_twins_and_its_gradient_matches_finite_differences():
    _, crit = tiny_agent()
    crit = crit.double()
    states = torch.randn(3, 5, dtype=torch.float64)
    q = QVerifier(crit, states)
    a = torch.rand(6, 3, dtype=torch.float64) * 2 - 1
    cond = torch.tensor([0, 1, 2, 0, 1, 2])
    q1, q2 = crit.qs(states[cond], a)
    torch.testing.assert_close(q(a, cond), torch.minimum(q1, q2))
    r, g = q.grad(a, cond)
    h = 1e-6
    fd = torch.zeros_like(a)
    for j in range(3):
        e = torch.zeros_like(a)
        e[:, j] = h
        fd[:, j] = (q(a + e, cond) - q(a - e, cond)) / (2 * h)
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-8)
    assert g.abs().sum() > 0
    with pytest.raises(ValueError, match=r"x0 must be \[B, 3\] actions"):
        q(torch.zeros(2, 4, dtype=torch.float64), torch.tensor([0, 1]))


def test_every_search_method_runs_on_the_policy():
    net, crit = tiny_agent()
    states = torch.randn(3, 5)
    pol, q = DiffusionPolicy(net, states), QVerifier(crit, states)
    for method, opts in [("bon", {}), ("bon", tts.rl.paper_local("halfcheetah", "medium")), ("local", dict(rho=0.01, mu=0.05)),
                         ("das", {}), ("bfs_best", {}), ("dfs", {})]:
        res = tts.search(pol, q, method, n_particles=4, num_steps=15, batch_size=3, progress=False, **opts)
        assert res.samples.shape == (3, 3)
        if method != "dfs":  # DFS spends what its backtracks ask for
            assert res.nfe_per_prompt.tolist() == [15 * 4] * 3


# -- training, the shipped agent, search by Q ------------------------------------------------------


@needs_data
def test_trained_agent_file_loads_with_metadata(tiny):
    ck = tts.rl.load_checkpoint("reacher", "medium", tiny["weights"])
    fp = datasets.fingerprint(datasets.load("reacher", "medium", path=tiny["path"]))
    assert ck["meta"]["dataset"] == fp
    with pytest.raises(FileNotFoundError, match="no agent weights for 'hopper' / 'medium'"):
        tts.rl.load_checkpoint("hopper", "medium", tiny["weights"])
    bad = os.path.join(tiny["weights"], "reacher_medium-expert.pt")
    with open(bad, "wb") as f:
        f.write(b"not a torch file")
    with pytest.raises(ValueError, match="reacher_medium-expert.pt is not a tts_fast offline-RL agent checkpoint"):
        tts.rl.load_checkpoint("reacher", "medium-expert", tiny["weights"])
    os.remove(bad)


@needs_weights
def test_shipped_agent_loads_with_the_right_shapes():
    states = torch.randn(5, 17)
    pol = tts.rl.load_policy("halfcheetah", "medium", states, device="cpu")
    q = tts.rl.q_verifier("halfcheetah", "medium", states, device="cpu")
    assert pol.sample_shape == (6,) and pol.num_prompts == q.num_prompts == 5
    a0 = pol(torch.randn(5, 6), torch.full((5,), 999.0), torch.arange(5))
    assert a0.shape == (5, 6) and bool((a0.abs() <= 1).all())
    assert q(a0, torch.arange(5)).shape == (5,)
    ck = tts.rl.load_checkpoint("halfcheetah", "medium")
    assert ck["meta"]["dataset"]["dataset_id"] == "tts_fast/halfcheetah/medium-v0"
    assert os.path.getsize(tts.rl.weights.weights_path("halfcheetah", "medium")) < 5e6
    with pytest.raises(ValueError, match=r"states must be \[P, 17\]"):
        tts.rl.load_policy("halfcheetah", "medium", torch.randn(2, 11))


RL_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "results")


@pytest.mark.parametrize("env,dataset", tts.rl.trained_agents())
def test_every_shipped_agent_loads_acts_and_names_the_data_it_learnt_from(env, dataset):
    t = envs.task(env)
    states = torch.randn(3, t.obs_dim)
    pol, q = tts.rl.load_policy(env, dataset, states, device="cpu"), tts.rl.q_verifier(env, dataset, states, device="cpu")
    a0 = pol(torch.randn(3, t.act_dim), torch.full((3,), 999.0), torch.arange(3))
    assert a0.shape == (3, t.act_dim) and bool((a0.abs() <= 1).all()) and q(a0, torch.arange(3)).shape == (3,)
    assert os.path.getsize(tts.rl.weights.weights_path(env, dataset)) < 5e6
    meta = tts.rl.load_checkpoint(env, dataset)["meta"]["dataset"]
    assert meta["dataset_id"] == f"tts_fast/{env}/{dataset}-v0"
    # the fingerprint the recipe recorded for that dataset (benchmarks/results/rl_data_{env}.json)
    with open(os.path.join(RL_DATA, f"rl_data_{env}.json")) as f:
        assert json.load(f)["datasets"][dataset]["sha256"] == meta["sha256"]
    for teacher in tts.rl.distilled_teachers(env, dataset):
        a, nfe = tts.rl.distilled_actor(env, dataset, teacher)(np.zeros((2, t.obs_dim), np.float32), 0)
        assert a.shape == (2, t.act_dim) and np.all(np.abs(a) <= 1) and nfe.tolist() == [1, 1]


def _env_states(env, n, seed=0, steps=30):
    """States reached by n environments after `steps` uniform-random actions (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        e = envs.make_env(env)
        s, _ = e.reset(seed=seed + k)
        for _ in range(steps):
            s, *_ = e.step(rng.uniform(-1, 1, e.action_space.shape))
        out.append(s)
    return torch.tensor(np.stack(out), dtype=torch.float32)


@needs_sim
@needs_weights
def test_best_of_n_by_q_raises_the_critics_value():
    states = _env_states("halfcheetah", 48)
    pol, q = tts.rl.load_policy("halfcheetah", "medium", states, device="cpu"), tts.rl.q_verifier("halfcheetah", "medium", states, device="cpu")
    plain = tts.search(pol, q, "bon", n_particles=1, num_steps=15, batch_size=48, seed=3, progress=False)
    bon = tts.search(pol, q, "bon", n_particles=8, num_steps=15, batch_size=48, seed=3, progress=False)
    assert bon.nfe_per_prompt.tolist() == [8 * 15] * 48
    torch.testing.assert_close(bon.rewards, q(bon.samples, torch.arange(48)))  # the reward is Q of the chosen action
    d = (bon.rewards - plain.rewards).double()
    se = d.std() / len(d) ** 0.5
    assert d.mean() > 3 * se, (d.mean(), se)


@needs_sim
@needs_weights
def test_evaluation_counts_nfe_and_is_seeded():
    pol = tts.rl.load_policy("halfcheetah", "medium", torch.zeros(1, 17), device="cpu")
    q = tts.rl.q_verifier("halfcheetah", "medium", torch.zeros(1, 17), device="cpu")
    run = lambda: tts.rl.evaluate_actor("halfcheetah", tts.rl.search_actor(pol, q, "bon", n_particles=2, seed=1), seeds=[0, 1], episodes=2,
                                  max_steps=5, progress=False)  # noqa: E731
    a, b = run(), run()
    assert a.returns.shape == (2, 2) and a.steps == 5
    assert a.nfe_per_action == 30.0
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_allclose(a.scores, envs.normalized_score("halfcheetah", a.returns))
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        tts.rl.evaluate_actor("halfcheetah", run, episodes=0)


@needs_data
def test_check_data_command_compares_with_the_recorded_fingerprint(tiny, monkeypatch, capsys):
    """Exit 1 naming the differing fields for a dataset that is not the recorded one, 0 for a match,
    2 for a dataset that is missing."""
    from tts_fast.rl import check_data

    args = ["--env", "reacher", "--dataset", "medium", "--data", tiny["path"]]
    assert check_data.main(args) == 1
    out = capsys.readouterr().out
    assert "tts_fast/reacher/medium-v0 differs from its recorded fingerprint:" in out and "sha256: got " in out
    got = datasets.fingerprint(datasets.load("reacher", "medium", path=tiny["path"]))
    monkeypatch.setattr(check_data, "recorded", lambda ds_id: {k: got[k] for k in ("sha256", "transitions", "return_mean")})
    assert check_data.main(args) == 0
    assert "matches its recorded fingerprint" in capsys.readouterr().out
    assert check_data.main(["--env", "reacher", "--dataset", "medium", "--data", str(tiny["path"]) + "_nowhere"]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- self-distillation -----------------------------------------------------------------------------


@needs_data
def test_distilled_policy_is_trained_on_the_search_and_acts_at_one_nfe(tiny):
    path = distill.distill("reacher", "medium", tiny["path"], states=64, batch=32, n_particles=2, steps=300, lr=3e-3,
                           weights_dir=tiny["weights"], log=lambda *a: None, rho=0.0, mu=0.05, iter_steps=1, overwrite=True)
    ck = torch.load(path, weights_only=True)
    assert ck["distilled"]["paper"]["meta"]["teacher"]["nfe_per_state"] == 30
    act = tts.rl.distilled_actor("reacher", "medium", weights_dir=tiny["weights"])
    s = np.zeros((3, 10), np.float32)
    a, nfe = act(s, 0)
    assert a.shape == (3, 2) and np.all(np.abs(a) <= 1) and nfe.tolist() == [1, 1, 1]
    # it imitates its teacher: closer to the search's actions than a constant (their mean) is
    tr = datasets.transitions(datasets.load("reacher", "medium", path=tiny["path"]))
    idx = np.random.default_rng(0).choice(len(tr), size=64, replace=False)
    teacher, _ = distill.search_actions("reacher", "medium", tr.observations[idx], method="bon", n_particles=2, batch=32, seed=0,
                                        weights_dir=tiny["weights"], rho=0.0, mu=0.05, iter_steps=1)
    student, _ = act(tr.observations[idx], 0)
    assert np.mean((student - teacher) ** 2) < 0.5 * np.mean((teacher - teacher.mean(0)) ** 2)
    train.train("reacher", "medium-replay", tiny["path"], tiny["weights"], policy_steps=5, critic_steps=5, batch=8, log=lambda *a: None)
    with pytest.raises(ValueError, match="reacher_medium-replay.pt holds no policy distilled from teacher 'paper'"):
        tts.rl.distilled_policy("reacher", "medium-replay", weights_dir=tiny["weights"])
    with pytest.raises(ValueError, match="teacher must be one of paper, bfs, bon, got 'das'"):
        distill.distill("reacher", "medium", tiny["path"], teacher="das", weights_dir=tiny["weights"])


@needs_data
def test_each_teacher_gets_its_own_distilled_policy(tiny):
    """A second teacher's policy is stored beside the first, learnt from that teacher's actions."""
    kw = dict(states=64, batch=32, n_particles=2, steps=300, lr=3e-3, weights_dir=tiny["weights"], log=lambda *a: None)
    distill.distill("reacher", "medium", tiny["path"], teacher="paper", rho=0.0, mu=0.05, iter_steps=1, overwrite=True, **kw)
    before = open(distill.weights_path("reacher", "medium", tiny["weights"]), "rb").read()
    # a teacher's earlier policy is replaced only when asked, and the refusal comes before any search
    with pytest.raises(FileExistsError, match="already holds a policy distilled from teacher 'paper': pass --overwrite"):
        distill.distill("reacher", "medium", tiny["path"], teacher="paper", rho=0.0, mu=0.05, iter_steps=1, **kw)
    assert open(distill.weights_path("reacher", "medium", tiny["weights"]), "rb").read() == before
    distill.distill("reacher", "medium", tiny["path"], teacher="bfs", overwrite=True, **kw)
    assert distill.distilled_teachers("reacher", "medium", tiny["weights"]) == ["paper", "bfs"]
    ck = tts.rl.load_checkpoint("reacher", "medium", tiny["weights"])
    assert ck["distilled"]["bfs"]["meta"]["teacher"]["method"] == "bfs_best"
    assert ck["distilled"]["paper"]["meta"]["teacher"]["options"]["mu"] == 0.05
    tr = datasets.transitions(datasets.load("reacher", "medium", path=tiny["path"]))
    s = tr.observations[np.random.default_rng(0).choice(len(tr), size=64, replace=False)]
    bfs, _ = distill.search_actions("reacher", "medium", s, method="bfs_best", n_particles=2, batch=32, seed=0, weights_dir=tiny["weights"])
    student_bfs, _ = tts.rl.distilled_actor("reacher", "medium", "bfs", tiny["weights"])(s, 0)
    student_paper, _ = tts.rl.distilled_actor("reacher", "medium", "paper", tiny["weights"])(s, 0)
    # each student sits nearer its own teacher's actions than the other student does
    assert np.mean((student_bfs - bfs) ** 2) < np.mean((student_paper - bfs) ** 2)


def test_checkpoints_are_chosen_by_measured_return():
    info = {"recipe": {"env": "halfcheetah", "medium_return": 4500.0},
            "checkpoints": [{"step": 10, "return": 100.0}, {"step": 20, "return": 4600.0}, {"step": 30, "return": 4550.0},
                            {"step": 40, "return": 5200.0}]}
    medium, expert = generate.choose_checkpoints(info)
    assert medium["step"] == 20 and expert["step"] == 40  # the first to reach the medium return; the best
    info["recipe"]["medium_return"] = 6000.0
    with pytest.raises(RuntimeError, match="no SAC checkpoint of halfcheetah reached the medium return 6000.0 \\(best 5200.0\\)"):
        generate.choose_checkpoints(info)


def test_a_sac_log_is_reused_when_only_the_choice_of_checkpoints_changed(tmp_path):
    rc = generate.recipe("hopper")
    log = {"recipe": dict(vars(rc), medium_return=1400.0, net=list(rc.net)), "checkpoints": [{"step": 10, "return": 1200.0}]}
    (tmp_path / "log.json").write_text(json.dumps(log))
    info = generate.reuse_log(str(tmp_path / "log.json"), rc)
    assert info["recipe"]["medium_return"] == rc.medium_return and info["launched_with"]["medium_return"] == 1400.0
    assert generate.choose_checkpoints(info)[0]["step"] == 10  # 1200 reaches this recipe's medium return, not the launch's
    log["recipe"]["sac_steps"] = 5
    (tmp_path / "log.json").write_text(json.dumps(log))
    with pytest.raises(ValueError, match=f"trained by another recipe \\(sac_steps=5; this one has sac_steps={rc.sac_steps}\\)"):
        generate.reuse_log(str(tmp_path / "log.json"), rc)


def test_replay_buffer_is_saved_in_collection_order_up_to_its_fill(tmp_path):
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    cap, obs, act = 6, 3, 2
    rb = SimpleNamespace(pos=4, full=False, buffer_size=cap, observations=rng.normal(size=(cap, 1, obs)),
                         next_observations=rng.normal(size=(cap, 1, obs)), actions=rng.normal(size=(cap, 1, act)),
                         rewards=rng.normal(size=(cap, 1)), dones=np.zeros((cap, 1)), timeouts=np.zeros((cap, 1)))
    generate._save_replay(rb, str(tmp_path))
    z = np.load(tmp_path / "replay.npz")
    np.testing.assert_array_equal(z["actions"], rb.actions[:4, 0])  # the filled part only, env axis dropped
    np.testing.assert_array_equal(z["next_observations"], rb.next_observations[:4, 0])
    rb.full = True
    generate._save_replay(rb, str(tmp_path))  # saved again at the next checkpoint: replaced whole
    assert len(np.load(tmp_path / "replay.npz")["rewards"]) == cap and os.listdir(tmp_path) == ["replay.npz"]


def test_cut_episodes_extrapolate_only_where_episodes_never_terminate():
    with pytest.raises(ValueError, match="extrapolate=True is refused for env 'hopper'"):
        tts.rl.evaluate_actor("hopper", lambda s, k: (np.zeros((len(s), 3)), np.ones(len(s))), max_steps=5, extrapolate=True)


@needs_sim
def test_extrapolated_score_scales_the_cut_return():
    zero = lambda s, k: (np.zeros((len(s), 6)), np.ones(len(s)))  # noqa: E731
    cut = tts.rl.evaluate_actor("halfcheetah", zero, seeds=[0], episodes=2, max_steps=10, extrapolate=True, progress=False)
    np.testing.assert_allclose(cut.scores, envs.normalized_score("halfcheetah", cut.returns * 100))
    assert cut.extrapolated and cut.nfe_per_action == 1.0 and cut.saturation == 0.0


@needs_sim
def test_saturation_counts_action_coordinates_at_the_box_edge():
    # two of six coordinates at the edge (one beyond it: the box clips it to 1) -> 1/3, whatever the step
    edge = lambda s, k: (np.tile([1.5, -0.995, 0.98, 0.0, 0.5, -0.5], (len(s), 1)), np.ones(len(s)))  # noqa: E731
    ev = tts.rl.evaluate_actor("halfcheetah", edge, seeds=[0, 1], episodes=1, max_steps=3, progress=False)
    assert ev.saturation == pytest.approx(1 / 3)


@needs_weights
def test_shipped_distilled_policies_name_their_teachers():
    ck = tts.rl.load_checkpoint("halfcheetah", "medium")
    teacher = ck["distilled"]["paper"]["meta"]["teacher"]
    assert teacher["method"] == "bon" and teacher["n_particles"] == 8 and teacher["options"] == tts.rl.paper_local("halfcheetah", "medium")
    # every teacher's policy acts at 1 NFE in the box: test_every_shipped_agent_loads_acts_and_names_the_data_it_learnt_from
    assert tts.rl.distilled_teachers("halfcheetah", "medium") == ["paper", "bfs"]


@needs_data
def test_q_weighted_distillation_weights_pairs_by_advantage(tiny):
    kw = dict(states=64, batch=32, n_particles=2, steps=50, lr=3e-3, weights_dir=tiny["weights"], log=lambda *a: None, rho=0.0, mu=0.05,
              iter_steps=1, overwrite=True)
    distill.distill("reacher", "medium", tiny["path"], **kw)
    plain = distill.distilled_policy("reacher", "medium", weights_dir=tiny["weights"]).state_dict()
    distill.distill("reacher", "medium", tiny["path"], q_weighted=True, beta=1.0, **kw)
    ck = tts.rl.load_checkpoint("reacher", "medium", tiny["weights"])
    assert ck["distilled"]["paper"]["meta"]["q_weighted"] is True
    weighted = distill.distilled_policy("reacher", "medium", weights_dir=tiny["weights"]).state_dict()
    # same seed, same teacher actions, same batches: only the per-pair weights differ
    assert any(not torch.equal(plain[k], weighted[k]) for k in plain)
