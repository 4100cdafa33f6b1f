"""The pure-PyTorch references (tts_fast._reference, the ops' specification) against exact,
hand-computable expectations: they run on every device (they serve CUDA tensors when the CUDA
kernels are not built), so their answers must not depend on the device's summation order."""

from __future__ import annotations

import math

import pytest
import torch

from tts_fast import _reference as ref

from _ops_helpers import DEVICES, skip_unless_device

# ------------------------------------------------------------------------------------------------
# sequential float64 accumulation


def _sequential(values: list[float]) -> list[float]:
    out, acc = [], 0.0
    for v in values:
        acc += v
        out.append(acc)
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_cumsum_is_left_to_right_on_every_device(device):
    """Bit for bit the Python float loop, on rows where any other order rounds differently."""
    skip_unless_device(device)
    g = torch.Generator().manual_seed(0)
    rows = torch.rand(5, 1000, generator=g, dtype=torch.float64) * torch.logspace(-18, 2, 1000, dtype=torch.float64)
    rows[0] = 1e-17
    rows[0, 0] = 1.0  # 1 + 1e-17 rounds back to 1: the sequential sum stays 1, a tree sum does not
    got = ref.cumsum_left_to_right(rows.to(device)).cpu()
    assert got.dtype == torch.float64 and got.shape == rows.shape and got.is_contiguous()
    want = torch.tensor([_sequential(r) for r in rows.tolist()], dtype=torch.float64)
    assert torch.equal(got, want)
    assert float(got[0, -1]) == 1.0 and math.fsum(rows[0].tolist()) > 1.0  # the case discriminates


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scheme", ["multinomial", "systematic", "stratified"])
def test_resample_uses_the_sequential_cdf(device, scheme):
    """One heavy particle then 1023 of weight exp(-37) ~ 8.5e-17 (below half an ulp of 1): the
    sequential cdf is exactly 1 everywhere and its total is 1, so every target, all below 1, picks
    particle 0. A parallel scan's cdf grows past 1 (the tail's sum, ~8.7e-14), and the top target
    (u * total, or (N - 1 + u) / N * total), within ~1e-15 of the total, goes to a late particle."""
    skip_unless_device(device)
    n = 1024
    lw = torch.full((2, n), -37.0, dtype=torch.float64)
    lw[:, 0] = 0.0
    top = 1.0 - 2.0**-53 if scheme == "multinomial" else 1.0 - 2.0**-40  # (N - 1 + u) stays below N
    u = torch.full((2, n), top, dtype=torch.float64)
    got = ref.resample(lw.to(device), u.to(device), None, scheme).cpu()
    assert torch.equal(got, torch.zeros(2, n, dtype=torch.int64))


@pytest.mark.parametrize("device", DEVICES)
def test_residual_uses_the_sequential_fraction_cdf(device):
    """Expected counts N w / W = 511.5, 512.5 and 1022 of ~5e-17: floors 511 + 512 and one
    residual draw over the fractions 0.5, 0.5, 5e-17, ... The sequential fraction cdf stops
    growing after particle 1 (each 5e-17 is below half an ulp), so the draw u * total with u just
    below 1 lands on particle 1; in exact arithmetic (or a tree sum) the tail adds ~5e-14 and the
    draw goes to a late particle."""
    skip_unless_device(device)
    n = 1024
    w = torch.full((1, n), 5e-17, dtype=torch.float64)
    w[0, 0], w[0, 1] = 511.5, 512.5
    u = torch.full((1, n), 1.0 - 2.0**-53, dtype=torch.float64)
    got = ref.resample(torch.log(w).to(device), u.to(device), None, "residual").cpu()
    assert got[0].tolist() == [0] * 511 + [1] * 513


# ------------------------------------------------------------------------------------------------
# argument checks: the exact messages (each names the argument and what is allowed)


def _vp():
    """alpha, sigma of a 10-level VP path, level 0 nearly clean, level 9 the noisiest."""
    ab = torch.linspace(0.999, 0.01, 10, dtype=torch.float64)
    return ab.sqrt(), (1 - ab).sqrt()


def _bad_calls():
    """(reference call, exception type, exact message)."""
    lw = torch.zeros(2, 3, dtype=torch.float64)
    u = torch.rand(2, 3, dtype=torch.float64)
    rng = torch.tensor([0, 0])
    # constant tables: every level pair is legal (a same-level move), so the checks below each
    # fail on their own argument
    alpha, sigma = torch.full((10,), 0.8, dtype=torch.float64), torch.full((10,), 0.6, dtype=torch.float64)
    x = torch.zeros(2, 4)
    lv = torch.zeros(2, dtype=torch.int64)
    step = torch.ones(2)
    meta = torch.empty(2, 3, dtype=torch.float64, device="meta")
    rs, rn, dd, lg = ref.resample, ref.renoise, ref.ddim_step, ref.langevin_step
    return [
        (lambda: rs([[0.0]], None, rng, "ssp"), TypeError, "log_weights must be a tensor, got list"),
        (lambda: rs(lw.long(), u, None, "ssp"), TypeError, "log_weights must have dtype in (float32, float64), got int64"),
        (lambda: rs(lw.half(), u, None, "ssp"), TypeError, "log_weights must have dtype in (float32, float64), got float16"),
        (lambda: rs(lw[0], u[0], None, "ssp"), ValueError, "log_weights must be 2-D [B, N], got shape (3,)"),
        (lambda: rs(lw[None], u[None], None, "ssp"), ValueError, "log_weights must be 2-D [B, N], got shape (1, 2, 3)"),
        (lambda: rs(lw[:, :0], u[:, :0], None, "ssp"), ValueError, "log_weights must have at least one particle per row (N >= 1)"),
        (lambda: rs(lw, u, None, "bogus"), ValueError,
         "scheme must be one of multinomial, stratified, systematic, residual, ssp; got 'bogus'"),
        (lambda: rs(lw, u, rng, "ssp"), ValueError, "pass either uniforms or rng, not both"),
        (lambda: rs(lw, None, None, "ssp"), ValueError,
         "a random source is required: pass uniforms (a tensor) or rng (int64 [seed, offset])"),
        (lambda: rs(lw, u.half(), None, "ssp"), TypeError, "uniforms must have dtype in (float32, float64), got float16"),
        (lambda: rs(lw, u[:, :2], None, "ssp"), ValueError, "uniforms must have the shape of log_weights (2, 3), got (2, 2)"),
        (lambda: rs(lw, meta, None, "ssp"), ValueError, "uniforms is on meta but log_weights is on cpu; they must share a device"),
        (lambda: rs(lw, None, [0, 0], "ssp"), TypeError, "rng must be an int64 tensor [seed, offset], got list"),
        (lambda: rs(lw, None, torch.zeros(2), "ssp"), ValueError,
         "rng must be an int64 tensor of shape [2] (seed, offset), got torch.float32 (2,)"),
        (lambda: rs(lw, None, torch.zeros(3, dtype=torch.int64), "ssp"), ValueError,
         "rng must be an int64 tensor of shape [2] (seed, offset), got torch.int64 (3,)"),
        (lambda: rs(lw, None, rng.to("meta"), "ssp"), ValueError,
         "rng is on meta; it must be on the CPU or on log_weights's device cpu"),
        (lambda: rn(x.long(), lv, lv, alpha, sigma, None, rng), TypeError,
         "x must have dtype in (float16, bfloat16, float32, float64), got int64"),
        (lambda: rn(torch.tensor(1.0), lv, lv, alpha, sigma, None, rng), ValueError,
         "x must have a leading batch dimension, got a 0-d tensor"),
        (lambda: rn(x, lv, lv, alpha.float(), sigma, None, rng), TypeError, "alpha must have dtype in (float64), got float32"),
        (lambda: rn(x, lv, lv, alpha, sigma.float(), None, rng), TypeError, "sigma must have dtype in (float64), got float32"),
        (lambda: rn(x, lv, lv, alpha, sigma[:3], None, rng), ValueError,
         "alpha and sigma must be 1-D tables of the same length >= 1, got (10,) and (3,)"),
        (lambda: rn(x, lv, lv, alpha[None], sigma[None], None, rng), ValueError,
         "alpha and sigma must be 1-D tables of the same length >= 1, got (1, 10) and (1, 10)"),
        (lambda: rn(x, lv, lv, alpha[:0], sigma[:0], None, rng), ValueError,
         "alpha and sigma must be 1-D tables of the same length >= 1, got (0,) and (0,)"),
        (lambda: rn(x, lv, lv, alpha.to("meta"), sigma, None, rng), ValueError,
         "alpha is on meta but x is on cpu; they must share a device"),
        (lambda: rn(x, lv, lv, alpha, sigma.to("meta"), None, rng), ValueError,
         "sigma is on meta but x is on cpu; they must share a device"),
        (lambda: rn(x, lv.int(), lv, alpha, sigma, None, rng), TypeError, "level_from must be an int64 tensor of level indices"),
        (lambda: rn(x, lv, [0, 0], alpha, sigma, None, rng), TypeError, "level_to must be an int64 tensor of level indices"),
        (lambda: rn(x, lv, lv[:1], alpha, sigma, None, rng), ValueError, "level_to must have shape [B] = [2], got (1,)"),
        (lambda: rn(x, lv.to("meta"), lv, alpha, sigma, None, rng), ValueError,
         "level_from is on meta but x is on cpu; they must share a device"),
        (lambda: rn(x, lv, lv + 10, alpha, sigma, None, rng), ValueError,
         "level_to values must lie in [0, 10) (the length of alpha/sigma)"),
        (lambda: rn(x, lv - 1, lv, alpha, sigma, None, rng), ValueError,
         "level_from values must lie in [0, 10) (the length of alpha/sigma)"),
        (lambda: rn(x, lv, lv, alpha, sigma, x[:1], None), ValueError,
         "noise must match x in shape and dtype: (2, 4) torch.float32, got (1, 4) torch.float32"),
        (lambda: rn(x, lv, lv, alpha, sigma, x.double(), None), ValueError,
         "noise must match x in shape and dtype: (2, 4) torch.float32, got (2, 4) torch.float64"),
        (lambda: rn(x, lv, lv, alpha, sigma, x.to("meta"), None), ValueError,
         "noise is on meta but x is on cpu; they must share a device"),
        (lambda: rn(x, lv, lv, alpha, sigma, None, None), ValueError,
         "a random source is required: pass noise (a tensor) or rng (int64 [seed, offset])"),
        (lambda: rn(x, lv, lv, alpha, sigma, x, rng), ValueError, "pass either noise or rng, not both"),
        (lambda: rn(x, lv, lv, alpha, sigma, None, rng.to("meta")), ValueError,
         "rng is on meta; it must be on the CPU or on x's device cpu"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.5, None, rng.to("meta")), ValueError,
         "rng is on meta; it must be on the CPU or on x's device cpu"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.0, None, rng.to("meta")), ValueError,
         "eta = 0 draws no noise: pass neither noise nor rng"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.0, x, None), ValueError, "eta = 0 draws no noise: pass neither noise nor rng"),
        (lambda: lg(x, x, step, None, rng.to("meta"), None), ValueError,
         "rng is on meta; it must be on the CPU or on x's device cpu"),
        (lambda: rn(x, lv, lv, alpha, sigma, None, torch.zeros(2)), ValueError,
         "rng must be an int64 tensor of shape [2] (seed, offset), got torch.float32 (2,)"),
        (lambda: dd(x, [0.0], lv, lv, alpha, sigma, 0.0, None, None), TypeError, "x0_hat must be a tensor"),
        (lambda: dd(x, x.double(), lv, lv, alpha, sigma, 0.0, None, None), ValueError,
         "x0_hat must match x in shape and dtype: (2, 4) torch.float32, got (2, 4) torch.float64"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 1.5, None, rng), ValueError, "eta must lie in [0, 1], got 1.5"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, -0.1, None, rng), ValueError, "eta must lie in [0, 1], got -0.1"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, math.nan, None, rng), ValueError, "eta must lie in [0, 1], got nan"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.5, None, None), ValueError,
         "a random source is required: pass noise (a tensor) or rng (int64 [seed, offset])"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.5, x, rng), ValueError, "pass either noise or rng, not both"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.5, x[:1], None), ValueError,
         "noise must match x in shape and dtype: (2, 4) torch.float32, got (1, 4) torch.float32"),
        (lambda: dd(x, x, lv, lv, alpha, sigma, 0.5, None, torch.zeros(2)), ValueError,
         "rng must be an int64 tensor of shape [2] (seed, offset), got torch.float32 (2,)"),
        (lambda: lg(x, x[:, :2], step, None, rng, None), ValueError,
         "grad must match x in shape and dtype: (2, 4) torch.float32, got (2, 2) torch.float32"),
        (lambda: lg(x, x, step.long(), None, rng, None), TypeError, "step_size must have dtype in (float32, float64), got int64"),
        (lambda: lg(x, x, step[:1], None, rng, None), ValueError, "step_size must have shape [B] = [2], got (1,)"),
        (lambda: lg(x, x, step.to("meta"), None, rng, None), ValueError,
         "step_size is on meta but x is on cpu; they must share a device"),
        (lambda: lg(x, x, torch.tensor([0.5, -1e-30]), None, rng, None), ValueError,
         "step_size must be finite and >= 0, got -1.0000000031710769e-30 at 1"),
        (lambda: lg(x, x, torch.tensor([math.nan, 0.5]), None, rng, None), ValueError, "step_size must be finite and >= 0, got nan at 0"),
        (lambda: lg(x, x, torch.tensor([0.5, math.inf]), None, rng, None), ValueError, "step_size must be finite and >= 0, got inf at 1"),
        (lambda: rs(lw, torch.tensor([[0.1, 1.0, 0.2], [0.0, 0.5, 0.9]], dtype=torch.float64), None, "ssp"), ValueError,
         "uniforms must lie in [0, 1), got 1.0 at [0, 1]"),
        (lambda: rs(lw, torch.tensor([[0.1, 0.3, 0.2], [0.0, 0.5, -0.25]]), None, "multinomial"), ValueError,
         "uniforms must lie in [0, 1), got -0.25 at [1, 2]"),
        (lambda: rs(lw, torch.tensor([[0.1, 0.3, 0.2], [math.nan, 0.5, 0.5]]), None, "systematic"), ValueError,
         "uniforms must lie in [0, 1), got nan at [1, 0]"),
        (lambda: rn(x, lv, lv, torch.full((10,), -0.5, dtype=torch.float64), sigma, None, rng), ValueError,
         "alpha must hold finite values >= 0, got -0.5 at 0"),
        (lambda: rn(x, lv, lv, alpha, torch.full((10,), math.inf, dtype=torch.float64), None, rng), ValueError,
         "sigma must hold finite values >= 0, got inf at 0"),
        (lambda: rn(x, torch.tensor([0, 5]), torch.tensor([1, 2]), *_vp(), None, rng), ValueError,
         "level_to must be at least as noisy as level_from, with alpha[level_from] > 0 (sample 1: level_from 5, level_to 2)"),
        (lambda: dd(x, x, torch.tensor([3, 1]), torch.tensor([1, 4]), *_vp(), 0.5, None, rng), ValueError,
         "level_to must be at most as noisy as level_from, with sigma[level_from] > 0 (sample 1: level_from 1, level_to 4)"),
        (lambda: dd(x, x, torch.tensor([1, 1]), torch.tensor([9, 0]), *_vp(), 0.0, None, None), ValueError,
         "level_to must be at most as noisy as level_from, with sigma[level_from] > 0 (sample 0: level_from 1, level_to 9)"),
        (lambda: lg(x, x, step, None, rng, 0.0), ValueError, "max_norm must be > 0 or None, got 0.0"),
        (lambda: lg(x, x, step, None, rng, -1.0), ValueError, "max_norm must be > 0 or None, got -1.0"),
        (lambda: lg(x, x, step, None, rng, math.nan), ValueError, "max_norm must be > 0 or None, got nan"),
        (lambda: lg(x, x, step, None, None, None), ValueError,
         "a random source is required: pass noise (a tensor) or rng (int64 [seed, offset])"),
        (lambda: lg(x, x, step, x, rng, None), ValueError, "pass either noise or rng, not both"),
        (lambda: lg(x, x, step, x[:1], None, None), ValueError,
         "noise must match x in shape and dtype: (2, 4) torch.float32, got (1, 4) torch.float32"),
        (lambda: lg(x, x, step, None, torch.zeros(2), None), ValueError,
         "rng must be an int64 tensor of shape [2] (seed, offset), got torch.float32 (2,)"),
        (lambda: ref.ess(torch.zeros(2, 3, 4)), ValueError, "log_weights must be 2-D [B, N], got shape (2, 3, 4)"),
        (lambda: ref.ess(lw.half()), TypeError, "log_weights must have dtype in (float32, float64), got float16"),
        (lambda: ref.normalize_log_weights(lw[:, :0]), ValueError,
         "log_weights must have at least one particle per row (N >= 1)"),
        (lambda: ref.normalize_log_weights(lw.long()), TypeError,
         "log_weights must have dtype in (float32, float64), got int64"),
    ]


@pytest.mark.parametrize("i", range(len(_bad_calls())))
def test_reference_error_messages(i):
    call, kind, message = _bad_calls()[i]
    with pytest.raises(kind) as err:
        call()
    assert err.type is kind and str(err.value) == message


def test_reference_accepts_the_edges_of_each_check():
    """What the checks must let through: the last level, eta 0 and 1 (eta 0 needs no random
    source), step_size 0, a tiny max_norm, a CPU rng for any device, N = 1, empty batches."""
    alpha, sigma = torch.tensor([1.0, 0.8, 0.6], dtype=torch.float64), torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    x = torch.ones(2, 3)
    lo, hi = torch.tensor([0, 1]), torch.tensor([2, 2])
    z = torch.zeros(2, 3)
    assert ref.renoise(x, lo, hi, alpha, sigma, z).shape == (2, 3)
    assert ref.ddim_step(x, x, hi, lo, alpha, sigma, 0.0).shape == (2, 3)
    with pytest.raises(ValueError, match="eta = 0 draws no noise"):  # a source it would ignore is refused
        ref.ddim_step(x, x, hi, lo, alpha, sigma, 0.0, None, torch.tensor([1, 2]))
    assert ref.ddim_step(x, x, hi, lo, alpha, sigma, 1.0, z).shape == (2, 3)
    assert torch.equal(ref.langevin_step(x, x, torch.zeros(2), z, None, 1e-30), x)
    assert ref.resample(torch.zeros(1, 1), torch.zeros(1, 1), None, "ssp").tolist() == [[0]]
    one = torch.ones(1, dtype=torch.float64)  # a one-level table
    lv0 = torch.zeros(2, dtype=torch.int64)
    assert torch.equal(ref.renoise(x, lv0, lv0, one, one * 0, z), x)
    empty = torch.empty(0, 3)
    lv0 = torch.empty(0, dtype=torch.int64)
    assert ref.renoise(empty, lv0, lv0, alpha, sigma, empty).shape == (0, 3)
    assert ref.langevin_step(empty, empty, torch.empty(0), empty).shape == (0, 3)


# ------------------------------------------------------------------------------------------------
# elementwise references: accumulation precision and hand-computed values


def _tables():
    return (torch.tensor([1.0, 0.8, 0.6, 0.0], dtype=torch.float64),
            torch.tensor([0.0, 0.6, 0.8, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_elementwise_references_accumulate_in_float32_or_better(dtype):
    """Half and bfloat16 inputs are computed in float32 and rounded once at the end (float32 and
    float64 in their own precision): bit for bit the float32 computation, rounded."""
    alpha, sigma = _tables()
    g = torch.Generator().manual_seed(0)
    x, y, z = (torch.randn(64, 33, generator=g).to(dtype) for _ in range(3))
    lo, hi = torch.randint(0, 2, (64,), generator=g), torch.randint(2, 3, (64,), generator=g)
    step = torch.rand(64, generator=g) * 0.5
    up = lambda t: t.float()  # noqa: E731
    cases = [
        (ref.renoise(x, lo, hi, alpha, sigma, z), ref.renoise(up(x), lo, hi, alpha, sigma, up(z))),
        (ref.ddim_step(x, y, hi, lo, alpha, sigma, 0.7, z), ref.ddim_step(up(x), up(y), hi, lo, alpha, sigma, 0.7, up(z))),
        (ref.ddim_step(x, y, hi, lo, alpha, sigma, 0.0), ref.ddim_step(up(x), up(y), hi, lo, alpha, sigma, 0.0)),
        (ref.langevin_step(x, y, step, z, None, 3.0), ref.langevin_step(up(x), up(y), step, up(z), None, 3.0)),
    ]
    for got, want in cases:
        assert got.dtype == dtype and torch.equal(got, want.to(dtype))
    # float64 inputs stay in float64 (a float32 computation would differ in the low bits)
    x64, z64 = x.double() / 3, z.double() / 7
    got = ref.renoise(x64, lo, hi, alpha, sigma, z64)
    ratio, std = (alpha[hi] / alpha[lo])[:, None], (sigma[hi] ** 2 - (alpha[hi] / alpha[lo]) ** 2 * sigma[lo] ** 2).sqrt()[:, None]
    assert got.dtype == torch.float64 and torch.equal(got, ratio * x64 + std * z64)


def test_ddim_step_reference_default_eta_is_one():
    alpha, sigma = _tables()
    x, y, z = torch.ones(2, 3), torch.full((2, 3), 0.5), torch.full((2, 3), -1.0)
    lv2, lv1 = torch.tensor([2, 2]), torch.tensor([1, 1])
    assert torch.equal(ref.ddim_step(x, y, lv2, lv1, alpha, sigma, noise=z), ref.ddim_step(x, y, lv2, lv1, alpha, sigma, 1.0, z))


def test_elementwise_references_hand_computed():
    """Tables alpha = (1, 0.8, 0.6, 0), sigma = (0, 0.6, 0.8, 1): values worked out by hand."""
    alpha, sigma = _tables()
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    z = torch.tensor([[1.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
    # renoise level 1 -> 2: r = 0.6/0.8 = 0.75, std = sqrt(0.64 - 0.5625 * 0.36) = sqrt(0.4375)
    # renoise level 0 -> 3 (to pure noise): r = 0, std = 1
    out = ref.renoise(x, torch.tensor([1, 0]), torch.tensor([2, 3]), alpha, sigma, z)
    s = math.sqrt(0.4375)
    torch.testing.assert_close(out, torch.tensor([[0.75 + s, -1.5 + s], [-1.0, 2.0]], dtype=torch.float64), rtol=0, atol=1e-15)
    # ddim 2 -> 1, x0_hat = 0: v = 0.64 - (0.6/0.8)^2 * 0.36 = 0.4375; frac = v / 0.64
    # eta = 0: c_x = 0.6 / 0.8 = 0.75 (x scaled), c_z = 0; eta = 1: c_eps = 0.6 sqrt(1 - frac), c_z = 0.6 sqrt(frac)
    lv2, lv1 = torch.tensor([2, 2]), torch.tensor([1, 1])
    zero = torch.zeros_like(x)
    torch.testing.assert_close(ref.ddim_step(x, zero, lv2, lv1, alpha, sigma, 0.0), 0.75 * x, rtol=0, atol=1e-15)
    frac = 0.4375 / 0.64
    want = 0.6 * math.sqrt(1 - frac) / 0.8 * x + 0.6 * math.sqrt(frac) * z
    torch.testing.assert_close(ref.ddim_step(x, zero, lv2, lv1, alpha, sigma, 1.0, z), want, rtol=0, atol=1e-15)
    # x0_hat alone: c_x0 = a_j - c_x a_i = 0.8 - 0.75 * 0.6 at eta = 0
    torch.testing.assert_close(ref.ddim_step(zero, x, lv2, lv1, alpha, sigma, 0.0), (0.8 - 0.45) * x, rtol=0, atol=1e-15)
    # to the clean level (sigma 0): x_to = x0_hat whatever eta
    lv0 = torch.tensor([0, 0])
    torch.testing.assert_close(ref.ddim_step(x, -x, lv1, lv0, alpha, sigma, 1.0, z), -x, rtol=0, atol=1e-15)
    # langevin: x + eta * scale * g + sqrt(2 eta) z with scale = min(1, max_norm / |g_b|)
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)  # norms 5 and 0.5
    step = torch.tensor([0.5, 2.0], dtype=torch.float64)
    want = x + torch.tensor([[0.5 * 0.2], [2.0]], dtype=torch.float64) * g + torch.tensor([[1.0], [2.0]], dtype=torch.float64) * z
    torch.testing.assert_close(ref.langevin_step(x, g, step, z, None, 1.0), want, rtol=0, atol=1e-15)
    want_free = x + step[:, None] * g + torch.tensor([[1.0], [2.0]], dtype=torch.float64) * z
    torch.testing.assert_close(ref.langevin_step(x, g, step, z), want_free, rtol=0, atol=1e-15)
    torch.testing.assert_close(ref.langevin_step(x, g, step, z, None, 5.0), want_free, rtol=0, atol=1e-15)  # |g| = max_norm: no scaling
    c_x, c_x0, c_z = ref.ddim_coefficients(lv2, lv1, alpha, sigma, 1.0)
    assert c_x.dtype == torch.float64 and c_x.shape == (2,)
    torch.testing.assert_close(c_z, torch.full((2,), 0.6 * math.sqrt(frac), dtype=torch.float64), rtol=0, atol=1e-15)


def test_normalize_and_ess_reference_precision_and_special_rows():
    """float32 log-weights are reduced in float64 (bit for bit the float64 result, rounded), and
    the special rows follow the conventions: NaN = -inf, all -inf -> uniform, +inf entries share."""
    g = torch.Generator().manual_seed(4)
    lw = (torch.randn(50, 37, generator=g) * 20).float()
    assert torch.equal(ref.normalize_log_weights(lw), ref.normalize_log_weights(lw.double()).float())
    assert torch.equal(ref.ess(lw), ref.ess(lw.double()).float())
    inf, nan = math.inf, math.nan
    rows = torch.tensor([[0.0, math.log(3.0), -inf, nan], [-inf, -inf, nan, -inf], [inf, 1.0, inf, nan], [2.0, 2.0, 2.0, 2.0]],
                        dtype=torch.float64)
    want = torch.tensor([[math.log(0.25), math.log(0.75), -inf, -inf], [math.log(0.25)] * 4,
                         [math.log(0.5), -inf, math.log(0.5), -inf], [math.log(0.25)] * 4], dtype=torch.float64)
    torch.testing.assert_close(ref.normalize_log_weights(rows), want, rtol=0, atol=1e-15)
    torch.testing.assert_close(ref.ess(rows), torch.tensor([16 / 10, 4.0, 2.0, 4.0], dtype=torch.float64), rtol=0, atol=1e-14)
    assert torch.equal(ref.row_weights(rows), torch.tensor([[1 / 3, 1.0, 0, 0], [1.0] * 4, [1.0, 0, 1.0, 0], [1.0] * 4],
                                                           dtype=torch.float64))
    tiny = torch.tensor([[0.0, -800.0]], dtype=torch.float64)  # exp(-800) underflows; its log weight must not
    torch.testing.assert_close(ref.normalize_log_weights(tiny), torch.tensor([[0.0, -800.0]], dtype=torch.float64), rtol=0, atol=0)


def test_langevin_reference_step_size_in_float64():
    """eta is taken to float64 before sqrt(2 eta): a float32 step size with float64 x gives the
    float64 coefficients (a float32 sqrt, widened, would differ in the low bits)."""
    g = torch.Generator().manual_seed(8)
    x, grad, z = (torch.randn(40, 3, generator=g, dtype=torch.float64) for _ in range(3))
    step = torch.rand(40, generator=g) * 0.3  # float32
    for max_norm in (None, 0.7):
        got = ref.langevin_step(x, grad, step, z, None, max_norm)
        assert torch.equal(got, ref.langevin_step(x, grad, step.double(), z, None, max_norm))
    want = x + step.double()[:, None] * grad + torch.sqrt(2.0 * step.double())[:, None] * z
    assert torch.equal(ref.langevin_step(x, grad, step, z), want)


# ------------------------------------------------------------------------------------------------
# Philox reference: device and dtype of what it makes


def test_philox_reference_makes_numbers_on_the_requested_device():
    rng = torch.tensor([7, 3])
    for fn in (ref._philox.philox_uniform, ref._philox.philox_normal):
        out = fn(rng, 10, device="meta")
        assert out.device.type == "meta" and out.shape == (10,)
        assert fn(rng, 10).device.type == "cpu" and fn(rng.to("meta"), 10).device.type == "meta"  # default: rng's device


def test_philox_reference_ignores_the_default_dtype():
    """Uniforms are float64 and normals float32 whatever torch's default dtype is."""
    rng = torch.tensor([11, 5])
    u, z = ref._philox.philox_uniform(rng, 9), ref._philox.philox_normal(rng, 9)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        u64, z64 = ref._philox.philox_uniform(rng, 9), ref._philox.philox_normal(rng, 9)
    finally:
        torch.set_default_dtype(old)
    assert u.dtype == u64.dtype == torch.float64 and torch.equal(u, u64)
    assert z.dtype == z64.dtype == torch.float32 and torch.equal(z, z64)


def test_elementwise_references_float32_arithmetic():
    """float32 inputs are computed in float32 with float32 coefficients (the kernels' arithmetic),
    not in float64: bit for bit the float32 formulas."""
    alpha, sigma = _tables()
    g = torch.Generator().manual_seed(9)
    x, y, z = (torch.randn(64, 33, generator=g) for _ in range(3))
    lo, hi = torch.randint(0, 2, (64,), generator=g), torch.full((64,), 2)
    col = lambda c: c.float()[:, None]  # noqa: E731
    ratio = alpha[hi] / alpha[lo]
    std = torch.sqrt(sigma[hi] ** 2 - ratio**2 * sigma[lo] ** 2)
    assert torch.equal(ref.renoise(x, lo, hi, alpha, sigma, z), col(ratio) * x + col(std) * z)
    c_x, c_x0, c_z = ref.ddim_coefficients(hi, lo, alpha, sigma, 0.7)
    assert torch.equal(ref.ddim_step(x, y, hi, lo, alpha, sigma, 0.7, z), col(c_x) * x + col(c_x0) * y + col(c_z) * z)
    step = torch.rand(64, generator=g, dtype=torch.float64)
    assert torch.equal(ref.langevin_step(x, y, step, z), x + col(step) * y + col(torch.sqrt(2.0 * step)) * z)


def test_elementwise_references_on_another_device_with_a_cpu_rng():
    """A CPU rng serves tensors on any device; the numbers are made there (meta tensors here)."""
    alpha, sigma = (t.to("meta") for t in _tables())
    x = torch.empty(4, 5, device="meta")
    lv = torch.zeros(4, dtype=torch.int64, device="meta")
    rng = torch.tensor([1, 2])
    step = torch.ones(4, device="meta")
    for out in (ref.renoise(x, lv, lv, alpha, sigma, None, rng), ref.ddim_step(x, x, lv, lv, alpha, sigma, 0.5, None, rng),
                ref.langevin_step(x, x, step, None, rng, 1.0)):
        assert out.device.type == "meta" and out.shape == (4, 5) and out.dtype == torch.float32
    lw = torch.empty(3, 6, dtype=torch.float64, device="meta")
    assert ref._uniforms(lw, None, rng).device.type == "meta" and ref._uniforms(lw, None, rng).shape == (3, 6)


@pytest.mark.parametrize("scheme", ref.SCHEMES)
def test_resample_reference_stays_on_the_weights_device(scheme):
    """Every intermediate is made on log_weights' device (meta tensors here; a CPU temporary would
    not mix with them, as it would not with CUDA ones), with given uniforms or a CPU rng."""
    lw = torch.empty(3, 7, dtype=torch.float64, device="meta")
    for u, rng in ((torch.empty(3, 7, dtype=torch.float32, device="meta"), None), (None, torch.tensor([4, 0]))):
        out = ref.resample(lw, u, rng, scheme)
        assert out.device.type == "meta" and out.shape == (3, 7) and out.dtype == torch.int64
    assert ref.cumsum_left_to_right(lw).device.type == "meta"
    empty = ref.resample(torch.empty(0, 7, dtype=torch.float64), torch.empty(0, 7, dtype=torch.float64), None, scheme)
    assert empty.shape == (0, 7) and empty.dtype == torch.int64
