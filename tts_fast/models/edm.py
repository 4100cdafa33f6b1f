"""EDM (Karras et al. 2022) and consistency-style x0-predictors as :class:`Denoiser`s on a VP schedule.

An EDM model denoises ``x = x0 + sigma * eps`` (variance exploding) with ``x0 = D(x, sigma)``. The
library walks a VP path ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``; dividing by sqrt(abar) gives
the EDM state exactly:

    x = x_t / sqrt(abar),    sigma = sqrt((1 - abar) / abar),    x0 = D(x, sigma).

So any EDM or consistency model is a Denoiser with no retraining and no approximation; the search
methods see a VP model. :func:`edm_schedule` builds the VP schedule whose levels span a model's
sigma range (Karras' rho spacing), since schedules that reach sigma beyond what the model was
trained on (cosine, DDPM-linear at their last levels) are refused, never clamped.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .. import schedules as _schedules
from .._arguments import check_callable, check_float, check_int
from .base import Denoiser, per_sample_timesteps


def vp_to_edm(x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The EDM input of a VP state: (x_t / alpha, sigma / alpha).

    Args:
        x_t: [B, ...] VP states.
        alpha, sigma: [B] float64 VP scales, alpha = sqrt(abar) and sigma = sqrt(1 - abar).

    Returns x [B, ...] (x_t's dtype) and the EDM noise levels sigma / alpha = sqrt((1 - abar) / abar), [B] float64.
    """
    scale = (1.0 / alpha).to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
    return x_t * scale, sigma / alpha


def edm_sigmas(sigma_min: float, sigma_max: float, num_train_timesteps: int = 1000, rho: float = 7.0) -> torch.Tensor:
    """Karras' noise levels over train timesteps t = 0 .. T-1, [T] float64, increasing: t = 0 -> sigma_min, T-1 -> sigma_max."""
    check_float(sigma_min, "sigma_min", 0.0, low_open=True)
    check_float(sigma_max, "sigma_max", sigma_min, low_open=True)
    check_int(num_train_timesteps, "num_train_timesteps", 2)
    check_float(rho, "rho", 0.0, low_open=True)
    u = torch.linspace(0.0, 1.0, num_train_timesteps, dtype=torch.float64)
    return (sigma_min ** (1 / rho) + u * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho


def edm_schedule(sigma_min: float = 0.002, sigma_max: float = 80.0, num_train_timesteps: int = 1000, rho: float = 7.0,
                 **kw) -> _schedules.VPSchedule:
    """A VP schedule whose train timesteps carry Karras' EDM noise levels between sigma_min and sigma_max.

    Level t has abar_t = 1 / (1 + sigma_t^2) with sigma_t from :func:`edm_sigmas`, so the EDM sigma
    of t is sigma_t (up to float64 rounding of the betas' cumulative product). Extra keyword
    arguments (``spacing``) go to :class:`~tts_fast.schedules.VPSchedule`.
    """
    sig = edm_sigmas(sigma_min, sigma_max, num_train_timesteps, rho)
    abar = 1.0 / (1.0 + sig**2)
    betas = 1.0 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return _schedules.VPSchedule(betas, **kw)


def schedule_sigmas(schedule: _schedules.VPSchedule) -> torch.Tensor:
    """The EDM noise level sqrt((1 - abar) / abar) of every train timestep of a VP schedule, [T] float64."""
    ab = schedule.alpha_bar
    return ((1.0 - ab) / ab).sqrt()


class EDMDenoiser(Denoiser):
    """An EDM / consistency x0-predictor ``D(x, sigma, cond)`` as a :class:`Denoiser` on a VP schedule.

    ``x0 = model(x_t, t, cond) = D(x_t / sqrt(abar_t), sqrt((1 - abar_t) / abar_t), cond)`` (see the
    module docstring): exact, no approximation.

    Args:
        denoise: ``D(x [B, *sample_shape], sigma [B] (float, x's dtype), cond [B] int64 prompt rows or None)``
            -> x0 [B, *sample_shape]. It receives the denoiser's ``cond`` unchanged; map rows to the
            model's own conditioning (labels, difficulties, text) inside it.
        sample_shape: shape of one sample.
        schedule: a VP schedule (default :func:`edm_schedule` over [sigma_min, sigma_max]); every
            level's sigma must lie in [sigma_min, sigma_max] (checked here).
        sigma_min, sigma_max: the noise levels the model was trained on (default: any).
        num_prompts: prompt rows ``denoise`` holds conditioning for, or None (any rows).
        device, dtype: of the tensors ``denoise`` takes.
    """

    def __init__(self, denoise: Callable, sample_shape, *, schedule: Optional[_schedules.VPSchedule] = None,
                 sigma_min: float = 0.0, sigma_max: float = math.inf, num_prompts: Optional[int] = None, device="cpu",
                 dtype: torch.dtype = torch.float32):
        check_callable(denoise, "denoise", optional=False)
        try:
            shape = tuple(int(s) for s in sample_shape)
        except (TypeError, ValueError):
            raise ValueError(f"sample_shape must be a tuple of positive ints, got {sample_shape!r}") from None
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"sample_shape must be a tuple of positive ints, got {sample_shape!r}")
        check_float(sigma_min, "sigma_min", 0.0)
        if not (isinstance(sigma_max, (int, float)) and not isinstance(sigma_max, bool) and sigma_max > sigma_min):
            raise ValueError(f"sigma_max must be a number > sigma_min = {sigma_min}, got {sigma_max!r}")
        if num_prompts is not None:
            check_int(num_prompts, "num_prompts", 1)
        if schedule is None:
            if not (sigma_min > 0 and math.isfinite(sigma_max)):
                raise ValueError("schedule is required when sigma_min is 0 or sigma_max is infinite (edm_schedule needs both bounds)")
            schedule = edm_schedule(sigma_min, sigma_max)
        if not isinstance(schedule, _schedules.VPSchedule):
            raise ValueError(f"schedule must be a tts_fast.schedules.VPSchedule (e.g. edm_schedule(...)), got {type(schedule).__name__}")
        sig = schedule_sigmas(schedule)
        lo, hi = float(sig.min()), float(sig.max())
        tol = 1e-9
        if lo < sigma_min * (1 - tol) or hi > sigma_max * (1 + tol):
            raise ValueError(
                f"schedule reaches EDM sigma in [{lo:.4g}, {hi:.4g}], outside the model's [{sigma_min:.4g}, {sigma_max:.4g}]: "
                f"use tts_fast.models.edm_schedule({sigma_min:g}, {sigma_max:g}) or another schedule within the range")
        self.denoise = denoise
        self.sample_shape = shape
        self.schedule = schedule
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.num_prompts = num_prompts
        self.device = torch.device(device)
        self.dtype = dtype

    def forward(self, x_t, t, cond=None):
        """x0 = D(x_t / sqrt(abar_t), sqrt((1 - abar_t) / abar_t), cond) for x_t [B, *sample_shape] at train timesteps t [B]."""
        if not isinstance(x_t, torch.Tensor) or tuple(x_t.shape[1:]) != self.sample_shape:
            got = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be [B, {', '.join(map(str, self.sample_shape))}], got {got}")
        t = per_sample_timesteps(t, x_t.shape[0], x_t.device)
        alpha, sigma = self.schedule.alpha_sigma(t)
        x, sigma_edm = vp_to_edm(x_t, alpha, sigma)
        return self.denoise(x, sigma_edm.to(x_t.dtype), cond)
