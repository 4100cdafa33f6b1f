"""A 28x28 zoo model as a :class:`tts_fast.Denoiser`: unconditional, or class-conditional per prompt row."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ... import schedules as _schedules
from ..._device_checks import prompt_rows
from ...models.base import Denoiser, per_sample_timesteps
from .data import IMAGE_SIZE, NUM_CLASSES
from .nets import NULL_LABEL, UNet28


def real28_schedule() -> _schedules.VPSchedule:
    """The schedule the 28x28 UNets were trained with: cosine, 1000 train timesteps."""
    return _schedules.cosine(1000)


def check_labels(labels, name: str = "labels") -> Optional[list]:
    """None, or a non-empty sequence of class labels in 0..9 (``None`` entries: unconditional rows) -> a list."""
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        labels = labels.tolist()
    if isinstance(labels, (int, str)) or not hasattr(labels, "__len__"):
        raise ValueError(f"{name} must be None or a sequence of class labels in 0..9 (one per prompt row), got {labels!r}")
    out = []
    for v in labels:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < NUM_CLASSES):
            raise ValueError(f"{name} must hold class labels in 0..{NUM_CLASSES - 1} (or None: no class), got {v!r}")
        out.append(v)
    if not out:
        raise ValueError(f"{name} must hold at least one label (or be None: the unconditional model)")
    return out


class Real28Model(Denoiser):
    """A 28x28 class-conditional diffusion model as a :class:`tts_fast.Denoiser` (x0 from v-prediction).

    x0 = alpha x_t - sigma v_theta(x_t, t, label), clamped to [-1, 1] (``clip``).

    Args:
        net: the trained :class:`~tts_fast.zoo.real28.nets.UNet28`.
        labels: None for the unconditional model (every row gets the null label; any number of
            rows), or one class label per prompt row (``None`` entries: unconditional rows); then
            ``num_prompts = len(labels)`` and search runs those rows.
        schedule: its training schedule (cosine, 1000 steps).
        clip: clamp x0-predictions to [-1, 1].
        dataset: the data it was trained on ('mnist' or 'fashion'), for messages and records.
    """

    sample_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, net: UNet28, labels: Optional[Sequence] = None, schedule: Optional[_schedules.Schedule] = None, *,
                 clip: bool = True, device="cpu", dataset: str = "mnist"):
        self.labels = check_labels(labels)
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.schedule = schedule if schedule is not None else real28_schedule()
        self.clip = bool(clip)
        self.dataset = dataset
        self.num_prompts = None if self.labels is None else len(self.labels)
        codes = [NULL_LABEL] if self.labels is None else [NULL_LABEL if v is None else v for v in self.labels]
        self._codes = torch.tensor(codes, dtype=torch.int64, device=self.device)

    def with_labels(self, labels: Optional[Sequence]) -> "Real28Model":
        """The same network with other prompt rows (None: unconditional)."""
        return Real28Model(self.net, labels, self.schedule, clip=self.clip, device=self.device, dataset=self.dataset)

    def forward(self, x_t, t, cond=None):
        """x0-prediction [B, 1, 28, 28] of x_t [B, 1, 28, 28] at train timesteps t [B]; cond: [B] prompt rows (labelled models)."""
        if not isinstance(x_t, torch.Tensor) or x_t.shape[1:] != self.sample_shape:
            got = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be [B, {', '.join(map(str, self.sample_shape))}], got {got}")
        n = x_t.shape[0]
        t = per_sample_timesteps(t, n, x_t.device)
        alpha, sigma = (v.to(x_t.dtype).view(-1, 1, 1, 1) for v in self.schedule.alpha_sigma(t))
        if self.num_prompts is None:
            labels = self._codes.to(x_t.device).expand(n)
        else:
            labels = self._codes.to(x_t.device)[prompt_rows(cond, n, self.num_prompts, x_t.device, f"this {self.dataset} model (one label per prompt row)")]
        x0 = _schedules.x0_from_v(x_t, self.net(x_t, t.to(torch.float32), labels), alpha, sigma)
        return x0.clamp(-1.0, 1.0) if self.clip else x0

    def to(self, device) -> "Real28Model":
        """The model on another device."""
        return Real28Model(self.net, self.labels, self.schedule, clip=self.clip, device=device, dataset=self.dataset)
