"""Oracles for the offline-RL layer (tts_fast.rl): every figure an evaluation reports, the numeric
transformations of data, critic, policy and distillation, and the dataset recipe's bookkeeping,
each checked against a value the test computes itself (by hand, in closed form, or by a small
independent re-computation).

Most tests need no simulator: the environments, Minari and the SB3 models are replaced by small
fakes whose episodes are written by hand, so every return, seed, NFE and flag is known in advance.
Each test names the broken variant it is written against.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import tts_fast as tts
from tts_fast.rl import distill, envs, evaluate, generate, train
from tts_fast.rl import datasets as D
from tts_fast.rl.critic import QVerifier, TwinQ
from tts_fast.rl.policy import ActionScoreNet, DiffusionPolicy, StateNormalizer

# the condition of tests/test_rl.py for the simulator (gymnasium + MuJoCo); no test here needs Minari data
HAVE_SIM = all(importlib.util.find_spec(m) is not None for m in ("gymnasium", "mujoco"))
needs_sim = pytest.mark.skipif(not HAVE_SIM, reason="needs the MuJoCo simulator: gymnasium and mujoco "
                               "(pip install --no-build-isolation 'tts_fast[rl]')")


# -- fakes -------------------------------------------------------------------------------------------


class ScriptedEnv:
    """An environment whose episodes are written by hand: reset seed r gives an episode of
    ``length(r)`` steps, each with reward ``reward(r)``, ending terminated when ``ends(r) == 'term'``
    and truncated otherwise. Stepped past its end it keeps paying (so a loop that does not stop
    there is seen in the returns). Observation: [reset seed, steps taken, 0, ...]."""

    log: list = []

    def __init__(self, obs_dim, length, reward, ends):
        self.obs_dim, self.length, self.reward, self.ends = obs_dim, length, reward, ends
        self.closed = False

    def _obs(self):
        o = np.zeros(self.obs_dim)
        o[0], o[1] = self.seed, self.t
        return o

    def reset(self, seed=None):
        self.seed, self.t = seed, 0
        ScriptedEnv.log.append(("reset", seed))
        return self._obs(), {}

    def step(self, a):
        self.t += 1
        ScriptedEnv.log.append(("step", self.seed, np.array(a, dtype=np.float64)))
        end = self.t >= self.length(self.seed)
        term = end and self.ends(self.seed) == "term"
        return self._obs(), float(self.reward(self.seed)), term, end and not term, {}

    def close(self):
        self.closed = True


def scripted(monkeypatch, module, obs_dim, length, reward, ends):
    ScriptedEnv.log = []
    made = []

    def make(name, **kw):
        made.append(ScriptedEnv(obs_dim, length, reward, ends))
        return made[-1]

    monkeypatch.setattr(module, "make_env", make)
    return made


# Reacher: obs 10, act 2, limit 50, random -43, expert 0. Seeds [0, 3] x 2 episodes reset with
# 1001, 1002 (seed 0) and 1004, 1005 (seed 3); episode of reset seed r: r - 1000 + 1 steps of
# reward r - 1000, terminated for odd r, truncated for even r.
LEN = {1001: 2, 1002: 3, 1004: 5, 1005: 6}
REW = {1001: 1.0, 1002: 2.0, 1004: 4.0, 1005: 5.0}


def _eval_env(monkeypatch):
    return scripted(monkeypatch, evaluate, 10, lambda r: LEN[r], lambda r: REW[r], lambda r: "term" if r % 2 else "trunc")


# -- envs: D4RL normalisation ------------------------------------------------------------------------


def test_unknown_env_names_the_known_ones():
    """Against a message that does not list the envs there are (or lists them garbled)."""
    with pytest.raises(ValueError, match=r"^unknown env 'ant'; known envs: reacher, hopper, halfcheetah, walker2d$"):
        envs.task("ant")


def test_normalised_score_is_100_times_the_place_between_random_and_expert():
    """Against min/max swapped, a missing factor 100, the expert subtracted, a wrong env's constants."""
    # hopper: random -20.272305, expert 3234.3 -> a return of 1000 is 100 * 1020.272305 / 3254.572305
    assert float(envs.normalized_score("hopper", 1000.0)) == pytest.approx(100 * 1020.272305 / 3254.572305, rel=1e-12)
    # halfcheetah: 4800 -> 100 * 5080.178953 / 12415.178953
    assert float(envs.normalized_score("halfcheetah", 4800.0)) == pytest.approx(100 * 5080.178953 / 12415.178953, rel=1e-12)
    # walker2d below random: negative, not clipped
    assert float(envs.normalized_score("walker2d", -100.0)) == pytest.approx(100 * -101.629008 / 4590.670992, rel=1e-12)
    # reacher: random -43, expert 0 (the smoke task's constants); shape kept
    got = envs.normalized_score("reacher", [[-43.0, -21.5], [0.0, 43.0]])
    np.testing.assert_allclose(got, [[0.0, 50.0], [100.0, 200.0]])
    with pytest.raises(ValueError, match="finite"):
        envs.normalized_score("reacher", [1.0, float("nan")])


# -- evaluate: the summary's figures ------------------------------------------------------------------


def test_evaluation_summary_score_and_standard_error_over_seeds():
    """Against the standard error with n instead of n-1, over episodes instead of seeds, the mean
    over seeds of the wrong axis, and a nonzero error for one seed."""
    scores = np.array([[10.0, 30.0, 20.0], [50.0, 40.0, 60.0], [0.0, 5.0, 10.0], [20.0, 20.0, 20.0]])
    ev = evaluate.Evaluation("reacher", scores - 1, scores, 1.0, 0.0, 1)
    np.testing.assert_allclose(ev.seed_scores, [20.0, 50.0, 5.0, 20.0])
    assert ev.score == pytest.approx(23.75)
    # sample variance of (20, 50, 5, 20): squares of (-3.75, 26.25, -18.75, -3.75) = 1068.75 / 3 = 356.25
    assert ev.stderr == pytest.approx((356.25 ** 0.5) / 2)
    one = evaluate.Evaluation("reacher", scores[:1], scores[:1], 1.0, 0.0, 1)
    assert one.score == pytest.approx(20.0) and one.stderr == 0.0


def test_evaluation_returns_seeds_scores_and_nfe_of_scripted_episodes(monkeypatch):
    """Against reset seeds other than k + 1001 + e (k + 1000 + e, e + 1001 for every seed), returns
    summed with a discount, returns laid out [episodes, seeds], episodes split at truncation not
    stopping, the reward of a finished episode counted on, NFE per action averaged over steps or
    over all environments instead of the actions taken, the actor given dead rows or stale states."""
    made = _eval_env(monkeypatch)
    seen = []

    def act(states, step):
        seen.append((step, states[:, 0].tolist()))
        assert states.dtype == np.float32 and np.all(states[:, 1] == step)  # each row's current state
        return np.zeros((len(states), 2)), states[:, 0] - 1000  # NFE of a row = its episode's number

    ev = evaluate.evaluate_actor("reacher", act, seeds=[0, 3], episodes=2, progress=False)
    assert sorted(x[1] for x in ScriptedEnv.log if x[0] == "reset") == [1001, 1002, 1004, 1005]
    np.testing.assert_allclose(ev.returns, [[1.0 * 2, 2.0 * 3], [4.0 * 5, 5.0 * 6]])  # reward x length, undiscounted
    np.testing.assert_allclose(ev.scores, 100 * (ev.returns + 43) / 43)
    np.testing.assert_allclose(ev.seed_scores, [100 * (4 + 43) / 43, 100 * (25 + 43) / 43])
    assert ev.steps == 6 and not ev.extrapolated
    live = [[1001, 1002, 1004, 1005]] * 2 + [[1002, 1004, 1005]] + [[1004, 1005]] * 2 + [[1005]]
    assert seen == list(enumerate(live))
    # 16 actions: 2 of episode 1, 3 of episode 2, 5 of episode 4, 6 of episode 5
    assert ev.nfe_per_action == pytest.approx((1 * 2 + 2 * 3 + 4 * 5 + 5 * 6) / 16)
    assert all(e.closed for e in made) and len(made) == 4
    ev1 = evaluate.evaluate_actor("reacher", act, seeds=[0], episodes=2, progress=False)
    assert ev1.stderr == 0.0 and ev1.returns.shape == (1, 2)


def test_cut_evaluation_and_extrapolated_scores(monkeypatch):
    """Against extrapolation by max_steps / limit instead of limit / max_steps, the scaled returns
    reported instead of the raw ones, extrapolation applied when it was not asked for or when no
    episode was cut (every one ended on its own before max_steps), a cut one step late or early, and
    the extrapolated flag set when nothing was scaled."""
    _eval_env(monkeypatch)
    zero = lambda s, k: (np.zeros((len(s), 2)), np.ones(len(s)))  # noqa: E731
    cut = evaluate.evaluate_actor("reacher", zero, seeds=[0, 3], episodes=2, max_steps=4, progress=False)
    # episodes 4 and 5 are cut after 4 steps; episodes 1, 2 ended on their own
    np.testing.assert_allclose(cut.returns, [[2.0, 6.0], [16.0, 20.0]])
    np.testing.assert_allclose(cut.scores, 100 * (cut.returns + 43) / 43)
    assert cut.steps == 4 and not cut.extrapolated and cut.nfe_per_action == 1.0
    ex = evaluate.evaluate_actor("reacher", zero, seeds=[0, 3], episodes=2, max_steps=2, extrapolate=True, progress=False)
    np.testing.assert_allclose(ex.returns, [[2.0, 4.0], [8.0, 10.0]])  # raw returns of the 2 steps
    np.testing.assert_allclose(ex.scores, 100 * (ex.returns * 25 + 43) / 43)  # carried to 50 steps: x 50 / 2
    assert ex.extrapolated and ex.steps == 2
    full = evaluate.evaluate_actor("reacher", zero, seeds=[0], episodes=1, max_steps=50, extrapolate=True, progress=False)
    assert not full.extrapolated and full.steps == 2  # nothing cut (the episode ended at 2): nothing scaled
    np.testing.assert_allclose(full.scores, 100 * (np.array([[2.0]]) + 43) / 43)


def test_saturation_is_the_fraction_of_coordinates_taken_at_the_box_edge(monkeypatch):
    """Against the threshold as > instead of >= 0.99, the count taken before clipping (|1.7| and
    |-3| saturated either way, so: the env given unclipped actions), a denominator over all
    environments x steps or without act_dim."""
    _eval_env(monkeypatch)

    def act(states, step):
        a = np.zeros((len(states), 2))
        a[states[:, 0] == 1001] = [0.99, -3.0]   # both at the edge (one exactly at the threshold)
        a[states[:, 0] == 1002] = [0.9899, 1.7]  # one of two
        return a, np.ones(len(states))

    ev = evaluate.evaluate_actor("reacher", act, seeds=[0, 3], episodes=2, progress=False)
    # 16 actions x 2 coordinates; episode 1: 2 actions x 2, episode 2: 3 actions x 1
    assert ev.saturation == pytest.approx((2 * 2 + 3 * 1) / 32)
    sent = np.stack([x[2] for x in ScriptedEnv.log if x[0] == "step"])
    assert sent.max() == 1.0 and sent.min() == -1.0  # the box clips what reaches the env
    assert {tuple(x[2]) for x in ScriptedEnv.log if x[0] == "step" and x[1] == 1002} == {(0.9899, 1.0)}


def test_search_actor_seeds_each_step_and_reports_the_search_nfe():
    """Against the search seed of step k as seed + k (or without k, or without seed), the budget per
    call not scaled by the live states, and NFE of the call instead of per row."""
    torch.manual_seed(0)
    net, crit = ActionScoreNet(5, 3, width=16, blocks=1, temb=8), TwinQ(5, 3, width=16, layers=1)
    states = torch.randn(3, 5)
    pol, q = DiffusionPolicy(net, states[:1]), QVerifier(crit, states[:1])
    s = states.numpy()
    for seed, step, budget in [(2, 7, None), (0, 1, None), (1, 0, None), (2, 7, 8)]:
        actor = evaluate.search_actor(pol, q, "bon", n_particles=2, num_steps=3, seed=seed, budget_per_state=budget)
        a, nfe = actor(s, step)
        ref = tts.search(pol.with_states(states), q.with_states(states), "bon", n_particles=2, num_steps=3, batch_size=3,
                         seed=seed * 1_000_003 + step, budget=None if budget is None else budget * 3, progress=False)
        np.testing.assert_array_equal(a, ref.samples.numpy())
        np.testing.assert_array_equal(nfe, ref.nfe_per_prompt.numpy())
        assert nfe.shape == (3,)
    # each environment step draws its own search seed: neighbouring steps pick other actions
    a7, _ = evaluate.search_actor(pol, q, "bon", n_particles=2, num_steps=3, seed=2)(s, 7)
    a8, _ = evaluate.search_actor(pol, q, "bon", n_particles=2, num_steps=3, seed=2)(s, 8)
    assert not np.array_equal(a7, a8)


def test_paper_local_maps_r_j_rho_mu_to_the_search_keywords():
    """Against R and J swapped (local_steps vs iter_steps), rho and mu swapped, sigma left out."""
    assert evaluate.paper_local("walker2d", "medium") == dict(local_steps=1, iter_steps=6, rho=0.003, mu=0.08, sigma=0.0)
    assert evaluate.paper_local("walker2d", "medium-replay") == dict(local_steps=2, iter_steps=4, rho=0.003, mu=0.03, sigma=0.0)
    assert evaluate.paper_local("hopper", "medium-replay") == dict(local_steps=1, iter_steps=1, rho=0.003, mu=0.20, sigma=0.0)


# -- datasets ------------------------------------------------------------------------------------------


def _fake_ds(episodes, name="tts_fast/reacher/medium-v0"):
    eps = [SimpleNamespace(**e) for e in episodes]
    return SimpleNamespace(iterate_episodes=lambda: iter(eps), spec=SimpleNamespace(dataset_id=name))


def _ep(obs, act, rew, term, trunc):
    return dict(observations=np.asarray(obs, np.float64), actions=np.asarray(act, np.float32), rewards=np.asarray(rew, np.float64),
                terminations=np.asarray(term, bool), truncations=np.asarray(trunc, bool))


EPISODES = [  # obs [T+1, 2], actions [T, 1]
    _ep([[0, 0], [1, 1], [2, 2], [3, 3]], [[0.1], [0.2], [0.3]], [1.0, 2.0, 3.0], [0, 0, 1], [0, 0, 0]),
    _ep([[10, 10], [11, 11], [12, 12]], [[-0.1], [-0.2]], [0.5, 0.25], [0, 0], [0, 1]),
    _ep([[20, 20], [21, 21]], [[0.9]], [-4.0], [0], [1]),
]


def test_transitions_split_observations_and_keep_terminations_only():
    """Against s and s' swapped or shifted by one, terminals that include truncations, episode
    returns summed with a discount (or over the whole dataset), episodes reordered."""
    tr = D.transitions(_fake_ds(EPISODES))
    assert len(tr) == 6
    np.testing.assert_array_equal(tr.observations, [[0, 0], [1, 1], [2, 2], [10, 10], [11, 11], [20, 20]])
    np.testing.assert_array_equal(tr.next_observations, [[1, 1], [2, 2], [3, 3], [11, 11], [12, 12], [21, 21]])
    np.testing.assert_array_equal(tr.actions[:, 0], np.float32([0.1, 0.2, 0.3, -0.1, -0.2, 0.9]))
    np.testing.assert_array_equal(tr.rewards, [1.0, 2.0, 3.0, 0.5, 0.25, -4.0])
    np.testing.assert_array_equal(tr.terminals, [0, 0, 1, 0, 0, 0])  # truncations are not terminals
    np.testing.assert_allclose(tr.episode_returns, [6.0, 0.75, -4.0])
    assert all(a.dtype == np.float32 for a in (tr.observations, tr.actions, tr.rewards, tr.next_observations, tr.terminals))
    with pytest.raises(ValueError, match="'tts_fast/reacher/medium-v0' holds no episodes"):
        D.transitions(_fake_ds([]))


def test_fingerprint_figures_and_hash_of_every_array():
    """Against a fingerprint whose hash ignores a field (observations, actions, rewards, next
    observations or terminals), return statistics with ddof=1 or over transitions, counts swapped."""
    fp = D.fingerprint(_fake_ds(EPISODES))
    r = [6.0, 0.75, -4.0]
    assert fp["dataset_id"] == "tts_fast/reacher/medium-v0" and fp["episodes"] == 3 and fp["transitions"] == 6
    assert fp["return_mean"] == pytest.approx(np.mean(r)) and fp["return_min"] == -4.0 and fp["return_max"] == 6.0
    m = sum(r) / 3
    assert fp["return_std"] == pytest.approx((sum((x - m) ** 2 for x in r) / 3) ** 0.5)  # population std
    h = hashlib.sha256()
    tr = D.transitions(_fake_ds(EPISODES))
    for a in (tr.observations, tr.actions, tr.rewards, tr.next_observations, tr.terminals):
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    assert fp["sha256"] == h.hexdigest()
    # one value changed in any hashed field changes the hash
    for key, where in [("observations", (1, 0)), ("observations", (3, 1)), ("actions", (0, 0)), ("rewards", (1,)),
                       ("terminations", (0,))]:
        eps = copy.deepcopy(EPISODES)
        a = eps[0][key]
        a[where] = (not a[where]) if a.dtype == bool else a[where] + 0.5
        assert D.fingerprint(_fake_ds(eps))["sha256"] != fp["sha256"], (key, where)


# -- policy and critic -------------------------------------------------------------------------------


def test_state_normaliser_standardises_with_a_floor_on_std():
    """Against (s - mean) * std, std floored at 1e-3 skipped or applied as a ceiling, mean added."""
    n = StateNormalizer(3)
    n.set(np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.0, 1e-5]))
    got = n(torch.tensor([[3.0, -2.0, 0.5 + 1e-3], [1.0, -1.0, 0.5]]))
    torch.testing.assert_close(got, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1000.0, 0.0]]), rtol=1e-4, atol=1e-4)


class _EpsNet(nn.Module):
    """eps(a_t, t, s) = 0.05 s[:, :act_dim] + 0.001 t: a known noise prediction (records its inputs)."""

    def __init__(self, obs_dim, act_dim):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.w = nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, a_t, t, s):
        self.calls.append((a_t.clone(), t.clone(), s.clone()))
        return 0.05 * s[:, :self.act_dim] + 0.001 * t[:, None] + 0 * self.w


def test_policy_x0_prediction_in_closed_form():
    """Against alpha and sigma swapped, alpha_bar indexed at t - 1 or t + 1 (or t truncated, not
    rounded), the clamp to the action box missing, the state rows not followed by cond, with_states
    dropping the agent's meta."""
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = np.cumprod(1 - betas)
    states = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-4.0, -3.0, -2.0, -1.0]])
    net = _EpsNet(4, 2)
    pol = DiffusionPolicy(net, states)
    x = torch.tensor([[0.3, -0.2], [0.6, 0.66], [0.9, -0.8], [0.02, 0.01]])
    t = torch.tensor([10.4, 499.6, 999.0, 0.0])
    cond = torch.tensor([1, 0, 1, 0])
    got = pol(x, t, cond)
    k = np.array([10, 500, 999, 0])
    s = states.numpy()[cond.numpy()]
    eps = 0.05 * s[:, :2] + 0.001 * t.numpy()[:, None]
    want = np.clip((x.numpy() - np.sqrt(1 - ab[k])[:, None] * eps) / np.sqrt(ab[k])[:, None], -1, 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert bool((got.abs() == 1).any()) and bool((got.abs() < 1).any())  # both clamped and free rows
    assert pol.with_states(states.double()).states.dtype == torch.float32  # float64 states (a gradient check's) become float32
    other = pol.with_states(states.flip(0))  # same network and schedule, other rows, the agent's meta kept
    torch.testing.assert_close(other(x, t, 1 - cond), got)
    meta = DiffusionPolicy(net, states, meta={"dataset": "d"}).with_states(states[:1]).meta
    assert meta == {"dataset": "d"}


def test_twin_q_takes_the_smaller_of_the_two_per_row():
    """Against the min of twin Qs replaced by the mean, the max, the first or the second Q, and the
    verifier reading another row's state."""
    crit = TwinQ(3, 2, width=4, layers=1).double()
    with torch.no_grad():  # Q1 = mish(a_0) + 1 + 0.1 mish(s_0), Q2 = 1 - mish(a_0), exactly
        for head, sign in ((crit.q1, 1.0), (crit.q2, -1.0)):
            for p in head.parameters():
                p.zero_()
            head[0].weight[0, 3] = 1.0  # hidden unit 0 = a_0 (input: [normalised s (3), a (2)])
            head[2].weight[0, 0] = sign
            head[2].bias.fill_(1.0)
        crit.q1[0].weight[1, 0] = 1.0  # hidden unit 1 = s_0, read by Q1 only
        crit.q1[2].weight[0, 1] = 0.1
    mish = F.mish
    a = torch.tensor([[0.5, 0.0], [-0.25, 0.3], [0.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    s = torch.zeros(4, 3, dtype=torch.float64)
    m = mish(a[:, 0])
    torch.testing.assert_close(crit.q(s, a), 1 - m.abs())  # the smaller: Q2 where a_0 > 0, Q1 where a_0 < 0
    states = torch.tensor([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]], dtype=torch.float64)
    cond = torch.tensor([1, 0, 1, 0])
    got = QVerifier(crit, states)(a, cond)
    want = torch.minimum(m + 1 + 0.1 * mish(states[cond, 0]), 1 - m)
    torch.testing.assert_close(got, want)
    assert bool((got == 1 - m).any()) and bool((got != 1 - m).any())  # each twin is the smaller on some row


# -- training ------------------------------------------------------------------------------------------


def test_expectile_loss_in_closed_form():
    """Against tau and 1 - tau swapped, the weight switched at diff <= 0 on the wrong side, a sum
    instead of a mean, |diff| instead of diff^2."""
    diff = torch.tensor([-2.0, 1.0, 3.0, 0.0])
    assert float(train.expectile_loss(diff, 0.7)) == pytest.approx((0.3 * 4 + 0.7 * 1 + 0.7 * 9 + 0) / 4)
    assert float(train.expectile_loss(diff, 0.9)) == pytest.approx((0.1 * 4 + 0.9 * 1 + 0.9 * 9) / 4)
    assert float(train.expectile_loss(torch.tensor([-1.0]), 0.5)) == pytest.approx(0.5)


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, a_t, t, s):
        self.calls.append((a_t, t, s))
        return torch.zeros_like(a_t)


def test_diffusion_loss_noises_actions_by_the_schedule():
    """Against sqrt(alpha_bar) and sqrt(1 - alpha_bar) swapped, timesteps drawn from 1..N or
    0..N-2, the net given the clean action, a loss against the action instead of the noise."""
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()
    a = torch.tensor([[0.5, -0.5], [0.1, 0.2], [-0.9, 0.0]])
    s = torch.randn(3, 4)
    net = _Recorder()
    loss = train.diffusion_loss(net, s, a, ab, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (3,), generator=g)
    eps = torch.randn((3, 2), generator=g)
    a_t, t_seen, s_seen = net.calls[0]
    torch.testing.assert_close(t_seen, t.float())
    torch.testing.assert_close(a_t, ab[t].sqrt()[:, None] * a + (1 - ab[t]).sqrt()[:, None] * eps)
    torch.testing.assert_close(s_seen, s)
    assert float(loss) == pytest.approx(float((eps ** 2).mean()), rel=1e-6)  # predicted 0: MSE to the noise
    # timesteps cover 0 and 999 (not 1..1000 or 0..998): 20000 draws miss one with probability e^-20
    many = torch.zeros(20_000, 2)
    train.diffusion_loss(net, torch.zeros(20_000, 4), many, ab, torch.Generator().manual_seed(0))
    assert int(net.calls[-1][1].min()) == 0 and int(net.calls[-1][1].max()) == 999


def _tiny_transitions():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(8, 3)).astype(np.float32)
    return D.Transitions(observations=obs, actions=rng.uniform(-1, 1, (8, 2)).astype(np.float32),
                         rewards=rng.normal(size=8).astype(np.float32), next_observations=(obs + 0.1).astype(np.float32),
                         terminals=np.float32([0, 1, 0, 0, 1, 0, 1, 0]), episode_returns=np.zeros(3))


def test_iql_critic_steps_match_an_independent_recomputation(monkeypatch):
    """Against IQL's expectile with tau vs 1 - tau swapped, V regressed on the mean (or first) of the
    target twins, the Bellman target with the terminal mask inverted or without gamma (or V(s)
    instead of V(s')), the target networks' Polyak rate as 1 - polyak, and the log's losses."""
    monkeypatch.setattr(train, "CRITIC", dict(width=16, layers=2))
    tr = _tiny_transitions()
    gamma, tau, polyak, lr, seed, steps, batch = 0.9, 0.8, 0.3, 1e-2, 3, 3, 6
    got, log = train.train_critic(tr, steps, batch=batch, lr=lr, gamma=gamma, tau=tau, polyak=polyak, seed=seed, log=lambda *a: None)

    torch.manual_seed(seed + 1)
    gen = torch.Generator().manual_seed(seed + 1)
    c = TwinQ(3, 2, width=16, layers=2)
    c.normalizer.set(tr.observations.mean(0), tr.observations.std(0))
    tgt = copy.deepcopy(c)
    ov = torch.optim.Adam(c.v.parameters(), lr=lr)
    oq = torch.optim.Adam([*c.q1.parameters(), *c.q2.parameters()], lr=lr)
    T = {k: torch.from_numpy(getattr(tr, k)) for k in ("observations", "actions", "rewards", "next_observations", "terminals")}
    lv, lq = [], []
    for _ in range(steps):
        i = torch.randint(0, 8, (batch,), generator=gen)
        s, a, r, s2, term = T["observations"][i], T["actions"][i], T["rewards"][i], T["next_observations"][i], T["terminals"][i]
        with torch.no_grad():
            t1, t2 = tgt.qs(s, a)
            target = torch.where(t1 < t2, t1, t2)
        d = target - c.value(s)
        w = tau * (d >= 0).float() + (1 - tau) * (d < 0).float()
        loss_v = (w * d * d).sum() / batch
        ov.zero_grad()
        loss_v.backward()
        ov.step()
        with torch.no_grad():
            y = torch.where(term > 0, r, r + gamma * c.value(s2))
        q1, q2 = c.qs(s, a)
        loss_q = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        oq.zero_grad()
        loss_q.backward()
        oq.step()
        with torch.no_grad():
            for pt, p in zip(tgt.parameters(), c.parameters()):
                pt.copy_((1 - polyak) * pt + polyak * p)
        lv.append(float(loss_v.detach()))
        lq.append(float(loss_q.detach()))
    want = c.state_dict()
    for k, v in got.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=1e-5, atol=1e-6, msg=k)
    assert log["v_loss"] == pytest.approx(np.mean(lv), rel=1e-5) and log["q_loss"] == pytest.approx(np.mean(lq), rel=1e-5)
    with torch.no_grad():
        assert log["mean_q_on_data"] == pytest.approx(float(torch.minimum(*c.qs(T["observations"], T["actions"])).mean()), rel=1e-5)
    assert log["steps"] == steps and not got.training


def test_training_refuses_unknown_settings():
    """Against a misspelt setting silently ignored (the run would train with the default), and a
    message that does not list the settings there are."""
    known = "policy_steps, critic_steps, batch, lr, ema, gamma, tau, polyak, seed, critic_activation"
    with pytest.raises(ValueError, match=rf"unknown training settings \['gama'\]; known: {known}$"):
        train.train("reacher", "medium", "/nonexistent", "/nonexistent", gama=0.9)


# -- distillation ----------------------------------------------------------------------------------------


def _tiny_agent_loaders(monkeypatch, obs_dim=4, act_dim=2):
    torch.manual_seed(0)
    net, crit = ActionScoreNet(obs_dim, act_dim, width=16, blocks=1, temb=8), TwinQ(obs_dim, act_dim, width=16, layers=1)
    monkeypatch.setattr(distill, "load_policy", lambda env, ds, s, **kw: DiffusionPolicy(net, s))
    monkeypatch.setattr(distill, "q_verifier", lambda env, ds, s, **kw: QVerifier(crit, s))
    return net, crit


def test_search_actions_cover_every_state_once_with_per_batch_seeds(monkeypatch):
    """Against a last partial batch dropped or a batch doubled, batches seeded seed + batch index
    instead of seed + first state, and NFE per state averaged over batches instead of states."""
    net, crit = _tiny_agent_loaders(monkeypatch)
    states = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    a, nfe = distill.search_actions("reacher", "medium", states, method="bon", n_particles=2, batch=2, seed=10)
    assert a.shape == (5, 2)
    want = []
    for k in (0, 2, 4):
        s = torch.from_numpy(states[k:k + 2])
        want.append(tts.search(DiffusionPolicy(net, s), QVerifier(crit, s), "bon", n_particles=2, num_steps=15, batch_size=len(s),
                               seed=10 + k, progress=False).samples.numpy())
    np.testing.assert_array_equal(a, np.concatenate(want))
    assert nfe == 2 * 15


def _distill_with(monkeypatch, tmp_path, actions, adv, rows, env="reacher", **kw):
    """distill() on hand-made transitions, teacher actions and critic advantages (no data, no search)."""
    n, states = len(actions), rows.astype(np.float32)
    tr = D.Transitions(observations=states.astype(np.float32), actions=np.zeros((n, 2), np.float32), rewards=np.zeros(n, np.float32),
                       next_observations=states.astype(np.float32), terminals=np.zeros(n, np.float32), episode_returns=np.zeros(1))
    seen = {}

    def search_actions(env, ds, s, **opts):
        seen["states"], seen["opts"] = s, opts
        rows = [int(np.flatnonzero((states == x).all(1))[0]) for x in s]
        return actions[rows], 42.0

    class Critic:
        def q(self, S, A):
            return torch.tensor([adv[int(np.flatnonzero((states == x.numpy()).all(1))[0])] for x in S], dtype=torch.float32)

        def value(self, S):
            return torch.zeros(len(S))

    path = str(tmp_path / "reacher_medium.pt")
    monkeypatch.setattr(distill, "load", lambda *a, **k: None)
    monkeypatch.setattr(distill, "transitions", lambda ds: tr)
    monkeypatch.setattr(distill, "search_actions", search_actions)
    monkeypatch.setattr(distill, "load_critic", lambda *a, **k: Critic())
    monkeypatch.setattr(distill, "load_checkpoint",  # the agent file as written so far
                        lambda *a, **k: torch.load(path, weights_only=False) if os.path.exists(path) else {"kind": "tts_fast_rl_agent"})
    monkeypatch.setattr(distill, "weights_path", lambda *a, **k: path)
    distill.distill(env, "medium", "unused", log=lambda *a: None, overwrite=True, **kw)
    ck = torch.load(path, weights_only=False)
    d = ck["distilled"][kw.get("teacher", "paper")]
    net = distill.OneStepPolicy(**d["config"])
    net.load_state_dict(d["state_dict"])
    return net, d["meta"], seen


def test_q_weighted_distillation_leans_on_the_pairs_with_the_larger_advantage(monkeypatch, tmp_path):
    """Against advantage weights with the wrong sign (softmax of -beta adv), weights not exponentiated
    (linear in adv), beta ignored, q_weighted ignored. Two teacher actions on indistinguishable
    states: plain MSE fits their mean, the weighted fit their softmax-weighted mean, here
    (e^2 * 0.8 + 1 * (-0.4)) / (e^2 + 1) = 0.657 (the per-batch normalisation moves it a little)."""
    n = 64
    states = np.zeros((n, 3))
    states[:, 0] = np.arange(n) * 1e-6  # distinct rows the network cannot tell apart
    actions = np.where(np.arange(n)[:, None] % 2 == 0, 0.8, -0.4).repeat(2, 1).astype(np.float32)
    adv = np.where(np.arange(n) % 2 == 0, 2.0, 0.0)
    kw = dict(states=n, batch=n, steps=300, lr=1e-3, seed=0, teacher="bon")
    plain, meta, _ = _distill_with(monkeypatch, tmp_path, actions, adv, states, **kw)
    weighted, wmeta, _ = _distill_with(monkeypatch, tmp_path, actions, adv, states, q_weighted=True, beta=1.0, **kw)
    flat, _, _ = _distill_with(monkeypatch, tmp_path, actions, adv, states, q_weighted=True, beta=0.0, **kw)
    s = torch.zeros(1, 3)
    with torch.no_grad():
        p, w, f = float(plain(s)[0, 0]), float(weighted(s)[0, 0]), float(flat(s)[0, 0])
    e2 = np.exp(2.0)
    assert p == pytest.approx(0.2, abs=0.05)
    assert w == pytest.approx((e2 * 0.8 - 0.4) / (e2 + 1), abs=0.05)
    assert f == p  # beta 0: every weight 1, the plain fit exactly
    assert wmeta["q_weighted"] is True and wmeta["beta"] == 1.0 and meta["q_weighted"] is False


def test_distillation_meta_records_the_teacher_and_the_states(monkeypatch, tmp_path):
    """Against the paper teacher without the paper's local-search options (or with them when options
    are given), the states count not capped at the dataset's size, the states drawn with replacement,
    the teacher's NFE or method misrecorded, a figure of the meta under another name, and another
    teacher's entry dropped."""
    n = 10
    states = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    actions = np.zeros((n, 2), np.float32)
    _, meta, seen = _distill_with(monkeypatch, tmp_path, actions, np.zeros(n), states, env="halfcheetah", states=50, batch=4, steps=2)
    assert meta["states"] == n and len({tuple(x) for x in seen["states"]}) == n  # all 10, each once
    assert set(meta) == {"teacher", "states", "steps", "lr", "q_weighted", "beta", "seed", "search_seconds", "train_seconds", "mse"}
    assert (meta["steps"], meta["seed"], meta["q_weighted"]) == (2, 0, False) and meta["search_seconds"] >= 0
    local = tts.rl.paper_local("halfcheetah", "medium")
    assert meta["teacher"] == {"name": "paper", "method": "bon", "n_particles": 8, "options": local, "nfe_per_state": 42.0}
    assert seen["opts"] == dict(method="bon", n_particles=8, batch=4, seed=0, weights_dir=None, **local)
    _, meta, seen = _distill_with(monkeypatch, tmp_path, actions, np.zeros(n), states, states=4, steps=2, teacher="bfs", n_particles=3,
                                  rho=0.5)
    assert meta["states"] == 4 and len({tuple(x) for x in seen["states"]}) == 4
    assert meta["teacher"] == {"name": "bfs", "method": "bfs_best", "n_particles": 3, "options": {"rho": 0.5}, "nfe_per_state": 42.0}
    _, meta, seen = _distill_with(monkeypatch, tmp_path, actions, np.zeros(n), states, env="halfcheetah", states=4, steps=2, mu=0.5)
    assert meta["teacher"]["options"] == {"mu": 0.5} and seen["opts"]["mu"] == 0.5 and "rho" not in seen["opts"]  # given: kept alone
    ck = torch.load(str(tmp_path / "reacher_medium.pt"), weights_only=False)
    assert sorted(ck["distilled"]) == ["bfs", "paper"] and ck["kind"] == "tts_fast_rl_agent"


# -- the dataset recipe ------------------------------------------------------------------------------------


def _fake_minari(monkeypatch):
    monkeypatch.setattr(generate, "require", lambda *a, **k: SimpleNamespace())
    monkeypatch.setattr(generate, "_episode_buffer", lambda: (lambda **kw: kw))
    monkeypatch.setattr(generate, "_create", lambda minari, env, episodes, *a: episodes)


def test_collect_cuts_the_last_episode_at_exactly_the_asked_transitions(monkeypatch):
    """Against a cut one transition late (> instead of >=), the cut episode marked terminated, an
    episode that terminates exactly at the cut also marked truncated, reset seeds not seed, seed+1."""
    _fake_minari(monkeypatch)
    scripted(monkeypatch, generate, 10, lambda r: 3, lambda r: 1.0, lambda r: "term" if r % 2 == 0 else "trunc")
    eps = generate.collect("reacher", lambda o: np.array([0.1, -0.1]), 7, "x", seed=40)
    assert [e["seed"] for e in eps] == [40, 41, 42]
    assert [len(e["actions"]) for e in eps] == [3, 3, 1]
    assert [e["observations"].shape[0] for e in eps] == [4, 4, 2]
    assert [e["terminations"].tolist() for e in eps] == [[False, False, True], [False, False, False], [False]]
    assert [e["truncations"].tolist() for e in eps] == [[False, False, False], [False, False, True], [True]]
    eps = generate.collect("reacher", lambda o: np.array([0.1, -0.1]), 3, "x", seed=40)
    assert len(eps) == 1 and eps[0]["terminations"].tolist() == [False, False, True] and not eps[0]["truncations"].any()


def _replay(tmp_path, dones, timeouts):
    n = len(dones)
    obs = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    z = dict(observations=obs, next_observations=obs + 0.5, actions=np.arange(n, dtype=np.float32)[:, None] / 10,
             rewards=np.arange(n, dtype=np.float32), dones=np.float32(dones), timeouts=np.float32(timeouts))
    np.savez(tmp_path / "replay.npz", **z)
    return str(tmp_path / "replay.npz"), z


def test_replay_buffer_episodes_at_their_edges(monkeypatch, tmp_path):
    """Against an extra (empty or doubled) episode when the buffer ends on a termination, a buffer
    cut at a termination marked truncated too, a transition of the buffer dropped or doubled at an
    episode edge, `until` past the buffer failing, a timeout marked a terminal."""
    _fake_minari(monkeypatch)
    path, z = _replay(tmp_path, [0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 0, 0])
    eps = generate.replay_dataset("reacher", path, 100, "x")  # until past the buffer: all 6
    assert [len(e["actions"]) for e in eps] == [2, 2, 2]
    assert [e["terminations"].tolist() for e in eps] == [[False, True], [False, False], [False, True]]
    assert [e["truncations"].tolist() for e in eps] == [[False, False], [False, True], [False, False]]
    np.testing.assert_array_equal(np.concatenate([e["rewards"] for e in eps]), z["rewards"])
    np.testing.assert_array_equal(eps[1]["observations"], np.concatenate([z["observations"][2:4], z["next_observations"][3:4]]))
    eps = generate.replay_dataset("reacher", path, 2, "x")  # cut right at a termination
    assert len(eps) == 1 and eps[0]["terminations"].tolist() == [False, True] and eps[0]["truncations"].tolist() == [False, False]
    eps = generate.replay_dataset("reacher", path, 5, "x")  # cut inside the third episode
    assert [len(e["actions"]) for e in eps] == [2, 2, 1] and eps[2]["truncations"].tolist() == [True]
    assert eps[2]["terminations"].tolist() == [False]


def test_replay_save_keeps_the_filled_part_in_collection_order(tmp_path):
    """Against a full buffer saved up to pos (its last part dropped) or a partial one saved whole
    (unfilled rows doubled in), or the env axis kept."""
    cap = 5
    rb = SimpleNamespace(pos=2, full=True, buffer_size=cap, observations=np.arange(cap * 3.0).reshape(cap, 1, 3),
                         next_observations=np.arange(cap * 3.0).reshape(cap, 1, 3) + 1, actions=np.arange(cap * 2.0).reshape(cap, 1, 2),
                         rewards=np.arange(cap, dtype=float)[:, None], dones=np.zeros((cap, 1)), timeouts=np.ones((cap, 1)))
    generate._save_replay(rb, str(tmp_path))
    z = np.load(tmp_path / "replay.npz")
    np.testing.assert_array_equal(z["rewards"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(z["timeouts"], np.ones(5))
    assert z["observations"].shape == (5, 3)
    rb.full = False
    generate._save_replay(rb, str(tmp_path))
    np.testing.assert_array_equal(np.load(tmp_path / "replay.npz")["rewards"], [0, 1])


def test_checkpoint_choice_at_the_medium_return_edge():
    """Against the medium checkpoint chosen by > instead of >= (a return exactly at the target), the
    one after the first to reach it, the expert as the last rather than the best, the best's first
    occurrence not kept."""
    info = {"recipe": {"env": "hopper", "medium_return": 1100.0},
            "checkpoints": [{"step": 1, "return": 900.0}, {"step": 2, "return": 1100.0}, {"step": 3, "return": 1500.0},
                            {"step": 4, "return": 1500.0}, {"step": 5, "return": 1200.0}]}
    medium, expert = generate.choose_checkpoints(info)
    assert medium["step"] == 2 and expert["step"] == 3


def test_a_sac_log_of_another_recipe_is_refused_for_every_training_field(tmp_path):
    """Against a training field missing from TRAINING_FIELDS (the reused run trained by another
    recipe), or a choice field (medium_return, dataset_steps) in it, a message that garbles the
    fields it lists."""
    import dataclasses
    import json

    rc = generate.recipe("reacher")
    base = json.loads(json.dumps(dataclasses.asdict(rc)))
    changed = {"env": "hopper", "sac_steps": 1, "eval_every": 7, "eval_episodes": 2, "learning_starts": 3, "net": [64, 64], "seed": 9}
    assert set(changed) == set(generate.TRAINING_FIELDS)
    for k, v in changed.items():
        (tmp_path / "log.json").write_text(json.dumps({"recipe": dict(base, **{k: v}), "checkpoints": []}))
        with pytest.raises(ValueError, match=f"another recipe \\({k}="):
            generate.reuse_log(str(tmp_path / "log.json"), rc)
    (tmp_path / "log.json").write_text(json.dumps({"recipe": dict(base, eval_every=7, seed=9), "checkpoints": []}))
    with pytest.raises(ValueError, match=r"another recipe \(eval_every=7, seed=9; this one has eval_every=2000, seed=0\)"):
        generate.reuse_log(str(tmp_path / "log.json"), rc)
    (tmp_path / "log.json").write_text(json.dumps({"recipe": dict(base, medium_return=0.0, dataset_steps=1), "checkpoints": []}))
    assert generate.reuse_log(str(tmp_path / "log.json"), rc)["recipe"] == base


def test_sb3_evaluation_is_the_mean_return_over_seeded_episodes(monkeypatch):
    """Against a sum instead of a mean, reset seeds other than seed, seed+1, ..., stochastic actions
    where deterministic ones were asked for, an episode not ended at truncation."""
    scripted(monkeypatch, generate, 4, lambda r: r - 100, lambda r: float(r - 100), lambda r: "term" if r % 2 else "trunc")
    asked = []

    class Model:
        def predict(self, obs, deterministic):
            asked.append(deterministic)
            return np.zeros(2), None

    got = generate.evaluate_sb3(Model(), "reacher", 3, seed=101)  # episodes of 1, 2, 3 steps: returns 1, 4, 9
    assert got == pytest.approx((1 + 4 + 9) / 3)
    assert [x[1] for x in ScriptedEnv.log if x[0] == "reset"] == [101, 102, 103]
    assert set(asked) == {True}


# -- the simulator -------------------------------------------------------------------------------------


@needs_sim
def test_real_evaluation_resets_episode_e_of_seed_k_with_k_plus_1001_plus_e():
    """Against reset seeds shifted or shared between seeds, in the real HalfCheetah: the returns of a
    zero actor are those of episodes run by hand from reset seeds k + 1001 + e."""
    zero = lambda s, k: (np.zeros((len(s), 6)), np.ones(len(s)))  # noqa: E731
    ev = evaluate.evaluate_actor("halfcheetah", zero, seeds=[0, 2], episodes=2, max_steps=3, progress=False)
    want = np.zeros((2, 2))
    for j, k in enumerate([0, 2]):
        for e in range(2):
            env = envs.make_env("halfcheetah")
            env.reset(seed=k + 1001 + e)
            want[j, e] = sum(env.step(np.zeros(6))[1] for _ in range(3))
            env.close()
    np.testing.assert_allclose(ev.returns, want, rtol=0, atol=1e-12)
    assert len({*want.ravel()}) == 4  # four different episodes


# -- training runs, agent files, the whole recipe ------------------------------------------------------------


def test_policy_training_matches_an_independent_recomputation():
    """Against the raw weights saved instead of the EMA, the state normaliser set with another
    statistic (ddof=1 std, no mean), batches drawn from another generator, the log's loss misreported."""
    tr = _tiny_transitions()
    got, log = train.train_policy(tr, 3, batch=5, lr=1e-2, ema=0.5, seed=2, log=lambda *a: None)

    torch.manual_seed(2)
    gen = torch.Generator().manual_seed(2)
    net = ActionScoreNet(3, 2, **train.POLICY)
    net.normalizer.mean.copy_(torch.from_numpy(tr.observations.mean(0)))
    net.normalizer.std.copy_(torch.from_numpy(tr.observations.std(0)))
    ema = copy.deepcopy(net)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-4)
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()
    S, A = torch.from_numpy(tr.observations), torch.from_numpy(tr.actions)
    losses = []
    for step in range(3):
        i = torch.randint(0, 8, (5,), generator=gen)
        t = torch.randint(0, 1000, (5,), generator=gen)
        eps = torch.randn((5, 2), generator=gen)
        a_t = ab[t].sqrt()[:, None] * A[i] + (1 - ab[t]).sqrt()[:, None] * eps
        loss = ((net(a_t, t.float(), S[i]) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        d = min(0.5, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.copy_(d * pe + (1 - d) * p)
        losses.append(float(loss.detach()))
    want = ema.state_dict()
    for k, v in got.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=1e-5, atol=1e-6, msg=k)
    assert log["final_loss"] == pytest.approx(np.mean(losses), rel=1e-5) and log["steps"] == 3 and not got.training


def test_every_training_setting_reaches_its_trainer_and_the_file(monkeypatch, tmp_path):
    """Against a setting dropped on its way (the default used: gamma, tau, polyak, lr, batch, seed,
    ema or the step counts), two settings crossed (gamma for tau), the file's settings not the ones
    trained with, a figure of the meta under another name, the agent file under another name."""
    tr = _tiny_transitions()
    fp = {"dataset_id": "tts_fast/reacher/medium-v0", "transitions": 8, "episodes": 3, "return_mean": 0.0}
    monkeypatch.setattr(train, "load", lambda env, ds, path, source: ("ds", env, ds, path, source))
    monkeypatch.setattr(train, "transitions", lambda ds: tr)
    monkeypatch.setattr(train, "fingerprint", lambda ds: fp)
    # 12 policy steps: the EMA's warm-up decay (1 + k) / (10 + k) passes ema=0.3 from the first
    given = dict(policy_steps=12, critic_steps=3, batch=4, lr=2e-3, ema=0.3, gamma=0.5, tau=0.6, polyak=0.1, seed=7, critic_activation="mish")
    path = train.train("reacher", "medium-replay", "data", str(tmp_path), log=lambda *a: None, **given)
    assert path == str(tmp_path / "reacher_medium-replay.pt")
    ck = torch.load(path, weights_only=True)
    assert ck["meta"]["settings"] == given and ck["meta"]["dataset"] == fp
    assert set(ck["meta"]) == {"dataset", "settings", "policy_training", "critic_training", "torch", "threads"}
    assert ck["meta"]["torch"] == str(torch.__version__) and ck["meta"]["threads"] == torch.get_num_threads()
    assert ck["config"]["env"] == "reacher" and ck["config"]["dataset"] == "medium-replay"
    pol, _ = train.train_policy(tr, 12, batch=4, lr=2e-3, ema=0.3, seed=7, log=lambda *a: None)
    crit, _ = train.train_critic(tr, 3, batch=4, lr=2e-3, gamma=0.5, tau=0.6, polyak=0.1, seed=7, log=lambda *a: None)
    for name, net in (("policy", pol), ("critic", crit)):
        for k, v in net.state_dict().items():
            torch.testing.assert_close(ck[name][k], v, msg=f"{name}.{k}")
    # a partial set of settings: the rest are the defaults, recorded as such
    path = train.train("reacher", "medium", "data", str(tmp_path), log=lambda *a: None, policy_steps=1, critic_steps=1, batch=2)
    assert torch.load(path, weights_only=True)["meta"]["settings"] == {**train.DEFAULTS, "policy_steps": 1, "critic_steps": 1, "batch": 2}


def test_training_never_replaces_an_agent_file_unless_asked(tmp_path, monkeypatch, capsys):
    """Against train() writing over an existing (or shipped) agent file without --overwrite, the refusal
    coming after the training, a shipped file replaced without its recorded sha256 updated."""
    from tts_fast.rl import weights

    tr = _tiny_transitions()
    fp = {"dataset_id": "tts_fast/reacher/medium-v0", "transitions": 8, "episodes": 3, "return_mean": 0.0}
    monkeypatch.setattr(train, "load", lambda env, ds, path, source: "ds")
    monkeypatch.setattr(train, "transitions", lambda ds: tr)
    monkeypatch.setattr(train, "fingerprint", lambda ds: fp)
    small = dict(policy_steps=1, critic_steps=1, batch=2, log=lambda *a: None)
    path = train.train("reacher", "medium", "data", str(tmp_path), **small)
    before = open(path, "rb").read()
    monkeypatch.setattr(train, "train_policy", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(FileExistsError, match=r"training would replace .*reacher_medium.pt, which exists: pass --overwrite"):
        train.train("reacher", "medium", "data", str(tmp_path), **small)
    assert open(path, "rb").read() == before
    rc = train.main(["--env", "reacher", "--dataset", "medium", "--data", "data", "--out", str(tmp_path), "--policy-steps", "1"])
    assert rc == 2 and "pass --overwrite" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(train, "load", lambda env, ds, path, source: "ds")
    monkeypatch.setattr(train, "transitions", lambda ds: tr)
    monkeypatch.setattr(train, "fingerprint", lambda ds: fp)
    # the shipped folder: named as such; with overwrite the new file's sha256 is recorded
    monkeypatch.setattr(weights, "WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(weights, "HASHES", str(tmp_path / "hashes.json"))
    with pytest.raises(FileExistsError, match=r"\(a shipped agent file\)"):
        train.train("reacher", "medium", "data", str(tmp_path), **small)
    train.train("reacher", "medium", "data", str(tmp_path), overwrite=True, seed=3, **small)
    assert open(path, "rb").read() != before
    assert weights.shipped_hashes() == {"reacher_medium.pt": weights.file_sha256(path)}
    assert weights.changed_shipped_files() == []
    with open(path, "ab") as f:
        f.write(b"x")  # a changed shipped file is named
    assert weights.changed_shipped_files() == ["reacher_medium.pt"]


def test_the_shipped_agent_files_match_their_recorded_hashes():
    from tts_fast.rl import weights

    recorded = weights.shipped_hashes()
    assert sorted(recorded) == sorted(f for f in os.listdir(weights.WEIGHTS_DIR) if f.endswith(".pt"))
    assert weights.changed_shipped_files() == []
    assert all(len(h) == 64 for h in recorded.values())


def test_recorded_fingerprints_are_those_of_the_generated_data_and_the_shipped_agents():
    """fingerprints.json holds what the data recipe recorded (benchmarks/results/rl_data_*.json), and
    every shipped agent learnt from the dataset recorded there."""
    import glob
    import json

    from tts_fast.rl import check_data

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    made = {fp["dataset_id"]: fp for p in glob.glob(os.path.join(root, "benchmarks", "results", "rl_data_*.json"))
            for fp in json.load(open(p))["datasets"].values()}
    with open(check_data.FINGERPRINTS) as f:
        table = json.load(f)
    assert set(table) == set(made)
    for ds_id, fp in table.items():
        assert check_data.differences(made[ds_id], fp) == [], ds_id
    for env, ds in tts.rl.trained_agents():
        meta = tts.rl.load_checkpoint(env, ds)["meta"]["dataset"]
        assert meta["sha256"] == check_data.recorded(meta["dataset_id"])["sha256"], (env, ds)
    with pytest.raises(KeyError, match="no recorded fingerprint for 'tts_fast/walker2d/medium-v0'; recorded: "):
        check_data.recorded("tts_fast/walker2d/medium-v0")


def test_fingerprint_differences_name_each_field():
    from tts_fast.rl import check_data

    want = {"sha256": "ab", "transitions": 10, "return_mean": 1.0}
    assert check_data.differences(dict(want), want) == []
    assert check_data.differences({**want, "return_mean": 1.0 + 1e-12}, want) == []  # float noise of a statistic
    assert check_data.differences({**want, "sha256": "cd", "return_mean": 1.001}, want) == [
        "sha256: got 'cd', recorded 'ab'", "return_mean: got 1.001, recorded 1.0"]
    assert check_data.differences({"sha256": "ab", "return_mean": 1.0}, want) == ["transitions: got None, recorded 10"]


def _agent_file(env, dataset, obs_dim=4, act_dim=2, seed=0):
    torch.manual_seed(seed)
    pol, crit = ActionScoreNet(obs_dim, act_dim, width=8, blocks=1, temb=4), TwinQ(obs_dim, act_dim, width=8, layers=1)
    ck = {"kind": "tts_fast_rl_agent", "config": {"env": env, "dataset": dataset, "policy": pol.config, "critic": crit.config},
          "policy": pol.state_dict(), "critic": crit.state_dict(), "meta": {}}
    return ck, pol, crit


def test_agent_files_are_found_by_name_and_checked_for_their_agent(tmp_path):
    """Against an agent file of another env or dataset accepted under this one's name, the list of
    trained agents missing one or naming a missing one, the critic or policy of the wrong file, the
    states or network left off the device asked for, an error naming another file than the one read,
    a file's structure (state dicts, config keys) not checked when it is loaded."""
    ck, pol, crit = _agent_file("hopper", "medium-replay", seed=1)
    torch.save(ck, tmp_path / "hopper_medium-replay.pt")
    ck2, _, _ = _agent_file("hopper", "medium", seed=2)
    torch.save(ck2, tmp_path / "halfcheetah_medium.pt")  # hopper's agent under halfcheetah's name
    torch.save(ck2, tmp_path / "hopper_medium-expert.pt")  # another dataset's
    torch.save(_agent_file("walker2d", "medium")[0], tmp_path / "walker2d_medium.pt")
    (tmp_path / "reacher_expert.pt").write_bytes(b"")  # not a dataset of tts_fast.rl
    assert tts.rl.trained_agents(str(tmp_path)) == [("hopper", "medium-replay"), ("hopper", "medium-expert"), ("halfcheetah", "medium"),
                                                    ("walker2d", "medium")]
    with pytest.raises(ValueError, match=r"holds the agent of 'hopper' / 'medium', not of 'halfcheetah' / 'medium'"):
        tts.rl.load_checkpoint("halfcheetah", "medium", str(tmp_path))
    with pytest.raises(ValueError, match=r"holds the agent of 'hopper' / 'medium', not of 'hopper' / 'medium-expert'"):
        tts.rl.load_checkpoint("hopper", "medium-expert", str(tmp_path))
    got = tts.rl.load_critic("hopper", "medium-replay", str(tmp_path))
    for k, v in crit.state_dict().items():
        torch.testing.assert_close(got.state_dict()[k], v)
    p = tts.rl.load_policy("hopper", "medium-replay", torch.zeros(2, 4), device="cpu", weights_dir=str(tmp_path))
    for k, v in pol.state_dict().items():
        torch.testing.assert_close(p.net.state_dict()[k], v)
    # the states and the network go to the device asked for ("meta": a device every machine has)
    on_meta = tts.rl.load_policy("hopper", "medium-replay", torch.zeros(2, 4), device="meta", weights_dir=str(tmp_path))
    assert on_meta.states.device.type == "meta" and next(on_meta.net.parameters()).device.type == "meta"
    q = tts.rl.q_verifier("hopper", "medium-replay", torch.zeros(2, 4), device="meta", weights_dir=str(tmp_path))
    assert q.states.device.type == "meta" and next(q.critic.parameters()).device.type == "meta"
    # a file whose parts are not state dicts / a config without its keys: refused when loaded, naming the file
    torch.save(dict(ck, config=dict(ck["config"], env="walker2d", dataset="medium-replay"), critic={"q1": 1.0}),
               tmp_path / "walker2d_medium-replay.pt")
    with pytest.raises(ValueError, match=r"walker2d_medium-replay.pt is not a tts_fast offline-RL agent checkpoint \(expected a state"):
        tts.rl.load_checkpoint("walker2d", "medium-replay", str(tmp_path))
    torch.save(dict(ck, config={"env": "walker2d", "dataset": "medium-expert"}), tmp_path / "walker2d_medium-expert.pt")
    with pytest.raises(ValueError, match=r"walker2d_medium-expert.pt is not the config of a tts_fast offline-RL agent checkpoint"):
        tts.rl.load_checkpoint("walker2d", "medium-expert", str(tmp_path))
    # weights of another network: the error names the file that holds them
    bad = dict(ck, policy={k: v[..., :1] if v.dim() else v for k, v in ck["policy"].items()},
               config=dict(ck["config"], env="reacher", dataset="medium"))
    torch.save(bad, tmp_path / "reacher_medium.pt")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'reacher_medium.pt'} does not hold a ActionScoreNet"):
        tts.rl.load_policy("reacher", "medium", torch.zeros(1, 4), device="cpu", weights_dir=str(tmp_path))


def test_generate_reuses_a_finished_sac_run_and_wires_each_dataset_to_its_checkpoint(monkeypatch, tmp_path):
    """Against SAC retrained although its log is there (no resume), medium rollouts skipped when only
    medium-expert (made of them) is asked for, the replay dataset cut at the
    expert's step (or one checkpoint late), the expert rollouts collected with the medium policy or
    the medium policy's seed, medium and expert rollouts from the same reset seeds, the medium-expert
    dataset combined from the wrong parts, the fingerprints of other datasets reported."""
    import dataclasses
    import json

    rc = generate.recipe("reacher")
    sac = tmp_path / "reacher" / "sac"
    sac.mkdir(parents=True)
    returns = [(2000, -30.0), (4000, -11.0), (6000, -5.0), (8000, -7.0)]  # medium: the first at -12 or above; expert: the best
    cks = [{"step": k, "return": r, "path": f"reacher/sac/step_{k}.zip"} for k, r in returns]
    (sac / "log.json").write_text(json.dumps({"recipe": dataclasses.asdict(rc), "checkpoints": cks}))
    (sac / "replay.npz").write_bytes(b"")
    calls = []
    monkeypatch.setenv("MINARI_DATASETS_PATH", "elsewhere")
    monkeypatch.setattr(generate, "train_behaviour", lambda *a, **k: pytest.fail("SAC retrained although its finished run is there"))
    monkeypatch.setattr(generate, "sb3_policy", lambda path, seed: ("policy", path, seed))
    monkeypatch.setattr(generate, "collect", lambda env, pol, steps, ds_id, seed: calls.append(("collect", env, pol, steps, ds_id, seed)))
    monkeypatch.setattr(generate, "replay_dataset", lambda env, npz, until, ds_id: calls.append(("replay", env, npz, until, ds_id)))
    fake = SimpleNamespace(load_dataset=lambda ds_id: ("loaded", ds_id),
                           combine_datasets=lambda parts, ds_id: calls.append(("combine", parts, ds_id)))
    monkeypatch.setattr(generate, "require", lambda *a, **k: fake)
    monkeypatch.setattr(D, "load", lambda env, ds, path: (env, ds, path))
    monkeypatch.setattr(D, "fingerprint", lambda ds: {"of": list(ds)})
    out = generate.generate("reacher", str(tmp_path), log=lambda *a: None)
    medium, expert = str(tmp_path / "reacher/sac/step_4000.zip"), str(tmp_path / "reacher/sac/step_6000.zip")
    assert calls == [
        ("collect", "reacher", ("policy", medium, rc.seed + 1), rc.dataset_steps, "tts_fast/reacher/medium-v0", 20_000),
        ("replay", "reacher", str(sac / "replay.npz"), 4000, "tts_fast/reacher/medium-replay-v0"),
        ("collect", "reacher", ("policy", expert, rc.seed + 2), rc.dataset_steps, "tts_fast/reacher/expert-v0", 30_000),
        ("combine", [("loaded", "tts_fast/reacher/medium-v0"), ("loaded", "tts_fast/reacher/expert-v0")],
         "tts_fast/reacher/medium-expert-v0"),
    ]
    minari = str(tmp_path / "minari")
    assert out["datasets"] == {d: {"of": ["reacher", d, minari]} for d in envs.DATASETS}
    assert out["medium_checkpoint"]["step"] == 4000 and out["expert_checkpoint"]["step"] == 6000
    assert json.loads((tmp_path / "reacher" / "generation.json").read_text())["datasets"] == out["datasets"]
    calls.clear()
    generate.generate("reacher", str(tmp_path), datasets=["medium-replay"], log=lambda *a: None)
    # no rollouts it does not need
    assert calls == [("replay", "reacher", str(sac / "replay.npz"), 4000, "tts_fast/reacher/medium-replay-v0")]
    calls.clear()
    generate.generate("reacher", str(tmp_path), datasets=["medium-expert"], log=lambda *a: None)  # made of medium: collects it
    assert [c[4] for c in calls if c[0] == "collect"] == ["tts_fast/reacher/medium-v0", "tts_fast/reacher/expert-v0"]


def test_each_command_parses_its_options_into_the_settings():
    """Against an option renamed or dropped (--out, --datasets' choices, --threads), a required one
    made optional (--data), a training setting's option with the wrong type or default, the choices
    of --teacher, --dataset or --source not checked or misspelt, an option without its help text."""
    a = train.build_parser().parse_args(["--env", "hopper", "--dataset", "medium", "--data", "d", "--out", "o", "--gamma", "0.5",
                                         "--policy-steps", "7", "--threads", "2"])
    assert (a.out, a.data, a.source, a.gamma, a.policy_steps, a.threads) == ("o", "d", "tts_fast", 0.5, 7, 2)
    assert type(a.policy_steps) is int and type(a.seed) is int and type(a.lr) is float  # steps and seeds stay integers
    assert {k: getattr(a, k) for k in train.DEFAULTS if k not in ("gamma", "policy_steps")} == {
        k: v for k, v in train.DEFAULTS.items() if k not in ("gamma", "policy_steps")}
    assert train.build_parser().parse_args(["--env", "hopper", "--dataset", "medium", "--data", "d", "--out", "o",
                                            "--source", "mujoco"]).source == "mujoco"
    a = generate.build_parser().parse_args(["--env", "reacher", "--out", "o"])
    assert a.datasets == list(envs.DATASETS) and a.threads is None
    a = distill.build_parser().parse_args(["--env", "hopper", "--dataset", "medium", "--data", "d", "--teacher", "bfs", "--q-weighted"])
    assert (a.teacher, a.q_weighted, a.n, a.states, a.steps) == ("bfs", True, 8, 20_000, 5_000)
    for parser in (train.build_parser(), generate.build_parser(), distill.build_parser()):  # --help explains every option
        assert all(a.help for a in parser._actions), [a.dest for a in parser._actions if not a.help]
    for parser, argv in [(generate.build_parser(), ["--env", "reacher", "--out", "o", "--datasets", "expert"]),
                         (distill.build_parser(), ["--env", "hopper", "--dataset", "medium", "--data", "d", "--teacher", "das"]),
                         (train.build_parser(), ["--env", "hopper", "--dataset", "expert", "--data", "d", "--out", "o"]),
                         (distill.build_parser(), ["--env", "hopper", "--dataset", "medium"]),  # --data missing
                         (train.build_parser(), ["--env", "hopper", "--dataset", "medium", "--data", "d"])]:  # --out missing
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


@needs_sim
@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None, reason="needs stable-baselines3 (the extra 'rl')")
def test_sac_run_records_each_checkpoint_with_its_measured_return(tmp_path):
    """Against a checkpoint's return measured with other evaluation seeds (or of another
    checkpoint), a checkpoint missed or doubled, the replay buffer saved with a part dropped or
    doubled, the log not marked finished (or marked finished before the end), the recipe not in it,
    a rollout policy unseeded or not stochastic, SAC unseeded, the progress line's figures."""
    import json

    rc = generate.Recipe("reacher", sac_steps=60, eval_every=30, eval_episodes=2, medium_return=-50.0, dataset_steps=10,
                         learning_starts=20, net=(8, 8), seed=3)
    said = []
    info = generate.train_behaviour(rc, str(tmp_path), log=said.append)
    import re

    last = info["checkpoints"][1]
    m = re.fullmatch(rf"\[reacher\] step 60: return {last['return']:.1f} \((\d+) s\)", said[1])
    assert len(said) == 2 and m and abs(int(m.group(1)) - last["seconds"]) <= 1, said  # seconds since the start
    assert [c["step"] for c in info["checkpoints"]] == [30, 60] and info["finished"] is True
    log = json.loads((tmp_path / "reacher" / "sac" / "log.json").read_text())
    assert log["checkpoints"] == info["checkpoints"] and log["recipe"]["seed"] == 3 and log["finished"] is True
    import stable_baselines3 as sb3

    for c in info["checkpoints"]:
        model = sb3.SAC.load(str(tmp_path / c["path"]), device="cpu")
        ret = 0.0
        for k in range(2):  # the recipe's evaluation: deterministic, reset seeds 10_000 + seed + k
            e = envs.make_env("reacher")
            o, _ = e.reset(seed=10_003 + k)
            done = False
            while not done:
                o, r, term, trunc, _ = e.step(model.predict(o, deterministic=True)[0])
                ret += r
                done = term or trunc
        assert c["return"] == pytest.approx(ret / 2, abs=1e-9), c["step"]
    # the rollout policy of a checkpoint: its deterministic action, or seeded stochastic ones
    path = str(tmp_path / info["checkpoints"][-1]["path"])
    o = envs.make_env("reacher").reset(seed=0)[0]
    np.testing.assert_array_equal(generate.sb3_policy(path, 0, deterministic=True)(o), model.predict(o, deterministic=True)[0])
    runs = []
    for seed in (5, 5, 6):  # each made just before its use (it seeds torch's global generator)
        act = generate.sb3_policy(path, seed)
        runs.append(np.stack([act(o) for _ in range(3)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2]) and not np.array_equal(runs[0][0], runs[0][1])  # stochastic, seeded
    z = np.load(tmp_path / "reacher" / "sac" / "replay.npz")
    # seeded: the same recipe again gives the same checkpoints and the same buffer
    again = generate.train_behaviour(rc, str(tmp_path / "again"), log=lambda *a: None)
    assert [c["return"] for c in again["checkpoints"]] == [c["return"] for c in info["checkpoints"]]
    z2 = np.load(tmp_path / "again" / "reacher" / "sac" / "replay.npz")
    for k in z.files:
        np.testing.assert_array_equal(z2[k], z[k], err_msg=k)
    assert len(z["actions"]) == 60 and z["timeouts"][49] == 1 and z["timeouts"].sum() == 1
    # one buffer in collection order: each transition's s' is the next one's s within an episode
    np.testing.assert_array_equal(z["next_observations"][:49], z["observations"][1:50])
    np.testing.assert_array_equal(z["next_observations"][50:59], z["observations"][51:60])


def test_the_recipe_without_stable_baselines3_names_the_extra(monkeypatch, tmp_path):
    """Against the ImportError naming another extra or another feature than the one that needs SAC."""
    import sys

    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # import fails as if not installed
    for call in (lambda: generate.sb3_policy("x.zip", 0), lambda: generate.train_behaviour(generate.recipe("reacher"), str(tmp_path))):
        with pytest.raises(ImportError, match=r"tts_fast\.rl\.generate needs the optional package 'stable_baselines3'.*tts_fast\[rl\]"):
            call()


# -- survivors of a fresh sample (seed 23) ---------------------------------------------------------------


def test_critic_progress_lines_fall_on_every_tenth_of_the_steps(monkeypatch):
    """Against the progress condition on (step - 1) instead of (step + 1): the lines then fall one
    step after the start of each tenth (critic step 2/30, 5/30, ...) instead of at its end (3/30,
    6/30, ...)."""
    import re

    monkeypatch.setattr(train, "CRITIC", dict(width=8, layers=1))
    said = []
    train.train_critic(_tiny_transitions(), 30, batch=4, lr=1e-3, gamma=0.9, tau=0.7, polyak=0.1, seed=0, log=said.append)
    steps = [int(re.match(r"critic step (\d+)/30: V loss ", s).group(1)) for s in said]
    assert steps == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    said.clear()
    train.train_critic(_tiny_transitions(), 3, batch=4, lr=1e-3, gamma=0.9, tau=0.7, polyak=0.1, seed=0, log=said.append)
    assert [s.split(":")[0] for s in said] == ["critic step 1/3", "critic step 2/3", "critic step 3/3"]


def test_distill_names_a_bad_step_count_by_its_own_name():
    """Against the steps check naming the option 'STEPS' (the message of the keyword argument)."""
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1, got 0$"):
        distill.distill("hopper", "medium", "unused", steps=0, log=lambda *a: None)
    with pytest.raises(ValueError, match=r"^states must be an integer >= 1, got 2.5$"):
        distill.distill("hopper", "medium", "unused", states=2.5, log=lambda *a: None)


def test_replay_dataset_describes_its_cut_of_the_buffer(monkeypatch, tmp_path):
    """Against the Minari dataset of the replay buffer written without its description (None)."""
    _fake_minari(monkeypatch)
    made = []
    monkeypatch.setattr(generate, "_create", lambda minari, env, episodes, ds_id, algorithm, description:
                        made.append((env, ds_id, algorithm, description)))
    path, _ = _replay(tmp_path, [0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0])
    generate.replay_dataset("reacher", path, 5, "tts_fast/reacher/medium-replay-v0")
    generate.replay_dataset("reacher", path, 100, "x")
    assert made == [("reacher", "tts_fast/reacher/medium-replay-v0", "stable-baselines3 SAC replay buffer",
                     "the first 5 transitions of a SAC replay buffer, by tts_fast.rl.generate.replay_dataset"),
                    ("reacher", "x", "stable-baselines3 SAC replay buffer",
                     "the first 6 transitions of a SAC replay buffer, by tts_fast.rl.generate.replay_dataset")]


def test_generation_record_names_the_env_and_is_written_indented(monkeypatch, tmp_path):
    """Against the record's env stored under another key ('ENV'), generation.json written on one
    line (json.dump without indent=1): the file is the returned record, one key per line; and
    (sample seed 23, skip 40) the collection's seconds as perf_counter() + t0."""
    import dataclasses
    import json

    rc = generate.recipe("reacher")
    sac = tmp_path / "reacher" / "sac"
    sac.mkdir(parents=True)
    cks = [{"step": k, "return": r, "path": f"reacher/sac/step_{k}.zip"} for k, r in [(2000, -11.0), (4000, -5.0)]]
    (sac / "log.json").write_text(json.dumps({"recipe": dataclasses.asdict(rc), "checkpoints": cks}))
    (sac / "replay.npz").write_bytes(b"")
    monkeypatch.setattr(generate, "replay_dataset", lambda *a: None)
    monkeypatch.setattr(D, "load", lambda env, ds, path: (env, ds))
    monkeypatch.setattr(D, "fingerprint", lambda ds: {"of": list(ds)})
    import time

    t0 = time.perf_counter()
    out = generate.generate("reacher", str(tmp_path), datasets=["medium-replay"], log=lambda *a: None)
    took = time.perf_counter() - t0
    assert out["env"] == "reacher" and out["training"]["checkpoints"] == cks
    assert 0.0 <= out["collection_seconds"] <= took  # seconds since the collection began (not perf_counter() + t0)
    assert set(out) == {"env", "training", "medium_checkpoint", "expert_checkpoint", "collection_seconds", "datasets"}
    text = (tmp_path / "reacher" / "generation.json").read_text()
    assert text == json.dumps(out, indent=1)
    assert text.startswith('{\n "env": "reacher",\n "training": {\n')


def test_each_command_names_itself_in_its_usage():
    """Against distill's prog garbled ('PYTHON -M TTS_FAST.RL.DISTILL'): the usage line and every
    error message of the parser show it (a survivor of the sample seed 23, skip 40)."""
    for mod in (train, generate, distill):
        parser = mod.build_parser()
        assert parser.prog == f"python -m {mod.__name__}"
        assert parser.format_usage().startswith(f"usage: python -m {mod.__name__} ")


def test_make_env_without_the_simulator_names_the_extra(monkeypatch):
    """Against make_env's ImportError naming another extra ('XXrlXX', 'RL') for gymnasium or mujoco
    (survivors of the sample seed 23, skip 40)."""
    import sys

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "gymnasium", None)  # import fails as if not installed
        with pytest.raises(ImportError, match=r"^tts_fast\.rl\.make_env needs the optional package 'gymnasium'.*"
                                              r"pip install --no-build-isolation 'tts_fast\[rl\]'"):
            envs.make_env("hopper")
    if importlib.util.find_spec("gymnasium") is None:
        pytest.skip("gymnasium is not installed: the mujoco case needs it imported first")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "mujoco", None)
        with pytest.raises(ImportError, match=r"^tts_fast\.rl\.make_env needs the optional package 'mujoco'.*"
                                              r"pip install --no-build-isolation 'tts_fast\[rl\]'"):
            envs.make_env("hopper")
