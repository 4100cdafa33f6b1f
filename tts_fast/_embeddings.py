"""The sinusoidal timestep embedding the shipped networks share (zoo digits, maze planner, RL policy).

The nets were trained with two layouts of it, kept exactly (their weights depend on them):
``cos_first`` with frequencies max_period^(-i/half) (the DDPM/ADM layout, zoo digits) and
``sin_first`` with frequencies max_period^(-i/(half-1)) (diffuser's layout: maze planner, RL policy).
"""

from __future__ import annotations

import math

import torch


def sinusoidal_embedding(t: torch.Tensor, dim: int, *, layout: str = "cos_first", max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of (float) timesteps t [B]; ``layout``: 'cos_first' or 'sin_first' (see the module doc)."""
    half = dim // 2
    if layout == "cos_first":
        denom = half
    elif layout == "sin_first":
        denom = max(half - 1, 1)
    else:
        raise ValueError(f"layout must be 'cos_first' or 'sin_first', got {layout!r}")
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / denom)
    args = t.float()[:, None] * freqs[None]
    parts = (args.cos(), args.sin()) if layout == "cos_first" else (args.sin(), args.cos())
    return torch.cat(parts, dim=1)
