"""Oracles for BFS and its presets: each test fails when one axis of the design space is broken.

The sampler's own tilted target. BFS is sequential Monte Carlo whose potentials multiply to
exp(lam * r(x0)) along every lineage, so for every finite temperature, scoring and (unbiased)
resampling scheme its evidence estimate exp(log_evidence) is *unbiased* for
Z = E_plain[exp(lam r(x0))], the normaliser of the plain sampler's distribution tilted by the
reward (at any number of steps: no discretisation error enters), and the evidence-weighted
average of the rows' weighted means is consistent for the tilted mean (bias O(1/B)). Both are
checked against a large plain (best-of-N) sample of the same sampler, at k = 4.5 standard errors
(combined from the spread over independent rows and the reference's own error).
"""

import math
import os
import sys

import pytest
import torch

import tts_fast as tts
from tts_fast.search import bfs as bfs_module
from tts_fast.search import resolve_method

sys.path.insert(0, os.path.dirname(__file__))
from _tilted import overlapping, plain_reference  # noqa: E402

S, LAM = 20, 0.7
K = 4.5


@pytest.fixture(scope="module")
def tilted():
    """The problem and the plain sampler's tilted reference: Z (with se) and the tilted mean (with se)."""
    model, verifier = overlapping()
    x, _, e = plain_reference(model, verifier, LAM, S, 60000)
    z, z_se = e.mean(), e.std() / math.sqrt(e.numel())
    mean = (e[:, None] * x).sum(0) / e.sum()
    # delta method for the self-normalised mean
    mean_se = ((e[:, None] * (x - mean)) ** 2).sum(0).sqrt() / e.sum()
    return model, verifier, (float(z), float(z_se)), (mean, mean_se)


def _evidence_checks(r, ref_z, ref_mean):
    z = r.log_evidence.exp()
    b = z.numel()
    z_hat, z_se = float(z.mean()), float(z.std()) / math.sqrt(b)
    assert abs(z_hat - ref_z[0]) < K * math.hypot(z_se, ref_z[1]), (z_hat, ref_z)
    m = (r.log_weights.exp()[..., None] * r.particles.double()).sum(1)  # [B, 2] rows' weighted means
    mu = (z[:, None] * m).sum(0) / z.sum()
    mu_se = ((z[:, None] * (m - mu)) ** 2).sum(0).sqrt() / z.sum()
    assert bool(((mu - ref_mean[0]).abs() < K * torch.hypot(mu_se, ref_mean[1])).all()), (mu, ref_mean)


@pytest.mark.parametrize("temperature,scoring,resampling,extra", [
    ("constant", "current", "multinomial", {}),
    ("increase", "max", "ssp", {}),
    ("exp", "difference", "systematic", {}),
    ("constant", "difference", "stratified", {}),
    ("increase", "current", "residual", {}),
    ("constant", "max", "ssp", dict(ess_threshold=0.5, resample_at="every")),
    ("constant", "difference", "ssp", dict(resample_at=4)),
])
def test_evidence_and_tilted_mean_are_unbiased(tilted, temperature, scoring, resampling, extra):
    model, verifier, ref_z, ref_mean = tilted
    r = tts.search(model, verifier, "bfs", n_particles=16, batch_size=256, num_steps=S, seed=0, progress=False,
                   temperature=temperature, scoring=scoring, resampling=resampling, lam=LAM, **extra)
    _evidence_checks(r, ref_z, ref_mean)


def test_the_evidence_check_sees_a_broken_correction(tilted, monkeypatch):
    """The oracle has power: BFS without the final division by the lineage potentials fails it."""
    model, verifier, ref_z, ref_mean = tilted
    orig = bfs_module.BFS._potential

    def no_lineage(self, r, best_r, log_psi, lam_i, alive):
        log_g, best_r, _ = orig(self, r, best_r, log_psi, lam_i, alive)
        return log_g, best_r, torch.zeros_like(log_psi)

    monkeypatch.setattr(bfs_module.BFS, "_potential", no_lineage)
    r = tts.search(model, verifier, "bfs", n_particles=16, batch_size=256, num_steps=S, seed=0, progress=False,
                   temperature="constant", scoring="current", lam=LAM)
    with pytest.raises(AssertionError):
        _evidence_checks(r, ref_z, ref_mean)


def test_no_resampling_is_importance_sampling(tilted):
    """An ESS gate that never fires: the final weights are exactly lam * reward (normalised) and the
    evidence is the plain importance-sampling mean of exp(lam r)."""
    model, verifier, _, _ = tilted
    r = tts.search(model, verifier, "bfs", n_particles=8, batch_size=4, num_steps=S, seed=1, progress=False,
                   scoring="difference", temperature="increase", lam=LAM, ess_threshold=1e-9, resample_at="every")
    lr = LAM * r.particle_rewards.double()
    assert torch.allclose(r.log_weights, tts.ops.normalize_log_weights(lr), atol=1e-12)
    assert torch.allclose(r.log_evidence, torch.logsumexp(lr, 1) - math.log(8), atol=1e-12)
    assert not any(any(row["resampled"]) for row in r.trace)


def test_ess_gate_resamples_exactly_the_rows_below_it(rare_mode):
    model, verifier = rare_mode
    thr, n = 0.6, 8
    r = tts.search(model, verifier, "bfs", n_particles=n, batch_size=16, num_steps=S, seed=2, progress=False,
                   scoring="difference", temperature="constant", lam=2.0, ess_threshold=thr, resample_at="every")
    fired = kept = 0
    for row in r.trace:
        ess, resampled = torch.tensor(row["ess"]), torch.tensor(row["resampled"])
        assert torch.equal(resampled, ess < thr * n)
        fired += int(resampled.sum())
        kept += int((~resampled).sum())
    assert fired > 0 and kept > 0  # the gate both fired and held somewhere


# -- the potentials, by hand -----------------------------------------------------------------------


R = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
BEST = torch.tensor([[2.0, -3.0, 0.0, 1.0]], dtype=torch.float64)
PSI = torch.tensor([[0.5, 1.0, -1.0, 2.0]], dtype=torch.float64)
ALIVE = torch.tensor([[True, True, False, True]])
NEG = -math.inf


@pytest.mark.parametrize("scoring,log_g,best,psi", [
    ("current", [[1.5, -3.0, NEG, 4.5]], BEST, [[2.0, -2.0, -1.0, 6.5]]),
    ("difference", [[1.0, -4.0, NEG, 2.5]], BEST, [[1.5, -3.0, -1.0, 4.5]]),
    ("max", [[3.0, -3.0, NEG, 4.5]], [[2.0, -2.0, 0.5, 3.0]], [[3.5, -2.0, -1.0, 6.5]]),
])
def test_finite_temperature_potentials(scoring, log_g, best, psi):
    """log G = lam_i r (current), lam_i r - log_psi (difference), lam_i max(r_1..r_i) (max); the lineage
    accumulates log G; dead particles get -inf and keep their lineage."""
    g, b, p = tts.BFS(scoring=scoring)._potential(R, BEST, PSI, 1.5, ALIVE)
    assert torch.equal(g, torch.tensor(log_g, dtype=torch.float64))
    assert torch.equal(b, torch.as_tensor(best, dtype=torch.float64))
    assert torch.equal(p, torch.tensor(psi, dtype=torch.float64))


@pytest.mark.parametrize("scoring,winners", [("current", [3]), ("difference", [0]), ("max", [0])])
def test_greedy_potentials_keep_only_the_best_key(scoring, winners):
    """temperature 'inf': all weight on the argmax of the key (r, r - r_prev, running max) among the
    living; log_psi then holds the current reward (the next 'difference' key subtracts it)."""
    r = torch.tensor([[3.0, -2.0, 9.0, 3.5]], dtype=torch.float64)
    prev = torch.tensor([[0.0, 1.0, 0.0, 3.0]], dtype=torch.float64)
    best = torch.tensor([[5.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    g, b, p = tts.BFS(scoring=scoring, temperature="inf")._potential(r, best, prev, None, ALIVE)
    expect = torch.full((1, 4), NEG, dtype=torch.float64)
    expect[0, winners] = 0.0
    assert torch.equal(g, expect)
    assert torch.equal(p, torch.tensor([[3.0, -2.0, 0.0, 3.5]], dtype=torch.float64))
    if scoring == "max":
        assert torch.equal(b, torch.tensor([[5.0, 1.0, 9.0, 3.5]], dtype=torch.float64))


def test_greedy_ties_share_the_children():
    r = torch.tensor([[2.0, 2.0, 1.0]], dtype=torch.float64)
    g, _, _ = tts.BFS(temperature="inf", scoring="current")._potential(r, r, r, None, torch.ones(1, 3, dtype=torch.bool))
    assert torch.equal(g, torch.tensor([[0.0, 0.0, NEG]], dtype=torch.float64))


def test_greedy_bfs_continues_the_best_particle_only(rare_mode):
    """Deterministic sampler (eta = 0), one greedy evaluation at step k: every final particle is the
    plain trajectory of the particle whose x0-prediction scored best at step k."""
    model, verifier = rare_mode
    seen = []

    def spy(x):
        seen.append(x.clone())
        return verifier(x)

    n, b, k = 6, 3, 7
    kw = dict(n_particles=n, batch_size=b, num_steps=S, seed=5, progress=False)
    r = tts.search(model, tts.verifiers.Function(spy), "bfs", temperature="inf", resample_at=[k], eta=0.0, **kw)
    plain = tts.search(model, verifier, "bon", eta=0.0, **kw)
    best = verifier(seen[0]).view(b, n).argmax(1)  # seen[0]: the x0-predictions at step k
    expect = plain.particles[torch.arange(b), best]
    assert torch.allclose(r.particles, expect[:, None].expand(b, n, 2), atol=1e-6)


# -- temperatures, plans, schemes, selection, pruning, presets -----------------------------------------


def test_temperature_schedules():
    grid = tts.schedules.ddpm_linear().grid(S)
    assert torch.equal(tts.BFS(temperature="constant", lam=0.7).lambdas(grid), torch.full((S,), 0.7, dtype=torch.float64))
    inc = tts.BFS(temperature="increase", lam=0.7).lambdas(grid)
    assert torch.allclose(inc, 0.7 * grid.shape("increase").double())
    assert bool((inc[1:] >= inc[:-1]).all()) and float(inc[-1]) > 0.7 > float(inc[0])
    # DAS: lam * min((1 + g)^i - 1, 1) with (1 + g)^(0.87 S) = 2: lam reached at 87% of the steps
    g = 2.0 ** (1.0 / (0.87 * S)) - 1.0
    expect = 0.7 * torch.clamp((1.0 + g) ** torch.arange(S, dtype=torch.float64) - 1.0, max=1.0)
    exp = tts.BFS(temperature="exp", lam=0.7).lambdas(grid)
    assert torch.allclose(exp, expect, rtol=0, atol=1e-15)
    assert float(exp[0]) == 0.0 and float(exp[-1]) == 0.7 and float(exp[round(0.87 * S) - 2]) < 0.7
    assert tts.BFS(temperature="inf").lambdas(grid) is None


@pytest.mark.parametrize("resample_at,levels", [
    ("every", list(range(10))),
    (3, [3, 6, 9]),
    (1, list(range(1, 10))),
    ([7, 2, 2, 0], [0, 2, 7]),
    ((0.25, 0.5, 0.75), [2, 5, 8]),  # round(2.5) = 2 (banker's), round(5.0), round(7.5) = 8
    ((0.99,), [9]),
])
def test_evaluation_levels(resample_at, levels):
    assert tts.BFS(resample_at=resample_at).levels(10) == levels


def test_bfs_scores_only_at_its_evaluation_levels(rare_mode):
    """The verifier sees x0-predictions exactly at the evaluation levels, then the final samples."""
    model, verifier = rare_mode
    seen = []
    v = tts.verifiers.Function(lambda x: seen.append(x.shape[0]) or verifier(x))
    r = tts.search(model, v, "bfs", resample_at=[3, 11], n_particles=4, batch_size=2, num_steps=S, progress=False)
    assert [row["step"] for row in r.trace] == [3, 11] and seen == [8, 8, 8] and r.nfe.verifier == 24


@pytest.mark.parametrize("scheme", tts.ops.SCHEMES)
def test_the_chosen_resampling_scheme_is_used(rare_mode, monkeypatch, scheme):
    model, verifier = rare_mode
    used = []
    orig = tts.ops.resample

    def spy(log_weights, uniforms=None, *, rng=None, scheme="systematic"):
        used.append(scheme)
        return orig(log_weights, uniforms, rng=rng, scheme=scheme)

    monkeypatch.setattr(tts.ops, "resample", spy)
    tts.search(model, verifier, "bfs", resampling=scheme, resample_at=[5, 10], n_particles=4, num_steps=S, progress=False)
    assert used == [scheme, scheme]
    used.clear()
    tts.search(model, verifier, "bfs", resampling=scheme, select="weighted", resample_at=[5], n_particles=4, num_steps=S,
               progress=False)
    assert used == [scheme, "multinomial"]  # the weighted pick is one multinomial draw


def test_weighted_selection_is_a_draw_from_the_final_weights(rare_mode):
    """select='weighted' returns a particle drawn with the final weights: over many rows its reward
    averages the weighted mean reward of the rows, well below the best particle's."""
    model, verifier = rare_mode
    kw = dict(n_particles=8, batch_size=512, num_steps=S, seed=3, progress=False, scoring="difference", lam=1.0)
    r = tts.search(model, verifier, "bfs", select="weighted", **kw)
    w = r.log_weights.exp()
    expected = (w * r.particle_rewards.double()).sum(1)
    d = r.rewards.double() - expected
    assert abs(float(d.mean())) < K * float(d.std()) / math.sqrt(d.numel())
    gap = r.particle_rewards.double().max(1).values - r.rewards.double()
    assert float(gap.mean()) > K * float(gap.std()) / math.sqrt(gap.numel())
    # the returned latents are the particles whose rewards are returned
    flat = (r.particles == r.latents[:, None]).all(-1).double().argmax(1)
    assert torch.equal(r.particle_rewards.gather(1, flat[:, None]).squeeze(1), r.rewards)
    best = tts.search(model, verifier, "bfs", **kw)
    assert torch.equal(best.rewards, best.particle_rewards.max(1).values)


def test_pruning_keeps_exactly_the_particles_above_half_a_child(rare_mode):
    """One evaluation at step k, constant temperature, current scoring: a particle survives iff
    N * softmax(lam r)_j > 1/2; after that only survivors are evaluated, and only they can be returned."""
    model, verifier = rare_mode
    seen = []
    v = tts.verifiers.Function(lambda x: seen.append(verifier(x)) or seen[-1])
    n, b, k, lam = 8, 4, 6, 1.5
    r = tts.search(model, v, "bfs", prune=True, temperature="constant", scoring="current", lam=lam, resample_at=[k],
                   n_particles=n, batch_size=b, num_steps=S, seed=1, progress=False)
    keep = n * torch.softmax(lam * seen[0].view(b, n).double(), 1) > 0.5
    assert r.trace[0]["alive"] == keep.sum(1).tolist() and 0 < int(keep.sum()) < b * n
    assert torch.equal(r.nfe_per_prompt, n * (k + 1) + keep.sum(1) * (S - k - 1))
    assert bool(torch.isinf(r.log_weights[~keep]).all()) and bool(torch.isfinite(r.log_weights[keep]).all())
    assert bool(keep.gather(1, r.particle_rewards.argmax(1, keepdim=True)).all())
    assert r.log_evidence is None


def test_evidence_is_reported_only_where_it_is_defined(rare_mode):
    model, verifier = rare_mode
    kw = dict(n_particles=4, num_steps=10, progress=False)
    assert tts.search(model, verifier, "bfs", **kw).log_evidence.shape == (1,)
    assert tts.search(model, verifier, "bfs", temperature="inf", **kw).log_evidence is None
    assert tts.search(model, verifier, "bfs", rho=0.3, **kw).log_evidence is None
    assert tts.search(model, verifier, "bon", **kw).log_evidence is None


@pytest.mark.parametrize("name,fields", [
    ("svdd", dict(temperature="inf", scoring="current", resampling="multinomial", resample_at="every")),
    ("das", dict(temperature="exp", scoring="difference", resampling="ssp", resample_at="every", ess_threshold=0.5, lam=1.0)),
    ("fk", dict(temperature="constant", scoring="max", resampling="multinomial", lam=10.0, resample_at=(0.2, 0.4, 0.6, 0.8))),
    ("bfs_best", dict(temperature="increase", scoring="max", resampling="ssp", lam=1.0, resample_at=(0.25, 0.5, 0.75))),
])
def test_presets_are_their_papers_settings(name, fields):
    preset = getattr(tts.presets, name)()
    assert {k: getattr(preset, k) for k in fields} == fields
    # the untouched fields are BFS's defaults
    rest = {k: v for k, v in tts.BFS().__dict__.items() if k not in fields}
    assert {k: getattr(preset, k) for k in rest} == rest
    # overrides win, and the name resolves to the same object through search()
    assert getattr(tts.presets, name)(eta=0.5).eta == 0.5 and getattr(tts.presets, name)(eta=0.5).scoring == fields.get("scoring", "max")
    method, _ = resolve_method(name, {"eta": 0.5})
    assert method == getattr(tts.presets, name)(eta=0.5)


@pytest.mark.parametrize("local", [dict(mu=0.1), dict(rho=0.2, mu=0.1, sigma=0.1)])
def test_pruning_with_local_search_carries_the_survivors_state(rare_mode, local):
    """Local search's per-particle state (gradient, smoothing noises) follows the survivors of a prune:
    the same survivors as without local search's extra rounds cost R model NFE per live particle-level."""
    model, verifier = rare_mode
    n, b, k = 8, 3, 6
    r = tts.search(model, verifier, "bfs", prune=True, temperature="constant", lam=1.5, resample_at=[k], local_steps=2,
                   n_particles=n, batch_size=b, num_steps=S, seed=1, progress=False, **local)
    alive = torch.tensor(r.trace[0]["alive"])
    assert 0 < int(alive.sum()) < b * n
    assert torch.equal(r.nfe_per_prompt, 2 * (n * (k + 1) + alive * (S - k - 1)))
    assert bool(torch.isfinite(r.rewards).all())


def test_a_prune_that_keeps_everyone_changes_nothing(rare_mode):
    """Deterministic sampler, guided steps: pruning in which every particle survives (a flat potential)
    gives exactly the run without resampling, so the survivors carry their own guidance state."""
    model, verifier = rare_mode
    kw = dict(temperature="constant", lam=1e-9, resample_at=[4, 9], eta=0.0, mu=0.5, rho=0.3, n_particles=4, batch_size=2,
              num_steps=S, seed=0, progress=False)
    pruned = tts.search(model, verifier, "bfs", prune=True, **kw)
    plain = tts.search(model, verifier, "bfs", ess_threshold=1e-9, **kw)
    assert [row["alive"] for row in pruned.trace] == [[4, 4], [4, 4]]
    assert torch.allclose(pruned.particles, plain.particles, atol=1e-12)
    assert pruned.nfe == plain.nfe
