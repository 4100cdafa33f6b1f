"""Schedules, grids and the step math."""

import math

import pytest
import torch

import tts_fast as tts
from tts_fast import schedules as S


def test_vp_alpha_bar_and_grid_endpoints():
    sch = S.ddpm_linear()
    assert torch.allclose(sch.alpha_bar, torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0))
    g = sch.grid(10)
    assert g.num_steps == 10 and g.alpha.shape == (11,) and g.sigma.shape == (11,)
    assert g.timesteps[0] == 999 and g.timesteps[-1] == 0  # linspace spacing: noisiest to cleanest
    assert g.alpha[-1] == 1 and g.sigma[-1] == 0
    assert torch.allclose(g.alpha**2 + g.sigma**2, torch.ones(11, dtype=torch.float64))
    assert S.VPSchedule(sch.betas, spacing="trailing").timesteps(10).tolist() == list(range(999, 0, -100))
    assert S.VPSchedule(sch.betas, spacing="leading").timesteps(10).tolist() == list(range(901, 0, -100))


def test_schedule_shapes_and_transition_variance():
    g = S.ddpm_linear().grid(20)
    for kind in ("constant", "increase", "decrease"):
        assert torch.isclose(g.shape(kind).mean(), torch.tensor(1.0, dtype=torch.float64))
    inc = g.shape("increase")
    assert bool((inc[1:] >= inc[:-1]).all())  # grows toward clean data
    ab = g.alpha**2
    assert torch.allclose(g.transition_variance(), 1 - ab[:-1] / ab[1:])
    with pytest.raises(ValueError, match="shape"):
        g.shape("wiggly")


def test_flow_grid_shift():
    g = S.flow(shift=3.0).grid(4)
    t = torch.linspace(1, 0, 5, dtype=torch.float64)
    ts = 3 * t / (1 + 2 * t)
    assert torch.allclose(g.sigma, ts) and torch.allclose(g.alpha, 1 - ts)
    assert torch.allclose(g.timesteps, ts[:-1] * 1000)


def test_cosine_and_scaled_linear_are_valid_schedules():
    for sch in (S.cosine(), S.scaled_linear()):
        ab = sch.alpha_bar
        assert bool((ab[1:] < ab[:-1]).all()) and 0 < float(ab[-1]) < float(ab[0]) < 1


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="betas"):
        S.VPSchedule(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="spacing"):
        S.ddpm_linear(spacing="sideways")
    with pytest.raises(ValueError, match="num_steps"):
        S.ddpm_linear().grid(0)
    with pytest.raises(ValueError, match="num_steps"):
        S.ddpm_linear().grid(1001)
    with pytest.raises(ValueError, match="shift"):
        S.flow(shift=0.0)
    with pytest.raises(ValueError, match="integer train timesteps"):
        S.ddpm_linear().alpha_sigma(torch.tensor([3.5]))


def test_conversions_roundtrip():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    a, s = torch.tensor(0.6), torch.tensor(0.8)
    x = a * x0 + s * eps
    assert torch.allclose(S.x0_from_eps(x, eps, a, s), x0, atol=1e-6)
    assert torch.allclose(S.eps_from_x0(x, x0, a, s), eps, atol=1e-6)
    v = a * eps - s * x0
    assert torch.allclose(S.x0_from_v(x, v, a, s), x0, atol=1e-6)
    t = torch.tensor(0.3)
    xf = (1 - t) * x0 + t * eps
    assert torch.allclose(S.x0_from_velocity(xf, eps - x0, t), x0, atol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_is_the_gaussian_path_posterior(eta):
    """Given x0, DDIM(eta=1) samples q(x_j | x_i, x0) exactly; eta scales its noise."""
    g = S.ddpm_linear().grid(10)
    n = 200_000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x = torch.full((n, 1), -0.3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    out = S.ddim_step(x, x0, 3, 4, g, eta=eta, generator=gen)
    ai, si, aj, sj = g.alpha[3], g.sigma[3], g.alpha[4], g.sigma[4]
    v = si**2 - (ai / aj) ** 2 * sj**2
    var_post = eta**2 * sj**2 * v / si**2
    eps_hat = (x[0] - ai * x0[0]) / si
    mean = aj * x0[0] + torch.sqrt(sj**2 - var_post) * eps_hat
    assert abs(float(out.mean()) - float(mean)) < 5 * math.sqrt(float(var_post) / n + 1e-30) + 1e-12
    if eta > 0:
        assert abs(float(out.var()) / float(var_post) - 1) < 5 * math.sqrt(2 / n)
    else:
        assert float(out.var()) == 0
    if eta == 1:
        # The DDPM posterior mean of q(x_j | x_i, x0) in closed form.
        ab_i, ab_j = ai**2, aj**2
        beta = 1 - ab_i / ab_j
        post_mean = (aj * beta / (1 - ab_i)) * x0[0] + (ai / aj) * (1 - ab_j) / (1 - ab_i) * x[0]
        assert torch.allclose(mean, post_mean)


def test_renoise_is_the_forward_kernel():
    g = S.ddpm_linear().grid(10)
    n = 200_000
    x = torch.full((n, 1), 1.5, dtype=torch.float64)
    out = S.renoise(x, 7, 2, g, generator=torch.Generator().manual_seed(2))
    ratio = g.alpha[2] / g.alpha[7]
    var = 1 - (g.alpha[2] / g.alpha[7]) ** 2  # VP: 1 - ab_to / ab_from
    assert abs(float(out.mean()) - 1.5 * float(ratio)) < 5 * math.sqrt(float(var) / n)
    assert abs(float(out.var()) / float(var) - 1) < 5 * math.sqrt(2 / n)


@pytest.mark.parametrize("schedule", ["vp", "flow"])
def test_plain_sampler_reproduces_the_data_distribution(schedule):
    """DDIM(eta=1) with the exact x0-predictor samples p0 (VP; and flow via its SDE form)."""
    sch = S.ddpm_linear() if schedule == "vp" else S.flow()
    steps = 1000 if schedule == "vp" else 400
    gm = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2], schedule=sch)
    n = 8192
    gen = torch.Generator().manual_seed(0)
    x = S.sample(gm, torch.randn(n, 2, generator=gen, dtype=torch.float64), sch.grid(steps), eta=1.0, generator=gen)
    mean, var = gm.mean(), torch.diag(gm.covariance())
    se_mean = (var / n).sqrt()
    assert bool(((x.mean(0) - mean).abs() < 4 * se_mean + 0.01).all()), (x.mean(0), mean)
    # Variance: 4 standard errors of a sample variance plus 3% for the grid's discretisation.
    assert bool(((x.var(0) / var - 1).abs() < 4 * math.sqrt(2 / n) + 0.03).all()), (x.var(0), var)
