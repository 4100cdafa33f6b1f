"""Terrain heights in metres from model space, and the statistics the terrain verifiers and measures use.

The model's [-1, 1] values are an arcsinh-compressed height (the package's ``_from_model_space``):
unit = clip((v + 1) / 2, 0, 1), h = s * sinh(unit * asinh(H / s)) with H = 22.1686 m (the
height range) and s = 0.1 m, then the floor is moved to 0. Written in torch here, so verifiers are
differentiable through it; tests/test_terrain.py checks it against the package's numpy version.
Slopes are finite differences in metres per cell (the model's cells have no stated size).
"""

from __future__ import annotations

import math

import torch

HEIGHT_RANGE = 22.16864013671875  # metres (terrain_diffusion.TerrainGenerator.height_range)
ASINH_SCALE = 0.1  # metres (TerrainGenerator.asinh_scale)


def to_metres(x: torch.Tensor) -> torch.Tensor:
    """Heights [B, H, W] in metres, floor at 0, from model-space samples [B, 1, H, W] (differentiable)."""
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"terrain samples must be [B, 1, H, W], got {tuple(x.shape)}")
    unit = ((x[:, 0] + 1.0) * 0.5).clamp(0.0, 1.0)
    h = ASINH_SCALE * torch.sinh(unit * math.asinh(HEIGHT_RANGE / ASINH_SCALE))
    return h - h.amin(dim=(-2, -1), keepdim=True)


def slopes(h: torch.Tensor) -> torch.Tensor:
    """Slope magnitude [B, H-1, W-1] in metres per cell: forward differences along both axes."""
    gx = h[:, :-1, 1:] - h[:, :-1, :-1]
    gy = h[:, 1:, :-1] - h[:, :-1, :-1]
    return (gx * gx + gy * gy + 1e-12).sqrt()


def mean_slope(h: torch.Tensor) -> torch.Tensor:
    """Mean slope [B] in metres per cell of heights [B, H, W]."""
    return slopes(h).mean(dim=(-2, -1))


def lag1_autocorrelation(h: torch.Tensor) -> torch.Tensor:
    """Correlation [B] of each height with its right-hand neighbour: about 0.997 or more for the model's
    terrains, 0 for white noise. A drop means the surface is turning into noise."""
    a, b = h[:, :, :-1].flatten(1), h[:, :, 1:].flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / ((a * a).sum(1) * (b * b).sum(1)).clamp_min(1e-30).sqrt()


def height_std(h: torch.Tensor) -> torch.Tensor:
    """Standard deviation [B] of the heights [B, H, W] in metres (roughness at the largest scale)."""
    return h.flatten(1).std(1)
