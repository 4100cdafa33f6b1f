"""``tts-fast run`` on a diffusers text-to-image pipeline (SD 1.5, SDXL, FLUX) with an image reward model."""

from __future__ import annotations

import os

import numpy as np

from .._cli_common import CLIError

PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline"}
VERIFIERS = ("imagereward", "clip", "aesthetic")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def load_pipeline(args, device, dtype):
    """The diffusers pipeline of ``args.model`` from the local folder ``args.weights``, on ``device``."""
    from .._extras import require

    diffusers = require("diffusers", "diffusers", "tts-fast run")
    cls = getattr(diffusers, PIPELINES[args.model])
    kw = {"torch_dtype": dtype}
    if args.model == "sd15":
        kw.update(safety_checker=None, requires_safety_checker=False)
    if not os.path.isdir(args.weights):
        raise CLIError(f"--weights {args.weights!r} is not a folder: pass a local diffusers pipeline folder (model_index.json, unet/ ...)")
    try:
        pipe = cls.from_pretrained(args.weights, **kw)
    except (OSError, ValueError, TypeError) as e:
        raise CLIError(f"cannot load a {PIPELINES[args.model]} from {args.weights}: {e}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def image_verifier(args, prompts, device):
    """The reward model named by ``args.verifier`` (imagereward, clip, aesthetic) for ``prompts``."""
    import tts_fast as tts

    try:
        if args.verifier == "imagereward":
            return tts.verifiers.ImageReward(prompts, args.verifier_weights, tokenizer=args.tokenizer, device=device)
        if args.verifier == "clip":
            kw = {} if args.verifier_weights is None else {"model": args.verifier_weights}
            return tts.verifiers.CLIPScore(prompts, device=device, **kw)
        kw = {} if args.verifier_weights is None else {"model": args.verifier_weights}
        return tts.verifiers.Aesthetic(args.aesthetic_head, device=device, **kw)
    except (OSError, ImportError, ValueError, TypeError) as e:
        raise CLIError(str(e)) from None


def network_dtype(args, device):
    """--dtype, or fp16 on CUDA (bf16 for FLUX) and fp32 on the CPU."""
    import torch

    if args.dtype is None:
        return torch.float32 if device.type == "cpu" else (torch.bfloat16 if args.model == "flux" else torch.float16)
    return getattr(torch, DTYPES[args.dtype])


class DiffusersFamily:
    """SD 1.5 / SDXL / FLUX: prompts are text; images are the full VAE decodes of the returned latents."""

    verifiers = VERIFIERS
    default_verifier = None  # a reward model must be chosen
    images = True
    pipeline_options = True  # --guidance, --height, --dtype, ... apply

    @staticmethod
    def check(args) -> None:
        """Every option that can be checked without loading anything (CLIError naming it)."""
        if args.weights is None:
            raise CLIError(f"--model {args.model} needs --weights: a local diffusers pipeline folder")
        if not os.path.isdir(args.weights):
            raise CLIError(f"--weights {args.weights!r} is not a folder: pass a local diffusers pipeline folder (model_index.json, unet/ ...)")
        if args.verifier_weights is not None and args.verifier == "imagereward" and not os.path.isfile(args.verifier_weights):
            raise CLIError(f"--verifier-weights {args.verifier_weights!r} is not a file: imagereward takes the ImageReward.pt checkpoint")
        if args.aesthetic_head is not None:
            if args.verifier != "aesthetic":
                raise CLIError(f"--aesthetic-head applies to --verifier aesthetic, not {args.verifier}")
            if not os.path.isfile(args.aesthetic_head):
                raise CLIError(f"--aesthetic-head {args.aesthetic_head!r} is not a file")
        if args.tokenizer is not None and args.verifier != "imagereward":
            raise CLIError(f"--tokenizer applies to --verifier imagereward (its BERT tokenizer), not {args.verifier}")
        if args.negative_prompt is not None and args.model == "flux":
            raise CLIError("--negative-prompt applies to SD/SDXL (FLUX.1 is guidance-distilled)")
        cfg = args.model != "flux" and (args.guidance is None or args.guidance > 1)
        if args.negative_prompt is not None and not cfg:
            raise CLIError(f"--negative-prompt needs classifier-free guidance: --guidance {args.guidance} (<= 1) turns it off")
        if args.max_batch is not None and cfg and args.max_batch < 2:
            raise CLIError("--max-batch must be >= 2 with classifier-free guidance (a CFG pair is 2 network rows)")
        factor = 16 if args.model == "flux" else 8
        for name in ("height", "width"):
            v = getattr(args, name)
            if v is not None and v % factor:
                raise CLIError(f"--{name} {v} must be a multiple of {factor} for {args.model} (the VAE factor{' x 2x2 packing' if factor == 16 else ''})")

    @staticmethod
    def check_prompt(text: str) -> None:
        """Any text is a prompt."""

    @staticmethod
    def schedule(args):
        """The schedule family of the model (what the search's own checks depend on)."""
        from .. import schedules

        return schedules.FlowSchedule() if args.model == "flux" else schedules.ddpm_linear()

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.dtype = network_dtype(args, device)
        self.pipe = load_pipeline(args, device, self.dtype)
        self.model = self.verifier = None

    def prepare(self, prompts: list[str]):
        """(model, verifier) for one group of prompts; the pipeline and reward model load once."""
        import tts_fast as tts

        a = self.args
        if self.model is None:
            kw = dict(guidance_scale=a.guidance, height=a.height, width=a.width, backend=a.backend, max_batch=a.max_batch,
                      decode_scale=a.decode_scale)
            if a.negative_prompt is not None:
                kw["negative_prompt"] = a.negative_prompt
            if a.model == "flux":
                tok = getattr(self.pipe, "tokenizer_2", None)
                kw["max_sequence_length"] = min(512, int(getattr(tok, "model_max_length", 512) or 512)) if tok is not None else 512
            try:
                self.model = tts.models.DiffusersModel(self.pipe, prompts, **kw)
            except ValueError as e:
                raise CLIError(str(e)) from None
            self.verifier = image_verifier(a, prompts, self.device)
        else:
            self.model.set_prompts(prompts)
            self.verifier.set_prompts(prompts)
        return self.model, self.verifier

    def pixels(self, result) -> list:
        """uint8 [H, W, 3] per prompt: the full decodes (a search at --decode-scale < 1 decoded smaller)."""
        images = self.model.decode_full(result.latents) if self.args.decode_scale != 1.0 else result.samples
        arr = (images.detach().float().clamp(0, 1) * 255).round().to("cpu").byte().permute(0, 2, 3, 1).numpy()
        return [np.ascontiguousarray(a) for a in arr]

    @staticmethod
    def sample(result, b: int):
        """No sample coordinates in the record (the image is the sample)."""
        return None
