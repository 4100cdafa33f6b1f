"""What the pipeline adapters of :class:`tts_fast.models.DiffusersModel` share: the defaults they state,
and the checks of their prompt arguments."""

from __future__ import annotations

import torch


class PipelineAdapter:
    """The per-family defaults of a diffusers pipeline, stated once on each adapter class.

    The run families, ``tts-fast profile`` and the benchmarks read them here, before any pipeline
    is loaded:

    - ``kind``: 'sd', 'sdxl' or 'flux' (``DiffusersModel.kind``);
    - ``pipeline``: the diffusers class that loads a folder of this family;
    - ``default_guidance``: the pipeline's guidance scale (classifier-free for SD/SDXL, the
      distilled guidance embedding for FLUX);
    - ``size_multiple``: height and width in pixels must be multiples of it (the VAE factor, x 2
      for FLUX's 2x2 packing);
    - ``gpu_dtype``: the network dtype off the CPU (see :meth:`default_dtype`).
    """

    kind: str
    pipeline: str
    default_guidance: float
    size_multiple: int
    gpu_dtype: torch.dtype

    @classmethod
    def default_dtype(cls, device) -> torch.dtype:
        """The network dtype on ``device`` when none is asked for: float32 on the CPU, else ``gpu_dtype``."""
        return torch.float32 if torch.device(device).type == "cpu" else cls.gpu_dtype


def as_list(v, n: int, name: str):
    """None, a string (shared by all prompts) or a list of n strings -> None or a list of n."""
    if v is None:
        return None
    if isinstance(v, str):
        return [v] * n
    v = list(v)
    if len(v) != n or not all(isinstance(s, str) for s in v):
        raise ValueError(f"{name} must be a string or a list of {n} strings (one per prompt)")
    return v


def reject_unused(unused: dict, kind: str) -> None:
    """Refuse prompt arguments another family takes (``unused``: what ``encode`` did not name), naming them."""
    given = sorted(k for k, v in unused.items() if v is not None and k not in ("height", "width", "max_sequence_length"))
    if given:
        raise ValueError(f"option(s) {given} do not apply to {kind} pipelines")


def reject_micro_conditioning(kind: str, original_size, crops_coords_top_left, target_size) -> None:
    """SDXL's size and crop conditions are refused by the other families (they would be ignored)."""
    given = [k for k, v in (("original_size", original_size), ("target_size", target_size)) if v is not None]
    given += ["crops_coords_top_left"] if tuple(crops_coords_top_left) != (0, 0) else []
    if given:
        raise ValueError(f"{', '.join(given)}: SDXL micro-conditioning, not an option of {kind} pipelines")
