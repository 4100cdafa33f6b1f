"""Oracles for DAS as published (das_guided): tempered SMC with the twisted, gradient-guided proposal.

Each test names the broken variant it is written against and checks that the variant fails it:
- the weights: with the proposal correction log p - log q and the twist psi_i of each particle's own
  lineage, the weighted population targets p0 exp(lam r) exactly, so the evidence estimate is
  unbiased for the plain sampler's Z = E[exp(lam r)] (broken: the twist not re-indexed after
  resampling, as DAS's own pipeline does; broken: the proposal correction dropped);
- the re-indexing itself, exactly: after a forced permutation the next weight subtracts the twist of
  the particle's ancestor, and its proposal is shifted along the ancestor's gradient (broken: DAS's
  own code, which moves neither);
- the guidance acts: das_guided beats the guidance-free das at the same particles (broken: the shift
  dropped);
- counts, tempering, selection, refusals.
"""

import math
import os
import sys

import pytest
import torch

import tts_fast as tts
from tts_fast.search import das as das_module
from tts_fast.search.engine import Context

sys.path.insert(0, os.path.dirname(__file__))
from _tilted import overlapping, plain_reference  # noqa: E402

S, LAM = 20, 0.7
K = 4.5


def _das_own_reindexing(anc, x, x0_hat, g, psi):
    """Broken variant, as in DAS's pipeline_using_SMC: latents and predictions follow their ancestors,
    the guidance and the twist stay with the slot."""
    ops = das_module.ops
    return ops.gather_particles(x, anc), ops.gather_particles(x0_hat, anc), g, psi


def _no_correction(self, ctx, x, x0_hat, g, i, rows, lam_next, s_i):
    """Broken variant: the guided proposal without its weight correction log p - log q."""
    x_next, corr = _REAL_PROPOSE(self, ctx, x, x0_hat, g, i, rows, lam_next, s_i)
    return x_next, torch.zeros_like(corr)


def _no_shift(self, ctx, x, x0_hat, g, i, rows, lam_next, s_i):
    """Broken variant: the guidance dropped (the proposal is the model's step)."""
    return _REAL_PROPOSE(self, ctx, x, x0_hat, torch.zeros_like(g), i, rows, lam_next, s_i)


_REAL_PROPOSE = das_module.DAS._propose


# -- the weights target p0 exp(lam r) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tilted():
    """Z = E_plain[exp(lam r)] of the plain S-step sampler (with se), from 60 000 plain samples."""
    model, verifier = overlapping()
    _, _, e = plain_reference(model, verifier, LAM, S, 60000)
    return model, verifier, (float(e.mean()), float(e.std()) / math.sqrt(e.numel()))


def _check_evidence(r, ref_z):
    z = r.log_evidence.exp()
    z_hat, z_se = float(z.mean()), float(z.std()) / math.sqrt(z.numel())
    assert abs(z_hat - ref_z[0]) < K * math.hypot(z_se, ref_z[1]), (z_hat, z_se, ref_z)


def _run(model, verifier, **kw):
    return tts.search(model, verifier, "das_guided", n_particles=8, batch_size=256, num_steps=S, seed=0, progress=False,
                      lam=LAM, **kw)


@pytest.mark.parametrize("ess_threshold", [0.5, None])
def test_evidence_is_unbiased_with_the_guided_proposal(tilted, ess_threshold):
    model, verifier, ref_z = tilted
    _check_evidence(_run(model, verifier, ess_threshold=ess_threshold), ref_z)


@pytest.mark.parametrize("broken", ["twist not re-indexed", "no proposal correction"])
def test_the_evidence_check_sees_a_broken_das(tilted, monkeypatch, broken):
    model, verifier, ref_z = tilted
    if broken == "twist not re-indexed":
        monkeypatch.setattr(das_module.DAS, "_reindex", staticmethod(_das_own_reindexing))
    else:
        monkeypatch.setattr(das_module.DAS, "_propose", _no_correction)
    r = _run(model, verifier, ess_threshold=None)
    with pytest.raises(AssertionError):
        _check_evidence(r, ref_z)


# -- the re-indexing, exactly ---------------------------------------------------------------------------


def _reverse(self, log_weights, scheme):
    b, n = log_weights.shape
    return torch.arange(n - 1, -1, -1, device=log_weights.device).expand(b, n).clone()


def _check_final_weights(r):
    """Every level resamples (reversed), the tempering has reached lam by the last level and the last
    step lands on x0_hat: the final increment lam r(x_S) - psi_{S-1}[ancestor] is 0 for every particle."""
    assert torch.allclose(r.log_weights, torch.full_like(r.log_weights, -math.log(r.log_weights.shape[1])), atol=1e-12)


def _reversed_run(rare_mode, monkeypatch):
    model, verifier = rare_mode
    monkeypatch.setattr(Context, "resample", _reverse)
    return tts.search(model, verifier, "das_guided", n_particles=5, batch_size=3, num_steps=12, seed=1, ess_threshold=None,
                      progress=False)


def test_the_next_weight_subtracts_the_ancestors_twist(rare_mode, monkeypatch):
    _check_final_weights(_reversed_run(rare_mode, monkeypatch))


def test_the_final_weight_check_sees_das_own_reindexing(rare_mode, monkeypatch):
    monkeypatch.setattr(das_module.DAS, "_reindex", staticmethod(_das_own_reindexing))
    with pytest.raises(AssertionError):
        _check_final_weights(_reversed_run(rare_mode, monkeypatch))


def _guided_trajectory(rare_mode, monkeypatch):
    """One prompt, 3 particles, reversed at every level, no step noise: the model's inputs per level."""
    model, verifier = rare_mode
    seen = []

    class Spy(tts.models.GaussianMixture):
        def forward(self, x_t, t, cond=None):
            seen.append((x_t.detach().clone(), t.detach().clone()))
            return super().forward(x_t, t, cond)

    spy = Spy(model.means, model.stds, model.weights)
    monkeypatch.setattr(Context, "resample", _reverse)
    monkeypatch.setattr(Context, "randn_like", lambda self, x: torch.zeros_like(x))
    tts.search(spy, verifier, "das_guided", n_particles=3, num_steps=8, seed=0, ess_threshold=None, progress=False)
    return spy, verifier, seen


def test_the_proposal_is_shifted_along_the_ancestors_gradient(rare_mode, monkeypatch):
    spy, verifier, seen = _guided_trajectory(rare_mode, monkeypatch)
    _check_guided_steps_on(spy, verifier, list(seen))


def _check_guided_steps_on(spy, verifier, inputs):
    """x_{i+1} = mu(x_i[anc]) + s_i^2 lam_{i+1} grad r(x0_hat(x_i[anc])) for the run's model inputs ``inputs``."""
    grid = spy.schedule.grid(8)
    lam = tts.DAS().lambdas(8)
    levels = torch.arange(8)
    _, _, c_z = das_module.ddim_coefficients(levels, levels + 1, grid.alpha, grid.sigma, 1.0)
    anc = torch.tensor([2, 1, 0])
    model = tts.models.GaussianMixture(spy.means, spy.stds, spy.weights)
    for i in range(7):
        x, t = inputs[i]
        xa = x[anc].clone().requires_grad_(True)
        x0 = model(xa, t)
        (g,) = torch.autograd.grad(verifier(x0).sum(), xa)
        lv = torch.full((3,), i)
        mu = tts.ops.ddim_step(xa.detach(), x0.detach(), lv, lv + 1, grid.alpha, grid.sigma, eta=1.0, noise=torch.zeros_like(xa))
        expect = mu + float(c_z[i]) ** 2 * float(lam[i + 1]) * g
        assert torch.allclose(inputs[i + 1][0], expect, atol=1e-10), i


def test_the_guided_step_check_sees_das_own_reindexing(rare_mode, monkeypatch):
    monkeypatch.setattr(das_module.DAS, "_reindex", staticmethod(_das_own_reindexing))
    spy, verifier, seen = _guided_trajectory(rare_mode, monkeypatch)
    with pytest.raises(AssertionError):
        _check_guided_steps_on(spy, verifier, list(seen))


# -- the guidance acts ------------------------------------------------------------------------------------


def _check_guidance_helps(guided, plain):
    g, p = guided.rewards.double(), plain.rewards.double()
    diff = float(g.mean() - p.mean())
    se = math.hypot(float(g.std()), float(p.std())) / math.sqrt(g.numel())
    assert diff > K * se, (float(g.mean()), float(p.mean()), se)


def _rare(rare_mode, method):
    model, verifier = rare_mode
    return tts.search(model, verifier, method, n_particles=4, batch_size=128, num_steps=S, seed=0, progress=False)


def test_guided_das_beats_guidance_free_das(rare_mode):
    _check_guidance_helps(_rare(rare_mode, "das_guided"), _rare(rare_mode, "das"))


def test_the_guidance_check_sees_the_shift_dropped(rare_mode, monkeypatch):
    plain = _rare(rare_mode, "das")
    monkeypatch.setattr(das_module.DAS, "_propose", _no_shift)
    with pytest.raises(AssertionError):
        _check_guidance_helps(_rare(rare_mode, "das_guided"), plain)


# -- counts, tempering, selection, refusals ------------------------------------------------------------------


def test_counts_and_tempering(rare_mode):
    model, verifier = rare_mode
    n, b, s = 3, 2, 10
    r = tts.search(model, verifier, "das_guided", n_particles=n, batch_size=b, num_steps=s, seed=0, progress=False)
    assert r.nfe.model == r.nfe.model_grad == b * n * s
    assert r.nfe.verifier == b * n * (s + 1) and r.nfe.verifier_grad == b * n * s
    assert torch.equal(r.nfe_per_prompt, torch.full((b,), n * s))
    # DAS's tempering: lam * min((1 + g)^i - 1, 1) with (1 + g)^(0.87 S) = 2, then lam at the end
    g = 2.0 ** (1.0 / (0.87 * s)) - 1.0
    expect = torch.cat([torch.clamp((1 + g) ** torch.arange(s, dtype=torch.float64) - 1, max=1.0), torch.ones(1, dtype=torch.float64)])
    assert torch.allclose(r.temperatures, expect.expand(b, s + 1))
    fixed = tts.DAS(gamma=0.05, lam=2.0).lambdas(s)
    assert torch.allclose(fixed[:-1], 2.0 * torch.clamp(1.05 ** torch.arange(s, dtype=torch.float64) - 1, max=1.0)) and float(fixed[-1]) == 2.0
    assert all(row["ancestors"] is not None for row in r.trace) and len(r.trace) == s


@pytest.mark.parametrize("select", ["best", "weighted", "max_weight"])
def test_selection_of_the_returned_sample(rare_mode, select):
    model, verifier = rare_mode
    r = tts.search(model, verifier, "das_guided", n_particles=6, batch_size=4, num_steps=10, seed=3, select=select, progress=False)
    flat = (r.particles == r.latents[:, None]).all(-1).double().argmax(1)
    assert torch.equal(r.particle_rewards.gather(1, flat[:, None]).squeeze(1), r.rewards)
    if select == "best":
        assert torch.equal(r.rewards, r.particle_rewards.max(1).values)
    if select == "max_weight":
        assert torch.equal(flat, r.log_weights.argmax(1))


def test_a_verifier_without_gradients_is_refused_before_work(rare_mode):
    model, _ = rare_mode
    calls = []
    v = tts.verifiers.Function(lambda x: calls.append(1) or x[:, 0], differentiable=False)
    with pytest.raises(ValueError, match=r"das_guided's proposal follows the reward's gradient, but Function is not differentiable"):
        tts.search(model, v, "das_guided", n_particles=2, num_steps=5, progress=False)
    assert not calls


@pytest.mark.parametrize("kwargs,match", [
    (dict(lam=-1.0), r"lam must be a finite number > 0.0"),
    (dict(gamma=0.0), r"gamma must be a finite number > 0.0"),
    (dict(resampling="argmax"), r"resampling must be one of"),
    (dict(ess_threshold=1.5), r"ess_threshold must be a finite number > 0.0 and <= 1.0"),
    (dict(eta=0.0), r"eta must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (dict(select="first"), r"select must be one of 'best', 'weighted', 'max_weight'; got 'first'"),
    (dict(mu=0.1), r"das_guided takes no local-search options"),
])
def test_bad_options_are_refused(rare_mode, kwargs, match):
    model, verifier = rare_mode
    with pytest.raises(ValueError, match=match):
        tts.search(model, verifier, "das_guided", n_particles=2, num_steps=5, progress=False, **kwargs)


def test_the_guidance_free_das_preset_is_unchanged():
    assert tts.presets.das() == tts.BFS(temperature="exp", scoring="difference", resampling="ssp", resample_at="every",
                                        ess_threshold=0.5, lam=1.0)
    assert tts.presets.das_guided() == tts.DAS() and tts.presets.das_guided(lam=3.0).lam == 3.0
