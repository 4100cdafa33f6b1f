"""The terrain model as a :class:`tts_fast.Denoiser`: prompt rows are difficulties.

``terrain_model([0.2, 0.5, 0.8])`` wraps the package's EDM consistency UNet with
:class:`tts_fast.models.EDMDenoiser`: row b of a search is conditioned on difficulty[b].

The default schedule spans sigma 40 .. 80, not the model's whole 0.002 .. 80. The model was
distilled for one step from sigma 80 ("endpoint distillation"), and its x0-prediction from lower
levels is rougher than its samples and keeps noise in the surface. Re-noised from its own one-step
samples and denoised again (benchmarks/terrain.py, docs/terrain.md):

- the heights' lag-1 autocorrelation goes from 0.998 (one step) to 0.997 at sigma 40, 0.991 at
  20, 0.97 at 10 and 0.56 at 1;
- the mean slope grows 1.1x at sigma 40, 1.9x at 20 and 4.4x at 10.

A sampler that walks down to sigma 0.002 returns noisy terrain; above sigma 40 the x0-predictions
stay close to the model's own samples. Pass ``sigma_range`` or a ``schedule`` to choose otherwise.

Forward passes run on onnxruntime when no gradient is asked for (several times faster on a CPU),
and on the onnx2torch module when one is (local search with rho > 0 differentiates through the
model); ``backend`` picks one for all.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from .._device_checks import prompt_rows
from ..models.edm import EDMDenoiser, edm_schedule
from ..schedules import VPSchedule
from . import onnx_model
from .onnx_model import SIGMA_MAX, SIGMA_MIN, SIZE

BACKENDS = ("auto", "onnxruntime", "torch")
SEARCH_SIGMA_RANGE = (40.0, SIGMA_MAX)  # where this one-step model's x0-predictions stay terrain-like (see above)


def check_difficulties(difficulties) -> list[float]:
    """A non-empty sequence of difficulties in [0, 1] (the model's continuous label) -> a list of floats."""
    values = list(difficulties) if hasattr(difficulties, "__iter__") and not isinstance(difficulties, str) else None
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1 for v in values):
        raise ValueError(f"difficulties must be a non-empty sequence of numbers in [0, 1] (one per prompt row), got {difficulties!r}")
    return [float(v) for v in values]


class TerrainD:
    """``D(x, sigma, cond)`` of the terrain UNet with one difficulty per prompt row (see :func:`terrain_model`)."""

    def __init__(self, difficulties: Sequence[float], backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.difficulties = torch.tensor(check_difficulties(difficulties), dtype=torch.float32)
        self.backend = backend
        onnx_model.onnx_file()  # a missing package is named now, not at the first model call

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        n = x.shape[0]
        rows = prompt_rows(cond, n, self.difficulties.numel(), x.device, "the terrain model (one difficulty per prompt row)")
        difficulty = self.difficulties.to(x.device)[rows]
        needs_grad = torch.is_grad_enabled() and x.requires_grad
        if self.backend == "onnxruntime" or (self.backend == "auto" and not needs_grad and x.device.type == "cpu"):
            if needs_grad:
                raise ValueError("backend='onnxruntime' gives no gradients; use backend='auto' or 'torch' for gradient guidance (rho > 0)")
            return onnx_model.run_ort(x, sigma, difficulty).to(x.device, x.dtype)
        net = onnx_model.torch_module().to(x.device)
        return net(x.float(), sigma.float(), difficulty).to(x.dtype)


def terrain_model(difficulties: Sequence[float], *, backend: str = "auto", sigma_range: tuple = SEARCH_SIGMA_RANGE,
                  schedule: Optional[VPSchedule] = None, device="cpu") -> EDMDenoiser:
    """The terrain model as a Denoiser with one prompt row per difficulty.

    Args:
        difficulties: one difficulty in [0, 1] per prompt row (the package's labels 1..100 are
            (label - 1) / 99).
        backend: 'auto' (onnxruntime for plain forwards on the CPU, torch for gradients),
            'onnxruntime' (no gradients) or 'torch' (the onnx2torch module throughout).
        sigma_range: (lowest, highest) EDM sigma of the default schedule ``edm_schedule(*sigma_range)``,
            within the model's [0.002, 80] (default (40, 80), see the module docstring).
        schedule: a VP schedule within sigma [0.002, 80], in place of the default.
        device: where samples live ('cpu'; the torch backend also runs on 'cuda').

    Samples are [B, 1, 128, 128] in the model's space (about [-1, 1]); heights in metres with
    :func:`tts_fast.terrain.heights.to_metres`.
    """
    d = TerrainD(difficulties, backend)
    if schedule is None:
        if not (isinstance(sigma_range, tuple) and len(sigma_range) == 2):
            raise ValueError(f"sigma_range must be a (lowest, highest) pair of EDM sigmas, got {sigma_range!r}")
        schedule = edm_schedule(*sigma_range)
    return EDMDenoiser(d, (1, SIZE, SIZE), schedule=schedule,
                       sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, num_prompts=d.difficulties.numel(), device=device)
