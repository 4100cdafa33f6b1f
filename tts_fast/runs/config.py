"""What a ``tts-fast run`` runs, as frozen values: :class:`ModelConfig` and :class:`RunConfig`.

The command line is parsed once (:func:`tts_fast.runs.options.config_of`); from there the job, the
model families, the worker and the launchers read these fields and never the parser's. A
:class:`ModelConfig` is also what ``tts-fast profile`` hands to the same families.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

from .._user_errors import UserError

# --dtype names -> torch dtype names (None: the family's default, see the pipeline adapters)
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_int(obj, name: str, low: int, optional: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and optional:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise UserError(f"{_flag(name)} must be an integer >= {low}{' or None' if optional else ''}, got {v!r}")


def _check_number(obj, name: str, low: float, *, strict: bool, optional: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and optional:
        return
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > low if strict else v >= low)
    if not ok:
        raise UserError(f"{_flag(name)} must be a finite number {'>' if strict else '>='} {low:g}{' or None' if optional else ''}, got {v!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The model and verifier to build: ``--model`` and the options of its family.

    Attributes:
        name: the family (``--model``), a key of :data:`tts_fast.runs.families.FAMILIES`.
        weights: its weights (a diffusers pipeline folder; for digits a zoo weights folder), or None.
        verifier: the reward (``--verifier``), or None for the family's default.
        verifier_weights, aesthetic_head, tokenizer: files of the reward model.
        guidance: guidance scale, or None for the pipeline's (its adapter's ``default_guidance``).
        negative_prompt: SD/SDXL negative prompt for every prompt.
        height, width: image size in pixels, or None for the pipeline's.
        dtype: network dtype, a key of :data:`DTYPES`, or None for the adapter's ``default_dtype``.
        backend: denoiser backend (eager, compile, cudagraphs, tensorrt).
        max_batch: largest network batch in rows, or None.
        decode_scale: latent scale (> 0) of the decodes taken during search.
    """

    name: str
    weights: Optional[str] = None
    verifier: Optional[str] = None
    verifier_weights: Optional[str] = None
    aesthetic_head: Optional[str] = None
    tokenizer: Optional[str] = None
    guidance: Optional[float] = None
    negative_prompt: Optional[str] = None
    height: Optional[int] = None
    width: Optional[int] = None
    dtype: Optional[str] = None
    backend: str = "eager"
    max_batch: Optional[int] = None
    decode_scale: float = 1.0

    def __post_init__(self):
        _check_number(self, "guidance", 0.0, strict=False, optional=True)
        for name in ("height", "width", "max_batch"):
            _check_int(self, name, 1, optional=True)
        _check_number(self, "decode_scale", 0.0, strict=True)
        if self.dtype is not None and self.dtype not in DTYPES:
            raise UserError(f"--dtype must be one of {', '.join(sorted(DTYPES))} or None, got {self.dtype!r}")


@dataclass(frozen=True)
class RunConfig:
    """A whole ``tts-fast run``: the model, the prompts, the search and where the records go.

    Attributes:
        model: the :class:`ModelConfig`.
        out: the output folder (records inside are resumed).
        prompts: ``--prompt`` texts, in order (the prompts file's lines follow them).
        prompts_file: a text file (one prompt per line) or a .jsonl file, or None.
        method: the search method name.
        options: ``--option`` (key, value) pairs in the order given: the method's options.
        particles, steps: particles per prompt, denoising steps.
        budget: cap on model NFE per search call, or None.
        seed: base seed; prompt group g uses seed + g.
        prompt_batch: prompts searched together in one call.
        device: 'auto', 'cpu', 'cuda', 'cuda:1', ... (under torchrun 'auto' and 'cuda' mean cuda:LOCAL_RANK).
        threads: torch CPU threads per process, or None for the policy of :mod:`tts_fast._threads`
            (OMP_NUM_THREADS when set, else 1).
        overwrite: redo prompts whose records hold other settings (else that is an error).
        progress: draw progress bars (else one line per group).
        dist_timeout: torchrun: hours a rank may wait for the others.
        ray: a Ray cluster address ('auto', 'local', ray://HOST:PORT), or None: not on Ray.
        ray_workers: Ray actors, or None (one per GPU, else per CPU).
    """

    model: ModelConfig
    out: str
    prompts: tuple = ()
    prompts_file: Optional[str] = None
    method: str = "bfs_best"
    options: tuple = ()
    particles: int = 4
    steps: int = 50
    budget: Optional[int] = None
    seed: int = 0
    prompt_batch: int = 1
    device: str = "auto"
    threads: Optional[int] = None
    overwrite: bool = False
    progress: bool = True
    dist_timeout: float = 24.0
    ray: Optional[str] = None
    ray_workers: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.model, ModelConfig):
            raise UserError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        for name, low in (("particles", 1), ("steps", 1), ("seed", 0), ("prompt_batch", 1)):
            _check_int(self, name, low)
        for name in ("budget", "threads", "ray_workers"):
            _check_int(self, name, 1, optional=True)
        _check_number(self, "dist_timeout", 0.0, strict=True)
        # frozen means frozen: tuples, not the lists a caller may keep changing
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "options", tuple((k, v) for k, v in self.options))

    def settings(self) -> dict:
        """What a record must match to be resumed (everything that changes the result), in the records' order."""
        m = self.model
        return {
            "model": m.name,
            "weights": None if m.weights is None else os.path.abspath(m.weights),
            "method": self.method,
            "options": dict(self.options),
            "particles": self.particles,
            "steps": self.steps,
            "budget": self.budget,
            "verifier": m.verifier,
            "verifier_weights": m.verifier_weights,
            "aesthetic_head": m.aesthetic_head,
            "guidance": m.guidance,
            "negative_prompt": m.negative_prompt,
            "height": m.height,
            "width": m.width,
            "seed": self.seed,
            "prompt_batch": self.prompt_batch,
            "dtype": m.dtype,
            "decode_scale": m.decode_scale,
        }
