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
