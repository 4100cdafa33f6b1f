"""The critic-ranking measure (tts_fast.rl.ranking) and the evaluation's honest error bars (tts_fast.rl.evaluate).

The statistics are checked against values worked out by hand; the rollouts (marked ``needs_sim``:
gymnasium + MuJoCo, no data) against direct environment steps, with each property written against a
named broken variant.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from tts_fast.rl import evaluate, ranking
from tts_fast.rl.policy import ActionScoreNet, DiffusionPolicy

HAVE_SIM = all(importlib.util.find_spec(m) is not None for m in ("gymnasium", "mujoco"))
needs_sim = pytest.mark.skipif(not HAVE_SIM, reason="needs the MuJoCo simulator: gymnasium and mujoco (pip install 'tts_fast[rl]')")
pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------
# statistics


def test_spearman_by_hand():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    b = np.array([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    got = ranking.spearman(a, b)
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(-1.0)
    # tied values take the mean of their ranks: a's ranks 0, 1.5, 1.5, 3 against 0, 1, 2, 3
    ra, rb = np.array([0, 1.5, 1.5, 3]) - 1.5, np.array([0, 1, 2, 3]) - 1.5
    assert got[2] == pytest.approx((ra * rb).sum() / math.sqrt((ra ** 2).sum() * (rb ** 2).sum()))
    assert math.isnan(got[3])  # a constant row has no ranking


def test_pairwise_agreement_by_hand():
    q = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 3.0], [1.0, 2.0, 3.0]])
    r = np.array([[1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]])
    got = ranking.pairwise_agreement(q, r)
    assert got[0] == pytest.approx(2 / 3)  # (0,1) and (0,2) right, (1,2) wrong
    assert got[1] == pytest.approx((0.5 + 1 + 1) / 3)  # a tie of q counts half
    assert got[2] == pytest.approx(1.0)  # a tie of r is no pair: (0,2) and (1,2) right


def test_summarize_by_hand():
    """Against the selection gain taken at Q's worst (argmin) or against the best instead of the mean, the
    continuations averaged before the reliability's split, a tied state kept in the rankings."""
    q = np.array([[3.0, 1.0, 2.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    # returns [S, K, M=2]; state 2 is tied (every candidate the same mean return)
    returns = np.array([[[1.0, 3.0], [0.0, 2.0], [5.0, 5.0]],
                        [[1.0, 1.0], [2.0, 4.0], [6.0, 6.0]],
                        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])
    out = ranking.summarize(q, returns)
    r = returns.mean(2)  # [[2, 1, 5], [1, 3, 6], [1, 1, 1]]
    assert out["ties"] == 1 and out["states"] == 3 and out["continuations"] == 2
    rho = ranking.spearman(q[:2], r[:2])
    assert out["spearman"] == pytest.approx(rho.mean()) and out["spearman_se"] == pytest.approx(rho.std(ddof=1) / math.sqrt(2))
    gains = np.array([2 - 8 / 3, 6 - 10 / 3, 0.0])  # Q's favourite: candidate 0, 2, 2
    assert out["selection_gain"] == pytest.approx(gains.mean()) and out["selection_gain_se"] == pytest.approx(gains.std(ddof=1) / math.sqrt(3))
    assert out["oracle_gain"] == pytest.approx(np.mean([5 - 8 / 3, 6 - 10 / 3, 0.0]))
    even, odd = returns[:2, :, 0], returns[:2, :, 1]
    assert out["reliability"] == pytest.approx(ranking.spearman(even, odd).mean())


class _LinearCritic:
    """q(s, a) = 10 s_0 + a_0: enough to see which state and action each Q value belongs to."""

    def q(self, s, a):
        return 10 * s[:, 0] + a[:, 0]


def test_ranking_measure_pairs_each_candidate_with_its_state():
    """Against the candidates reshaped candidate-major (Q of state i's action under state j), and the
    horizons' returns swapped."""
    snaps = [{"obs": np.array([float(i), 0.0], np.float32), "qpos": None, "qvel": None, "step": 0} for i in range(3)]
    acts = np.arange(3 * 4 * 1, dtype=np.float64).reshape(3, 4, 1) / 100
    returns = np.random.default_rng(0).normal(size=(2, 3, 4, 2))
    out = ranking.ranking_measure("hopper", None, _LinearCritic(), snaps=snaps, candidate_actions=acts, returns=returns, horizons=(1, 10))
    want = 10 * np.arange(3)[:, None] + acts[:, :, 0]
    np.testing.assert_allclose(out["data"]["q"], want, rtol=1e-6)
    assert sorted(out["by_horizon"]) == [1, 10] and out["horizons"] == [1, 10]
    # Q = 10 s_0 + a_0 with a_0 = |a| growing along k: Q follows the action's size in every state
    assert out["q_vs_action_size"] == pytest.approx(1.0) and out["q_vs_action_size_se"] == 0.0
    for i, h in enumerate((1, 10)):
        f = out["by_horizon"][h]
        assert f["gamma_horizon"] == pytest.approx(0.99 ** h) and f["mean_return"] == pytest.approx(returns[i].mean())
        assert f["spearman"] == pytest.approx(ranking.summarize(want, returns[i])["spearman"])
    with pytest.raises(ValueError, match=r"returns must be \[2, 3, 4, M\]"):
        ranking.ranking_measure("hopper", None, _LinearCritic(), snaps=snaps, candidate_actions=acts, returns=returns[:, :2], horizons=(1, 10))


def test_ranking_refuses_bad_arguments():
    with pytest.raises(ValueError, match="candidates must be an integer >= 2, got 1"):
        ranking.ranking_measure("hopper", None, _LinearCritic(), candidates=1)
    with pytest.raises(ValueError, match="continuations must be an integer >= 1, got 0"):
        ranking.continuation_returns("hopper", None, [], np.zeros((1, 2, 3)), continuations=0, horizons=(5,), gamma=0.9)
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\], got 1.5"):
        ranking.continuation_returns("hopper", None, [], np.zeros((1, 2, 3)), continuations=1, horizons=(5,), gamma=1.5)
    for bad in ((), (3, 1), (0, 2), (2, 2)):
        with pytest.raises(ValueError, match="horizons must be increasing integers >= 1"):
            ranking.continuation_returns("hopper", None, [], np.zeros((1, 2, 3)), continuations=1, horizons=bad)


# ----------------------------------------------------------------------------------------------
# rollouts in the simulator


def _policy(env="hopper", seed=0):
    from tts_fast.rl.envs import task

    t = task(env)
    torch.manual_seed(seed)
    net = ActionScoreNet(t.obs_dim, t.act_dim, width=16, blocks=1, temb=4)
    return DiffusionPolicy(net, np.zeros((1, t.obs_dim), np.float32), env=env)


@needs_sim
def test_snapshots_restore_the_states_the_episodes_visited():
    """Against a snapshot taken after the step (or of another episode): restoring it and replaying the
    policy's first action gives the state the episode was in."""
    from tts_fast.rl.envs import make_env

    pol = _policy()
    snaps = ranking.snapshots("hopper", pol, states=3, seed=1, max_start=6)
    assert len(snaps) == 3 and all(0 <= s["step"] <= 6 for s in snaps)
    e = make_env("hopper")
    for i, s in enumerate(snaps):
        e.reset(seed=1 * 1000 + 50_000 + i)
        e.unwrapped.set_state(s["qpos"], s["qvel"])
        np.testing.assert_allclose(e.unwrapped._get_obs(), s["obs"], rtol=1e-6, atol=1e-8)
        if s["step"] == 0:  # the reset state of its own episode
            obs0, _ = make_env("hopper").reset(seed=1 * 1000 + 50_000 + i)
            np.testing.assert_allclose(obs0, s["obs"], rtol=1e-6)


@needs_sim
def test_continuations_share_noise_across_candidates_and_discount():
    """Identical candidates give identical returns in every continuation (common noise across k; a
    per-row noise would not); the continuations differ from each other; the one-step horizon is the
    first step's reward; chunking the states changes nothing."""
    from tts_fast.rl.envs import make_env

    pol = _policy()
    snaps = ranking.snapshots("hopper", pol, states=2, seed=0, max_start=3)
    a = np.tile(np.array([0.3, -0.2, 0.1]), (2, 3, 1))  # 3 identical candidates per state
    ret = ranking.continuation_returns("hopper", pol, snaps, a, continuations=3, horizons=(2, 6), gamma=0.9, seed=0)
    assert ret.shape == (2, 2, 3, 3)
    # equal up to float rounding (the policy's matmul rounds a row by where it sits in the batch); a per-row noise
    # moves returns by ~1e-2
    np.testing.assert_allclose(ret[:, :, 0], ret[:, :, 1], rtol=1e-6)
    np.testing.assert_allclose(ret[:, :, 0], ret[:, :, 2], rtol=1e-6)
    assert len(np.unique(ret[1, 0, 0])) == 3  # three continuations, three noises
    chunked = ranking.continuation_returns("hopper", pol, snaps, a, continuations=3, horizons=(2, 6), gamma=0.9, seed=0, max_envs=9)
    np.testing.assert_allclose(ret, chunked, rtol=1e-6)
    # the horizons are prefixes of one rollout: a run to 2 steps alone gives the first row
    short = ranking.continuation_returns("hopper", pol, snaps, a, continuations=3, horizons=(2,), gamma=0.9, seed=0)
    np.testing.assert_allclose(short[0], ret[0], rtol=1e-6)
    one = ranking.continuation_returns("hopper", pol, snaps, a, continuations=1, horizons=(1, 2), gamma=0.5, seed=0)
    e = make_env("hopper")
    for i, s in enumerate(snaps):
        e.reset(seed=0)
        e.unwrapped.set_state(s["qpos"], s["qvel"])
        _, r, *_ = e.step(a[i, 0])
        np.testing.assert_allclose(one[0, i, :, 0], r, rtol=1e-9)
        assert not np.allclose(one[1, i, :, 0], r)  # the second step's reward, discounted by 0.5, is added


@needs_sim
def test_evaluation_records_lengths_and_resets(monkeypatch):
    """Every episode's length is the steps it lived; the reset seeds are the official protocol's."""
    calls = {}

    def act(states, step):
        calls[step] = len(states)
        return np.zeros((len(states), 3)), np.ones(len(states))

    ev = evaluate.evaluate_actor("hopper", act, seeds=[0, 1], episodes=2, max_steps=30, progress=False)
    np.testing.assert_array_equal(ev.resets, [[1001, 1002], [1002, 1003]])
    assert ev.lengths.shape == (2, 2) and ev.lengths.max() <= 30 and ev.length_max == ev.lengths.max()
    assert ev.length_mean == pytest.approx(ev.lengths.mean())
    # the live rows at each step are exactly the episodes whose length exceeds it
    for step, n in calls.items():
        assert n == int((ev.lengths > step).sum())
    # zero actions are deterministic: the shared initial state 1002 gives the same episode twice
    assert ev.returns[0, 1] == ev.returns[1, 0] and ev.lengths[0, 1] == ev.lengths[1, 0]


# ----------------------------------------------------------------------------------------------
# error bars


def test_stderr_over_resets_counts_each_initial_state_once():
    """A deterministic policy repeats episodes across the official seeds: the over-seeds error is ~0,
    the over-initial-states one is the spread of the distinct episodes."""
    seeds, episodes = range(5), 10
    resets = evaluate.reset_seeds(seeds, episodes)
    assert resets.shape == (5, 10) and len(np.unique(resets)) == 14 and resets[1, 0] == resets[0, 1] == 1002
    value = {r: float(r % 7) for r in np.unique(resets)}  # the score of each initial state
    scores = np.vectorize(value.get)(resets).astype(float)
    ev = evaluate.Evaluation("hopper", scores, scores, 1.0, 0.0, 10, resets=resets)
    distinct = np.array(list(value.values()))
    assert ev.episode_stderr == pytest.approx(distinct.std(ddof=1) / math.sqrt(14))
    assert ev.stderr < ev.episode_stderr / 2  # the seeds share most of their episodes: their means differ less
    # stochastic episodes of one state are averaged first
    s2 = np.array([[1.0, 3.0]]), np.array([[5, 5]])
    assert evaluate.stderr_over_resets(*s2) == 0.0
    assert evaluate.stderr_over_resets(np.array([1.0, 3.0, 5.0]), np.array([1, 1, 2])) == pytest.approx(np.std([2.0, 5.0], ddof=1) / math.sqrt(2))
    with pytest.raises(ValueError, match="same shape"):
        evaluate.stderr_over_resets(np.zeros(3), np.zeros(2))
