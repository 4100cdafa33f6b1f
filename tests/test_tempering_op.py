"""The adaptive-tempering step as one op (tts_fast.ops.adaptive_increment): equal to its
pure-PyTorch reference (the Python path bfs_auto took before), exact where the method says so,
unit-free, validated, and what BFS(temperature='adaptive') runs. Its CUDA kernel is checked against
this CPU op under the emulator (test_cuda_emu.py) and on a device (test_gpu_device.py)."""

from __future__ import annotations

import math

import pytest
import torch

import tts_fast as tts
from tts_fast import _reference as ref
from tts_fast import ops
from tts_fast.search import bfs as bfs_module

from _ops_helpers import TEMPERING_ROWS, require_compiled_ops, tempering_rows

NS = (1, 2, 7, 8, 31, 32, 33, 64, 100, 257)


def _random_rows(n, seed, b=16):
    g = torch.Generator().manual_seed(seed)
    alive = torch.rand(b, n, generator=g) > 0.25
    alive[:, 0] = True
    log_w = torch.where(alive, torch.randn(b, n, generator=g, dtype=torch.float64), torch.tensor(-math.inf, dtype=torch.float64))
    scale = 10.0 ** torch.randint(-4, 5, (b, 1), generator=g).double()
    key = torch.randn(b, n, generator=g, dtype=torch.float64) * scale
    base = torch.randn(b, n, generator=g, dtype=torch.float64) * 0.2 * (torch.rand(b, 1, generator=g) < 0.5)
    target = alive.sum(1).double() * torch.rand(b, generator=g, dtype=torch.float64)
    cap = torch.where(torch.rand(b, generator=g) < 0.3, torch.tensor(math.inf, dtype=torch.float64),
                      torch.rand(b, generator=g, dtype=torch.float64) * 3 / scale[:, 0])
    return log_w, base, key, alive, target, cap


def _agree(got, want):
    """Equal to the bisection's resolution: both sides stop within a relative 1.5e-13 of the same
    crossing, so they agree to a few 1e-13 (a 'stays at 0' row agrees exactly)."""
    assert got.dtype == torch.float64 and got.shape == want.shape
    assert torch.equal(got == 0, want == 0) and torch.equal(torch.isinf(got), torch.isinf(want))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", NS)
def test_op_equals_the_reference_on_every_kind_of_row(n):
    require_compiled_ops()
    for seed in range(3):
        args = tempering_rows(n, 10 * n + seed)
        _agree(ops.adaptive_increment(*args), ref.adaptive_increment(*args))
        args = _random_rows(n, 10 * n + seed)
        _agree(ops.adaptive_increment(*args), ref.adaptive_increment(*args))


def test_rows_that_reach_the_cap_land_on_it_exactly_and_flat_rows_take_it():
    log_w, base, key, alive, target, cap = tempering_rows(16, 1)
    delta = ops.adaptive_increment(log_w, base, key, alive, target, cap)
    k = {name: i for i, name in enumerate(TEMPERING_ROWS)}
    assert delta[k["target-zero"]] == cap[k["target-zero"]]  # CESS >= 0 always: the whole cap, bit for bit
    assert delta[k["cap-zero"]] == 0.0
    assert delta[k["flat"]] == cap[k["flat"]]  # equal keys: every increment gives the same weights
    assert delta[k["all-dead"]] == cap[k["all-dead"]]
    assert delta[k["unreachable"]] == 0.0  # the CESS cannot exceed the live count
    assert math.isfinite(float(delta[k["cap-inf"]])) and float(delta[k["cap-inf"]]) > 0
    # a flat row with no cap has no finite answer the data could pick: 0
    key2 = key.clone()
    key2[k["cap-inf"]] = 0.5
    assert ops.adaptive_increment(log_w, base, key2, alive, target, cap)[k["cap-inf"]] == 0.0


@pytest.mark.parametrize("n", (8, 33))
def test_the_increment_sits_on_the_cess_crossing(n):
    """CESS(delta) >= target, and a slightly larger increment falls below it (rows that neither hit
    the cap nor stay at 0): the bisection found the crossing, not just some admissible delta."""
    log_w, base, key, alive, target, _ = _random_rows(n, 5)
    cap = torch.full_like(target, math.inf)
    delta = ops.adaptive_increment(log_w, base, key, alive, target, cap)
    inner = (delta > 0) & (delta < 0.999 * ref.U_MAX / (key.amax(1) - key.amin(1)))
    assert int(inner.sum()) >= 8
    base_masked = torch.where(alive, base, torch.tensor(-math.inf, dtype=torch.float64))
    key_masked = torch.where(alive, key, torch.zeros_like(key))

    def cess(d):
        return ref.conditional_ess(log_w, base_masked + d[:, None] * key_masked, alive)

    # at delta: on or above the target (to the rounding of a different evaluation order)
    assert bool((cess(delta) >= target * (1 - 1e-12))[inner].all())
    # a relative 1e-6 further: below it (the CESS falls by ~1e-7 relative there, far above rounding)
    assert bool((cess(delta * (1 + 1e-6)) < target)[inner].all())


def test_scaling_the_rewards_by_a_power_of_two_scales_the_increment_exactly():
    log_w, base, key, alive, target, cap = _random_rows(33, 9)
    d = ops.adaptive_increment(log_w, base, key, alive, target, cap)
    d4 = ops.adaptive_increment(log_w, base, key * 4.0, alive, target, cap / 4.0)
    assert torch.equal(d4, d / 4.0)


def test_empty_batch():
    args = [t[:0] for t in tempering_rows(5, 0)]
    out = ops.adaptive_increment(*args)
    assert out.shape == (0,) and out.dtype == torch.float64


def _bad_calls():
    lw, base, key, alive, target, cap = tempering_rows(6, 2)
    good = dict(log_w=lw, base=base, key=key, alive=alive, target=target, cap=cap)
    nan_key, inf_w, neg_cap, nan_target, nan_base = key.clone(), lw.clone(), cap.clone(), target.clone(), base.clone()
    nan_key[0, 1] = math.nan
    inf_w[2, 0] = math.inf
    neg_cap[4] = -0.5
    nan_target[3] = math.nan
    nan_base[1, 2] = math.inf
    return good, [
        (TypeError, r"log_w must have dtype in \(float64\)", dict(log_w=lw.float())),
        (ValueError, "log_w must be 2-D", dict(log_w=lw[0])),
        (TypeError, r"base must have dtype in \(float64\)", dict(base=base.float())),
        (ValueError, "key must have the shape of log_w", dict(key=key[:, :3])),
        (TypeError, r"alive must have dtype in \(bool\)", dict(alive=alive.double())),
        (ValueError, r"target must have shape \[B\]", dict(target=target[:2])),
        (TypeError, r"cap must have dtype in \(float64\)", dict(cap=cap.float())),
        (ValueError, r"key must be finite where alive \(row 0\)", dict(key=nan_key)),
        (ValueError, r"log_w must not hold NaN or \+inf \(row 2\)", dict(log_w=inf_w)),
        (ValueError, r"cap must be >= 0 \(or \+inf\), got -0.5 \(row 4\)", dict(cap=neg_cap)),
        (ValueError, r"target must be finite and >= 0, got nan \(row 3\)", dict(target=nan_target)),
        (ValueError, r"base must be finite where alive \(row 1\)", dict(base=nan_base)),
    ]


@pytest.mark.parametrize("impl", ["op", "reference"])
def test_bad_input_names_the_argument(impl):
    fn = ops.adaptive_increment if impl == "op" else ref.adaptive_increment
    good, bad = _bad_calls()
    fn(**good)
    for exc, message, change in bad:
        with pytest.raises(exc, match=message):
            fn(**{**good, **change})


def test_bfs_auto_runs_the_op_and_equals_the_python_path(monkeypatch):
    """bfs_auto with the op and with the reference (today's Python path) patched in: the same
    temperatures to rounding and the same samples."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    calls = []
    real = bfs_module.adaptive_increment
    assert real is ops.adaptive_increment

    def counting(*a):
        calls.append(1)
        return real(*a)

    kw = dict(n_particles=16, num_steps=30, batch_size=6, seed=4, progress=False)
    monkeypatch.setattr(bfs_module, "adaptive_increment", counting)
    with_op = tts.search(model, verifier, "bfs_auto", **kw)
    assert len(calls) >= 4  # every evaluation level and the final tilt
    monkeypatch.setattr(bfs_module, "adaptive_increment", ref.adaptive_increment)
    with_ref = tts.search(model, verifier, "bfs_auto", **kw)
    torch.testing.assert_close(with_op.temperatures, with_ref.temperatures, rtol=1e-11, atol=0)
    torch.testing.assert_close(with_op.samples, with_ref.samples, rtol=1e-9, atol=1e-12)


def test_the_reference_names_the_tensor_on_another_device():
    """Broken variant: the device check naming the wrong reference tensor (or none). The op itself
    dispatches on the device, so a mixed call reaches it only through the reference's checks."""
    good, _ = _bad_calls()
    for name in ("base", "key", "alive", "target", "cap"):
        with pytest.raises(ValueError, match=f"^{name} is on meta but log_w is on cpu; they must share a device$"):
            ref.adaptive_increment(**{**good, name: good[name].to("meta")})
