"""Philox4x32-10 counter-based random numbers in pure PyTorch.

This is the reference for the in-kernel generator of the C++/CUDA ops (csrc/philox.h): given the
same ``rng`` tensor (seed, offset) both produce the same uint32 words, hence the same uniforms and
(up to float rounding of log/sin/cos) the same normals. All arithmetic is on int64 tensors holding
uint32 values; products are split into 16-bit halves so nothing overflows int64.

Layout (shared with the kernels): element ``e`` of a call uses the Philox block with counter
``offset + e // 4`` (as a 128-bit counter ``(lo32, hi32, 0, 0)``), key ``(lo32(seed), hi32(seed))``,
and lane ``e % 4`` of the 4 output words. Normals come from Box-Muller on lane pairs (0, 1) and
(2, 3) of the same block. ``offset`` therefore counts blocks of 4 elements.
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of the 64-bit product of the constant ``a`` and uint32 tensor ``b``."""
    a_hi, a_lo = a >> 16, a & 0xFFFF
    b_hi, b_lo = b >> 16, b & 0xFFFF
    mid = a_hi * b_lo + a_lo * b_hi  # < 2**33
    low_full = a_lo * b_lo + ((mid & 0xFFFF) << 16)  # < 2**33
    lo = low_full & _MASK32
    hi = (a_hi * b_hi + (mid >> 16) + (low_full >> 32)) & _MASK32
    return hi, lo


def philox_words(seed, offset, n_blocks: int, device=None) -> torch.Tensor:
    """uint32 words (as int64) of ``n_blocks`` Philox blocks: shape [n_blocks, 4].

    ``seed`` and ``offset`` are Python ints or 0-d int64 tensors (on ``device``), so that a
    device-side rng is never read on the host.
    """
    ctr = torch.arange(n_blocks, dtype=torch.int64, device=device) + offset
    c0 = ctr & _MASK32
    c1 = (ctr >> 32) & _MASK32
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    k0 = seed & _MASK32
    k1 = (seed >> 32) & _MASK32
    for r in range(10):
        if r > 0:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack([c0, c1, c2, c3], dim=1)


def _seed_offset(rng: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """seed and offset as 0-d int64 tensors on ``device`` (default: rng's): a copy, never a host
    read of device memory."""
    r = rng.detach().to(device=rng.device if device is None else device, dtype=torch.int64)
    return r[0], r[1]


def philox_uniform(rng: torch.Tensor, numel: int, device=None) -> torch.Tensor:
    """``numel`` float64 uniforms in [0, 1): word * 2**-32 (exact, the resampling kernels' form)."""
    seed, offset = _seed_offset(rng, device)
    words = philox_words(seed, offset, (numel + 3) // 4, device=seed.device).reshape(-1)[:numel]
    return words.to(torch.float64) * (2.0**-32)


def philox_normal(rng: torch.Tensor, numel: int, device=None) -> torch.Tensor:
    """``numel`` float32 standard normals by Box-Muller, laid out as the kernels draw them."""
    seed, offset = _seed_offset(rng, device)
    n_blocks = (numel + 3) // 4
    w = philox_words(seed, offset, n_blocks, device=seed.device)
    # 24-bit uniforms: u1 in (0, 1] for the log, u2 in [0, 1) for the angle (float32 math, as in-kernel).
    u_log = ((w[:, 0::2] >> 8) + 1).to(torch.float32) * (2.0**-24)
    u_ang = (w[:, 1::2] >> 8).to(torch.float32) * (2.0**-24)
    radius = torch.sqrt(-2.0 * torch.log(u_log))
    theta = u_ang * (2.0 * math.pi)
    z = torch.stack([radius * torch.cos(theta), radius * torch.sin(theta)], dim=2)  # [n, 2, 2]
    return z.reshape(-1)[:numel]


def blocks_for(numel: int) -> int:
    """Number of Philox blocks (offset units) that a call drawing ``numel`` values consumes."""
    return (numel + 3) // 4
