"""Sequential-Monte-Carlo bookkeeping shared by BFS and DAS: ESS-gated resampling and DAS's tempering.

Both keep per-prompt-row log-weights [B, N] that accumulate incremental weights between
resamplings; a row is resampled when its effective sample size falls below a threshold, its
log-evidence grows by the log-mean of its weights there, and its weights restart at zero.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import ops


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/N) sum_j exp(log_w[:, j]) per row: [B, N] -> [B]."""
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])


def gated_resample(ctx, log_w: torch.Tensor, scheme: str, ess_threshold: Optional[float]):
    """Resample the rows of ``log_w`` [B, N] whose ESS is below ``ess_threshold`` * N (all rows if None).

    Returns (ancestors [B, N] row-local, the identity in rows left alone; resampled [B] bool; the
    log-weights after it [B, N] (zero in resampled rows); the log-evidence increment [B] (the rows'
    log-mean weight where resampled, else 0); ess [B]).
    """
    b, n = log_w.shape
    ess = ops.ess(log_w)
    rows = torch.ones(b, dtype=torch.bool, device=log_w.device) if ess_threshold is None else ess < ess_threshold * n
    log_z = torch.where(rows, log_mean_exp(log_w), torch.zeros(b, dtype=log_w.dtype, device=log_w.device))
    anc = ctx.resample(log_w, scheme)
    anc = torch.where(rows[:, None], anc, torch.arange(n, device=log_w.device).expand(b, n))
    return anc, rows, torch.where(rows[:, None], torch.zeros_like(log_w), log_w), log_z, ess


def exp_tempering(num_steps: int, lam: float, gamma: Optional[float] = None) -> torch.Tensor:
    """DAS's tempering lam_i = lam * min((1 + gamma)^i - 1, 1) for i = 0 .. S-1 ([S] float64).

    ``gamma=None`` chooses (1 + gamma)^(0.87 S) = 2, so lam is reached at 87 % of the steps: DAS's
    Stable Diffusion setting (gamma = 0.008 over 100 steps) carried to any number of steps.
    """
    g = 2.0 ** (1.0 / (0.87 * num_steps)) - 1.0 if gamma is None else gamma
    return lam * torch.clamp((1.0 + g) ** torch.arange(num_steps, dtype=torch.float64) - 1.0, max=1.0)
