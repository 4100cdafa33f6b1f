"""The digits diffusion model as a :class:`tts_fast.Denoiser`, and the schedule it was trained with."""

from __future__ import annotations

from typing import Optional

import torch

from .. import schedules as _schedules
from ..models.base import Denoiser, per_sample_timesteps
from .nets import IMAGE_SIZE, DigitsUNet


def digits_schedule() -> _schedules.VPSchedule:
    """The schedule the digits UNet was trained with: cosine, 1000 train timesteps."""
    return _schedules.cosine(1000)


class DigitsModel(Denoiser):
    """The digits diffusion model as a :class:`tts_fast.Denoiser` (x0-prediction from epsilon).

    x0 = (x_t - sigma_t eps_theta(x_t, t)) / alpha_t, clamped to the data range [-1, 1] (``clip``,
    as the paper's ImageNet setup does). Unconditional: ``cond`` is ignored (any number of rows).

    Args:
        net: the trained :class:`~tts_fast.zoo.nets.DigitsUNet`.
        schedule: its training schedule (cosine, 1000 steps).
        clip: clamp x0-predictions to [-1, 1].
    """

    num_prompts = None
    sample_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, net: DigitsUNet, schedule: Optional[_schedules.Schedule] = None, *, clip: bool = True, device="cpu"):
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.schedule = schedule if schedule is not None else digits_schedule()
        self.clip = bool(clip)
        self._alpha_bar = self.schedule.alpha_bar.to(self.device)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's noise prediction at train timesteps t [B]."""
        return self.net(x_t, t.to(x_t.device, torch.float32))

    def forward(self, x_t, t, cond=None):
        if x_t.shape[1:] != self.sample_shape:
            raise ValueError(f"x_t must be [B, {', '.join(map(str, self.sample_shape))}], got {tuple(x_t.shape)}")
        t = per_sample_timesteps(t, x_t.shape[0], x_t.device)
        ab = self._alpha_bar[t.round().long().clamp(0, self._alpha_bar.numel() - 1)]
        alpha = ab.sqrt().to(x_t.dtype).view(-1, 1, 1, 1)
        sigma = (1.0 - ab).sqrt().to(x_t.dtype).view(-1, 1, 1, 1)
        x0 = _schedules.x0_from_eps(x_t, self.eps(x_t, t), alpha, sigma)
        return x0.clamp(-1.0, 1.0) if self.clip else x0

    def to(self, device) -> "DigitsModel":
        return DigitsModel(self.net, self.schedule, clip=self.clip, device=device)
