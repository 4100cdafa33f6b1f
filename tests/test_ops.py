"""The compiled ops against the pure-PyTorch reference (tts_fast._reference, the spec).

resample: ancestors bit for bit given the same uniforms (CPU; CUDA up to exp()'s last bit), over a
seeded sweep and hypothesis-generated inputs (B = 1, N = 1, N not a power of two, N up to ~1000,
+-1e3 spreads, NaN / -inf rows, +inf entries, float32/float64, all schemes, uniforms and rng).
Elementwise ops: within rounding, every dtype, odd sizes, noise tensors and in-kernel Philox.
Bad input: errors name the argument.

Each comparison starts with kernel_under_test: without tts_fast._C the ops *are* the reference, so
the test fails (it could not fail otherwise), unless TTS_FAST_BACKEND=reference asks for a
reference-only run, where it is skipped.
"""

from __future__ import annotations


import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tts_fast import _philox, ops
from tts_fast import _reference as ref

from _ops_helpers import (
    DEVICES,
    X_DTYPES,
    assert_ancestors_equal,
    float_tol,
    flow_tables,
    kernel_under_test,
    log_weights,
    ref_call,
    rng_tensor,
    skip_unless_device,
    uniforms,
    vp_tables,
)

SCHEMES = ref.SCHEMES

# ------------------------------------------------------------------------------------------------
# resample

# (B, N, scale, special fraction, uniform kind)
RESAMPLE_CASES = [
    (1, 1, 1.0, 0.0, "random"),
    (3, 1, 1.0, 0.3, "random"),
    (1, 7, 1.0, 0.0, "random"),
    (16, 13, 1.0, 0.2, "random"),
    (9, 64, 1e3, 0.1, "random"),
    (8, 37, 1e-3, 0.0, "grid"),
    (5, 10, 0.0, 0.0, "grid"),  # equal weights: targets land exactly on cdf entries
    (6, 33, 3.0, 0.1, "zero"),
    (6, 33, 3.0, 0.1, "high"),
    (4, 1000, 5.0, 0.05, "random"),
]
DTYPE_PAIRS = [(torch.float64, torch.float64), (torch.float32, torch.float32), (torch.float32, torch.float64)]


def _resample_inputs(case, lw_dtype, u_dtype, device, seed=0):
    b, n, scale, special, kind = case
    lw = log_weights(b, n, scale=scale, special=special, dtype=lw_dtype, seed=seed).to(device)
    u = uniforms(b, n, kind=kind, dtype=u_dtype, seed=seed + 1).to(device)
    return lw, u


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("case", RESAMPLE_CASES, ids=lambda c: f"B{c[0]}N{c[1]}s{c[2]:g}p{c[3]:g}{c[4]}")
@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=lambda d: f"{str(d[0])[6:]}-{str(d[1])[6:]}")
def test_resample_matches_reference(device, scheme, case, dtypes):
    kernel_under_test(device, cross_device=True)
    lw, u = _resample_inputs(case, *dtypes, device)
    got = ops.resample(lw, u, scheme=scheme)
    assert got.device == lw.device
    assert_ancestors_equal(got, ref_call(ref.resample, lw, u, None, scheme), device, ref.resample(lw, u, None, scheme))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("rng_device", ["cpu", "same"])
def test_resample_rng_matches_reference(device, scheme, rng_device):
    kernel_under_test(device, cross_device=True)
    lw = log_weights(12, 29, scale=2.0, special=0.1, seed=3).to(device)
    rng = rng_tensor(2**40 + 17, 123, device if rng_device == "same" else "cpu")
    got = ops.resample(lw, rng=rng, scheme=scheme)
    assert_ancestors_equal(got, ref_call(ref.resample, lw, None, rng, scheme), device)
    # Same rng, same answer; another offset or seed, other uniforms.
    assert torch.equal(got, ops.resample(lw, rng=rng, scheme=scheme))
    for other in (rng_tensor(2**40 + 17, 124, rng.device), rng_tensor(2**40 + 18, 123, rng.device)):
        assert not torch.equal(got, ops.resample(lw, rng=other, scheme=scheme))


@pytest.mark.parametrize("device", DEVICES)
def test_resample_empty_batch(device):
    skip_unless_device(device)
    for scheme in SCHEMES:
        lw = torch.empty(0, 5, dtype=torch.float64, device=device)
        out = ops.resample(lw, torch.empty(0, 5, dtype=torch.float64, device=device), scheme=scheme)
        assert out.shape == (0, 5) and out.dtype == torch.int64 and out.device == lw.device


@pytest.mark.parametrize("device", DEVICES)
def test_resample_noncontiguous(device):
    kernel_under_test(device, cross_device=True)
    lw = log_weights(9, 20, seed=5).to(device).t()  # [20, 9] non-contiguous
    u = uniforms(9, 20, seed=6).to(device).t()
    assert not lw.is_contiguous() and not u.is_contiguous()
    for scheme in SCHEMES:
        assert_ancestors_equal(ops.resample(lw, u, scheme=scheme), ref_call(ref.resample, lw, u, None, scheme), device,
                               ref.resample(lw, u, None, scheme))


_hyp = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@st.composite
def resample_problems(draw):
    n = draw(st.one_of(st.integers(1, 9), st.sampled_from([16, 31, 64, 100, 127, 257]), st.integers(10, 1000)))
    b = draw(st.integers(1, 4 if n > 300 else 12))
    scale = draw(st.sampled_from([0.0, 1e-3, 1.0, 30.0, 1e3]))
    special = draw(st.sampled_from([0.0, 0.0, 0.05, 0.5, 1.0]))
    return dict(
        b=b,
        n=n,
        scale=scale,
        special=special,
        lw_dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        u_dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        ukind=draw(st.sampled_from(["random", "random", "grid", "zero", "high"])),
        scheme=draw(st.sampled_from(SCHEMES)),
        use_rng=draw(st.booleans()),
        seed=draw(st.integers(0, 2**62)),
        offset=draw(st.integers(0, 2**40)),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_resample_hypothesis(device):
    kernel_under_test(device, cross_device=True)  # outside @given: a failure here is not a counterexample
    _resample_hypothesis(device)


@_hyp
@given(p=resample_problems())
def _resample_hypothesis(device, p):
    lw = log_weights(p["b"], p["n"], scale=p["scale"], special=p["special"], dtype=p["lw_dtype"],
                     seed=p["seed"] % 2**31).to(device)
    if p["use_rng"]:
        u, rng = None, rng_tensor(p["seed"], p["offset"])
    else:
        u, rng = uniforms(p["b"], p["n"], kind=p["ukind"], dtype=p["u_dtype"], seed=p["seed"] % 2**31).to(device), None
    got = ops.resample(lw, u, rng=rng, scheme=p["scheme"])
    want = ref_call(ref.resample, lw, u, rng, p["scheme"])
    assert_ancestors_equal(got, want, device, None if rng is not None else ref.resample(lw, u, None, p["scheme"]))
    assert bool(((got >= 0) & (got < p["n"])).all())


# ------------------------------------------------------------------------------------------------
# elementwise ops

SHAPES = [(1,), (3, 5), (4, 3, 7), (2, 4, 8, 8), (5, 1)]  # several numels that are not multiples of 4


def _levels(b, n_levels, device, seed, *, upward: bool):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, n_levels, (b,), generator=g)
    c = torch.randint(0, n_levels, (b,), generator=g)
    lo, hi = torch.minimum(a, c), torch.maximum(a, c)
    return (lo, hi) if upward else (hi, lo)


def _x(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", ["noise", "rng"])
@pytest.mark.parametrize("tables", [vp_tables, flow_tables], ids=["vp", "flow"])
def test_renoise_matches_reference(device, dtype, shape, source, tables):
    kernel_under_test(device)
    alpha, sigma = tables(40, device)
    x = _x(shape, dtype, device, 1)
    lf, lt = (t.to(device) for t in _levels(shape[0], 40, device, 2, upward=True))
    kw = dict(noise=_x(shape, dtype, device, 3)) if source == "noise" else dict(rng=rng_tensor(7, 11, device))
    got = ops.renoise(x, lf, lt, alpha, sigma, **kw)
    want = ref.renoise(x, lf, lt, alpha, sigma, **kw)
    assert got.dtype == dtype and got.shape == x.shape and got.device == x.device
    torch.testing.assert_close(got, want, **float_tol(dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES[1:4], ids=str)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("source", ["noise", "rng", "none"])
def test_ddim_step_matches_reference(device, dtype, shape, eta, source):
    kernel_under_test(device)
    if (source == "none") != (eta == 0):
        pytest.skip("a random source is needed when eta > 0 and refused when eta = 0")
    alpha, sigma = vp_tables(30, device)
    x, x0 = _x(shape, dtype, device, 4), _x(shape, dtype, device, 5)
    lf, lt = (t.to(device) for t in _levels(shape[0], 30, device, 6, upward=False))
    kw = {"noise": dict(noise=_x(shape, dtype, device, 7)), "rng": dict(rng=rng_tensor(3, 0, device)), "none": {}}[source]
    got = ops.ddim_step(x, x0, lf, lt, alpha, sigma, eta=eta, **kw)
    want = ref.ddim_step(x, x0, lf, lt, alpha, sigma, eta, **kw)
    torch.testing.assert_close(got, want, **float_tol(dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("max_norm", [None, 0.5, 1e6])
@pytest.mark.parametrize("source", ["noise", "rng"])
def test_langevin_step_matches_reference(device, dtype, shape, max_norm, source):
    kernel_under_test(device)
    x, g = _x(shape, dtype, device, 8), _x(shape, dtype, device, 9)
    step = (torch.rand(shape[0], generator=torch.Generator().manual_seed(10), dtype=torch.float64) * 0.1)
    step[0] = 0.0
    step = step.to(torch.float32 if dtype != torch.float64 else torch.float64).to(device)
    kw = dict(noise=_x(shape, dtype, device, 11)) if source == "noise" else dict(rng=rng_tensor(-5, 2**33, device))
    got = ops.langevin_step(x, g, step, max_norm=max_norm, **kw)
    want = ref.langevin_step(x, g, step, max_norm=max_norm, **kw)
    torch.testing.assert_close(got, want, **float_tol(dtype))


@pytest.mark.parametrize("device", DEVICES)
def test_elementwise_noncontiguous_and_empty(device):
    kernel_under_test(device)
    alpha, sigma = vp_tables(20, device)
    x = _x((6, 5, 3), torch.float32, device, 12).transpose(1, 2)  # non-contiguous [6, 3, 5]
    lf, lt = torch.arange(6, device=device), torch.arange(6, device=device) + 5
    rng = rng_tensor(1, 2, device)
    got = ops.renoise(x, lf, lt, alpha, sigma, rng=rng)
    torch.testing.assert_close(got, ref.renoise(x, lf, lt, alpha, sigma, rng=rng), **float_tol(torch.float32))
    assert got.stride() == torch.empty_like(x).stride()  # the fake kernel's layout
    e = torch.empty(0, 4, device=device)
    z = torch.empty(0, dtype=torch.int64, device=device)
    assert ops.renoise(e, z, z, alpha, sigma, rng=rng).shape == (0, 4)
    assert ops.langevin_step(e, e, torch.empty(0, device=device), rng=rng, max_norm=1.0).shape == (0, 4)


@pytest.mark.parametrize("device", DEVICES)
def test_philox_normals_match_reference(device):
    """renoise of zeros from sigma 0 to sigma 1 with alpha 1 returns exactly the normals z, which
    equal _philox.philox_normal's (bit for bit on the CPU)."""
    kernel_under_test(device, cross_device=True)
    alpha = torch.ones(2, dtype=torch.float64, device=device)
    sigma = torch.tensor([0.0, 1.0], dtype=torch.float64, device=device)
    n = 4 * 1000 + 3
    x = torch.zeros(1, n, device=device)
    lv0, lv1 = torch.zeros(1, dtype=torch.int64, device=device), torch.ones(1, dtype=torch.int64, device=device)
    for seed, offset in [(0, 0), (2**63 - 1, 5), (-(2**40), 2**50)]:
        z = ops.renoise(x, lv0, lv1, alpha, sigma, rng=rng_tensor(seed, offset, device))[0]
        want = _philox.philox_normal(rng_tensor(seed, offset), n)
        if device == "cpu":  # same words, same ATen log/sqrt/cos/sin kernels: bit for bit
            assert torch.equal(z, want)
        else:  # CUDA's logf/sqrtf/sincosf may differ from the CPU's in the last bits
            torch.testing.assert_close(z.cpu(), want, atol=1e-5, rtol=1e-5)


def test_philox_known_answer():
    """Random123's known-answer vector for Philox4x32-10 (counter 0, key 0)."""
    words = _philox.philox_words(0, 0, 1)[0].tolist()
    assert words == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


# ------------------------------------------------------------------------------------------------
# log-weight reductions


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape,scale,special", [((1, 1), 1.0, 0.0), ((7, 13), 1.0, 0.2), ((16, 100), 1e3, 0.05),
                                                 ((3, 1000), 30.0, 0.0)])
def test_weights_ops_match_reference(device, dtype, shape, scale, special):
    kernel_under_test(device)
    lw = log_weights(*shape, scale=scale, special=special, dtype=dtype, seed=shape[1]).to(device)
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-5)
    e = ops.ess(lw)
    assert e.shape == (shape[0],) and e.dtype == dtype
    torch.testing.assert_close(e, ref.ess(lw), **tol)
    nl = ops.normalize_log_weights(lw)
    torch.testing.assert_close(nl, ref.normalize_log_weights(lw), **tol)
    assert bool(((e >= 1 - 1e-6) & (e <= shape[1] * (1 + 1e-6))).all())


@pytest.mark.parametrize("device", DEVICES)
def test_weights_ops_empty_and_noncontiguous(device):
    kernel_under_test(device)
    lw = log_weights(10, 6, seed=1).to(device).t()  # [6, 10] non-contiguous
    torch.testing.assert_close(ops.normalize_log_weights(lw), ref.normalize_log_weights(lw))
    assert ops.normalize_log_weights(lw).stride() == torch.empty_like(lw).stride()
    torch.testing.assert_close(ops.ess(lw), ref.ess(lw))
    assert ops.ess(torch.empty(0, 3, device=device)).shape == (0,)


# ------------------------------------------------------------------------------------------------
# bad input: every error names the argument


def _bad_cases(device):
    """(argument name, op name, arguments in schema order)."""
    d = device
    lw = torch.zeros(2, 3, device=d)
    u = torch.rand(2, 3, device=d)
    rng = rng_tensor(0, 0)
    alpha, sigma = vp_tables(10, d)
    x = torch.zeros(2, 4, device=d)
    lv = torch.zeros(2, dtype=torch.int64, device=d)
    step = torch.ones(2, device=d)
    cases = [
        ("log_weights", "resample", (lw.long(), u, None, "systematic")),
        ("log_weights", "resample", (lw[0], u[0], None, "systematic")),
        ("log_weights", "resample", (torch.zeros(2, 0, device=d), torch.zeros(2, 0, device=d), None, "ssp")),
        ("scheme", "resample", (lw, u, None, "bogus")),
        ("uniforms", "resample", (lw, u[:, :2], None, "systematic")),
        ("uniforms", "resample", (lw, u.half(), None, "systematic")),
        ("rng", "resample", (lw, u, rng, "systematic")),
        ("uniforms", "resample", (lw, None, None, "systematic")),
        ("rng", "resample", (lw, None, torch.zeros(3, dtype=torch.int64), "systematic")),
        ("rng", "resample", (lw, None, torch.zeros(2), "systematic")),
        ("x", "renoise", (x.long(), lv, lv, alpha, sigma, None, rng)),
        ("x", "renoise", (torch.tensor(1.0, device=d), lv, lv, alpha, sigma, None, rng)),
        ("level_from", "renoise", (x, lv.int(), lv, alpha, sigma, None, rng)),
        ("level_to", "renoise", (x, lv, lv[:1], alpha, sigma, None, rng)),
        ("alpha", "renoise", (x, lv, lv, alpha.float(), sigma, None, rng)),
        ("sigma", "renoise", (x, lv, lv, alpha, sigma[:3], None, rng)),
        ("noise", "renoise", (x, lv, lv, alpha, sigma, x[:1], None)),
        ("noise", "renoise", (x, lv, lv, alpha, sigma, None, None)),
        ("x0_hat", "ddim_step", (x, x.double(), lv, lv, alpha, sigma, 0.0, None, None)),
        ("eta", "ddim_step", (x, x, lv, lv, alpha, sigma, 1.5, None, rng)),
        ("eta", "ddim_step", (x, x, lv, lv, alpha, sigma, -0.1, None, rng)),
        ("noise", "ddim_step", (x, x, lv, lv, alpha, sigma, 0.5, None, None)),
        ("grad", "langevin_step", (x, x[:, :2], step, None, rng, None)),
        ("step_size", "langevin_step", (x, x, step[:1], None, rng, None)),
        ("step_size", "langevin_step", (x, x, step.long(), None, rng, None)),
        ("max_norm", "langevin_step", (x, x, step, None, rng, 0.0)),
        ("noise", "langevin_step", (x, x, step, None, None, None)),
        ("log_weights", "ess", (torch.zeros(2, 3, 4, device=d),)),
        ("log_weights", "normalize_log_weights", (lw.half(),)),
    ]
    cases += [  # eta = 0 draws no noise: a source would be ignored, so it is refused
        ("eta = 0 draws no noise", "ddim_step", (x, x, lv, lv, alpha, sigma, 0.0, x, None)),
        ("eta = 0 draws no noise", "ddim_step", (x, x, lv, lv, alpha, sigma, 0.0, None, rng)),
    ]
    if d == "cpu":  # value checks that would sync a GPU run on CPU tensors only (the kernels assert there)
        up, down = torch.tensor([0, 5], device=d), torch.tensor([1, 2], device=d)
        cases += [
            ("level_to", "renoise", (x, lv, lv + 10, alpha, sigma, None, rng)),
            ("level_from", "renoise", (x, lv - 1, lv, alpha, sigma, None, rng)),
            ("step_size", "langevin_step", (x, x, -step, None, rng, None)),
            ("step_size", "langevin_step", (x, x, step * math.nan, None, rng, None)),
            ("step_size", "langevin_step", (x, x, step * math.inf, None, rng, None)),
            ("uniforms", "resample", (lw, u + 1.0, None, "systematic")),
            ("uniforms", "resample", (lw, -u, None, "multinomial")),
            ("uniforms", "resample", (lw, u * math.nan, None, "ssp")),
            ("alpha", "renoise", (x, lv, lv, -alpha, sigma, None, rng)),
            ("sigma", "ddim_step", (x, x, lv, lv, alpha, sigma * math.inf, 0.5, None, rng)),
            ("level_to must be at least as noisy", "renoise", (x, down, up, alpha, sigma, None, rng)),
            ("level_to must be at most as noisy", "ddim_step", (x, x, up, down, alpha, sigma, 0.5, None, rng)),
            ("level_to must be at most as noisy", "ddim_step", (x, x, up, down, alpha, sigma, 0.0, None, None)),
        ]
    else:
        cases += [
            ("alpha", "renoise", (x, lv, lv, alpha.cpu(), sigma, None, rng)),
            ("uniforms", "resample", (lw, u.cpu(), None, "systematic")),
            ("rng", "resample", (lw.cpu(), None, rng.to(d), "systematic")),
            ("noise", "langevin_step", (x, x, step, x.cpu(), None, None)),
        ]
    return cases


@pytest.mark.parametrize("device", DEVICES)
def test_reference_bad_input_names_the_argument(device):
    """Each bad call to a reference raises ValueError/TypeError naming the argument."""
    skip_unless_device(device)
    for name, op_name, args in _bad_cases(device):
        with pytest.raises((ValueError, TypeError), match=name):
            ops._REFERENCES[op_name](*args)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_input_names_the_argument(device):
    """Each bad call to the kernel raises ValueError/TypeError naming the argument, of the same
    type as the reference."""
    kernel_under_test(device)
    for name, op_name, args in _bad_cases(device):
        with pytest.raises((ValueError, TypeError), match=name) as compiled:
            getattr(torch.ops.tts_fast, op_name)(*args)
        with pytest.raises((ValueError, TypeError), match=name) as reference:
            ops._REFERENCES[op_name](*args)
        assert compiled.type is reference.type, (name, op_name, compiled.value, reference.value)


@pytest.mark.parametrize("device", DEVICES)
def test_elementwise_hypothesis(device):
    """Random shapes (odd numels), dtypes and sources: kernel == reference within rounding."""
    kernel_under_test(device)  # outside @given: a failure here is not a counterexample
    _elementwise_hypothesis(device)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    dims=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    dtype=st.sampled_from(X_DTYPES),
    op=st.sampled_from(["renoise", "ddim_step", "langevin_step"]),
    use_rng=st.booleans(),
    seed=st.integers(-(2**63), 2**63 - 1),
    offset=st.integers(0, 2**62),
)
def _elementwise_hypothesis(device, dims, dtype, op, use_rng, seed, offset):
    shape = tuple(dims)
    b = shape[0]
    x, y = _x(shape, dtype, device, abs(seed) % 1000), _x(shape, dtype, device, abs(seed) % 1000 + 1)
    src = dict(rng=rng_tensor(seed, offset, device)) if use_rng else dict(noise=_x(shape, dtype, device, 2))
    alpha, sigma = vp_tables(25, device)
    lf, lt = (t.to(device) for t in _levels(b, 25, device, abs(seed) % 997, upward=op == "renoise"))
    if op == "renoise":
        got, want = ops.renoise(x, lf, lt, alpha, sigma, **src), ref.renoise(x, lf, lt, alpha, sigma, **src)
    elif op == "ddim_step":
        got = ops.ddim_step(x, y, lf, lt, alpha, sigma, eta=0.7, **src)
        want = ref.ddim_step(x, y, lf, lt, alpha, sigma, 0.7, **src)
    else:
        step = torch.full((b,), 0.01, dtype=torch.float64, device=device)
        got = ops.langevin_step(x, y, step, max_norm=1.0, **src)
        want = ref.langevin_step(x, y, step, max_norm=1.0, **src)
    torch.testing.assert_close(got, want, **float_tol(dtype))
