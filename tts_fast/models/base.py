"""The Denoiser protocol: what tts_fast needs from a diffusion model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import torch

from ..schedules import Schedule


def per_sample_timesteps(t, n: int, device) -> torch.Tensor:
    """Model timesteps as a [n] tensor on ``device``: a scalar is broadcast, any other shape refused."""
    t = torch.as_tensor(t, device=device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"t must be [B] = [{n}] timesteps, got {tuple(t.shape)}")
    return t


class Denoiser(ABC):
    """A diffusion model seen as an x0-predictor, ``x0 = model(x_t, t, cond)``.

    Subclasses implement :meth:`forward` and set the attributes below.

    Attributes:
        schedule: the model's :class:`~tts_fast.schedules.Schedule` (VP or flow).
        sample_shape: shape of one sample in model space (e.g. (4, 64, 64) latents).
        num_prompts: number of conditioning rows the model holds (prompts, class labels), or
            None for an unconditional model that accepts any number of rows.
        cfg: True when one evaluation runs a classifier-free-guidance pair (counted as one NFE,
            flagged in :class:`tts_fast.NFE`).
        dtype, device: of the tensors the model takes.

    The conditioning passed to the model is ``cond``: an int64 tensor [B] of prompt rows (one per
    particle), or None. Particles of prompt b carry cond == b; resampling never mixes rows.
    """

    schedule: Schedule
    sample_shape: tuple
    num_prompts: Optional[int] = None
    cfg: bool = False
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        """x0-prediction for x_t [B, *sample_shape] at model timesteps t [B] (float)."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward(x_t, t, cond)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Map model-space samples to what verifiers score (identity here; a VAE for latents).

        May be a cheap approximation (a tiny decoder, downscaled latents) for the scores taken
        during search; :meth:`decode_full` is used for final samples and their rewards.
        """
        return x0

    def decode_full(self, x0: torch.Tensor) -> torch.Tensor:
        """Full-quality decode of final samples (the same as :meth:`decode` unless overridden)."""
        return self.decode(x0)
