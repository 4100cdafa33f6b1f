"""A differentiable terrain verifier: how close a heightmap's mean slope is to a target.

``SlopeTarget(target)``: reward = -(log(mean_slope(h)) - log(target))^2 on the heights in metres
(:func:`tts_fast.terrain.heights.to_metres`): 0 at the target, equally bad at twice and half of it.
A slope is a local statistic, so it can be raised by roughening the surface at the finest scale,
which makes it a verifier that search can hack: the terrain benchmark measures that with the
lag-1 autocorrelation of the heights, which no search sees.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .._device_checks import prompt_rows
from ..verifiers.base import Verifier
from .heights import mean_slope, to_metres


class SlopeTarget(Verifier):
    """Reward -(log mean slope - log target)^2 of terrain samples [B, 1, H, W].

    Args:
        target: the mean slope wanted, in metres per cell (> 0): one for every row, or a sequence of
            one per prompt row.
        batch_size: max samples per call (None: all).
    """

    differentiable = True

    def __init__(self, target, *, batch_size: Optional[int] = None):
        values = [target] if isinstance(target, (int, float)) else list(target) if hasattr(target, "__iter__") else None
        if (not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 for v in values)):
            raise ValueError(f"target must be a finite slope > 0 (metres per cell) or a non-empty sequence of them, got {target!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
        self.log_target = torch.log(torch.tensor(values, dtype=torch.float64))
        self.num_prompts = len(values) if len(values) > 1 else None
        self.batch_size = batch_size

    def forward(self, x0, cond):
        """Rewards [B] of terrain samples x0 [B, 1, H, W] in model space; cond: [B] prompt rows (per-row targets)."""
        target = self.log_target.to(x0.device, torch.float32)
        if self.num_prompts is not None:
            target = target[prompt_rows(cond, x0.shape[0], self.num_prompts, x0.device, "this SlopeTarget (one target per prompt row)")]
        return -(torch.log(mean_slope(to_metres(x0.float()))) - target) ** 2
