"""Schedules, grids and the step math."""

import math

import pytest
import torch

import tts_fast as tts
from tts_fast import ops
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
    gen = torch.Generator().manual_seed(1) if eta > 0 else None  # eta = 0 draws nothing, so takes no generator
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


def _central_moment4(gm) -> torch.Tensor:
    """E (x_d - mean_d)^4 per coordinate of an isotropic Gaussian mixture: [D]."""
    c = gm.means - gm.mean()[None]  # [K, D]
    s2 = (gm.stds**2)[:, None]
    return (gm.weights[:, None] * (c**4 + 6 * c**2 * s2 + 3 * s2**2)).sum(0)


@pytest.mark.parametrize("schedule", ["vp", "flow"])
def test_plain_sampler_reproduces_the_data_distribution(schedule):
    """DDIM(eta=1) with the exact x0-predictor samples p0 (VP; and flow via its SDE form), on a
    bimodal mixture (the denoiser is nonlinear there).

    Tolerances, per coordinate, with n = 8192 and a fixed seed:
    - mean: 4.5 standard errors sqrt(var / n), plus 0.015 of discretisation bias. Each step's
      conditional mean is exact, so the bias is second order; measured on this mixture with
      n = 2^18 (seed 1): |bias| <= 0.0049 +- 0.0033 on both grids, so 0.015 covers 3 of its SEs.
    - variance: 4.5 standard errors of a sample variance, sqrt((mu4 - var^2) / n) with mu4 the
      mixture's fourth central moment (coordinate 0 is bimodal: mu4 / var^2 = 3.19, not the
      Gaussian 3), plus 2% of var for the discretisation deficit: with an exact denoiser each step
      lacks c_x0^2 Var(x0 | x_t) of variance; the exact Gaussian chain (_gaussian_chain) loses
      1.1-1.6% on these grids, and the deficit measured on this mixture (n = 2^18) is at most
      1.2% +- 0.3%.
    """
    sch = S.ddpm_linear() if schedule == "vp" else S.flow()
    steps = 1000 if schedule == "vp" else 400
    gm = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2], schedule=sch)
    n = 8192
    gen = torch.Generator().manual_seed(0)
    x = S.sample(gm, torch.randn(n, 2, generator=gen, dtype=torch.float64), sch.grid(steps), eta=1.0, generator=gen)
    mean, var = gm.mean(), torch.diag(gm.covariance())
    tol_mean = 4.5 * (var / n).sqrt() + 0.015
    assert bool(((x.mean(0) - mean).abs() < tol_mean).all()), (x.mean(0), mean, tol_mean)
    tol_var = 4.5 * ((_central_moment4(gm) - var**2) / n).sqrt() + 0.02 * var
    assert bool(((x.var(0) - var).abs() < tol_var).all()), (x.var(0), var, tol_var)


# ------------------------------------------------------------------------------------------------
# schedules and grids: exact values


def test_beta_schedules_exact_values():
    """Defaults and formulas of the named schedules, against independent float64 formulas."""
    lin = S.ddpm_linear()
    assert lin.num_train_timesteps == 1000 and lin.spacing == "linspace" and lin.steps_offset == 1
    assert torch.equal(lin.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    assert torch.equal(lin.alpha_bar, torch.cumprod(1.0 - lin.betas, 0))
    assert torch.equal(S.ddpm_linear(10, 0.1, 0.2).betas, torch.linspace(0.1, 0.2, 10, dtype=torch.float64))
    assert S.ddpm_linear(spacing="trailing", steps_offset=3).spacing == "trailing"
    assert S.ddpm_linear(steps_offset=3.0).steps_offset == 3 and isinstance(S.ddpm_linear(steps_offset=3.0).steps_offset, int)
    sl = S.scaled_linear()
    want = [(math.sqrt(0.00085) + i * (math.sqrt(0.012) - math.sqrt(0.00085)) / 999) ** 2 for i in range(1000)]
    torch.testing.assert_close(sl.betas, torch.tensor(want, dtype=torch.float64), rtol=1e-13, atol=0)
    assert S.scaled_linear(5, 0.01, 0.04, spacing="leading", steps_offset=2).spacing == "leading"
    assert S.scaled_linear(5, 0.01, 0.04, spacing="leading", steps_offset=2).steps_offset == 2
    assert S.cosine(5, spacing="trailing").spacing == "trailing" and S.cosine(5, steps_offset=0).steps_offset == 0
    torch.testing.assert_close(S.scaled_linear(5, 0.01, 0.04).betas, torch.linspace(0.1, 0.2, 5, dtype=torch.float64) ** 2)
    cos = S.cosine()
    f = [math.cos((i / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(1001)]
    want = [min(1 - f[i + 1] / f[i], 0.999) for i in range(1000)]
    assert cos.betas.tolist() == want and cos.betas[-1] == 0.999 and float(cos.betas[-2]) < 0.999  # clipped at the end only
    assert S.cosine(4, s=0.1, max_beta=0.5).betas.tolist() == [
        min(1 - math.cos(((i + 1) / 4 + 0.1) / 1.1 * math.pi / 2) ** 2 / math.cos((i / 4 + 0.1) / 1.1 * math.pi / 2) ** 2, 0.5)
        for i in range(4)]
    fb = S.from_betas([0.1, 0.2, 0.3], spacing="trailing")
    assert fb.betas.dtype == torch.float64 and fb.betas.tolist() == [0.1, 0.2, 0.3] and fb.spacing == "trailing"
    assert torch.allclose(fb.alpha_bar, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))


def _trailing(T, n):
    """diffusers' 'trailing' spacing: round(T - i T / n) - 1 for i < n (values T + i * (-T / n))."""
    step = -T / n
    return [round(T + i * step) - 1 for i in range(n)]


# (100, 56) and (1000, 15): a float32 arange / linspace would round a timestep the other way
@pytest.mark.parametrize("T,n", [(1000, 10), (1000, 1), (1000, 1000), (1000, 7), (100, 56), (1000, 15), (17, 7), (15, 13),
                                 (10, 3), (2, 2)])
def test_vp_timesteps_of_each_spacing(T, n):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    lin = S.VPSchedule(betas).timesteps(n)
    assert lin.dtype == torch.int64
    assert lin.tolist() == [round((T - 1) * (1 - i / (n - 1))) if n > 1 else T - 1 for i in range(n)]
    assert S.VPSchedule(betas, spacing="trailing").timesteps(n).tolist() == _trailing(T, n)
    if (n - 1) * (T // n) + 1 < T:
        lead = S.VPSchedule(betas, spacing="leading").timesteps(n).tolist()
        assert lead == [(n - 1 - i) * (T // n) + 1 for i in range(n)]
    lead0 = S.VPSchedule(betas, spacing="leading", steps_offset=0).timesteps(n).tolist()
    assert lead0 == [(n - 1 - i) * (T // n) for i in range(n)]


def test_vp_timesteps_bounds():
    sch = S.ddpm_linear(10)
    assert sch.timesteps(1).tolist() == [9] and sch.timesteps(10).tolist() == list(range(9, -1, -1))
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match=rf"^num_steps must lie in \[1, 10\], got {bad}$"):
            sch.timesteps(bad)
    # leading: offset + multiples of T // S; the first timestep must stay below T
    assert S.ddpm_linear(10, spacing="leading", steps_offset=0).timesteps(10).tolist() == list(range(9, -1, -1))
    with pytest.raises(ValueError, match=r"^num_steps=10 with steps_offset=1 puts the first timestep at 10 >= 10$"):
        S.ddpm_linear(10, spacing="leading").timesteps(10)
    assert S.ddpm_linear(10, spacing="leading", steps_offset=4).timesteps(2).tolist() == [9, 4]
    with pytest.raises(ValueError, match="first timestep at 10 >= 10"):
        S.ddpm_linear(10, spacing="leading", steps_offset=5).timesteps(2)


def test_vp_grid_values():
    sch = S.ddpm_linear(20, spacing="trailing")
    g = sch.grid(4)
    ts = [4, 9, 14, 19][::-1]
    assert g.kind == "vp" and g.num_steps == 4 and g.device == torch.device("cpu")
    assert g.timesteps.dtype == torch.float64 and g.timesteps.tolist() == [float(t) for t in ts]
    ab = [float(sch.alpha_bar[t]) for t in ts] + [1.0]
    assert g.alpha.tolist() == [math.sqrt(a) for a in ab] and g.sigma.tolist() == [math.sqrt(1 - a) for a in ab]
    assert g.alpha.dtype == g.sigma.dtype == torch.float64
    assert sch.grid(4, device="cpu").alpha.device == torch.device("cpu")
    moved = g.to("meta")
    assert moved.kind == "vp" and {moved.timesteps.device.type, moved.alpha.device.type, moved.sigma.device.type} == {"meta"}
    assert moved.device == torch.device("meta")


def test_vp_alpha_sigma_checks_timesteps():
    sch = S.ddpm_linear(10)
    a, s = sch.alpha_sigma(torch.tensor([0.0, 9.0, 4.0]))
    ab = sch.alpha_bar[[0, 9, 4]]
    assert torch.equal(a, ab.sqrt()) and torch.equal(s, (1 - ab).sqrt()) and a.dtype == torch.float64
    assert torch.equal(sch.alpha_sigma(torch.tensor([3]))[0], ab.new_tensor([float(sch.alpha_bar[3].sqrt())]))
    assert torch.equal(sch.alpha_sigma([2, 5])[1], (1 - sch.alpha_bar[[2, 5]]).sqrt())  # sequences too
    for bad in ([10.0], [-1.0], [3.5], [0.0, 2.5], [9.000001]):
        with pytest.raises(ValueError, match=r"^t must hold integer train timesteps in \[0, 10\)$"):
            sch.alpha_sigma(torch.tensor(bad))


def test_vp_schedule_arguments():
    assert S.VPSchedule([0.5, 0.5]).num_train_timesteps == 2
    listed = S.VPSchedule([0.1, 0.2])  # a list becomes float64 (not torch's float32 default)
    assert listed.betas.dtype == listed.alpha_bar.dtype == torch.float64 and listed.betas.tolist() == [0.1, 0.2]
    msg = r"^betas must be a 1-D array of at least 2 values in \(0, 1\)$"
    for bad in ([0.5], [0.5, 1.0], [0.0, 0.5], [0.5, -0.1], [0.5, float("nan")]):
        with pytest.raises(ValueError, match=msg):
            S.VPSchedule(torch.tensor(bad, dtype=torch.float64))
    assert S.VPSchedule(torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=torch.float64)).betas.tolist() == [0.1, 0.2, 0.3, 0.4]  # flattened
    with pytest.raises(ValueError, match=r"^spacing must be 'trailing', 'leading' or 'linspace'; got 'sideways'$"):
        S.VPSchedule([0.1, 0.2], spacing="sideways")
    for spacing in ("trailing", "leading", "linspace"):
        assert S.VPSchedule([0.1, 0.2], spacing=spacing).spacing == spacing


def test_flow_schedule_values():
    fl = S.flow()
    assert fl.kind == "flow" and fl.shift == 1.0 and fl.timestep_scale == 1000.0
    a, s = fl.alpha_sigma(torch.tensor([250.0, 1000.0]))
    assert a.tolist() == [0.75, 0.0] and s.tolist() == [0.25, 1.0] and a.dtype == torch.float64
    g = fl.grid(4)
    assert g.kind == "flow" and g.num_steps == 4
    assert g.sigma.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0] and g.alpha.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert g.timesteps.tolist() == [1000.0, 750.0, 500.0, 250.0]
    f2 = S.flow(shift=2.0, timestep_scale=1.0)
    assert f2.shift == 2.0 and f2.timestep_scale == 1.0 and f2.alpha_sigma(torch.tensor([0.5]))[1].tolist() == [0.5]
    assert f2.grid(2).sigma.tolist() == [1.0, 2 * 0.5 / 1.5, 0.0] and f2.grid(2).timesteps.tolist() == [1.0, 2 * 0.5 / 1.5]
    assert S.FlowSchedule(0.5).grid(1, device="cpu").sigma.tolist() == [1.0, 0.0]
    assert S.FlowSchedule().shift == 1.0 and S.FlowSchedule().timestep_scale == 1000.0
    on_meta = fl.grid(4, device="meta")
    assert on_meta.device.type == "meta" and on_meta.timesteps.device.type == "meta" and on_meta.kind == "flow"
    assert S.ddpm_linear().grid(4, device="meta").device.type == "meta"
    assert S.FlowSchedule(1e-9).shift == 1e-9
    for bad in (0.0, -1.0, float("nan"), float("inf"), "2", True):
        with pytest.raises(ValueError, match=rf"^shift must be a finite number > 0.0, got {bad!r}$"):
            S.flow(shift=bad)
    for bad in (0.0, -1.0, float("inf"), None):
        with pytest.raises(ValueError, match=rf"^timestep_scale must be a finite number > 0.0, got {bad!r}$"):
            S.flow(timestep_scale=bad)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match=rf"^num_steps must be an integer >= 1, got {bad!r}$"):
            fl.grid(bad)


def test_grid_step_quantities_exact():
    g = S.Grid(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), torch.tensor([0.6, 0.8, 0.9, 1.0], dtype=torch.float64),
               torch.tensor([0.8, 0.6, 0.5, 0.0], dtype=torch.float64), "vp")
    r = [0.6 / 0.8, 0.8 / 0.9, 0.9 / 1.0]
    assert g.step_alpha().tolist() == [x**2 for x in r]
    assert g.transition_variance().tolist() == [0.8**2 - r[0] * r[0] * 0.6**2, 0.6**2 - r[1] * r[1] * 0.5**2, 0.5**2 - 0.0]
    assert g.shape("constant").tolist() == [1.0, 1.0, 1.0] and g.shape("constant").dtype == torch.float64
    inc = torch.tensor([x**2 for x in r], dtype=torch.float64)
    assert torch.equal(g.shape("increase"), inc / inc.mean())
    assert torch.equal(g.shape("decrease"), (1 - inc) / (1 - inc).mean())
    with pytest.raises(ValueError, match=r"^schedule shape must be one of constant, increase, decrease; got 'wiggly'$"):
        g.shape("wiggly")


# ------------------------------------------------------------------------------------------------
# parameterisation conversions and the step wrappers


def test_score_from_x0_and_conversions_exact():
    x, x0, a, s = torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor(0.8), torch.tensor(0.5)
    assert torch.allclose(S.score_from_x0(x, x0, a, torch.tensor(0.4)), torch.tensor([(0.8 * 0.5 - 1.0) / 0.16]))
    assert torch.allclose(S.eps_from_x0(x, x0, a, s), torch.tensor([(1.0 - 0.4) / 0.5]))
    assert torch.allclose(S.x0_from_eps(x, torch.tensor([2.0]), a, s), torch.tensor([(1.0 - 1.0) / 0.8]))
    assert torch.allclose(S.x0_from_v(x, torch.tensor([2.0]), a, s), torch.tensor([0.8 - 1.0]))
    assert torch.allclose(S.x0_from_velocity(x, torch.tensor([2.0]), torch.tensor(0.25)), torch.tensor([0.5]))


def test_step_wrappers_draw_noise_from_the_generator():
    g = S.ddpm_linear().grid(10)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    lv, lv1 = torch.full((6,), 3), torch.full((6,), 4)
    for eta in (1.0, 0.3):
        got = S.ddim_step(x, x0, 3, 4, g, eta=eta, generator=torch.Generator().manual_seed(5))
        assert torch.equal(got, ops.ddim_step(x, x0, lv, lv1, g.alpha, g.sigma, eta=eta, noise=z))
        assert torch.equal(S.ddim_step(x, x0, lv, 4, g, eta=eta, noise=z), got)
    assert torch.equal(S.ancestral_step(x, x0, 3, 4, g, generator=torch.Generator().manual_seed(5)),
                       ops.ddim_step(x, x0, lv, lv1, g.alpha, g.sigma, eta=1.0, noise=z))
    assert torch.equal(S.ancestral_step(x, x0, lv, lv1, g, noise=z), ops.ddim_step(x, x0, lv, lv1, g.alpha, g.sigma, noise=z))
    # eta = 0 is deterministic: it takes no noise and no generator (either would be ignored: refused)
    det = S.ddim_step(x, x0, 3, 4, g, eta=0.0)
    assert torch.equal(det, ops.ddim_step(x, x0, lv, lv1, g.alpha, g.sigma, eta=0.0))
    for source in (dict(noise=z), dict(generator=torch.Generator().manual_seed(5))):
        with pytest.raises(ValueError, match="eta = 0 draws no noise"):
            S.ddim_step(x, x0, 3, 4, g, eta=0.0, **source)
    with pytest.raises(ValueError, match="pass either noise or generator"):
        S.renoise(x, 4, 3, g, noise=z, generator=torch.Generator())
    up = S.renoise(x, 4, 3, g, generator=torch.Generator().manual_seed(5))
    assert torch.equal(up, ops.renoise(x, lv1, lv, g.alpha, g.sigma, noise=z))
    assert torch.equal(S.renoise(x, lv1, 3, g, noise=z), up)
    # the drawn noise has x's dtype
    x32 = x.float()
    assert S.ddim_step(x32, x32, 3, 4, g, generator=torch.Generator().manual_seed(5)).dtype == torch.float32


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_step_wrappers_on_device(device):
    """Levels given as ints and drawn noise are made on x's device; results match the CPU ones."""
    g = S.ddpm_linear().grid(10)
    gd = g.to(device)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for fn, args in ((S.renoise, (6, 2)), (S.ddim_step, (2, 3)), (S.ancestral_step, (2, 3))):
        extra = () if fn is S.renoise else (x,)
        got = fn(x.to(device), *(a.to(device) for a in extra), *args, gd, noise=z.to(device))
        assert got.device.type == device
        torch.testing.assert_close(got.cpu(), fn(x, *extra, *args, g, noise=z), rtol=1e-6, atol=1e-6)
        drawn = fn(x.to(device), *(a.to(device) for a in extra), *args, gd)  # noise drawn on the device
        assert drawn.device.type == device and drawn.dtype == x.dtype


def test_sample_calls_the_model_once_per_level():
    g = S.ddpm_linear(50).grid(5)
    calls, seen = [], []

    def model(x, t, cond):
        calls.append((x.clone(), t.clone(), cond))
        return 0.5 * x

    def callback(info):
        seen.append((info["i"], info["level"], info["x"].clone(), info["x0_hat"].clone()))

    x_start = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cond = torch.tensor([7, 8, 9])
    out = S.sample(model, x_start, g, cond, eta=0.5, generator=torch.Generator().manual_seed(1), callback=callback)
    assert len(calls) == 5 and [c[1].tolist() for c in calls] == [[float(t)] * 3 for t in g.timesteps.tolist()]
    assert all(c[2] is cond for c in calls) and calls[0][1].dtype == torch.float64
    # the same walk by hand
    gen, x = torch.Generator().manual_seed(1), x_start
    for i in range(5):
        assert torch.equal(calls[i][0], x)
        assert seen[i][0] == seen[i][1] == i and torch.equal(seen[i][2], x) and torch.equal(seen[i][3], 0.5 * x)
        x = S.ddim_step(x, 0.5 * x, i, i + 1, g, eta=0.5, generator=gen)
    assert torch.equal(out, x)
    assert torch.equal(S.sample(model, x_start, g, eta=0.5, generator=torch.Generator().manual_seed(1)), out)
    assert calls[-1][2] is None


# ------------------------------------------------------------------------------------------------
# the plain sampler, statistically


def _gaussian_chain(grid: S.Grid, m: float, s2: float, eta: float) -> tuple[float, float]:
    """Exact mean and variance after S.sample on 1-D Gaussian data N(m, s2) from x ~ N(0, 1).

    With Gaussian data the exact x0-prediction is linear, x0_hat = m + g (x - a_i m) with
    g = a_i s2 / (a_i^2 s2 + s_i^2), so every step is x' = A x + B + sqrt(V) z and the chain's
    law stays Gaussian, discretisation included. The step is written independently of the ops:
    eta = 1 as the Bayes posterior q(x_to | x_from, x0) (precision r^2/v + 1/s_j^2), eta = 0 as
    DDIM's x' = a_j x0_hat + s_j eps_hat.
    """
    mu, var = 0.0, 1.0
    a, sg = grid.alpha.tolist(), grid.sigma.tolist()
    for i in range(grid.num_steps):
        ai, si, aj, sj = a[i], sg[i], a[i + 1], sg[i + 1]
        g = ai * s2 / (ai * ai * s2 + si * si)
        if sj == 0:  # the last step lands on x0_hat
            cx, cx0, v_step = 0.0, 1.0, 0.0
        elif eta == 1:
            r = ai / aj
            v = si * si - r * r * sj * sj
            prec = r * r / v + 1 / (sj * sj)
            cx, cx0, v_step = (r / v) / prec, (aj / (sj * sj)) / prec, 1 / prec
        else:
            cx, cx0, v_step = sj / si, aj - sj * ai / si, 0.0
        big_a, big_b = cx + cx0 * g, cx0 * (m - g * ai * m)
        mu, var = big_a * mu + big_b, big_a * big_a * var + v_step
    return mu, var


@pytest.mark.parametrize("schedule", ["vp", "flow"])
@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_plain_sampler_matches_the_exact_gaussian_chain(schedule, eta):
    """On Gaussian data the sampler's output law is known exactly, discretisation error included,
    so the only slack is sampling error: the sample mean within 5 standard errors sqrt(var / n) and
    the sample variance within 5 sqrt(2 / (n - 1)) var (its exact sd for Gaussian samples): a
    1.6% band at n = 200k. 20 steps make the discretisation large (a 13-37% variance deficit), so
    a wrong step coefficient or level shows."""
    sch = S.ddpm_linear() if schedule == "vp" else S.flow()
    grid = sch.grid(20)
    means, s = (-1.0, 0.5), 0.6
    gm = tts.models.GaussianMixture([list(means)], [s], [1.0], schedule=sch)
    n = 200_000
    gen = torch.Generator().manual_seed(3)
    x = S.sample(gm, torch.randn(n, 2, generator=gen, dtype=torch.float64), grid, eta=eta, generator=gen if eta > 0 else None)
    for d, m in enumerate(means):
        mu, var = _gaussian_chain(grid, m, s * s, eta)
        assert abs(float(x[:, d].mean()) - mu) < 5 * math.sqrt(var / n), (d, float(x[:, d].mean()), mu)
        assert abs(float(x[:, d].var()) - var) < 5 * math.sqrt(2 / (n - 1)) * var, (d, float(x[:, d].var()), var)


def test_gaussian_chain_converges_to_the_data():
    """The exact chain above approaches the data law as steps grow (DDIM(eta=1) on VP and flow):
    so matching it at many steps means sampling p0 up to the stated bias."""
    for sch, few, many in ((S.ddpm_linear(), 20, 1000), (S.flow(), 20, 2000)):
        errs = [abs(_gaussian_chain(sch.grid(k), 0.5, 0.36, 1.0)[1] / 0.36 - 1) for k in (few, many)]
        assert errs[1] < errs[0] / 10 and errs[1] < 0.015, errs
        assert abs(_gaussian_chain(sch.grid(many), 0.5, 0.36, 1.0)[0] - 0.5) < 1e-3
