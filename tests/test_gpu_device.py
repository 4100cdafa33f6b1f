"""On a GPU: the CUDA kernels at realistic sizes, on the device, against the specification.

- Elementwise ops (renoise, ddim_step, langevin_step) equal the reference run on the same device
  bit for bit: more than one tile, a gradient norm over inner sizes > 16384 (several partial sums),
  float16/bfloat16/float32/float64, a misaligned view and a channels-last input.
- The in-kernel Philox normals equal ``_philox.philox_normal`` computed on the GPU, bit for bit.
- Every op in every mode is captured in one CUDA graph with ``Philox.take`` inside it; replays
  equal eager calls from the same counter state; a CPU rng during capture is refused.
- Resampling with N up to 65 536 and B up to 1 024, ties included, against the sequential CPU
  float64 oracle.
- The adaptive-tempering increment (one warp per row) against the CPU op, which takes its sums in
  the same 32-lane order: equal up to CUDA's exp/log against glibc's, at B up to 4 096.
- The search loop on a non-default stream under ``torch.cuda.set_sync_debug_mode("error")``.
- The documented usage end to end: DiffusersModel (random-weight architectures) on CUDA, an image
  verifier built without a device argument, bfs_best, dfs and local search.

Bit-for-bit claims rest on the kernels' arithmetic being the reference's, operation for operation
(csrc/coefficients.h; nvcc --fmad=false): per-sample float64 coefficients, then c0*x (+ c1*y) + c2*z
in the accumulation type. Where the reference reduces (the gradient norm of max_norm), the test
uses gradients whose squares add exactly in float64 in any order, so the summation order cannot
matter. Every test skips without a CUDA device; the kernel tests also skip when the CUDA kernels
are not built (the references then serve CUDA tensors: nothing to compare).
"""

from __future__ import annotations

import math

import pytest
import torch

import tts_fast as tts
from tts_fast import _philox, ops
from tts_fast import _reference as ref

from _ops_helpers import (
    X_DTYPES,
    assert_ancestors_equal,
    flow_tables,
    log_weights,
    require_compiled_ops,
    rng_tensor,
    tempering_rows,
    uniforms,
    vp_tables,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (GPU test)"),
]

DEV = "cuda"


@pytest.fixture
def cuda_kernels():
    if ops.backend(DEV) != "cuda":
        pytest.skip("the CUDA kernels are not built (tts_fast.ops.backend('cuda') is 'reference'): nothing to compare")


def _same(got: torch.Tensor, want: torch.Tensor, what: str = "") -> None:
    """Bit for bit (NaN equal to NaN), same dtype, shape and device."""
    assert got.dtype == want.dtype and got.shape == want.shape and got.device == want.device, what
    if not torch.equal(got, want) and not bool(((got == want) | (got.isnan() & want.isnan())).all()):
        diff = (got.double() - want.double()).abs()
        raise AssertionError(f"{what}: {int((got != want).sum())} of {got.numel()} elements differ, max |diff| {float(diff.max())}")


def _randn(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(DEV)


def _dyadic(shape, dtype, seed):
    """Values k/4, |k| <= 4: exact in every dtype, and their squares add exactly in float64 in any order."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-4, 5, shape, generator=g).to(torch.float64) / 4).to(dtype).to(DEV)


def _levels(b, n_levels, seed, *, upward: bool):
    g = torch.Generator().manual_seed(seed)
    a, c = torch.randint(0, n_levels, (b,), generator=g), torch.randint(0, n_levels, (b,), generator=g)
    lo, hi = torch.minimum(a, c), torch.maximum(a, c)
    return (lo.to(DEV), hi.to(DEV)) if upward else (hi.to(DEV), lo.to(DEV))


def _step_sizes(b, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    step = torch.rand(b, generator=g, dtype=torch.float64) * 0.1
    step[0] = 0.0
    return step.to(torch.float64 if dtype == torch.float64 else torch.float32).to(DEV)


def _kernel_normals(rng: torch.Tensor, numel: int) -> torch.Tensor:
    """The kernels' own float32 Philox normals for ``rng``: renoise of zeros from level (alpha 1,
    sigma 0) to level (alpha 1, sigma 1) computes 1 * 0 + 1 * z = z exactly."""
    alpha = torch.ones(2, dtype=torch.float64, device=DEV)
    sigma = torch.tensor([0.0, 1.0], dtype=torch.float64, device=DEV)
    lv0 = torch.zeros(1, dtype=torch.int64, device=DEV)
    return ops.renoise(torch.zeros(1, numel, device=DEV), lv0, lv0 + 1, alpha, sigma, rng=rng)[0]


def _reference_with_kernel_normals(monkeypatch, rng, numel):
    """Make the reference draw the kernels' own normals for ``rng`` (its arithmetic is then compared
    alone; test_philox_normals_bit_for_bit compares the normals themselves)."""
    z = _kernel_normals(rng, numel)

    def normals(r, n, device=None):
        assert n == numel and torch.equal(r.to(rng.device), rng)
        return z.to(device)

    monkeypatch.setattr(_philox, "philox_normal", normals)


# Shapes: (8, 4, 64, 64) SD latents, 128 tiles of 1024 elements, inner 16384; (3, 40000) inner > 16384
# (3 partial norms per sample), a partial last tile; (2, 4, 256, 256) 16 partial norms; (5, 33, 77)
# an odd numel and tiles straddling samples; (4096, 3) tiny inner (many samples per tile).
SHAPES = [(8, 4, 64, 64), (3, 40000), (2, 4, 256, 256), (5, 33, 77), (4096, 3)]
SOURCES = ["noise", "rng"]


def _source(source, shape, dtype, monkeypatch, seed):
    if source == "noise":
        return dict(noise=_randn(shape, dtype, seed))
    rng = rng_tensor(seed * 7919 + 3, 2**33 + seed, DEV)
    _reference_with_kernel_normals(monkeypatch, rng, math.prod(shape))
    return dict(rng=rng)


@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("tables", [vp_tables, flow_tables], ids=["vp", "flow"])
def test_renoise_bitwise(cuda_kernels, monkeypatch, dtype, shape, source, tables):
    alpha, sigma = tables(1000, DEV)
    x = _randn(shape, dtype, 1)
    lf, lt = _levels(shape[0], 1000, 2, upward=True)
    src = _source(source, shape, dtype, monkeypatch, 3)
    _same(ops.renoise(x, lf, lt, alpha, sigma, **src), ref.renoise(x, lf, lt, alpha, sigma, **src), "renoise")


@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("eta,source", [(1.0, "noise"), (1.0, "rng"), (0.5, "rng"), (0.0, "none")])
def test_ddim_step_bitwise(cuda_kernels, monkeypatch, dtype, shape, eta, source):
    alpha, sigma = vp_tables(1000, DEV)
    x, x0 = _randn(shape, dtype, 4), _randn(shape, dtype, 5)
    lf, lt = _levels(shape[0], 1000, 6, upward=False)
    src = {} if source == "none" else _source(source, shape, dtype, monkeypatch, 7)
    got = ops.ddim_step(x, x0, lf, lt, alpha, sigma, eta=eta, **src)
    _same(got, ref.ddim_step(x, x0, lf, lt, alpha, sigma, eta, **src), "ddim_step")


@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("clip", ["none", "active", "inactive"])
def test_langevin_step_bitwise(cuda_kernels, monkeypatch, dtype, shape, source, clip):
    x, g = _randn(shape, dtype, 8), _dyadic(shape, dtype, 9)
    step = _step_sizes(shape[0], dtype, 10)
    norms = g.double().reshape(shape[0], -1).norm(dim=1)
    max_norm = {"none": None, "active": 0.5 * float(norms.min()), "inactive": 2.0 * float(norms.max()) + 1.0}[clip]
    if max_norm == 0.0:
        max_norm = 1e-3  # an all-zero gradient row: any positive max_norm
    src = _source(source, shape, dtype, monkeypatch, 11)
    got = ops.langevin_step(x, g, step, max_norm=max_norm, **src)
    _same(got, ref.langevin_step(x, g, step, max_norm=max_norm, **src), f"langevin_step max_norm={max_norm}")


def _in_layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    """``t``'s values in an unusual layout: a view one element past an aligned start (contiguous
    but misaligned for vector loads and stores), or channels-last."""
    if kind == "misaligned":
        base = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
        view = base[1:].view(t.shape).copy_(t)
        assert view.is_contiguous() and view.data_ptr() % 16 != 0
        return view
    view = t.contiguous(memory_format=torch.channels_last)
    assert not view.is_contiguous()
    return view


@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["misaligned", "channels_last"])
@pytest.mark.parametrize("source", SOURCES)
def test_elementwise_layouts_bitwise(cuda_kernels, monkeypatch, dtype, layout, source):
    shape = (6, 4, 48, 72)  # inner 13824: tiles straddle samples
    alpha, sigma = vp_tables(1000, DEV)
    x, y = _in_layout(_randn(shape, dtype, 12), layout), _in_layout(_randn(shape, dtype, 13), layout)
    g = _in_layout(_dyadic(shape, dtype, 14), layout)
    if source == "noise":
        src = dict(noise=_in_layout(_randn(shape, dtype, 15), layout))
    else:
        src = _source("rng", shape, dtype, monkeypatch, 15)
    up_f, up_t = _levels(shape[0], 1000, 16, upward=True)
    step = _step_sizes(shape[0], dtype, 17)
    cases = [
        ("renoise", ops.renoise(x, up_f, up_t, alpha, sigma, **src), ref.renoise(x, up_f, up_t, alpha, sigma, **src)),
        ("ddim_step", ops.ddim_step(x, y, up_t, up_f, alpha, sigma, eta=0.7, **src),
         ref.ddim_step(x, y, up_t, up_f, alpha, sigma, 0.7, **src)),
        ("langevin_step", ops.langevin_step(x, g, step, max_norm=1.0, **src), ref.langevin_step(x, g, step, max_norm=1.0, **src)),
    ]
    for name, got, want in cases:
        _same(got, want, f"{name} ({layout})")
        assert got.stride() == torch.empty_like(x).stride(), f"{name}: the output keeps the input's layout"


def test_philox_normals_bit_for_bit(cuda_kernels):
    """The kernels' normals equal _philox.philox_normal evaluated on the GPU (the same float32
    log/sqrt/cos/sin as CUDA's math library), bit for bit, over several tiles and an odd count."""
    n = 4 * 100_000 + 3
    for seed, offset in [(0, 0), (2**63 - 1, 5), (-(2**40), 2**50), (123456789, 2**32 - 1)]:
        rng = rng_tensor(seed, offset, DEV)
        z = _kernel_normals(rng, n)
        want = _philox.philox_normal(rng, n, device=DEV)
        assert want.device.type == "cuda" and want.dtype == torch.float32
        _same(z, want, f"Philox normals (seed {seed}, offset {offset})")
        # and within float rounding of the CPU's evaluation of the same words
        torch.testing.assert_close(z.cpu(), _philox.philox_normal(rng_tensor(seed, offset), n), atol=1e-5, rtol=1e-5)


def test_philox_uniforms_drive_resampling_bit_for_bit(cuda_kernels):
    """The resampling kernel's in-kernel uniforms (rng mode) equal _philox.philox_uniform's:
    resampling with rng equals resampling with those uniforms passed as a tensor."""
    lw = log_weights(64, 1000, scale=2.0, seed=21).to(DEV)
    rng = rng_tensor(2**40 + 9, 77, DEV)
    u = _philox.philox_uniform(rng, lw.numel(), device=DEV).view(lw.shape)
    for scheme in ref.SCHEMES:
        _same(ops.resample(lw, rng=rng, scheme=scheme), ops.resample(lw, u, scheme=scheme), scheme)


# ------------------------------------------------------------------------------------------------
# CUDA graphs


def _graph_inputs():
    x = _randn((6, 20000), torch.float32, 30)  # inner > 16384: two partial norms per sample
    return dict(
        lw64=log_weights(64, 100, scale=2.0, special=0.05, seed=31).to(DEV),
        lw32=log_weights(64, 100, scale=2.0, special=0.05, seed=32, dtype=torch.float32).to(DEV),
        u64=uniforms(64, 100, seed=33).to(DEV),
        u32=uniforms(64, 100, seed=34, dtype=torch.float32).to(DEV),
        x=x, xh=x.half(), y=_randn((6, 20000), torch.float32, 35), z=_randn((6, 20000), torch.float32, 36),
        tables=vp_tables(1000, DEV), levels=_levels(6, 1000, 37, upward=True), step=_step_sizes(6, torch.float32, 38),
        tempering=tempering_rows(100, 39, DEV),
    )


def _every_op(ph: ops.Philox, t: dict) -> list:
    """Every op in every mode; the random ones draw from the device-side counter ``ph``."""
    out = []
    for scheme in ref.SCHEMES:
        out.append(ops.resample(t["lw64"], t["u64"], scheme=scheme))
        out.append(ops.resample(t["lw32"], t["u32"], scheme=scheme))
        out.append(ops.resample(t["lw64"], rng=ph.take(t["lw64"].numel()), scheme=scheme))
    x, xh, y, z = t["x"], t["xh"], t["y"], t["z"]
    (alpha, sigma), (lo, hi), step, n = t["tables"], t["levels"], t["step"], t["x"].numel()
    out += [
        ops.renoise(x, lo, hi, alpha, sigma, noise=z),
        ops.renoise(x, lo, hi, alpha, sigma, rng=ph.take(n)),
        ops.renoise(xh, lo, hi, alpha, sigma, rng=ph.take(n)),
        ops.ddim_step(x, y, hi, lo, alpha, sigma, eta=1.0, noise=z),
        ops.ddim_step(x, y, hi, lo, alpha, sigma, eta=0.5, rng=ph.take(n)),
        ops.ddim_step(x, y, hi, lo, alpha, sigma, eta=0.0),
        ops.langevin_step(x, y, step, noise=z),
        ops.langevin_step(x, y, step, rng=ph.take(n)),
        ops.langevin_step(x, y, step, noise=z, max_norm=1.0),
        ops.langevin_step(xh, y.half(), step, rng=ph.take(n), max_norm=1.0),
        ops.ess(t["lw64"]),
        ops.ess(t["lw32"]),
        ops.normalize_log_weights(t["lw64"]),
        ops.normalize_log_weights(t["lw32"]),
        ops.adaptive_increment(*t["tempering"]),
    ]
    return out


RANDOM_OUTPUTS = (2, 3 * len(ref.SCHEMES) + 1)  # indices of two outputs drawn from the counter


def test_cuda_graph_every_op_with_philox_take(cuda_kernels):
    """One graph holds every op in every mode and the counter's advances (Philox.take): each replay
    draws fresh numbers and equals eager calls from the counter state it started from."""
    t = _graph_inputs()
    ph = ops.Philox(2024, device=DEV)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        _every_op(ph, t)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _every_op(ph, t)
    previous = None
    for _ in range(3):
        start = ph.state.clone()
        graph.replay()
        got = [c.clone() for c in captured]
        eager = ops.Philox(2024, device=DEV)
        eager.state.copy_(start)
        want = _every_op(eager, t)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            _same(a, b, f"output {i} of the replay")
        assert torch.equal(ph.state, eager.state), "the replay advances the counter as eager takes do"
        if previous is not None:
            for i in RANDOM_OUTPUTS:
                assert not torch.equal(got[i], previous[i]), f"output {i}: a replay must draw fresh numbers"
        previous = got


def _refused_calls():
    x = _randn((4, 3000), torch.float32, 40)
    (alpha, sigma), (lo, hi) = vp_tables(100, DEV), _levels(4, 100, 41, upward=True)
    lw = log_weights(8, 50, seed=42).to(DEV)
    step = _step_sizes(4, torch.float32, 43)
    return {
        "resample": lambda r: ops.resample(lw, rng=r, scheme="ssp"),
        "renoise": lambda r: ops.renoise(x, lo, hi, alpha, sigma, rng=r),
        "ddim_step": lambda r: ops.ddim_step(x, x, hi, lo, alpha, sigma, eta=1.0, rng=r),
        "langevin_step": lambda r: ops.langevin_step(x, x, step, rng=r, max_norm=1.0),
    }


@pytest.mark.parametrize("op", ["resample", "renoise", "ddim_step", "langevin_step"])
def test_cpu_rng_is_refused_during_capture(cuda_kernels, op):
    """A CPU (seed, offset) would be frozen into the graph (every replay the same numbers): refused
    while capturing; accepted, and equal to the same rng on the device, outside a capture."""
    call = _refused_calls()[op]
    cpu_rng = torch.tensor([5, 17], dtype=torch.int64)
    call(cpu_rng.to(DEV))  # warm-up
    torch.cuda.synchronize()
    scratch = torch.zeros(16, device=DEV)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(ValueError, match="frozen into a CUDA graph"):
        with torch.cuda.graph(graph):
            scratch.add_(1.0)  # the graph is not empty when the refused call raises
            call(cpu_rng)
    _same(call(cpu_rng), call(cpu_rng.to(DEV)), f"{op}: CPU rng vs the same rng on the device")


# ------------------------------------------------------------------------------------------------
# the search loop on a side stream, any host sync an error


class _ErrorWindow:
    """torch.cuda.set_sync_debug_mode('error') over tts_fast's own code from the end of the first
    model call to the start of the last one; off inside the user's model and verifier (they may
    synchronise). ``total`` model calls are expected (counted by a warm-up run)."""

    def __init__(self, total=None):
        self.total, self.calls = total, 0

    def after_model_call(self):
        self.calls += 1
        armed = self.total is not None and self.calls < self.total
        torch.cuda.set_sync_debug_mode("error" if armed else 0)


class _WindowModel:
    def __init__(self, inner, window):
        self.inner, self.window = inner, window

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        torch.cuda.set_sync_debug_mode(0)
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.window.after_model_call()


class _QuietVerifier(tts.Verifier):
    def __init__(self, inner):
        self.inner, self.differentiable = inner, inner.differentiable

    def forward(self, x0, cond):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return self.inner.forward(x0, cond)
        finally:
            torch.cuda.set_sync_debug_mode(mode)


@pytest.mark.parametrize("method,opts", [("bfs_best", {}), ("fk", {}), ("das", {}),
                                         ("bfs", dict(local_steps=2, rho=0.5, mu=0.1, sigma=0.1))])
def test_search_loop_on_a_side_stream_never_synchronises(cuda_kernels, monkeypatch, method, opts):
    """tts.search on a non-default stream with sync debug mode 'error' between the first and the
    last model call: any synchronising CUDA call in the loop raises. The deferred value checks (one
    read at the first scoring level, one after the loop) are the designed exceptions. The result
    equals the same search on the default stream."""
    from tts_fast._device_checks import Collector

    check = Collector.check

    def quiet_check(self):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return check(self)
        finally:
            torch.cuda.set_sync_debug_mode(mode)

    monkeypatch.setattr(Collector, "check", quiet_check)
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05], dtype=torch.float32, device=DEV)
    verifier = _QuietVerifier(tts.verifiers.GaussianReward([2.0, 0.0], 1.0))
    kw = dict(n_particles=8, num_steps=20, batch_size=4, seed=3, progress=False, **opts)
    counting = _ErrorWindow()
    default = tts.search(_WindowModel(model, counting), verifier, method, **kw)  # warm-up; counts the model calls
    assert counting.calls >= 2
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    try:
        with torch.cuda.stream(stream):
            side = tts.search(_WindowModel(model, _ErrorWindow(counting.calls)), verifier, method, **kw)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.current_stream().wait_stream(stream)
    assert side.samples.is_cuda
    _same(side.samples, default.samples, "samples (side stream vs default stream)")
    _same(side.rewards, default.rewards, "rewards (side stream vs default stream)")
    assert side.nfe == default.nfe


# ------------------------------------------------------------------------------------------------
# the documented usage, end to end


@pytest.mark.parametrize("backend", ["eager", "cudagraphs"])
def test_documented_usage_end_to_end(tmp_path, backend):
    """README's text-to-image usage on CUDA: a DiffusersModel of the SD1.5 architecture (random
    weights, tiny), CLIPScore built without device= (it follows the images to the GPU), then
    bfs_best, dfs and local search."""
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from _tiny_diffusers import tiny_clip

    from tts_fast.models import architectures

    prompts = ["a red cat", "a blue dog"]
    model = architectures.random_model("sd15", len(prompts), smoke=True, device=DEV, guidance_scale=7.5, backend=backend)
    verifier = tts.verifiers.CLIPScore(prompts, tiny_clip(str(tmp_path / "clip")), local_files_only=True)
    steps = 6
    runs = [
        ("bfs_best", dict(n_particles=4)),
        ("dfs", dict(n_particles=4, budget=len(prompts) * 4 * steps * 2)),
        ("dfs", dict(n_particles=4, budget=len(prompts) * 4 * steps * 2, slots="fixed", sync_every=3)),
        ("local", dict(n_particles=2, rho=0.01)),
    ]
    for method, kw in runs:
        r = tts.search(model, verifier, method, num_steps=steps, seed=1, progress=False, **kw)
        what = f"{method} {kw}"
        assert r.samples.is_cuda and r.samples.shape[0] == len(prompts), what
        assert r.rewards.shape == (len(prompts),) and bool(torch.isfinite(r.rewards).all()), what
        assert verifier.device.type == "cuda", "the verifier moved to the images' device"
        if "budget" in kw:
            assert r.nfe.model <= kw["budget"], what
        if method == "local":
            assert r.nfe.model_grad == r.nfe.model > 0, what


# ------------------------------------------------------------------------------------------------
# resampling at scale against the sequential CPU float64 oracle


def _cpu_oracle(lw, u, rng, scheme):
    """The sequential float64 CPU implementation on CPU copies: the Python reference (the spec)
    where it is quick; else the C++ CPU kernel, which tests/test_ops.py holds to it bit for bit
    (the reference's SSP sweep is a Python loop over N: ~16 s per row block at N = 65 536)."""
    lw, u, rng = lw.cpu(), None if u is None else u.cpu(), None if rng is None else rng.cpu()
    if lw.numel() <= 1 << 20 and (scheme != "ssp" or lw.shape[1] <= 4096):
        return ref.resample(lw, u, rng, scheme)
    require_compiled_ops()
    return ops.resample(lw, u, rng=rng, scheme=scheme)


def _tie_weights(b, n, dtype, seed):
    """log-weights 0 or -inf: equal weights exactly (exp(0) = 1 on every device), a quarter zero,
    so cdf entries are integers and grid targets land exactly on them."""
    g = torch.Generator().manual_seed(seed)
    lw = torch.where(torch.rand(b, n, generator=g) < 0.25, -math.inf, 0.0).to(torch.float64)
    if b >= 2:
        lw[1] = -math.inf  # an all-zero-weight row resamples uniformly
    return lw.to(dtype)


# (B, N, source); each case runs every scheme.
SCALE_CASES = [(1024, 64, "uniforms"), (1024, 64, "rng"), (1024, 1000, "uniforms"), (16, 65536, "uniforms"),
               (4, 65536, "rng"), (1024, 65536, "rng")]


@pytest.mark.parametrize("b,n,source", SCALE_CASES, ids=lambda v: str(v))
def test_resample_at_scale_matches_the_cpu_oracle(cuda_kernels, b, n, source):
    lw = log_weights(b, n, scale=2.0, special=0.02, seed=n + b).to(DEV)
    u, rng = (uniforms(b, n, seed=n).to(DEV), None) if source == "uniforms" else (None, rng_tensor(n * 31 + b, 5, DEV))
    for scheme in ref.SCHEMES:
        got = ops.resample(lw, u, rng=rng, scheme=scheme)
        assert bool(((got >= 0) & (got < n)).all()), scheme
        # CUDA's exp() may differ from the CPU's in the last bit, which moves an index only where a
        # target falls within an ulp of a cdf entry: at most 0.1% of entries (assert_ancestors_equal).
        assert_ancestors_equal(got, _cpu_oracle(lw, u, rng, scheme), DEV)


@pytest.mark.parametrize("b,n", [(512, 2048), (8, 65536), (1024, 7)])
@pytest.mark.parametrize("lw_dtype", [torch.float32, torch.float64], ids=str)
def test_resample_ties_bit_for_bit(cuda_kernels, b, n, lw_dtype):
    """Equal weights (exactly representable), zero-weight particles and uniforms on a grid of
    eighths: targets on cdf entries; every index equals the CPU oracle's, and no zero-weight
    particle is ever picked (outside all-zero rows)."""
    lw = _tie_weights(b, n, lw_dtype, seed=b + n).to(DEV)
    u = uniforms(b, n, kind="grid", seed=n).to(DEV)
    zero = torch.isinf(lw.cpu())
    dead_row = zero.all(dim=1, keepdim=True)
    for scheme in ref.SCHEMES:
        got = ops.resample(lw, u, scheme=scheme)
        _same(got.cpu(), _cpu_oracle(lw, u, None, scheme), f"{scheme} ancestors")
        picked_zero = zero.gather(1, got.cpu()) & ~dead_row
        assert not bool(picked_zero.any()), f"{scheme}: a zero-weight particle was picked"


@pytest.mark.parametrize("n", [1, 8, 33, 257, 4096])
def test_adaptive_increment_on_the_device(cuda_kernels, n):
    """Every kind of row (caps, flat and dead rows, unreachable targets) at B = 12 and a batch of
    4 096 random rows: equal to the CPU op up to the last bits of CUDA's exp/log (the bisection then
    stops within its 1.5e-13 resolution of the same crossing), rows on the cap exactly on it."""
    rows = [tempering_rows(n, 7 + n)]
    g = torch.Generator().manual_seed(n)
    if n <= 33:
        b = 4096
        alive = torch.rand(b, n, generator=g) > 0.2
        log_w = torch.where(alive, torch.randn(b, n, generator=g, dtype=torch.float64), torch.tensor(-math.inf, dtype=torch.float64))
        key = torch.randn(b, n, generator=g, dtype=torch.float64)
        rows.append((log_w, torch.zeros_like(key), key, alive, alive.sum(1).double() * 0.5,
                     torch.full((b,), math.inf, dtype=torch.float64)))
    for args in rows:
        want = ops.adaptive_increment(*args)
        got = ops.adaptive_increment(*(t.to(DEV) for t in args)).cpu()
        assert torch.equal(got == 0, want == 0)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        on_cap = want == args[5]
        assert torch.equal(got[on_cap], want[on_cap])
    bad = [t.clone() for t in rows[0]]
    bad[2][0, 0] = math.nan
    assert torch.isnan(ops.adaptive_increment(*(t.to(DEV) for t in bad))[0]).item()
