"""``--model sd15 | sdxl | flux``: a diffusers text-to-image pipeline with an image reward model.

The family's defaults (pipeline class, guidance, size multiple, network dtype) are its pipeline
adapter's (:func:`tts_fast.models.diffusers.adapter_of`); this module adds what the command line
needs: checks before loading, the local pipeline folder, the reward models by name, and what
``tts-fast profile`` builds (random weights unless ``--weights``).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .._user_errors import UserError
from .config import DTYPES, ModelConfig

VERIFIERS = ("imagereward", "clip", "aesthetic")
T5_LENGTH = 512  # FLUX's T5 prompt length (FluxPipeline's max_sequence_length), unless the tokenizer is shorter


def _adapter(name: str):
    from ..models.diffusers import adapter_of

    return adapter_of(name)


def network_dtype(model: ModelConfig, device):
    """--dtype, or the pipeline's default on ``device`` (fp32 on the CPU; fp16, bf16 for FLUX, elsewhere)."""
    import torch

    if model.dtype is None:
        return _adapter(model.name).default_dtype(device)
    return getattr(torch, DTYPES[model.dtype])


def load_pipeline(model: ModelConfig, device, dtype):
    """The diffusers pipeline of ``model.name`` from the local folder ``model.weights``, on ``device``."""
    from .._extras import require

    diffusers = require("diffusers", "diffusers", "tts-fast run")
    pipeline = _adapter(model.name).pipeline
    kw = {"torch_dtype": dtype}
    if model.name == "sd15":
        kw.update(safety_checker=None, requires_safety_checker=False)
    if not os.path.isdir(model.weights):
        raise UserError(f"--weights {model.weights!r} is not a folder: pass a local diffusers pipeline folder (model_index.json, unet/ ...)")
    try:
        pipe = getattr(diffusers, pipeline).from_pretrained(model.weights, **kw)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"cannot load a {pipeline} from {model.weights}: {e}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def image_verifier(model: ModelConfig, prompts, device):
    """The reward model named by ``model.verifier`` (imagereward, clip, aesthetic) for ``prompts``."""
    import tts_fast as tts

    try:
        if model.verifier == "imagereward":
            return tts.verifiers.ImageReward(prompts, model.verifier_weights, tokenizer=model.tokenizer, device=device)
        kw = {} if model.verifier_weights is None else {"model": model.verifier_weights}
        if model.verifier == "clip":
            return tts.verifiers.CLIPScore(prompts, device=device, **kw)
        return tts.verifiers.Aesthetic(model.aesthetic_head, device=device, **kw)
    except (OSError, ImportError, ValueError, TypeError) as e:
        raise UserError(str(e)) from None


def _model_options(model: ModelConfig, pipe) -> dict:
    """DiffusersModel's keyword arguments from the options (FLUX: T5 length capped by its tokenizer)."""
    kw = dict(guidance_scale=model.guidance, height=model.height, width=model.width, backend=model.backend,
              max_batch=model.max_batch, decode_scale=model.decode_scale)
    if model.negative_prompt is not None:
        kw["negative_prompt"] = model.negative_prompt
    if model.name == "flux":
        tok = getattr(pipe, "tokenizer_2", None)
        kw["max_sequence_length"] = min(T5_LENGTH, int(getattr(tok, "model_max_length", T5_LENGTH) or T5_LENGTH)) if tok is not None else T5_LENGTH
    return kw


def _cheap_verifier():
    """'cheap' (profile): the mean brightness of the decoded image, differentiable."""
    import tts_fast as tts

    return tts.verifiers.Function(lambda img: img.float().mean(dim=tuple(range(1, img.dim()))), differentiable=True)


class DiffusersFamily:
    """SD 1.5 / SDXL / FLUX: prompts are text; images are the full VAE decodes of the returned latents."""

    verifiers = VERIFIERS
    default_verifier = None  # a reward model must be chosen
    images = True
    pipeline_options = True

    def __init__(self, name: str):
        self.name = name

    def check(self, model: ModelConfig) -> None:
        """Every option that can be checked without loading anything (UserError naming it)."""
        if model.weights is None:
            raise UserError(f"--model {model.name} needs --weights: a local diffusers pipeline folder")
        if not os.path.isdir(model.weights):
            raise UserError(f"--weights {model.weights!r} is not a folder: pass a local diffusers pipeline folder (model_index.json, unet/ ...)")
        if model.verifier_weights is not None and model.verifier == "imagereward" and not os.path.isfile(model.verifier_weights):
            raise UserError(f"--verifier-weights {model.verifier_weights!r} is not a file: imagereward takes the ImageReward.pt checkpoint")
        if model.aesthetic_head is not None and model.verifier == "aesthetic" and not os.path.isfile(model.aesthetic_head):
            raise UserError(f"--aesthetic-head {model.aesthetic_head!r} is not a file")
        self._check_verifier_options(model)
        self._check_pipeline_options(model)

    @staticmethod
    def _check_verifier_options(model: ModelConfig) -> None:
        if model.aesthetic_head is not None and model.verifier != "aesthetic":
            raise UserError(f"--aesthetic-head applies to --verifier aesthetic, not {model.verifier}")
        if model.tokenizer is not None and model.verifier != "imagereward":
            raise UserError(f"--tokenizer applies to --verifier imagereward (its BERT tokenizer), not {model.verifier}")

    def _check_pipeline_options(self, model: ModelConfig) -> None:
        if model.negative_prompt is not None and model.name == "flux":
            raise UserError("--negative-prompt applies to SD/SDXL (FLUX.1 is guidance-distilled)")
        cfg = model.name != "flux" and (model.guidance is None or model.guidance > 1)
        if model.negative_prompt is not None and not cfg:
            raise UserError(f"--negative-prompt needs classifier-free guidance: --guidance {model.guidance} (<= 1) turns it off")
        if model.max_batch is not None and cfg and model.max_batch < 2:
            raise UserError("--max-batch must be >= 2 with classifier-free guidance (a CFG pair is 2 network rows)")
        factor = _adapter(self.name).size_multiple
        for name in ("height", "width"):
            v = getattr(model, name)
            if v is not None and v % factor:
                packing = " x 2x2 packing" if self.name == "flux" else ""
                raise UserError(f"--{name} {v} must be a multiple of {factor} for {self.name} (the VAE factor{packing})")

    @staticmethod
    def check_prompt(text: str) -> None:
        """Any text is a prompt."""

    def schedule(self, model: ModelConfig):
        """The schedule family of the model (what the search's own checks depend on)."""
        from .. import schedules

        return schedules.FlowSchedule() if self.name == "flux" else schedules.ddpm_linear()

    def load(self, model: ModelConfig, device) -> "LoadedPipeline":
        """The pipeline in ``model.weights`` on ``device`` (the reward model loads with the first group)."""
        return LoadedPipeline(model, device, load_pipeline(model, device, network_dtype(model, device)))

    def profile_setup(self, model: ModelConfig, device, *, batch_size: int, smoke: bool, prompts: Sequence[str]) -> tuple:
        """(model, verifier) to profile: the published architecture with random weights and random prompt
        embeddings (``smoke``: a tiny one), or the pipeline in ``model.weights`` with ``prompts`` (one per row);
        the verifier is 'cheap' (mean brightness) or the reward model named."""
        self._check_profile_options(model, smoke=smoke, prompts=prompts, batch_size=batch_size)
        if model.weights is None:
            from ..models import architectures

            net = architectures.random_model(self.name, batch_size, smoke=smoke, device=device, dtype=network_dtype(model, device),
                                             guidance_scale=model.guidance, backend=model.backend, max_batch=model.max_batch,
                                             decode_scale=model.decode_scale)
            return net, _cheap_verifier()
        loaded = self.load(model, device)
        net = loaded.model_for(list(prompts))
        return net, (_cheap_verifier() if model.verifier == "cheap" else image_verifier(model, list(prompts), device))

    def _check_profile_options(self, model: ModelConfig, *, smoke: bool, prompts: Sequence[str], batch_size: int) -> None:
        if model.weights is not None and smoke:
            raise UserError("--smoke builds a tiny random network; it does not apply with --weights")
        if model.weights is None and prompts:
            raise UserError("--prompt needs --weights (random-weight networks take random prompt embeddings)")
        if model.verifier == "cheap" and any(v is not None for v in (model.verifier_weights, model.aesthetic_head, model.tokenizer)):
            raise UserError("--verifier-weights, --aesthetic-head and --tokenizer configure a reward-model --verifier, not 'cheap'")
        self._check_verifier_options(model)
        if model.weights is None and model.verifier != "cheap":
            raise UserError("reward-model verifiers need real prompts: give --weights PATH and --prompt TEXT")
        if model.weights is not None and len(prompts) != batch_size:
            raise UserError(f"--weights needs --prompt given {batch_size} time(s) (one per prompt row of --batch-size)")


class LoadedPipeline:
    """A loaded pipeline serving prompt groups: the DiffusersModel and the reward model are built with the
    first group, and re-encode their prompts for the next ones."""

    def __init__(self, model: ModelConfig, device, pipe):
        self.config, self.device, self.pipe = model, device, pipe
        self.model = self.verifier = None

    def model_for(self, prompts: list):
        """The DiffusersModel holding ``prompts`` (built once; later calls re-encode)."""
        import tts_fast as tts

        if self.model is None:
            try:
                self.model = tts.models.DiffusersModel(self.pipe, prompts, **_model_options(self.config, self.pipe))
            except ValueError as e:
                raise UserError(str(e)) from None
        else:
            self.model.set_prompts(prompts)
        return self.model

    def prepare(self, prompts: list) -> tuple:
        """(model, verifier) for one group of prompts; the pipeline and reward model load once."""
        first = self.model is None
        model = self.model_for(prompts)
        if first:
            self.verifier = image_verifier(self.config, prompts, self.device)
        else:
            self.verifier.set_prompts(prompts)
        return model, self.verifier

    def pixels(self, result) -> list:
        """uint8 [H, W, 3] per prompt: the full decodes (a search at --decode-scale < 1 decoded smaller)."""
        images = self.model.decode_full(result.latents) if self.config.decode_scale != 1.0 else result.samples
        arr = (images.detach().float().clamp(0, 1) * 255).round().to("cpu").byte().permute(0, 2, 3, 1).numpy()
        return [np.ascontiguousarray(a) for a in arr]

    @staticmethod
    def sample(result, b: int):
        """No sample coordinates in the record (the image is the sample)."""
        return None
