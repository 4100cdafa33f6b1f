"""The terrain model of adaptive-terrain-diffusion through the EDM adapter: every search method runs on it.

Skipped, with the reason, when the ``terrain`` extra or the model package is missing (CI installs both:
.ci/run). The model costs about a second per 128x128 forward on one CPU core, so these run a few
steps with two particles and one or two prompt rows.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import tts_fast as tts
from tts_fast.terrain import SlopeTarget, heights, lag1_autocorrelation, mean_slope, terrain_model, to_metres
from tts_fast.terrain import model as terrain_mod
from tts_fast.terrain import onnx_model

_MISSING = [m for m in ("onnx", "onnx2torch", "onnxruntime", "terrain_diffusion") if importlib.util.find_spec(m) is None]
needs_terrain = pytest.mark.skipif(
    bool(_MISSING), reason=f"missing {', '.join(_MISSING)}: pip install --no-build-isolation 'tts_fast[terrain]' && pip install --no-deps adaptive-terrain-diffusion")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_missing_package_is_named(monkeypatch):
    """Broken variant: the loader imports terrain_diffusion (whose import asks for nothing useful) or lets a bare
    FileNotFoundError through: the message must say what to install and why --no-deps."""
    real = onnx_model.importlib.util.find_spec
    monkeypatch.setattr(onnx_model.importlib.util, "find_spec", lambda name, *a: None if name == "terrain_diffusion" else real(name, *a))
    with pytest.raises(ImportError, match=r"adaptive-terrain-diffusion.*pip install --no-build-isolation 'tts_fast\[terrain\]' && pip install --no-deps"):
        terrain_model([0.5])


def test_bad_input_is_named_before_any_model_call():
    with pytest.raises(ValueError, match=r"difficulties must be a non-empty sequence of numbers in \[0, 1\]"):
        terrain_model([1.5])
    with pytest.raises(ValueError, match=r"difficulties must be"):
        terrain_model([])
    with pytest.raises(ValueError, match="backend must be one of auto, onnxruntime, torch"):
        terrain_model([0.5], backend="tensorrt")
    with pytest.raises(ValueError, match=r"target must be a finite slope > 0"):
        SlopeTarget(0.0)
    with pytest.raises(ValueError, match=r"terrain samples must be \[B, 1, H, W\]"):
        to_metres(torch.zeros(2, 128, 128))


@needs_terrain
def test_the_schedule_must_stay_in_the_models_sigma_range():
    """Broken variant: a schedule reaching sigma above 80 (cosine's last levels) accepted and the model fed
    noise it never saw."""
    with pytest.raises(ValueError, match=r"outside the model's \[0.002, 80\]"):
        terrain_model([0.5], schedule=tts.schedules.cosine(1000))
    with pytest.raises(ValueError, match="sigma_range must be a"):
        terrain_model([0.5], sigma_range=20.0)
    with pytest.raises(ValueError, match="sigma_max"):
        terrain_model([0.5], sigma_range=(20.0, 10.0))


@needs_terrain
def test_heights_match_the_packages_own_conversion():
    """tts_fast's differentiable to_metres against terrain_diffusion's numpy _from_model_space(zero_floor=True).
    Broken variant: the arcsinh scale or the height range copied wrong."""
    from terrain_diffusion.generator import TerrainGenerator

    assert heights.HEIGHT_RANGE == TerrainGenerator.height_range and heights.ASINH_SCALE == TerrainGenerator.asinh_scale
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1
    ours = to_metres(x).numpy()
    theirs = TerrainGenerator._from_model_space(TerrainGenerator.__new__(TerrainGenerator), x.numpy(), zero_floor=True)
    assert np.allclose(ours, theirs, atol=2e-5 * heights.HEIGHT_RANGE)


@needs_terrain
def test_torch_module_agrees_with_onnxruntime_and_has_gradients():
    """The onnx2torch conversion with its three fixes. Broken variant: Split or Resize mapped to another converter
    (or allowzero changing a shape): the outputs would differ."""
    net = onnx_model.torch_module()
    g = torch.Generator().manual_seed(0)
    for sigma in (80.0, 20.0):
        x = torch.randn(1, 1, 128, 128, generator=g) * sigma
        s, d = torch.full((1,), sigma), torch.tensor([0.6])
        with torch.no_grad():
            assert float((net(x, s, d) - onnx_model.run_ort(x, s, d)).abs().max()) < 1e-4
    x = (torch.randn(1, 1, 128, 128, generator=g) * 20.0).requires_grad_(True)
    (gx,) = torch.autograd.grad(net(x, torch.full((1,), 20.0), torch.tensor([0.5])).square().sum(), x)
    assert bool(torch.isfinite(gx).all()) and float(gx.abs().sum()) > 0


@needs_terrain
def test_the_denoiser_is_the_edm_model_at_the_mapped_sigma(monkeypatch):
    """x0 = model(x_t, t) must call D at x_t / sqrt(abar) and sigma = sqrt((1 - abar) / abar). Broken variant: D
    called on x_t itself (a VP state fed to an EDM model)."""
    model = terrain_model([0.3, 0.7])
    seen = {}

    def spy(x, sigma, difficulty):
        seen.update(x=x.clone(), sigma=sigma.clone(), difficulty=difficulty.clone())
        return torch.zeros_like(x)

    monkeypatch.setattr(onnx_model, "run_ort", spy)
    t = torch.tensor([999.0, 300.0], dtype=torch.float64)
    x_t = torch.randn(2, 1, 128, 128)
    model(x_t, t, torch.tensor([1, 0]))
    ab = model.schedule.alpha_bar[t.long()]
    assert torch.allclose(seen["sigma"].double(), ((1 - ab) / ab).sqrt(), rtol=1e-6)
    assert torch.allclose(seen["x"], x_t / ab.sqrt().float().view(-1, 1, 1, 1), rtol=1e-6)
    assert seen["difficulty"].tolist() == pytest.approx([0.7, 0.3])


@needs_terrain
def test_onnxruntime_backend_refuses_gradients():
    model = terrain_model([0.5], backend="onnxruntime")
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    with torch.enable_grad(), pytest.raises(ValueError, match="backend='onnxruntime' gives no gradients"):
        model(x, torch.tensor([999.0]), torch.tensor([0]))


METHODS = {
    "bon": {}, "zero_order": {}, "search_over_paths": dict(delta_f=1, delta_b=2, start=1), "bfs": {}, "svdd": {}, "das": {},
    "fk": {}, "bfs_best": {}, "bfs_auto": dict(n_particles=3), "dfs": dict(quantile=0.5), "local": dict(rho=0.2, mu=0.4, local_steps=1),
    "local_auto": {}, "das_guided": {}, "dts": dict(rollouts=4), "dts_star": dict(rollouts=4, slots="fixed"),
}


@needs_terrain
@pytest.mark.parametrize("method", list(METHODS))
def test_every_search_method_runs_on_the_terrain_model(method):
    """A smoke run of each method (2 levels, 2 particles, one difficulty): budget respected, terrain-shaped samples,
    rewards that are the verifier's on the returned samples."""
    assert set(METHODS) == set(tts.search.api.METHODS)
    model = terrain_model([0.6])
    verifier = SlopeTarget(0.03)
    options = dict(METHODS[method])
    n = options.pop("n_particles", 2)  # bfs_auto's adaptive temperature needs target_ess * n > 1
    res = tts.search(model, verifier, method, n_particles=n, num_steps=2, seed=0, budget=12, progress=False, **options)
    assert res.samples.shape == (1, 1, 128, 128) and bool(torch.isfinite(res.samples).all())
    assert 0 < res.nfe.model <= 12
    assert torch.allclose(res.rewards.float(), verifier(res.samples.float()), atol=1e-4)
    h = to_metres(res.samples)
    assert float(mean_slope(h)) > 0 and -1.0 <= float(lag1_autocorrelation(h)) <= 1.0
    if method == "local":
        assert res.nfe.model_grad > 0  # rho > 0 differentiated through the torch module


@needs_terrain
def test_same_seed_same_terrain():
    model = terrain_model([0.4])
    a = tts.search(model, SlopeTarget(0.03), "bfs_best", n_particles=2, num_steps=2, seed=3, progress=False)
    b = tts.search(model, SlopeTarget(0.03), "bfs_best", n_particles=2, num_steps=2, seed=3, progress=False)
    assert torch.equal(a.samples, b.samples)


def test_slope_target_rewards_its_target():
    """On synthetic planes (no model needed): the reward is 0 at the target slope and equal at twice and half of it.
    Broken variant: a reward in slope units (not log), which would not be symmetric."""
    xs = torch.arange(16, dtype=torch.float32)
    plane = lambda s: (xs[None, :] * s).expand(16, 16)  # noqa: E731  heights in metres, slope s per cell
    to_model = lambda h: (torch.asinh(h / heights.ASINH_SCALE) / np.arcsinh(heights.HEIGHT_RANGE / heights.ASINH_SCALE)) * 2 - 1  # noqa: E731
    x = torch.stack([to_model(plane(s)) for s in (0.03, 0.06, 0.015)])[:, None]
    r = SlopeTarget(0.03)(x)
    assert abs(float(r[0])) < 1e-3 and abs(float(r[1] - r[2])) < 1e-3 and float(r[1]) < -0.4
    rows = SlopeTarget([0.03, 0.06])
    assert rows.num_prompts == 2
    assert abs(float(rows(x[1:2], torch.tensor([1])))) < 1e-3
