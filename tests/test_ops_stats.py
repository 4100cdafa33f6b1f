"""Statistical properties of the compiled ops, with tolerances derived from the number of draws.

Resampling (every scheme, uniforms from torch.rand or the in-kernel Philox): every row has N
children in [0, N), never a zero-weight parent; each scheme is unbiased, |mean count - N w| <
5 sd / sqrt(R) with sd the scheme's own offspring standard deviation; ssp and systematic counts lie
in {floor(Nw), floor(Nw)+1}, residual in [floor(Nw), floor(Nw) + R_res], stratified in
[floor(Nw) - 1, floor(Nw) + 2]. Philox normals: mean, variance, Kolmogorov-Smirnov, lag
correlation, and the offset layout (offset counts blocks of four).
"""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from tts_fast import ops
from tts_fast import _reference as ref

from _ops_helpers import DEVICES, offspring_counts, rng_tensor, skip_unless_device


def _weights_problem(n: int, seed: int):
    """Log-weights [n] with one zero-weight particle, N w away from integers (so floors are exact)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        lw = torch.randn(n, generator=g, dtype=torch.float64) * 1.2
        lw[n // 2] = -math.inf
        w = ref.row_weights(lw[None])[0]
        m = n * w / w.sum()
        dist = (m - m.round()).abs()
        if bool((dist[w > 0] > 1e-3).all()):
            return lw, m


def _stratified_sd(m: torch.Tensor) -> torch.Tensor:
    """sd of stratified counts: sum over strata of p(1-p), p = overlap of stratum i with particle k."""
    n = m.shape[0]
    hi = torch.cumsum(m, 0)
    lo = hi - m
    strata = torch.arange(n, dtype=torch.float64)
    p = (torch.minimum(hi[:, None], strata[None] + 1) - torch.maximum(lo[:, None], strata[None])).clamp(0, 1)
    return (p * (1 - p)).sum(1).sqrt()


def _sd(scheme: str, m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    f = m - torch.floor(m)
    if scheme == "multinomial":
        p = m / n
        return (n * p * (1 - p)).sqrt()
    if scheme == "stratified":
        return _stratified_sd(m)
    if scheme == "residual":
        r = float(f.sum().round())
        q = f / f.sum()
        return (r * q * (1 - q)).sqrt()
    return (f * (1 - f)).sqrt()  # systematic, ssp: floor + Bernoulli(frac)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scheme", ref.SCHEMES)
@pytest.mark.parametrize("source", ["uniforms", "rng"])
@pytest.mark.parametrize("n,reps", [(7, 200000), (50, 20000)])
def test_resample_unbiased_and_bounded(device, scheme, source, n, reps):
    skip_unless_device(device)
    lw, m = _weights_problem(n, seed=n)
    lw_rows = lw[None].expand(reps, n).contiguous().to(device)
    if source == "uniforms":
        u = torch.rand(reps, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
        anc = ops.resample(lw_rows, u, scheme=scheme)
    else:
        anc = ops.resample(lw_rows, rng=rng_tensor(12345, 678, device), scheme=scheme)
    assert anc.shape == (reps, n) and bool(((anc >= 0) & (anc < n)).all())
    counts = offspring_counts(anc, n).cpu()
    assert bool((counts.sum(1) == n).all())
    assert int(counts[:, n // 2].max()) == 0, "a zero-weight particle was resampled"

    fl = torch.floor(m).to(torch.int64)
    if scheme in ("ssp", "systematic"):
        assert bool(((counts >= fl) & (counts <= fl + 1)).all())
    elif scheme == "residual":
        r = n - int(fl.sum())
        assert bool(((counts >= fl) & (counts <= fl + r)).all())
    elif scheme == "stratified":
        assert bool(((counts >= fl - 1) & (counts <= fl + 2)).all())

    mean = counts.to(torch.float64).mean(0)
    tol = 5 * _sd(scheme, m) / math.sqrt(reps) + 1e-12
    bad = (mean - m).abs() > tol
    assert not bool(bad.any()), f"biased: mean {mean[bad].tolist()} vs N w {m[bad].tolist()} (tol {tol[bad].tolist()})"


def _normals(n: int, seed: int, offset: int, device: str) -> torch.Tensor:
    """In-kernel Philox normals through renoise (alpha 1, sigma 0 -> 1, x = 0, so out = z)."""
    alpha = torch.ones(2, dtype=torch.float64, device=device)
    sigma = torch.tensor([0.0, 1.0], dtype=torch.float64, device=device)
    lv0 = torch.zeros(1, dtype=torch.int64, device=device)
    x = torch.zeros(1, n, dtype=torch.float64, device=device)
    return ops.renoise(x, lv0, lv0 + 1, alpha, sigma, rng=rng_tensor(seed, offset, device))[0].cpu()


@pytest.mark.parametrize("device", DEVICES)
def test_philox_normals_statistics(device):
    skip_unless_device(device)
    n = 1 << 18
    z = _normals(n, seed=2024, offset=0, device=device)
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    assert scipy.stats.kstest(z.numpy(), "norm").pvalue > 1e-4
    for lag in (1, 2, 4):  # lanes of one block and neighbouring blocks are uncorrelated
        r = float(torch.corrcoef(torch.stack([z[:-lag], z[lag:]]))[0, 1])
        assert abs(r) < 5 / math.sqrt(n)
    # Even and odd lanes (cos and sin halves of Box-Muller) each look normal.
    for lane in range(4):
        assert scipy.stats.kstest(z[lane::4].numpy(), "norm").pvalue > 1e-4


@pytest.mark.parametrize("device", DEVICES)
def test_philox_offset_counts_blocks_of_four(device):
    skip_unless_device(device)
    z0 = _normals(400, seed=9, offset=0, device=device)
    z3 = _normals(400 - 12, seed=9, offset=3, device=device)
    assert torch.equal(z0[12:], z3)
    assert not torch.equal(_normals(400, seed=10, offset=0, device=device), z0)
