"""Oracles for DTS / DTS*: each test names the broken variant it is written against, and checks that
the variant really fails it (a patched copy of the rule runs through the same check).

- the soft Bellman backup, on a tree small enough to compute by hand (broken: backup = max);
- the selection rule: Boltzmann probabilities, greedy, values of children still in flight, skipped
  exhausted subtrees (broken: selection ignoring values);
- the expansion rule: the first node with a free child position, claimed in slot order by slots
  descending together (broken: slots that ignore each other's claims);
- the draws: a leaf is drawn with probability exp(lam r) prod 1/|C| / exp(lam v_root);
- on the Gaussian mixture, DTS's draws approach the plain sampler's exact tilted target as the
  budget grows (broken: selection ignoring values; best-of-N in DTS's place);
- DTS* beats best-of-N and BFS at matched NFE on a terminal reward whose x0-predictions mislead
  (broken: DTS* with selection ignoring values);
- exact NFE, the budget, compact and fixed slots, bad options.
"""

import math
import os
import sys

import pytest
import torch

import tts_fast as tts
from tts_fast.search import dts as dts_module

sys.path.insert(0, os.path.dirname(__file__))
from _tilted import overlapping, plain_reference  # noqa: E402

K = 4.5  # standard errors a statistical check allows


# -- a tree to compute by hand ---------------------------------------------------------------------
#
#   root ── A ── A1 ── L1 (r = -1)          levels: root -1, A/B 0, A1/A2/B1 1, leaves 2 = S
#        │    └─ A2 ── L2 (r = 0.5)
#        └─ B ── B1 ── L3 (r = 2)

ROOT, A, B, A1, A2, B1, L1, L2, L3 = range(9)
EDGES = [(ROOT, A), (ROOT, B), (A, A1), (A, A2), (B, B1), (A1, L1), (A2, L2), (B1, L3)]
LEVEL = {ROOT: -1, A: 0, B: 0, A1: 1, A2: 1, B1: 1, L1: 2, L2: 2, L3: 2}
REWARD = {L1: -1.0, L2: 0.5, L3: 2.0}
LAM = 0.5


def _lme(*v):
    """(1/lam) log mean exp(lam v)."""
    return math.log(sum(math.exp(LAM * x) for x in v) / len(v)) / LAM


def _hand_tree(backed_up: bool = True):
    t = dts_module._Tree(1, 16, 2, 2, LAM, (1,), torch.float64, "cpu")
    for node, lv in LEVEL.items():
        t.level[node] = lv
    for parent, child in EDGES:
        t.children[parent, int(t.n_children[parent])] = child
        t.n_children[parent] += 1
        t.parent[child] = parent
    for leaf in REWARD:
        t.exhausted[leaf] = True
    # every node above x_0 keeps a reserved position for its rollout: nodes with one child are not full
    t.count[0] = 9
    if backed_up:
        leaves = torch.tensor(list(REWARD))
        t.backup(leaves, torch.tensor(list(REWARD.values()), dtype=torch.float64), torch.ones(3, dtype=torch.bool))
    return t


def _check_backup(t):
    """v(leaf) = r, v(x) = (1/lam) log mean over children exp(lam v(c)), up to the root."""
    expect = {**REWARD, A1: -1.0, A2: 0.5, B1: 2.0, A: _lme(-1.0, 0.5), B: 2.0}
    expect[ROOT] = _lme(expect[A], expect[B])
    for node, v in expect.items():
        assert abs(float(t.value[node]) - v) < 1e-12, (node, float(t.value[node]), v)


def _max_backup(self, nodes):
    """Broken variant: the hard Bellman backup (max over children) instead of the soft one."""
    soft, exhausted = _REAL_SOFT_VALUE(self, nodes)
    ch = self.children[nodes]
    v = self.value[ch.clamp(min=0)]
    known = (ch >= 0) & ~torch.isnan(v)
    return torch.where(known, v, torch.full_like(v, -math.inf)).amax(1), exhausted


_REAL_SOFT_VALUE = dts_module._Tree.soft_value


def test_backup_is_the_soft_bellman_log_mean_exp():
    _check_backup(_hand_tree())


def test_the_backup_check_sees_a_max_backup(monkeypatch):
    monkeypatch.setattr(dts_module._Tree, "soft_value", _max_backup)
    with pytest.raises(AssertionError):
        _check_backup(_hand_tree())


def test_a_backup_writes_every_ancestor_once_per_level_with_shared_paths():
    """Two leaves under A backed up together, then L3 alone: the same values as one joint backup."""
    t = _hand_tree(backed_up=False)
    t.backup(torch.tensor([L1, L2]), torch.tensor([REWARD[L1], REWARD[L2]], dtype=torch.float64), torch.ones(2, dtype=torch.bool))
    t.backup(torch.tensor([L3, L1]), torch.tensor([REWARD[L3], 99.0], dtype=torch.float64), torch.tensor([True, False]))
    _check_backup(t)  # the masked-out second entry wrote nothing


def test_exhausted_means_full_with_every_child_exhausted():
    """S = 1: root -> X -> two leaves; X is full and its children are leaves, so it is exhausted; the
    root has one of its two children, so it is not."""
    t = dts_module._Tree(1, 8, 2, 1, LAM, (1,), torch.float64, "cpu")
    t.level[:4] = torch.tensor([-1, 0, 1, 1])
    t.children[0, 0], t.children[1, 0], t.children[1, 1] = 1, 2, 3
    t.n_children[:4] = torch.tensor([1, 2, 0, 0])
    t.parent[1:4] = torch.tensor([0, 1, 1])
    t.exhausted[2:4] = True
    t.backup(torch.tensor([2, 3]), torch.tensor([0.0, 1.0], dtype=torch.float64), torch.ones(2, dtype=torch.bool))
    assert bool(t.exhausted[1]) and not bool(t.exhausted[0])


# -- selection ------------------------------------------------------------------------------------------


def _check_selection(t):
    """Boltzmann: p(c) = softmax(lam v(c)) over the children; a child in flight (no value) gets the
    log-mean-exp of its valued siblings; exhausted children are skipped by the search only."""
    logits, ch = t.policy_logits(torch.tensor([ROOT, A]), skip_exhausted=False)
    p = torch.softmax(logits, 1)
    va, vb = float(t.value[A]), float(t.value[B])
    pa = math.exp(LAM * va) / (math.exp(LAM * va) + math.exp(LAM * vb))
    assert abs(float(p[0, 0]) - pa) < 1e-12 and ch[0].tolist() == [A, B]
    assert abs(float(p[1, 0]) - 1 / (1 + math.exp(LAM * 1.5))) < 1e-12  # A1 (-1) against A2 (0.5)
    # inverse CDF with a fine grid of uniforms reproduces the probabilities
    u = (torch.arange(10000, dtype=torch.float64) + 0.5) / 10000
    pick = dts_module._boltzmann(logits[:1].expand(10000, 2), u)
    assert abs(float((pick == 0).double().mean()) - pa) < 2e-4


def _uniform_policy(self, nodes, skip_exhausted):
    """Broken variant: selection that ignores the values (every choosable child alike)."""
    logits, ch = _REAL_POLICY(self, nodes, skip_exhausted)
    return torch.where(torch.isfinite(logits), torch.zeros_like(logits), logits), ch


_REAL_POLICY = dts_module._Tree.policy_logits


def test_boltzmann_selection_probabilities():
    _check_selection(_hand_tree())


def test_the_selection_check_sees_a_policy_that_ignores_values(monkeypatch):
    monkeypatch.setattr(dts_module._Tree, "policy_logits", _uniform_policy)
    with pytest.raises(AssertionError):
        _check_selection(_hand_tree())


def test_children_in_flight_and_exhausted_children():
    t = _hand_tree()
    # A2's value unknown (its rollout in flight): it gets A1's lam v, the only valued sibling
    t.value[A2] = math.nan
    logits, _ = t.policy_logits(torch.tensor([A]), skip_exhausted=True)
    assert torch.allclose(logits, torch.tensor([[-LAM, -LAM]], dtype=torch.float64))
    # no valued sibling: uniform
    t.value[A1] = math.nan
    logits, _ = t.policy_logits(torch.tensor([A]), skip_exhausted=True)
    assert torch.equal(logits, torch.zeros(1, 2, dtype=torch.float64))
    # an exhausted child cannot be chosen by the search, but can by the final draws
    t.exhausted[B] = True
    logits, _ = t.policy_logits(torch.tensor([ROOT]), skip_exhausted=True)
    assert math.isfinite(float(logits[0, 0])) and float(logits[0, 1]) == -math.inf
    logits, _ = t.policy_logits(torch.tensor([ROOT]), skip_exhausted=False)
    assert bool(torch.isfinite(logits).all())


def test_boltzmann_never_picks_an_excluded_child():
    logits = torch.tensor([[-math.inf, 0.0, -math.inf, 1.0, -math.inf]], dtype=torch.float64).expand(3, 5)
    u = torch.tensor([0.0, 0.5, 1.0 - 1e-16], dtype=torch.float64)
    assert dts_module._boltzmann(logits, u).tolist() == [1, 3, 3]


# -- expansion ---------------------------------------------------------------------------------------------


def _check_expansion(t):
    """Three greedy slots from the root (full): all go to B (v = 2 > v(A)); B has one child of two, so
    the first slot claims position 1 there; the second goes on to B1 (its only created child) and
    claims B1's position 1; the third finds only the leaf L3 (exhausted) below B1: stuck."""
    roots = torch.zeros(3, dtype=torch.int64)
    go = torch.ones(3, dtype=torch.bool)
    u = torch.full((3, 3), 0.5, dtype=torch.float64)
    target, tpos, found, stuck = t.select(roots, go, u, greedy=True)
    assert found.tolist() == [True, True, False] and stuck.tolist() == [False, False, True]
    assert target[:2].tolist() == [B, B1] and tpos[:2].tolist() == [1, 1]
    assert int(t.n_children[B]) == 2 and int(t.n_children[B1]) == 2  # the claims are reserved


def _no_rank(key, mask, sentinel):
    """Broken variant: slots descending together ignore each other's claims."""
    return torch.zeros_like(key)


def test_expansion_claims_the_first_free_position_in_slot_order():
    _check_expansion(_hand_tree())


def test_the_expansion_check_sees_slots_that_ignore_each_other(monkeypatch):
    monkeypatch.setattr(dts_module, "_group_rank", _no_rank)
    with pytest.raises(AssertionError):
        _check_expansion(_hand_tree())


def test_released_claims_keep_the_positions_consecutive():
    t = _hand_tree()
    target, tpos, found, _ = t.select(torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.bool),
                                      torch.full((3, 2), 0.5, dtype=torch.float64), greedy=True)
    t.release(target, torch.tensor([False, True]))  # the second slot does not start
    assert int(t.n_children[B]) == 2 and int(t.n_children[B1]) == 1


def test_a_draw_returns_each_leaf_with_its_importance_weight():
    """P(leaf) = exp(lam r) prod_{x on its path} 1/|C(x)| / exp(lam v(root)): here
    L1, L2: exp(lam r) / 4, L3: exp(lam r) / 2, normalised by exp(lam v(root))."""
    t = _hand_tree()
    z = math.exp(LAM * float(t.value[ROOT]))
    expect = {L1: math.exp(LAM * -1.0) / 4 / z, L2: math.exp(LAM * 0.5) / 4 / z, L3: math.exp(LAM * 2.0) / 2 / z}
    assert abs(sum(expect.values()) - 1) < 1e-12
    n = 40000
    g = torch.Generator().manual_seed(0)
    leaves = t.draw(torch.zeros(n, dtype=torch.int64), torch.rand((3, n), generator=g, dtype=torch.float64))
    for leaf, p in expect.items():
        f = float((leaves == leaf).double().mean())
        assert abs(f - p) < K * math.sqrt(p * (1 - p) / n), (leaf, f, p)


# -- on the Gaussian mixture: the tilted target ----------------------------------------------------------

S, LAM_T = 8, 0.7
BUDGETS = (4, 32, 256)  # rollouts per tree


@pytest.fixture(scope="module")
def tilted():
    """The plain S-step sampler's law tilted by exp(lam r), from 100 000 weighted plain samples:
    the target's mass right of x = 0 and its mean reward (with standard errors)."""
    model, verifier = overlapping()
    x, r, w = plain_reference(model, verifier, LAM_T, S, 100000)
    w = w / w.sum()
    right = (x[:, 0] > 0).double()
    stats = {}
    for name, f in (("right", right), ("reward", r)):
        m = float((w * f).sum())
        stats[name] = (m, float(((w * (f - m)) ** 2).sum().sqrt()))  # delta-method se of the weighted mean
    return model, verifier, stats


def _errors(model, verifier, stats, method="dts", **opts):
    """Per budget: (error, se) of the draws' right-mode mass and mean reward against the target,
    256 independent trees (one draw each) per budget."""
    out = []
    for m in BUDGETS:
        kw = dict(lam=LAM_T, rollouts=m) if method == "dts" else {}
        r = tts.search(model, verifier, method, n_particles=4, batch_size=256, num_steps=S, seed=0, progress=False, **kw, **opts)
        row = {}
        for name, f in (("right", (r.samples[:, 0] > 0).double()), ("reward", r.rewards.double())):
            ref_m, ref_se = stats[name]
            row[name] = (float(f.mean()) - ref_m, math.hypot(float(f.std()) / math.sqrt(f.numel()), ref_se))
        out.append(row)
    return out


def _check_convergence(errors):
    """The error of both statistics shrinks with the budget, each step by more than K standard errors
    of the difference, and at the largest budget the mass error is below 0.1 (the SNIS bias of 256
    leaves on this problem is about 0.04)."""
    for name in ("right", "reward"):
        errs = [row[name] for row in errors]
        for (e0, s0), (e1, s1) in zip(errs, errs[1:]):
            assert abs(e1) < abs(e0) - 2.0 * math.hypot(s0, s1), (name, errs)
    assert abs(errors[-1]["right"][0]) < 0.1 + K * errors[-1]["right"][1], errors


def test_dts_draws_approach_the_tilted_target_as_the_budget_grows(tilted):
    model, verifier, stats = tilted
    _check_convergence(_errors(model, verifier, stats))


@pytest.mark.parametrize("broken", ["selection ignoring values", "best-of-N in DTS's place"])
def test_the_convergence_check_sees_a_broken_dts(tilted, monkeypatch, broken):
    model, verifier, stats = tilted
    if broken == "selection ignoring values":
        monkeypatch.setattr(dts_module._Tree, "policy_logits", _uniform_policy)
        errors = _errors(model, verifier, stats)
    else:
        errors = _errors(model, verifier, stats, method="bon")
    with pytest.raises(AssertionError):
        _check_convergence(errors)


# -- DTS* at matched NFE ------------------------------------------------------------------------------------


def _ripples():
    """A reward with many narrow peaks (cos 5x + cos 5y, a weak pull to the origin) on N(0, I) data:
    x0-predictions are posterior means, smoothed over the ripples, so intermediate scores say little
    and only finished samples are informative; 10 steps, 320 model NFE per prompt."""
    model = tts.models.GaussianMixture([[0.0, 0.0]], [1.0], [1.0])
    verifier = tts.verifiers.Function(lambda x: torch.cos(5 * x[:, 0]) + torch.cos(5 * x[:, 1]) - 0.1 * (x**2).sum(1))
    return model, verifier


def _matched(method, n, **opts):
    model, verifier = _ripples()
    r = tts.search(model, verifier, method, n_particles=n, num_steps=10, batch_size=256, seed=0, budget=256 * 320,
                   progress=False, **opts)
    x = r.rewards.double()
    return float(x.mean()), float(x.std()) / math.sqrt(x.numel()), r


def _check_dts_star_wins(star):
    m, se, r = star
    assert r.nfe.model <= 256 * 320
    for method in ("bon", "bfs_best"):
        mb, seb, rb = _matched(method, 32)
        assert rb.nfe.model == 256 * 320
        assert m > mb + K * math.hypot(se, seb), (method, m, se, mb, seb)


def test_dts_star_beats_best_of_n_and_bfs_at_matched_nfe():
    _check_dts_star_wins(_matched("dts_star", 4))


def test_the_matched_nfe_check_sees_dts_star_without_values(monkeypatch):
    monkeypatch.setattr(dts_module._Tree, "policy_logits", _uniform_policy)
    star = _matched("dts_star", 4)
    with pytest.raises(AssertionError):
        _check_dts_star_wins(star)


def test_more_budget_better_samples():
    """Anytime: DTS*'s returned reward grows with the budget (same seed, 40 -> 80 -> 320 NFE)."""
    model, verifier = _ripples()
    means = []
    for budget in (40, 80, 320):
        r = tts.search(model, verifier, "dts_star", n_particles=4, num_steps=10, batch_size=256, seed=1, budget=256 * budget,
                       progress=False)
        means.append((float(r.rewards.double().mean()), float(r.rewards.double().std()) / 16))
    for (m0, s0), (m1, s1) in zip(means, means[1:]):
        assert m1 > m0 + 3.0 * math.hypot(s0, s1), means


# -- accounting, slots, options ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dts", "dts_star"])
@pytest.mark.parametrize("budget", [None, 3 * 20 * 13, 3 * 20])
def test_exact_nfe_and_budget(rare_mode, method, budget):
    """Each model call makes one node below level 0, each root expansion one prior draw: a row's model
    NFE = its nodes - 1 - its root children; one verifier call per rollout; never over the budget."""
    model, verifier = rare_mode
    r = tts.search(model, verifier, method, n_particles=3, num_steps=20, batch_size=3, seed=2, budget=budget, progress=False)
    tr = r.trace[-1]
    nodes, root_children, rollouts = (torch.tensor(tr[k]) for k in ("nodes", "root_children", "rollouts"))
    assert torch.equal(r.nfe_per_prompt, nodes - 1 - root_children)
    assert r.nfe.verifier == int(rollouts.sum()) and r.nfe.model == int(r.nfe_per_prompt.sum())
    if budget is None:
        assert rollouts.tolist() == [4 * 3] * 3  # the default: 4 rollouts per slot
    else:
        assert r.nfe.model <= budget and bool((r.nfe_per_prompt <= budget // 3).all())
    if budget == 3 * 20:
        assert rollouts.tolist() == [1, 1, 1]  # room for exactly one rollout from the root per row
    assert torch.allclose(r.rewards, verifier(r.samples))


def test_rollouts_cap_the_tree():
    model = tts.models.GaussianMixture([[0.0, 0.0]], [1.0], [1.0])
    verifier = tts.verifiers.GaussianReward([1.0, 0.0], 1.0)
    r = tts.search(model, verifier, "dts", n_particles=4, num_steps=6, batch_size=2, seed=0, rollouts=9, progress=False)
    assert r.trace[-1]["rollouts"] == [9, 9]


def test_a_complete_tree_stops_the_search():
    """S = 2, two children per node: at most 2^3 leaves; asking for more ends when the root is exhausted."""
    model = tts.models.GaussianMixture([[0.0, 0.0]], [1.0], [1.0])
    verifier = tts.verifiers.GaussianReward([1.0, 0.0], 1.0)
    r = tts.search(model, verifier, "dts", n_particles=3, num_steps=2, batch_size=2, seed=0, rollouts=100, progress=False)
    assert r.trace[-1]["rollouts"] == [8, 8] and r.trace[-1]["nodes"] == [15, 15]


@pytest.mark.parametrize("method", ["dts", "dts_star"])
def test_compact_and_fixed_slots_give_the_same_result(rare_mode, method):
    model, verifier = rare_mode
    kw = dict(n_particles=3, num_steps=12, batch_size=4, seed=5, budget=4 * 150, progress=False)
    a = tts.search(model, verifier, method, slots="compact", **kw)
    b = tts.search(model, verifier, method, slots="fixed", sync_every=5, **kw)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.particles, b.particles)
    assert a.nfe == b.nfe and torch.equal(a.nfe_per_prompt, b.nfe_per_prompt)
    assert b.trace[-1]["slot_evaluations"] > b.nfe.model  # fixed slots computed idle slots too, uncounted


def test_same_seed_same_result_and_seeds_differ(rare_mode):
    model, verifier = rare_mode
    kw = dict(n_particles=3, num_steps=10, batch_size=2, budget=2 * 60, progress=False)
    a, b = (tts.search(model, verifier, "dts", seed=7, **kw) for _ in range(2))
    c = tts.search(model, verifier, "dts", seed=8, **kw)
    assert torch.equal(a.particles, b.particles) and not torch.equal(a.particles, c.particles)


def test_dts_returns_draws_and_dts_star_the_best_leaves(rare_mode):
    model, verifier = rare_mode
    kw = dict(n_particles=4, num_steps=10, batch_size=3, seed=0, budget=3 * 200, progress=False)
    star = tts.search(model, verifier, "dts_star", **kw)
    assert torch.equal(star.rewards, star.particle_rewards[:, 0])
    assert bool((star.particle_rewards[:, :-1] >= star.particle_rewards[:, 1:]).all())  # best first
    draw = tts.search(model, verifier, "dts", **kw)
    assert torch.equal(draw.rewards, draw.particle_rewards[:, 0]) and torch.equal(draw.latents, draw.particles[:, 0])
    assert draw.log_weights is None and draw.log_evidence is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(select="uct"), r"select must be one of 'boltzmann', 'greedy'; got 'uct'"),
    (dict(lam=0.0), r"lam must be a finite number > 0.0"),
    (dict(max_children=1), r"max_children must be an integer >= 2, got 1"),
    (dict(rollouts=0), r"rollouts must be an integer >= 1, got 0"),
    (dict(eta=0.0), r"eta must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (dict(slots="lanes"), r"slots must be one of 'compact', 'fixed'; got 'lanes'"),
    (dict(sync_every=4), r"sync_every paces the end checks of slots='fixed'"),
    (dict(rho=0.5), r"DTS takes no local-search options"),
])
def test_bad_options_are_refused_before_work(rare_mode, kwargs, match):
    model, verifier = rare_mode

    class NoCalls(tts.verifiers.Function):
        def forward(self, x0, cond):
            raise AssertionError("the verifier ran")

    with pytest.raises(ValueError, match=match):
        tts.search(model, NoCalls(lambda x: x[:, 0]), "dts", n_particles=2, num_steps=5, progress=False, **kwargs)


def test_presets_and_objects():
    assert tts.presets.dts() == tts.DTS(select="boltzmann") and tts.presets.dts_star() == tts.DTS(select="greedy")
    assert tts.presets.dts_star(max_children=3).max_children == 3
    model = tts.models.GaussianMixture([[0.0, 0.0]], [1.0], [1.0])
    verifier = tts.verifiers.GaussianReward([1.0, 0.0], 1.0)
    kw = dict(n_particles=2, num_steps=4, seed=0, progress=False)
    a = tts.search(model, verifier, tts.DTS(select="greedy", rollouts=5), **kw)
    b = tts.search(model, verifier, "dts_star", rollouts=5, **kw)
    assert torch.equal(a.latents, b.latents)
