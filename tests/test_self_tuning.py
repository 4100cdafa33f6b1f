"""Search that tunes itself: adaptive tempering in BFS, relative local-search steps, the auto presets.

Each test names the broken variant it is written against. The statistical ones use fixed seeds and
tolerances of K standard errors derived from the sample sizes.
"""

import math

import pytest
import torch

import tts_fast as tts
from tts_fast.search import bfs as bfs_module
from tts_fast.search import presets, resolve_method
from tts_fast.search.tempering import ITERATIONS, U_MAX, adaptive_increment, conditional_ess

K = 4.5
S = 20


def _scaled(verifier, c):
    """The same reward in other units: c * verifier (differentiable, per-row like the original)."""
    return tts.verifiers.Function(lambda x, cond: c * verifier(x, cond), differentiable=True, num_prompts=verifier.num_prompts)


class Recorder(tts.verifiers.Verifier):
    """A verifier that keeps every batch of rewards it returns."""

    differentiable = True

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def forward(self, x0, cond):
        r = self.inner(x0, cond)
        self.calls.append(r.detach().clone())
        return r


@pytest.fixture(scope="module")
def mixture():
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2])
    return model, tts.verifiers.GaussianReward([2.0, 1.0], 2.0)


# -- the increment, by hand ----------------------------------------------------------------------


def _by_hand_cess(log_w, log_g, alive):
    """M (sum W G)^2 / sum W G^2 over the live particles, one row at a time, in plain float64."""
    out = []
    for lw, lg, a in zip(log_w.tolist(), log_g.tolist(), alive.tolist()):
        w = [math.exp(v) if ok else 0.0 for v, ok in zip(lw, a)]
        tot = sum(w)
        w = [v / tot for v in w]
        g = [math.exp(v) if ok else 0.0 for v, ok in zip(lg, a)]
        s1 = sum(wi * gi for wi, gi in zip(w, g))
        s2 = sum(wi * gi * gi for wi, gi in zip(w, g))
        out.append(sum(a) * s1 * s1 / s2)
    return torch.tensor(out, dtype=torch.float64)


def test_conditional_ess_is_the_formula_and_the_plain_ess_after_resampling():
    """Broken variants: the factor M dropped (a value in (0, 1]), the current weights ignored, dead
    particles counted."""
    gen = torch.Generator().manual_seed(0)
    log_w = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    log_g = 2.0 * torch.randn(3, 7, generator=gen, dtype=torch.float64)
    alive = torch.ones(3, 7, dtype=torch.bool)
    alive[1, [0, 4]] = False
    log_w = torch.where(alive, log_w, torch.full_like(log_w, -math.inf))
    assert torch.allclose(conditional_ess(log_w, log_g, alive), _by_hand_cess(log_w, log_g, alive), rtol=1e-12)
    # uniform current weights: the ESS of the incremental weights themselves
    ones = torch.ones(3, 7, dtype=torch.bool)
    assert torch.allclose(conditional_ess(torch.zeros(3, 7, dtype=torch.float64), log_g, ones), tts.ops.ess(log_g), rtol=1e-12)


def _increment(log_w, base, key, alive, frac, cap):
    target = frac * alive.sum(1).to(torch.float64)
    return adaptive_increment(log_w, base, key, alive, target, torch.as_tensor(cap, dtype=torch.float64).expand(key.shape[0]).clone())


def test_the_increment_hits_the_target_ess():
    """Broken variants: the bisection keeping the wrong half, too few iterations, the ESS of the
    key instead of the tempered key, an increment that ignores the current weights."""
    gen = torch.Generator().manual_seed(1)
    key = torch.randn(5, 32, generator=gen, dtype=torch.float64) * torch.tensor([0.01, 1.0, 3.0, 100.0, 1e4], dtype=torch.float64)[:, None]
    alive = torch.ones_like(key, dtype=torch.bool)
    for log_w in (torch.zeros_like(key), 0.5 * torch.randn(5, 32, generator=gen, dtype=torch.float64)):
        for frac in (0.2, 0.5, 0.9):
            delta = _increment(log_w, torch.zeros_like(key), key, alive, frac, math.inf)
            assert bool((delta > 0).all())
            cess = conditional_ess(log_w, delta[:, None] * key, alive)
            assert torch.allclose(cess, torch.full_like(cess, frac * 32), rtol=1e-9), (frac, cess)


def test_the_increment_is_invariant_to_the_keys_units():
    """Multiplying the key by a power of two divides the increment by it exactly: the tempered
    weights, and so the search, are the same bit for bit."""
    gen = torch.Generator().manual_seed(2)
    key = torch.randn(4, 16, generator=gen, dtype=torch.float64)
    alive = torch.ones_like(key, dtype=torch.bool)
    log_w = torch.randn(4, 16, generator=gen, dtype=torch.float64)
    d1 = _increment(log_w, torch.zeros_like(key), key, alive, 0.5, math.inf)
    for c in (0.25, 8.0, 2.0**-20):
        dc = _increment(log_w, torch.zeros_like(key), c * key, alive, 0.5, math.inf)
        assert torch.equal(dc * c, d1)


def test_the_cap_is_taken_exactly_when_the_ess_allows_it():
    """A row whose CESS stays above the target at the cap gets the cap itself (so the path lands on
    lam without rounding); a row that would fall below stops short of it."""
    key = torch.tensor([[0.0, 0.001, 0.002, 0.003], [0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    alive = torch.ones_like(key, dtype=torch.bool)
    cap = torch.tensor([0.3, 3.0], dtype=torch.float64)
    delta = adaptive_increment(torch.zeros_like(key), torch.zeros_like(key), key, alive, torch.full((2,), 2.0, dtype=torch.float64), cap)
    assert float(delta[0]) == 0.3  # bitwise the cap
    assert 0 < float(delta[1]) < 3.0
    assert abs(float(conditional_ess(torch.zeros(1, 4, dtype=torch.float64), delta[1] * key[1:], alive[1:])) - 2.0) < 1e-9


def test_flat_rows_dead_particles_and_a_start_below_the_target():
    """Equal keys give the cap (any increment leaves the weights alone) or 0 when the cap is
    infinite; dead particles (-inf rewards) neither count nor poison the result with NaN; a base
    whose CESS is already below the target gives no increment at all."""
    key = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, -math.inf, 3.0], [0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    alive = torch.tensor([[True] * 4, [True, True, False, True], [True] * 4])
    log_w = torch.where(alive, torch.zeros_like(key), torch.full_like(key, -math.inf))
    base = torch.zeros_like(key)
    base[2] = torch.tensor([0.0, -20.0, -20.0, -20.0])  # CESS(0) ~ 1 particle of 4
    d_inf = _increment(log_w, base, key, alive, 0.5, math.inf)
    d_cap = _increment(log_w, base, key, alive, 0.5, 0.7)
    assert float(d_inf[0]) == 0.0 and float(d_cap[0]) == 0.7
    assert float(d_inf[2]) == 0.0 and float(d_cap[2]) == 0.0
    # the dead slot changes nothing: the same as the three live particles alone
    alone = _increment(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                       torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64), torch.ones(1, 3, dtype=torch.bool), 0.5, math.inf)
    assert torch.equal(d_inf[1:2], alone) and math.isfinite(float(d_inf[1]))
    # BFS hands over base = lam_row * key - log_psi, which is NaN in a dead slot while lam_row = 0
    nan_base = base.clone()
    nan_base[1, 2] = math.nan
    assert torch.equal(_increment(log_w, nan_base, key, alive, 0.5, math.inf), d_inf)


def test_an_unbounded_increment_stops_at_the_bracket():
    """With a free final tilt the bracket is U_MAX / spread: ties at the top keep the CESS above
    any target below their share, and the increment is then exactly the bracket's end."""
    key = torch.tensor([[0.0, 2.0, 2.0, 2.0]], dtype=torch.float64)  # 3 of 4 tied at the top
    alive = torch.ones_like(key, dtype=torch.bool)
    d = _increment(torch.zeros_like(key), torch.zeros_like(key), key, alive, 0.5, math.inf)
    assert float(d) == U_MAX / 2.0
    assert ITERATIONS >= 40  # 60 / 2^40 < 1e-10: the tolerance the docs state holds


# -- adaptive BFS --------------------------------------------------------------------------------


def test_every_level_keeps_the_target_ess(mixture):
    """The trace's per-row temperatures reproduce, from the rewards the verifier returned, an
    incremental-weight ESS of target_ess * N wherever the tilt was not yet reached (scoring
    'current', resampling at every level: the weights before each level are uniform). Broken
    variants: the temperature not adapted (fixed lam), adapted to another target, not per row."""
    model, verifier = mixture
    n, b, frac, lam = 32, 6, 0.4, 50.0
    rec = Recorder(verifier)
    r = tts.search(model, rec, "bfs", temperature="adaptive", target_ess=frac, lam=lam, scoring="current", resample_at=2,
                   n_particles=n, batch_size=b, num_steps=S, seed=3, progress=False)
    levels = tts.BFS(resample_at=2).levels(S)
    assert r.temperatures.shape == (b, len(levels) + 1)
    assert len(rec.calls) == len(levels) + 1
    hit = 0
    prev = torch.zeros(b, dtype=torch.float64)
    for j, rewards in enumerate(rec.calls[:-1]):
        lam_j = r.temperatures[:, j]
        assert torch.equal(lam_j, torch.tensor(r.trace[j]["lam"], dtype=torch.float64))
        assert bool((lam_j >= prev).all())  # a temperature never falls
        ess = tts.ops.ess(lam_j[:, None] * rewards.view(b, n).double())
        on_target = (ess - frac * n).abs() < 1e-6 * n
        at_cap = (lam_j == lam) & (ess >= frac * n)
        held = (lam_j == prev) & (tts.ops.ess(prev[:, None] * rewards.view(b, n).double()) < frac * n)
        assert bool((on_target | at_cap | held).all()), (j, ess, lam_j)
        hit += int(on_target.sum())
        prev = lam_j
    assert hit >= b  # the rule was active, not only capped or held
    assert torch.equal(r.temperatures[:, -1], torch.full((b,), lam, dtype=torch.float64)) or bool((r.temperatures[:, -1] == lam).all())


def test_the_conditional_ess_governs_when_weights_accumulate(mixture):
    """Without resampling (an ESS gate that never fires) the increments are chosen on the weights
    carried from earlier levels: CESS(W, G) = target * N with W ~ exp(lam_prev r_prev) and
    G = exp(lam_i r_i - lam_prev r_prev) for 'difference' scoring. Broken variant: the plain ESS of
    the increment, ignoring the carried weights."""
    model, verifier = mixture
    n, b, frac = 16, 4, 0.5
    rec = Recorder(verifier)
    r = tts.search(model, rec, "bfs", temperature="adaptive", target_ess=frac, lam=None, scoring="difference", resample_at=3,
                   ess_threshold=1e-9, n_particles=n, batch_size=b, num_steps=S, seed=4, progress=False)
    alive = torch.ones(b, n, dtype=torch.bool)
    lam_prev, r_prev = torch.zeros(b, dtype=torch.float64), torch.zeros(b, n, dtype=torch.float64)
    on = 0
    for j, rewards in enumerate(rec.calls):
        rw = rewards.view(b, n).double()
        lam_j = r.temperatures[:, j]
        log_w = lam_prev[:, None] * r_prev
        cess = conditional_ess(log_w, lam_j[:, None] * rw - log_w, alive)
        spread = rw.amax(1) - rw.amin(1)
        # held at delta = 0, or at the bracket's end: carried weights that already sit on the best
        # particle keep the CESS above the target however far the increment goes
        held = (lam_j == lam_prev) & (conditional_ess(log_w, lam_prev[:, None] * rw - log_w, alive) < frac * n)
        at_end = torch.isclose(lam_j - lam_prev, U_MAX / spread, rtol=1e-9) & (cess >= frac * n)
        ok = ((cess - frac * n).abs() < 1e-6 * n) | held | at_end
        assert bool(ok.all()), (j, cess)
        on += int(((cess - frac * n).abs() < 1e-6 * n).sum())
        lam_prev, r_prev = lam_j, rw
    assert on >= b
    # the final weights are those of the last tilt: log w = lam_hat r - lam_prev r_prev, normalised
    expect = tts.ops.normalize_log_weights(r.temperatures[:, -1:] * r.particle_rewards.double())
    assert torch.allclose(r.log_weights, expect, atol=1e-10)


@pytest.fixture(scope="module")
def tilted_reference(mixture):
    """The plain sampler's distribution tilted by exp(LAM r), from a large best-of-N sample."""
    model, verifier = mixture
    ref = tts.search(model, verifier, "bon", n_particles=60000, num_steps=S, seed=123, progress=False)
    e = (LAM_T * ref.particle_rewards.reshape(-1).double()).exp()
    x = ref.particles.reshape(-1, 2).double()
    mean = (e[:, None] * x).sum(0) / e.sum()
    mean_se = ((e[:, None] * (x - mean)) ** 2).sum(0).sqrt() / e.sum()
    return mean, mean_se


LAM_T = 6.0


def _weighted_mean_check(r, ref):
    """The rows' weighted means, averaged with the rows' evidence estimates as weights (consistent
    in the number of rows, as in test_oracle_bfs.py; a plain average keeps each row's O(1/N) bias)."""
    m = (r.log_weights.exp()[..., None] * r.particles.double()).sum(1)  # [B, 2] each row's weighted mean
    z = (r.log_evidence - r.log_evidence.max()).exp()
    mu = (z[:, None] * m).sum(0) / z.sum()
    se = ((z[:, None] * (m - mu)) ** 2).sum(0).sqrt() / z.sum()
    assert bool(((mu - ref[0]).abs() < K * torch.hypot(se, ref[1])).all()), (mu, ref[0], se)


@pytest.mark.parametrize("scoring,n", [("difference", 64), ("current", 128), ("max", 256)])
def test_adaptive_population_targets_the_tilted_distribution(mixture, tilted_reference, scoring, n):
    """The weighted population of adaptive BFS (a temperature path that stops short of lam at
    several levels) is the tilted target p0 exp(lam r): the rows' weighted means agree with the
    reference within K standard errors."""
    model, verifier = mixture
    r = tts.search(model, verifier, "bfs", temperature="adaptive", lam=LAM_T, scoring=scoring, resample_at=4,
                   n_particles=n, batch_size=48, num_steps=S, seed=5, progress=False)
    assert bool((r.temperatures[:, :-1] < LAM_T).any())  # the adaptive path mattered
    assert torch.equal(r.temperatures[:, -1], torch.full((48,), LAM_T, dtype=torch.float64))
    _weighted_mean_check(r, tilted_reference)


def test_the_tilted_target_check_sees_a_broken_lineage(mixture, tilted_reference, monkeypatch):
    """Power of the oracle above: adaptive BFS whose lineage potentials are not divided out fails it."""
    model, verifier = mixture
    orig = bfs_module.BFS._potential

    def no_lineage(self, r, best_r, log_psi, lam_i, alive):
        log_g, best_r, _ = orig(self, r, best_r, log_psi, lam_i, alive)
        return log_g, best_r, torch.zeros_like(log_psi)

    monkeypatch.setattr(bfs_module.BFS, "_potential", no_lineage)
    r = tts.search(model, verifier, "bfs", temperature="adaptive", lam=LAM_T, scoring="current", resample_at=4,
                   n_particles=128, batch_size=48, num_steps=S, seed=5, progress=False)
    with pytest.raises(AssertionError):
        _weighted_mean_check(r, tilted_reference)


@pytest.mark.parametrize("scoring", ["difference", "current", "max"])
def test_a_free_tilt_makes_the_search_independent_of_the_rewards_units(mixture, scoring):
    """lam=None: rewards times 2^k give the same particles and weights bit for bit, the rewards
    times 2^k and the temperatures divided by it. Broken variants: a bracket or tolerance in reward
    units, lam defaulting to a number."""
    model, verifier = mixture
    kw = dict(temperature="adaptive", lam=None, scoring=scoring, resample_at=3, n_particles=16, batch_size=4, num_steps=S,
              seed=6, progress=False)
    base = tts.search(model, verifier, "bfs", **kw)
    for c in (0.25, 64.0):
        r = tts.search(model, _scaled(verifier, c), "bfs", **kw)
        assert torch.equal(r.particles, base.particles) and torch.equal(r.log_weights, base.log_weights)
        assert torch.equal(r.particle_rewards, c * base.particle_rewards)
        assert torch.equal(r.temperatures * c, base.temperatures)


@pytest.fixture(scope="module")
def rare_rewards(mixture):
    """Returned rewards (in the original units) of fixed-lam and adaptive BFS at reward scales
    0.01, 1 and 100, on 128 independent rows each."""
    model, verifier = mixture
    out = {}
    for c in (0.01, 1.0, 100.0):
        kw = dict(n_particles=8, batch_size=128, num_steps=S, seed=7, progress=False)
        ver = _scaled(verifier, c)
        out["fixed", c] = tts.search(model, ver, "bfs_best", **kw).rewards.double() / c
        out["auto", c] = tts.search(model, ver, "bfs_auto", **kw).rewards.double() / c
    return out


def _mean_se(v):
    return float(v.mean()), float(v.std()) / math.sqrt(v.numel())


def test_adaptive_returns_the_same_rewards_in_any_units_and_fixed_lam_does_not(rare_rewards):
    """The issue's check: the returned rewards' distribution is the same at scales 0.01, 1 and 100
    for bfs_auto (means within K standard errors, and the same to 1e-9 here: the scales change only
    rounding), while bfs_best (lam = 1 in reward units) moves from near best-of-N to greedy by
    far more than K standard errors."""
    auto = [rare_rewards["auto", c] for c in (0.01, 1.0, 100.0)]
    for a in auto[1:]:
        (m0, s0), (m1, s1) = _mean_se(auto[0]), _mean_se(a)
        assert abs(m0 - m1) < K * math.hypot(s0, s1)
    (lo, slo), (hi, shi) = _mean_se(rare_rewards["fixed", 0.01]), _mean_se(rare_rewards["fixed", 100.0])
    assert hi - lo > K * math.hypot(slo, shi), (lo, hi)


def test_a_lower_target_ess_tempers_faster(mixture):
    """At the first evaluation level every setting sees the same rewards (same seed, nothing
    resampled yet), so a lower target ESS must give a strictly higher first temperature. Broken
    variant: target_ess ignored."""
    model, verifier = mixture
    kw = dict(temperature="adaptive", lam=None, scoring="current", resample_at=(0.5,), n_particles=16, batch_size=4,
              num_steps=S, seed=8, progress=False)
    t = [tts.search(model, verifier, "bfs", target_ess=f, **kw).temperatures[:, 0] for f in (0.2, 0.5, 0.8)]
    assert bool((t[0] > t[1]).all()) and bool((t[1] > t[2]).all())


def test_fixed_schedules_report_their_temperatures(mixture):
    """result.temperatures for a fixed schedule: lambdas() at the evaluation levels, then lam; None
    for the greedy temperature and for methods without one."""
    model, verifier = mixture
    kw = dict(n_particles=4, batch_size=2, num_steps=S, seed=0, progress=False)
    m = tts.BFS(temperature="increase", lam=0.7, resample_at=(0.25, 0.5))
    r = tts.search(model, verifier, m, **kw)
    lam = m.lambdas(model.schedule.grid(S))
    expect = torch.tensor([float(lam[i]) for i in m.levels(S)] + [0.7], dtype=torch.float64)
    assert torch.equal(r.temperatures, expect.expand(2, -1))
    assert torch.equal(torch.tensor([row["lam"] for row in r.trace], dtype=torch.float64).T, r.temperatures[:, :-1])
    assert tts.search(model, verifier, "svdd", **kw).temperatures is None
    assert tts.search(model, verifier, "bon", **kw).temperatures is None


def test_adaptive_evidence_and_pruning(mixture):
    """An evidence estimate for a fixed final tilt (consistent, used by the oracle above), none for a
    free one (each row would estimate a different normaliser); with pruning the dead slots stay out
    of the ESS and out of the weights (finite for the live, -inf for the dead)."""
    model, verifier = mixture
    kw = dict(n_particles=8, batch_size=3, num_steps=S, seed=9, progress=False)
    assert tts.search(model, verifier, "bfs_auto", **kw).log_evidence is None
    assert tts.search(model, verifier, "bfs", temperature="adaptive", lam=2.0, **kw).log_evidence.shape == (3,)
    r = tts.search(model, verifier, "bfs_auto", prune=True, scoring="current", resample_at=2, **kw)
    dead = r.log_weights == -math.inf
    assert bool(dead.any())  # pruning removed someone
    assert not bool(r.log_weights.isnan().any()) and bool(torch.isfinite(r.temperatures).all())
    assert bool(torch.isfinite(r.log_weights[~dead]).all())


def test_adaptive_options_are_checked_before_any_work(mixture):
    model, verifier = mixture
    with pytest.raises(ValueError, match=r"lam=None lets the ESS rule choose the final tilt; it needs temperature='adaptive', got 'increase'"):
        tts.BFS(lam=None)
    with pytest.raises(ValueError, match=r"target_ess sets the adaptive temperature's increments; temperature='constant' would ignore it"):
        tts.BFS(temperature="constant", target_ess=0.5)
    with pytest.raises(ValueError, match=r"target_ess must be < 1"):
        tts.BFS(temperature="adaptive", target_ess=1.0)
    with pytest.raises(ValueError, match=r"no fixed schedule"):
        tts.BFS(temperature="adaptive").lambdas(model.schedule.grid(S))
    calls = []
    counting = tts.verifiers.Function(lambda x: calls.append(1) or verifier(x))
    with pytest.raises(ValueError, match=r"target_ess \* n_particles = 0.5 \* 2 must exceed 1"):
        tts.search(model, counting, "bfs_auto", n_particles=2, num_steps=S, progress=False)
    assert not calls
    tts.search(model, verifier, "bfs_auto", target_ess=0.6, n_particles=2, num_steps=S, progress=False)  # 1.2 > 1


# -- relative local-search steps -----------------------------------------------------------------


def test_relative_steps_do_not_depend_on_the_rewards_units(mixture):
    """step_scale='relative': rewards times 2^k give the same samples bit for bit (sigma = 0);
    the paper's absolute steps change with the units. Broken variant: the rescaling skipped."""
    model, verifier = mixture
    kw = dict(n_particles=4, batch_size=3, num_steps=S, seed=10, progress=False, local_steps=2, rho=0.05, mu=0.05, iter_steps=2)
    base = tts.search(model, verifier, "local", step_scale="relative", **kw)
    for c in (0.25, 16.0):
        r = tts.search(model, _scaled(verifier, c), "local", step_scale="relative", **kw)
        assert torch.equal(r.particles, base.particles)
    a1 = tts.search(model, verifier, "local", **kw)
    a16 = tts.search(model, _scaled(verifier, 16.0), "local", **kw)
    assert not torch.allclose(a1.particles, a16.particles)


def test_relative_steps_have_the_stated_length():
    """The conditioned gradient has RMS 1 per coordinate (norm sqrt(D)), in the gradient's
    direction; a zero gradient stays zero (no NaN)."""
    ls = tts.LocalSearch(step_scale="relative", rho=1.0)
    g = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1e-30, 0.0, 0.0, 0.0]], dtype=torch.float64)
    out = ls._condition(g)
    assert torch.allclose(out[0], torch.tensor([1.2, 1.6, 0.0, 0.0], dtype=torch.float64))
    assert torch.equal(out[1], torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(out[2], torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    assert torch.equal(tts.LocalSearch(rho=1.0)._condition(g), g)  # absolute: untouched


def test_relative_local_search_climbs_the_reward(mixture):
    """local_auto raises the reward of plain sampling on 1024 rows by more than K standard errors."""
    model, verifier = mixture
    kw = dict(n_particles=1, batch_size=1024, num_steps=S, seed=11, progress=False)
    plain = tts.search(model, verifier, "bon", **kw).rewards.double()
    auto = tts.search(model, verifier, "local_auto", **kw).rewards.double()
    (m0, s0), (m1, s1) = _mean_se(plain), _mean_se(auto)
    assert m1 - m0 > K * math.hypot(s0, s1), (m0, m1)


def test_relative_step_options_are_checked():
    with pytest.raises(ValueError, match=r"step_scale must be one of 'absolute', 'relative'; got 'norm'"):
        tts.LocalSearch(step_scale="norm")
    with pytest.raises(ValueError, match=r"max_grad_norm clips the gradient's norm, which step_scale='relative' fixes"):
        tts.LocalSearch(step_scale="relative", max_grad_norm=1.0)


# -- presets -------------------------------------------------------------------------------------


def test_auto_presets_are_what_their_docs_say():
    b = presets.bfs_auto()
    assert (b.temperature, b.lam, b.target_ess, b.scoring, b.resampling, b.resample_at) == (
        "adaptive", None, 0.5, "difference", "ssp", (0.25, 0.5, 0.75))
    loc = presets.local_auto()
    assert loc.step_scale == "relative" and loc.sigma == 0.0
    assert presets.bfs_auto(target_ess=0.3).target_ess == 0.3
    # names in the API: local_auto is local search (on its own), bfs_auto a BFS that takes local options
    m, local = resolve_method("local_auto", {"rho": 0.1})
    assert isinstance(m, tts.LocalSearch) and m is local and m.rho == 0.1 and m.step_scale == "relative"
    m, local = resolve_method("bfs_auto", {"local_steps": 2, "rho": 0.1, "step_scale": "relative"})
    assert isinstance(m, tts.BFS) and m.temperature == "adaptive" and local.step_scale == "relative"
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['threshold'\] for method 'local_auto'"):
        resolve_method("local_auto", {"threshold": 1.0})
