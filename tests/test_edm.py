"""The EDM adapter (tts_fast.models.EDMDenoiser): the VP -> EDM mapping is exact on analytic EDM models.

For Gaussian-mixture data the EDM denoiser D(x, sigma) = E[x0 | x0 + sigma eps = x] is known in
closed form (written out here, independently of the library), and so is the VP x0-prediction
(:class:`tts_fast.models.GaussianMixture`). The adapter must turn one into the other to float64
rounding at every level. Each exactness test is run against named broken variants of the mapping
(sigma left in VP units, x not rescaled, the variance in place of sigma, x divided by abar) and
must fail on each.
"""

from __future__ import annotations

import math

import pytest
import torch

import tts_fast as tts
from tts_fast import schedules
from tts_fast.models import edm
from tts_fast.models.edm import EDMDenoiser, edm_schedule, edm_sigmas, schedule_sigmas


def gaussian_edm(mean: torch.Tensor, std: float):
    """D(x, sigma) of N(mean, std^2 I): mean + std^2 / (std^2 + sigma^2) (x - mean)."""
    v = std**2

    def d(x, sigma, cond):
        return mean + (v / (v + sigma**2))[:, None] * (x - mean)

    return d


def mixture_edm(means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
    """D(x, sigma) of sum_k w_k N(m_k, s_k^2 I): responsibilities times each component's posterior mean."""

    def d(x, sigma, cond):
        var = stds[None] ** 2 + sigma[:, None] ** 2  # [B, K]
        dim = x.shape[1]
        logp = torch.log(weights)[None] - 0.5 * ((x[:, None] - means[None]) ** 2).sum(-1) / var - 0.5 * dim * torch.log(var)
        gamma = torch.softmax(logp, 1)
        post = means[None] + (stds[None] ** 2 / var)[..., None] * (x[:, None] - means[None])
        return (gamma[..., None] * post).sum(1)

    return d


BROKEN = {
    "sigma left in VP units": lambda x, a, s: (x / a.view(-1, 1), s),
    "x not rescaled": lambda x, a, s: (x, s / a),
    "variance in place of sigma": lambda x, a, s: (x / a.view(-1, 1), (s / a) ** 2),
    "x divided by abar": lambda x, a, s: (x / (a * a).view(-1, 1), s / a),
}


def _max_error(adapter, reference, n_levels=60, seed=0) -> float:
    g = torch.Generator().manual_seed(seed)
    T = adapter.schedule.num_train_timesteps
    t = torch.linspace(0, T - 1, n_levels, dtype=torch.float64).round()
    alpha, sigma = adapter.schedule.alpha_sigma(t)
    x0 = reference.sample(n_levels, generator=g)
    x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return float((adapter(x_t, t) - reference(x_t, t)).abs().max())


SCHEDULES = {
    "edm(0.002, 80)": lambda: edm_schedule(0.002, 80.0),
    "ddpm_linear": lambda: schedules.ddpm_linear(),
    "cosine(200)": lambda: schedules.cosine(200),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_the_mapping_is_exact_on_a_gaussian(name, monkeypatch):
    schedule = SCHEDULES[name]()
    mean = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    adapter = EDMDenoiser(gaussian_edm(mean, 0.3), (3,), schedule=schedule, dtype=torch.float64)
    reference = tts.models.GaussianMixture(mean[None], [0.3], schedule=schedule)
    assert _max_error(adapter, reference) < 1e-12
    for broken, fn in BROKEN.items():
        monkeypatch.setattr(edm, "vp_to_edm", fn)
        assert _max_error(adapter, reference) > 1e-3, broken
        monkeypatch.undo()


def test_the_mapping_is_exact_on_a_mixture(monkeypatch):
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    stds = torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    schedule = edm_schedule(0.002, 80.0)
    adapter = EDMDenoiser(mixture_edm(means, stds, weights), (2,), schedule=schedule, sigma_min=0.002, sigma_max=80.0, dtype=torch.float64)
    reference = tts.models.GaussianMixture(means, stds, weights, schedule=schedule)
    assert _max_error(adapter, reference) < 1e-12
    for broken, fn in BROKEN.items():
        monkeypatch.setattr(edm, "vp_to_edm", fn)
        assert _max_error(adapter, reference) > 1e-3, broken
        monkeypatch.undo()


def test_search_through_the_adapter_is_search_on_the_vp_model():
    """Same seed, same method: the adapter and the analytic VP model give the same samples (the mapping adds only rounding)."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    stds = torch.tensor([0.5, 0.5], dtype=torch.float64)
    weights = torch.tensor([0.8, 0.2], dtype=torch.float64)
    schedule = edm_schedule(0.002, 80.0)
    adapter = EDMDenoiser(mixture_edm(means, stds, weights), (2,), schedule=schedule, sigma_min=0.002, sigma_max=80.0, dtype=torch.float64)
    reference = tts.models.GaussianMixture(means, stds, weights, schedule=schedule)
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    for method in ("bon", "bfs_best", "dfs", "local"):
        kw = dict(n_particles=4, num_steps=10, batch_size=3, seed=5, progress=False)
        if method == "local":
            kw.update(rho=0.1, mu=0.1, local_steps=2)
        a = tts.search(adapter, verifier, method, **kw)
        b = tts.search(reference, verifier, method, **kw)
        assert torch.allclose(a.samples, b.samples, atol=1e-9), method
        assert a.nfe == b.nfe, method


def test_edm_schedule_carries_karras_sigmas():
    sig = edm_sigmas(0.002, 80.0, 1000, 7.0)
    assert math.isclose(float(sig[0]), 0.002, rel_tol=1e-12) and math.isclose(float(sig[-1]), 80.0, rel_tol=1e-12)
    assert bool((sig[1:] > sig[:-1]).all())
    got = schedule_sigmas(edm_schedule(0.002, 80.0))
    assert torch.allclose(got, sig, rtol=1e-9, atol=0)
    # rho spacing: (sigma^(1/rho)) is linear in t
    r = sig ** (1 / 7.0)
    assert torch.allclose(r[1:] - r[:-1], (r[-1] - r[0]).expand(999) / 999, rtol=1e-9)
    grid = edm_schedule(20.0, 80.0).grid(4)
    assert torch.allclose(grid.sigma[:-1] / grid.alpha[:-1], edm_sigmas(20.0, 80.0)[grid.timesteps.long()], rtol=1e-9)


def test_bad_input_is_named_before_any_work():
    d = gaussian_edm(torch.zeros(2, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match=r"schedule reaches EDM sigma in \[.*\], outside the model's \[0.002, 80\]: use tts_fast.models.edm_schedule"):
        EDMDenoiser(d, (2,), schedule=schedules.cosine(1000), sigma_min=0.002, sigma_max=80.0)
    with pytest.raises(ValueError, match="schedule must be a tts_fast.schedules.VPSchedule"):
        EDMDenoiser(d, (2,), schedule=schedules.flow(), sigma_min=0.002, sigma_max=80.0)
    with pytest.raises(ValueError, match="schedule is required when sigma_min is 0"):
        EDMDenoiser(d, (2,))
    with pytest.raises(ValueError, match="denoise must be callable"):
        EDMDenoiser(None, (2,), sigma_min=0.002, sigma_max=80.0)
    with pytest.raises(ValueError, match="sample_shape"):
        EDMDenoiser(d, (0,), sigma_min=0.002, sigma_max=80.0)
    with pytest.raises(ValueError, match="sigma_max must be a number > sigma_min"):
        EDMDenoiser(d, (2,), sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="num_prompts"):
        EDMDenoiser(d, (2,), sigma_min=0.002, sigma_max=80.0, num_prompts=0)
    with pytest.raises(ValueError, match="sigma_max"):
        edm_schedule(1.0, 0.5)
    with pytest.raises(ValueError, match="rho"):
        edm_schedule(0.002, 80.0, rho=0.0)
    model = EDMDenoiser(d, (2,), sigma_min=0.002, sigma_max=80.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x_t must be \[B, 2\]"):
        model(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3))


def test_bad_x_t_message_names_every_sample_dimension():
    """Broken variant: the sample dimensions joined by 'XX, XX' instead of ', ' in forward's message
    (a one-dimensional sample shape never shows the separator)."""
    d = lambda x, sigma, cond: x  # noqa: E731
    model = EDMDenoiser(d, (2, 3), sigma_min=0.002, sigma_max=80.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^x_t must be \[B, 2, 3\], got \(3, 4\)$"):
        model(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3))
    with pytest.raises(ValueError, match=r"^x_t must be \[B, 2, 3\], got list$"):
        model([0.0], torch.zeros(1))
