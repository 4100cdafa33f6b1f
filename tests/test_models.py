"""The analytic Gaussian-mixture denoiser: exactness of x0-prediction, score and tilted targets."""

import math

import pytest
import torch

import tts_fast as tts


def _gm(**kw):
    return tts.models.GaussianMixture([[-1.0, 0.5], [2.0, -1.0], [0.0, 2.0]], [0.4, 0.7, 0.5], [0.5, 0.3, 0.2], **kw)


def _marginal_log_prob(gm, x, alpha, sigma):
    var = alpha**2 * gm.stds**2 + sigma**2
    d2 = ((x[:, None, :] - alpha * gm.means[None]) ** 2).sum(-1)
    return torch.logsumexp(torch.log(gm.weights) - 0.5 * d2 / var - 0.5 * gm.dim * torch.log(2 * math.pi * var), dim=1)


@pytest.mark.parametrize("t", [0, 250, 600, 999])
def test_x0_prediction_is_tweedie(t):
    """E[x0 | x_t] = (x_t + sigma^2 grad log p_t(x_t)) / alpha, with the score by autograd."""
    gm = _gm()
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(t)) * 2
    tt = torch.full((64,), float(t), dtype=torch.float64)
    alpha, sigma = (v[0] for v in gm.schedule.alpha_sigma(tt))
    xg = x.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(_marginal_log_prob(gm, xg, alpha, sigma).sum(), xg)
    assert torch.allclose(gm(x, tt), (x + sigma**2 * score) / alpha, atol=1e-9, rtol=1e-7)
    assert torch.allclose(gm.score(x, tt), score, atol=1e-9, rtol=1e-7)


def test_sample_moments_match_closed_form():
    gm = _gm()
    x = gm.sample(200_000, torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), gm.mean(), atol=0.02)
    assert torch.allclose(torch.cov(x.T), gm.covariance(), atol=0.03)
    assert torch.allclose(gm.log_prob(x[:5]), _marginal_log_prob(gm, x[:5], 1.0, 0.0))


@pytest.mark.parametrize("lam", [0.5, 1.0, 3.0])
def test_tilted_target_matches_importance_weighting(lam):
    """p0 f^lam in closed form agrees with p0 samples reweighted by f^lam."""
    gm = _gm()
    c, v = torch.tensor([1.0, 1.0], dtype=torch.float64), 0.8
    x = gm.sample(400_000, torch.Generator().manual_seed(1))
    logw = -lam * ((x - c) ** 2).sum(1) / (2 * v)
    w = torch.softmax(logw, 0)
    tgt = gm.tilted(c, v, lam)
    mean = (w[:, None] * x).sum(0)
    cov = (w[:, None, None] * (x - mean)[:, :, None] * (x - mean)[:, None, :]).sum(0)
    assert torch.allclose(tgt.mean(), mean, atol=0.02)
    assert torch.allclose(tgt.covariance(), cov, atol=0.03)
    assert gm.tilted(c, v, 0.0).means.equal(gm.means)


def test_tilted_by_mixture_matches_importance_weighting():
    gm = _gm()
    centers, variances, weights = [[1.0, 1.0], [-1.0, -1.0]], [0.8, 0.5], [1.0, 2.0]
    x = gm.sample(400_000, torch.Generator().manual_seed(2))
    f = tts.verifiers.MixtureReward(centers, variances, weights)
    w = torch.softmax(f(x), 0)
    tgt = gm.tilted_by_mixture(centers, variances, weights)
    assert torch.allclose(tgt.mean(), (w[:, None] * x).sum(0), atol=0.02)


def test_bad_mixture_arguments():
    with pytest.raises(ValueError, match="means"):
        tts.models.GaussianMixture([1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="stds"):
        tts.models.GaussianMixture([[0.0], [1.0]], [1.0, -1.0])
    with pytest.raises(ValueError, match="weights"):
        tts.models.GaussianMixture([[0.0], [1.0]], 1.0, [1.0, -1.0])
    with pytest.raises(ValueError, match="var"):
        _gm().tilted([0.0, 0.0], -1.0)


def test_mixture_covariance_exact_in_float64():
    """Broken variant: the isotropic part of the covariance built in float32 (a float32 identity
    times a float64 0-d sum stays float32: 1e-8 relative error)."""
    from tts_fast.models import GaussianMixture

    means = [[0.1, -0.7], [1.3, 0.2], [-0.4, 0.9]]
    stds = [0.3, 0.7, 1.1]
    weights = [0.2, 0.5, 0.3]
    gm = GaussianMixture(means, stds, weights)
    m, s, w = (torch.tensor(v, dtype=torch.float64) for v in (means, stds, weights))
    mu = (w[:, None] * m).sum(0)
    # E[x x^T] - mu mu^T, term by term: sum_k w_k (m_k m_k^T + s_k^2 I)
    expect = sum(w[k] * (torch.outer(m[k], m[k]) + s[k] ** 2 * torch.eye(2, dtype=torch.float64)) for k in range(3)) - torch.outer(mu, mu)
    cov = gm.covariance()
    assert cov.dtype == torch.float64
    assert torch.allclose(cov, expect, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("mode, copied", [("reduce-overhead", True), ("max-autotune", True), ("default", False), (None, False)])
def test_compiled_runner_copies_the_outputs_of_cuda_graphed_modes(monkeypatch, mode, copied):
    """Broken variant: CompiledRunner never copies a call's output out (``_graphed`` None): under
    the CUDA-graphed compile modes the next replay would overwrite the chunk already returned.
    torch.compile is replaced by the identity, so the runner's own copy is what is observed."""
    from tts_fast.models import backends

    produced = []

    def fn(x, t):
        y = x * 2 + t[:, None]
        produced.append(y)
        return y

    monkeypatch.setattr(torch, "compile", lambda f, **kw: f)
    runner = backends.CompiledRunner(fn, (2,), **({} if mode is None else {"mode": mode}))
    x, t = torch.arange(2.0)[:, None], torch.tensor([10.0, 20.0])
    out = runner(x, t, {})
    assert torch.equal(out, torch.tensor([[10.0], [22.0]]))
    assert (out.data_ptr() != produced[-1].data_ptr()) is copied
