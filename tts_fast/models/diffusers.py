"""Stock diffusers text-to-image pipelines (SD 1.x/2.x, SDXL, FLUX.1) as tts_fast denoisers.

    import tts_fast as tts
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(path, torch_dtype=torch.float16).to("cuda")
    model = tts.models.DiffusersModel(pipe, ["a cat", "a dog"], guidance_scale=7.5)
    verifier = tts.verifiers.ImageReward(["a cat", "a dog"])
    result = tts.search(model, verifier, "bfs_best", n_particles=8, num_steps=50)

What the adapter does, and what it does not:
- Prompts are encoded once, with the pipeline's own ``encode_prompt`` (or precomputed embeddings
  are taken as they are). Each particle's conditioning is gathered from that table by its prompt
  row (``cond``), so one network call serves particles of several prompts.
- The network (UNet or FLUX transformer) is called directly on the particles at *per-particle*
  timesteps. Classifier-free guidance runs the unconditional and conditional halves in one
  batched call of 2B rows (``cfg=True``: one NFE per particle, flagged). The network output is
  turned into the x0-prediction with the scheduler's parameterisation (epsilon, v_prediction,
  sample; flow velocity for FLUX).
- The pipeline's scheduler is read once, for its noise schedule; its stateful ``step()`` is never
  called (tts_fast's own step ops run on the device without host syncs).
- ``decode`` maps latents to images in [0, 1] through the VAE (optionally a cheap decoder for the
  scores taken during search, see ``decoder`` and ``decode_scale``); ``decode_full`` always uses the
  pipeline's VAE at full resolution.

Schedules (see :func:`schedule_from_scheduler`): VP schedules come from the scheduler's ``betas``
and ``timestep_spacing`` (and ``steps_offset`` for 'leading' spacing); flow-matching schedulers
give a :class:`~tts_fast.schedules.FlowSchedule`. FLUX shifts its sigmas by a resolution-dependent
``mu`` (``use_dynamic_shifting``): for the model's height and width, mu = linear interpolation of
(base_shift, max_shift) over the number of image tokens (H/16 * W/16), and diffusers' exponential
time shift e^mu / (e^mu + 1/t - 1) equals the constant-shift map s t / (1 + (s - 1) t) with
s = e^mu. So the adapter's FlowSchedule(shift=e^mu) reproduces FluxPipeline's sigmas exactly
(1024x1024: mu = 1.15, shift = 3.16; 512x512: mu = 0.7125, shift = 2.04).

Particle methods on FLUX run the SDE form of the flow: the engine's DDIM(eta > 0) step on a flow
grid samples the Gaussian-path posterior, whose marginals are the flow's (see :mod:`tts_fast.schedules`); eta = 0 is
the Euler step of FluxPipeline.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import schedules as _schedules
from .._chunking import AdaptiveChunks
from .._device_checks import prompt_rows
from .._extras import require
from ._flux import FluxAdapter, calculate_mu, equivalent_shift
from ._sd import SDAdapter, SDXLAdapter
from .backends import BACKENDS, make_runner
from .base import Denoiser

__all__ = ["DiffusersModel", "schedule_from_scheduler", "ADAPTERS", "adapter_of"]

# The adapter of each pipeline kind (DiffusersModel.kind); their class attributes are the families' defaults.
ADAPTERS = {"sd": SDAdapter, "sdxl": SDXLAdapter, "flux": FluxAdapter}
_ARCHITECTURE_KINDS = {"sd15": "sd", "sdxl": "sdxl", "flux": "flux"}


def adapter_of(architecture: str) -> type:
    """The adapter class of an architecture ('sd15', 'sdxl', 'flux' as in tts_fast.models.architectures and
    ``--model``): its ``pipeline``, ``default_guidance``, ``size_multiple`` and ``default_dtype(device)``."""
    if architecture not in _ARCHITECTURE_KINDS:
        raise ValueError(f"architecture must be one of {', '.join(_ARCHITECTURE_KINDS)}; got {architecture!r}")
    return ADAPTERS[_ARCHITECTURE_KINDS[architecture]]


_UNSUPPORTED_FLOW_OPTIONS = ("shift_terminal", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas", "stochastic_sampling")


# diffusers and tts_fast grids agree for every spacing, with two exceptions: diffusers' 'linspace'
# grid of a single step is t = 0 (here T - 1), and Euler-type schedulers with 'linspace' spacing use
# fractional timesteps (here rounded to the nearest train timestep).


def _is_flow(scheduler) -> bool:
    return "FlowMatch" in type(scheduler).__name__ or (not hasattr(scheduler, "betas") and "shift" in scheduler.config)


def schedule_from_scheduler(scheduler, *, image_seq_len: Optional[int] = None) -> tuple[_schedules.Schedule, str]:
    """The tts_fast schedule and prediction type of a diffusers scheduler (read once, never stepped).

    Args:
        scheduler: a diffusers scheduler (DDIM, DDPM, PNDM, Euler, DPM-Solver, ... for VP models;
            FlowMatchEulerDiscreteScheduler for FLUX / SD3).
        image_seq_len: number of image tokens, for flow schedulers with ``use_dynamic_shifting``.

    Returns:
        (schedule, prediction_type) with prediction_type in 'epsilon', 'v_prediction', 'sample',
        'flow'.
    """
    cfg = scheduler.config
    if _is_flow(scheduler):
        for opt in _UNSUPPORTED_FLOW_OPTIONS:
            if cfg.get(opt):
                raise ValueError(f"flow-matching scheduler option {opt}={cfg.get(opt)!r} is not supported by DiffusersModel")
        if cfg.get("use_dynamic_shifting"):
            if image_seq_len is None:
                raise ValueError("this scheduler shifts its sigmas by resolution (use_dynamic_shifting): image_seq_len is needed")
            shift = equivalent_shift(calculate_mu(image_seq_len, cfg), cfg.get("time_shift_type", "exponential"))
        else:
            shift = float(cfg.get("shift", 1.0))
        return _schedules.FlowSchedule(shift=shift, timestep_scale=float(cfg.get("num_train_timesteps", 1000))), "flow"
    betas = getattr(scheduler, "betas", None)
    if betas is None:
        raise ValueError(f"cannot read a noise schedule from {type(scheduler).__name__}: it has neither betas nor a flow-matching config")
    if cfg.get("rescale_betas_zero_snr"):
        raise ValueError("rescale_betas_zero_snr=True (alpha_bar = 0 at the last train timestep) is not supported by DiffusersModel")
    spacing = cfg.get("timestep_spacing", "leading")
    if spacing not in ("leading", "trailing", "linspace"):
        raise ValueError(f"timestep_spacing={spacing!r} is not supported (leading, trailing, linspace)")
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"prediction_type={pred!r} is not supported (epsilon, v_prediction, sample)")
    sched = _schedules.VPSchedule(torch.as_tensor(betas, dtype=torch.float64), spacing=spacing, steps_offset=int(cfg.get("steps_offset", 0)))
    return sched, pred


def _pipeline_kind(pipe) -> str:
    name = type(pipe).__name__
    if getattr(pipe, "transformer", None) is not None and "Flux" in type(pipe.transformer).__name__:
        return "flux"
    if getattr(pipe, "unet", None) is None:
        raise TypeError(
            f"DiffusersModel takes a StableDiffusionPipeline, StableDiffusionXLPipeline or FluxPipeline; got {name} "
            "(no unet and no FLUX transformer)"
        )
    if "XL" in name or getattr(pipe, "text_encoder_2", None) is not None or "text_time" == getattr(pipe.unet.config, "addition_embed_type", None):
        return "sdxl"
    return "sd"


class DiffusersModel(Denoiser):
    """A stock diffusers text-to-image pipeline as an x0-predicting :class:`~tts_fast.Denoiser`.

    Args:
        pipe: a ``StableDiffusionPipeline``, ``StableDiffusionXLPipeline`` or ``FluxPipeline``
            (unmodified), or a local path / model id to load with ``DiffusionPipeline.from_pretrained``
            (with ``torch_dtype`` and moved to ``device``).
        prompts: the prompts (one row each: particles of prompt b carry cond == b). May be None
            when ``prompt_embeds`` are given.
        guidance_scale: a finite number >= 0. SD/SDXL: classifier-free guidance scale (default the
            pipeline's: 7.5 for SD, 5.0 for SDXL); CFG runs when it is > 1 (``cfg=True``); values
            <= 1 (e.g. 0.0 for SD-Turbo) turn it off, as in diffusers' pipelines. FLUX: the
            distilled guidance embedding (default 3.5; must stay unset for FLUX.1-schnell, which
            has none).
        true_cfg_scale: FLUX only: true classifier-free guidance with ``negative_prompt`` (> 1;
            a finite number >= 0, values <= 1 turn it off).
        negative_prompt: a string for all prompts or one per prompt (SD/SDXL CFG, FLUX true CFG);
            refused when guidance is off (it would be ignored).
        height, width: image size in pixels, positive multiples of the VAE factor (8; 16 for
            FLUX) (default: the pipeline's default size).
        prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds:
            precomputed text embeddings [P, ...] as the pipeline's ``encode_prompt`` returns them
            (then the text encoders are not needed).
        prompts_2, negative_prompt_2: prompts for the second text encoder (SDXL, FLUX).
        guidance_rescale: SD/SDXL guidance rescale phi in [0, 1] (Lin et al. 2023), 0 disables it;
            needs CFG on.
        max_sequence_length: FLUX T5 prompt length (tokens, >= 1).
        original_size, crops_coords_top_left, target_size: SDXL micro-conditioning (defaults as
            in the pipeline: (height, width), (0, 0), (height, width)).
        encode_kwargs: extra keyword arguments of ``pipe.encode_prompt`` (e.g. clip_skip,
            lora_scale).
        max_batch: largest network batch in rows (a CFG pair is 2 rows); larger particle batches
            are split. Also the default VAE chunk. None: the whole batch, halved automatically
            on out-of-memory (and remembered), so large particle counts fit without tuning.
        decode_batch: largest VAE decode batch (default max_batch).
        backend: 'eager', 'compile', 'cudagraphs' or 'tensorrt' (see :mod:`tts_fast.models.backends`).
        backend_options: options of the backend (torch.compile keywords; cudagraphs warmup; ...).
        slots: fixed batch sizes for the padded backends (default powers of two up to max_batch).
        decoder: a cheap decoder for the scores taken during search, e.g. a diffusers
            ``AutoencoderTiny`` (TAESD for SD/SDXL, TAEF1 for FLUX): ``decode`` uses it,
            ``decode_full`` uses the pipeline's VAE.
        decode_scale: resize factor (finite, > 0) applied to the latents before ``decode`` (e.g. 0.5: a quarter
            of the VAE's pixels and cost; a blurrier, approximate image for intermediate scoring).
            ``decode_full`` is not affected.
        upcast_vae: run the VAE in float32 (default: when the VAE is fp16 and its config sets
            ``force_upcast``, as SDXL's does; the pipeline's VAE is converted once).
        dtype: dtype of the search state (latents, x0-predictions); default float32 whatever the
            network's dtype (inputs are cast to the network's dtype for each call).
        torch_dtype, device: used when ``pipe`` is a path (and ``device`` to place the pipeline).

    Attributes (the Denoiser protocol): ``schedule``, ``sample_shape`` (C, H/8, W/8; FLUX too, in
    the unpacked layout), ``num_prompts``, ``cfg``, ``dtype``, ``device``, plus ``kind`` ('sd',
    'sdxl', 'flux'), ``prediction_type``, ``height``, ``width`` and ``pipe``.
    """

    def __init__(
        self,
        pipe,
        prompts: Optional[Union[str, Sequence[str]]] = None,
        *,
        guidance_scale: Optional[float] = None,
        true_cfg_scale: float = 1.0,
        negative_prompt=None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        pooled_prompt_embeds: Optional[torch.Tensor] = None,
        negative_pooled_prompt_embeds: Optional[torch.Tensor] = None,
        prompts_2=None,
        negative_prompt_2=None,
        guidance_rescale: float = 0.0,
        max_sequence_length: int = 512,
        original_size=None,
        crops_coords_top_left=(0, 0),
        target_size=None,
        encode_kwargs: Optional[dict] = None,
        max_batch: Optional[int] = None,
        decode_batch: Optional[int] = None,
        backend: str = "eager",
        backend_options: Optional[dict] = None,
        slots: Optional[Sequence[int]] = None,
        decoder=None,
        decode_scale: float = 1.0,
        upcast_vae: Optional[bool] = None,
        dtype: torch.dtype = torch.float32,
        torch_dtype: Optional[torch.dtype] = None,
        device=None,
    ):
        require("diffusers", "diffusers", "tts_fast.models.DiffusersModel")
        # Numeric options first: before a pipeline is loaded or a prompt encoded.
        _check_options(
            guidance_scale=guidance_scale, true_cfg_scale=true_cfg_scale, guidance_rescale=guidance_rescale, height=height,
            width=width, max_sequence_length=max_sequence_length, max_batch=max_batch, decode_batch=decode_batch,
            decode_scale=decode_scale, dtype=dtype, backend=backend, original_size=original_size,
            crops_coords_top_left=crops_coords_top_left, target_size=target_size, encode_kwargs=encode_kwargs,
        )
        if isinstance(pipe, (str, bytes)) or hasattr(pipe, "__fspath__"):
            pipe = _load_pipeline(pipe, torch_dtype, device)
        self.pipe = pipe
        self._adapter = ADAPTERS[_pipeline_kind(pipe)](pipe)
        self.kind = self._adapter.kind
        net = self._adapter.net
        self.device = torch.device(net.device)
        self.net_dtype = net.dtype
        self.dtype = dtype
        dh, dw = self._adapter.default_size()
        self.height, self.width = (dh if height is None else height), (dw if width is None else width)
        self.sample_shape = self._adapter.sample_shape(self.height, self.width)
        extra = self._adapter.encode_options(height=self.height, width=self.width, guidance_scale=guidance_scale,
                                             max_sequence_length=max_sequence_length, original_size=original_size,
                                             crops_coords_top_left=crops_coords_top_left, target_size=target_size)
        self._set_guidance(guidance_scale, true_cfg_scale, guidance_rescale,
                           has_negative=negative_prompt is not None or negative_prompt_embeds is not None)
        self._read_schedule()
        self._encode_args = dict(negative_prompt=negative_prompt, prompts_2=prompts_2, negative_prompt_2=negative_prompt_2,
                                 encode_kwargs=dict(encode_kwargs or {}), extra=extra)
        self.set_prompts(prompts, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
                         pooled_prompt_embeds=pooled_prompt_embeds, negative_pooled_prompt_embeds=negative_pooled_prompt_embeds)
        self._set_backend(backend, backend_options, max_batch=max_batch, decode_batch=decode_batch, slots=slots)
        self._set_decoding(decoder, decode_scale, upcast_vae)

    def _set_guidance(self, guidance_scale, true_cfg_scale, guidance_rescale, *, has_negative: bool) -> None:
        """cfg, guidance_scale, distilled_guidance (the family's rule, see the adapters) and guidance_rescale."""
        self.cfg, self.guidance_scale, self.distilled_guidance = self._adapter.guidance(guidance_scale, true_cfg_scale, guidance_rescale,
                                                                                        has_negative)
        self.guidance_rescale = float(guidance_rescale)
        if self.guidance_rescale and not self.cfg:
            raise ValueError(f"guidance_rescale={guidance_rescale} rescales classifier-free guidance, which is off (guidance_scale={self.guidance_scale} <= 1)")

    def _read_schedule(self) -> None:
        """schedule and prediction_type from the pipeline's scheduler (FLUX: at this image size)."""
        seq = self._adapter.image_seq_len() if self.kind == "flux" else None
        self.schedule, self.prediction_type = schedule_from_scheduler(self.pipe.scheduler, image_seq_len=seq)
        if self.kind == "flux" and self.prediction_type != "flow":
            raise ValueError(f"FLUX pipelines need a flow-matching scheduler, got {type(self.pipe.scheduler).__name__}")
        if self.kind != "flux" and self.prediction_type == "flow":
            raise ValueError(f"{self.kind} UNets need a VP (DDIM/Euler/...) scheduler, got {type(self.pipe.scheduler).__name__}")

    def _set_backend(self, backend: str, backend_options, *, max_batch, decode_batch, slots) -> None:
        """The memory caps (network rows, VAE batch) and the backend runner of the network call."""
        if max_batch is not None and self.cfg and max_batch < 2:
            raise ValueError("max_batch must be >= 2 with classifier-free guidance (a CFG pair is 2 network rows)")
        self.max_batch = max_batch
        self.decode_batch = decode_batch or max_batch
        self._net_chunks = AdaptiveChunks(None if max_batch is None else max(1, max_batch // (2 if self.cfg else 1)))
        self._decode_chunks = AdaptiveChunks(self.decode_batch)
        self.backend = backend
        self._runner = make_runner(backend, self._adapter.call, max_batch=max_batch, slots=slots, options=backend_options)

    def _set_decoding(self, decoder, decode_scale, upcast_vae) -> None:
        """The decoder of the scores taken during search, its scale, and the VAE's dtype."""
        self.decode_scale = float(decode_scale)
        self.decoder = decoder
        vae = self.pipe.vae
        if vae is None:
            raise ValueError("the pipeline has no VAE: DiffusersModel decodes latents with pipe.vae")
        if upcast_vae is None:
            upcast_vae = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
        if upcast_vae and vae.dtype != torch.float32:
            vae.to(torch.float32)

    def set_prompts(
        self,
        prompts: Optional[Union[str, Sequence[str]]] = None,
        *,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        pooled_prompt_embeds: Optional[torch.Tensor] = None,
        negative_pooled_prompt_embeds: Optional[torch.Tensor] = None,
        **texts,
    ) -> "DiffusersModel":
        """Encode a new set of prompts (rows 0 .. P-1), keeping the network, backend and settings.

        A compiled or graph-captured network stays valid: only the conditioning table changes.
        ``texts`` may override negative_prompt, prompts_2 and negative_prompt_2 (kept otherwise).
        """
        unknown = set(texts) - {"negative_prompt", "prompts_2", "negative_prompt_2"}
        if unknown:
            raise ValueError(f"unknown argument(s) {sorted(unknown)}; set_prompts takes prompts, embeddings, negative_prompt, prompts_2, negative_prompt_2")
        negatives = {"negative_prompt": texts.get("negative_prompt", self._encode_args["negative_prompt"]),
                     "negative_prompt_2": texts.get("negative_prompt_2", self._encode_args["negative_prompt_2"]),
                     "negative_prompt_embeds": negative_prompt_embeds, "negative_pooled_prompt_embeds": negative_pooled_prompt_embeds}
        given = [k for k, v in negatives.items() if v is not None]
        if given and not self.cfg:
            off = "true_cfg_scale <= 1" if self.kind == "flux" else f"guidance_scale={self.guidance_scale} <= 1"
            raise ValueError(f"{', '.join(given)} would be ignored: classifier-free guidance is off ({off})")
        self._encode_args.update(texts)
        if isinstance(prompts, str):
            prompts = [prompts]
        if prompts is not None:
            prompts = list(prompts)
            if not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError("prompts must be a non-empty list of strings")
            if prompt_embeds is not None:
                raise ValueError("pass either prompts or prompt_embeds, not both")
        elif prompt_embeds is None:
            raise ValueError("DiffusersModel needs prompts (a list of strings) or prompt_embeds")
        args = self._encode_args
        with torch.no_grad():
            table, uncond = self._adapter.encode(
                prompts,
                cfg=self.cfg,
                negative_prompt=args["negative_prompt"],
                prompt_embeds=_to(prompt_embeds, self.device),
                negative_prompt_embeds=_to(negative_prompt_embeds, self.device),
                pooled_prompt_embeds=_to(pooled_prompt_embeds, self.device),
                negative_pooled_prompt_embeds=_to(negative_pooled_prompt_embeds, self.device),
                prompts_2=args["prompts_2"],
                negative_prompt_2=args["negative_prompt_2"],
                device=self.device,
                encode_kwargs=args["encode_kwargs"],
                **args["extra"],
            )
        table = {k: v.detach().to(self.device) for k, v in table.items()}
        uncond = None if uncond is None else {k: v.detach().to(self.device) for k, v in uncond.items()}
        sizes = {v.shape[0] for v in table.values()}
        if len(sizes) != 1:
            raise ValueError(f"prompt embeddings disagree on the number of prompts: {sorted(sizes)}")
        n = sizes.pop()
        if uncond is not None and any(v.shape[0] != n for v in uncond.values()):
            raise ValueError("negative prompt embeddings must have one row per prompt")
        self._table, self._uncond, self.num_prompts, self.prompts = table, uncond, n, prompts
        return self

    # -- the Denoiser protocol -------------------------------------------------------------------

    @property
    def network(self):
        """The UNet or FLUX transformer."""
        return self._adapter.net

    @property
    def runner(self):
        """The backend runner of the network call (slot sizes, captured graphs, call counts)."""
        return self._runner

    def _rows(self, cond: Optional[torch.Tensor], n: int) -> torch.Tensor:
        # Range-checked on every device without a host read (deferred in a search run; clamped meanwhile).
        return prompt_rows(cond, n, self.num_prompts, self.device, "this DiffusersModel")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        n = x_t.shape[0]
        if tuple(x_t.shape[1:]) != tuple(self.sample_shape):
            raise ValueError(f"x_t must be [B, {', '.join(map(str, self.sample_shape))}], got {tuple(x_t.shape)}")
        if t.shape != (n,):
            raise ValueError(f"t must hold one model timestep per sample: [{n}], got {tuple(t.shape)}")
        rows = self._rows(cond, n)
        # Particles per network call: at most max_batch rows, fewer after an out-of-memory error.
        return self._net_chunks.run(n, lambda s, e: self._x0(x_t[s:e], t[s:e], rows[s:e]))

    def _x0(self, x, t, rows):
        ctx = {k: v[rows] for k, v in self._table.items()}
        xin = self._adapter.pack(x.to(self.net_dtype))
        tin = self._adapter.timestep(t)
        if self.cfg:
            ctx = {k: torch.cat([self._uncond[k][rows], v]) for k, v in ctx.items()}
            xin, tin = torch.cat([xin, xin]), torch.cat([tin, tin])
        out = self._runner(xin, tin, ctx)
        if self.cfg:
            out_u, out_c = out.float().chunk(2)
            out = out_u + self.guidance_scale * (out_c - out_u)
            if self.guidance_rescale > 0:
                out = _rescale_guidance(out, out_c, self.guidance_rescale)
        out = self._adapter.unpack(out, x).to(self.dtype)
        return self._to_x0(x.to(self.dtype), out, t)

    def _to_x0(self, x, out, t):
        col = (-1,) + (1,) * (x.dim() - 1)
        if self.prediction_type == "flow":
            s = (t.to(torch.float64) / self.schedule.timestep_scale).to(x.dtype).reshape(col)
            return _schedules.x0_from_velocity(x, out, s)
        alpha, sigma = (v.to(x.dtype).reshape(col) for v in self.schedule.alpha_sigma(t))
        if self.prediction_type == "epsilon":
            return _schedules.x0_from_eps(x, out, alpha, sigma)
        if self.prediction_type == "v_prediction":
            return _schedules.x0_from_v(x, out, alpha, sigma)
        return out

    # -- decoding ---------------------------------------------------------------------------------

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H', W'] in [0, 1] for the verifier (the cheap decoder / scale when set)."""
        self._check_latents(x0)
        dec = self.decoder if self.decoder is not None else self.pipe.vae
        z = x0
        if self.decode_scale != 1.0:
            z = F.interpolate(z, scale_factor=self.decode_scale, mode="bilinear", antialias=self.decode_scale < 1, align_corners=False)
        return self._decode_with(dec, z)

    def decode_full(self, x0: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] through the pipeline's VAE at full resolution."""
        self._check_latents(x0)
        return self._decode_with(self.pipe.vae, x0)

    def _check_latents(self, x0) -> None:
        if not isinstance(x0, torch.Tensor) or x0.dim() != 1 + len(self.sample_shape) or tuple(x0.shape[1:]) != tuple(self.sample_shape):
            got = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
            raise ValueError(f"x0 must be latents [B, {', '.join(map(str, self.sample_shape))}], got {got}")

    def _decode_with(self, vae, z: torch.Tensor) -> torch.Tensor:
        cfg = vae.config
        scale = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
        shift = getattr(cfg, "shift_factor", None) or 0.0
        n = z.shape[0]
        if n == 0:
            return z.new_zeros((0, 3, self.height, self.width), dtype=torch.float32)

        def decode(s, e):
            img = vae.decode((z[s:e] / scale + shift).to(vae.dtype), return_dict=False)[0]
            return (img.float() / 2 + 0.5).clamp(0, 1)

        return self._decode_chunks.run(n, decode)

    def __repr__(self) -> str:
        return (
            f"DiffusersModel(kind={self.kind!r}, prompts={self.num_prompts}, size={self.height}x{self.width}, "
            f"sample_shape={self.sample_shape}, cfg={self.cfg}, guidance_scale={self.guidance_scale}, "
            f"prediction={self.prediction_type!r}, backend={self.backend!r}, device={self.device}, network dtype={self.net_dtype})"
        )


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _positive_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1


def _check_options(*, guidance_scale, true_cfg_scale, guidance_rescale, height, width, max_sequence_length, max_batch, decode_batch,
                   decode_scale, dtype, backend, original_size, crops_coords_top_left, target_size, encode_kwargs) -> None:
    """DiffusersModel's options that can be checked without the pipeline (names and allowed values in the errors)."""
    if guidance_scale is not None and not (_finite(guidance_scale) and guidance_scale >= 0):
        raise ValueError(f"guidance_scale must be a finite number >= 0 (values <= 1 turn classifier-free guidance off) or None, got {guidance_scale!r}")
    if not (_finite(true_cfg_scale) and true_cfg_scale >= 0):
        raise ValueError(f"true_cfg_scale must be a finite number >= 0 (values <= 1 turn true CFG off), got {true_cfg_scale!r}")
    if not (_finite(guidance_rescale) and 0 <= guidance_rescale <= 1):
        raise ValueError(f"guidance_rescale must be a number in [0, 1] (0 disables it), got {guidance_rescale!r}")
    for name, v in (("height", height), ("width", width)):
        if v is not None and not _positive_int(v):
            raise ValueError(f"{name} must be a positive integer number of pixels or None (the pipeline's default), got {v!r}")
    if not _positive_int(max_sequence_length):
        raise ValueError(f"max_sequence_length must be a positive integer, got {max_sequence_length!r}")
    for name, v in (("max_batch", max_batch), ("decode_batch", decode_batch)):
        if v is not None and not _positive_int(v):
            raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
    if not (_finite(decode_scale) and decode_scale > 0):
        raise ValueError(f"decode_scale must be a finite number > 0, got {decode_scale!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    for name, v, low in (("original_size", original_size, 1), ("target_size", target_size, 1), ("crops_coords_top_left", crops_coords_top_left, 0)):
        if v is None and name != "crops_coords_top_left":
            continue
        ok = isinstance(v, (tuple, list)) and len(v) == 2
        ok = ok and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) and c >= low for c in v)
        if not ok:
            raise ValueError(f"{name} must be a pair of integers >= {low} (height, width){' or None' if low else ''}, got {v!r}")
    if encode_kwargs is not None and not isinstance(encode_kwargs, dict):
        raise ValueError(f"encode_kwargs must be a dict of keyword arguments of pipe.encode_prompt or None, got {type(encode_kwargs).__name__}")


def _rescale_guidance(out: torch.Tensor, out_cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2023, Sec. 3.4): match the per-sample std of the conditional output."""
    dims = list(range(1, out.dim()))
    rescaled = out * (out_cond.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True))
    return phi * rescaled + (1 - phi) * out


def _to(v, device):
    return None if v is None else v.to(device)


def _load_pipeline(path, torch_dtype, device):
    diffusers = require("diffusers", "diffusers", "tts_fast.models.DiffusersModel")
    kw = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(path), **kw)
    except (OSError, ValueError) as e:
        raise OSError(
            f"could not load a diffusers pipeline from {str(path)!r} ({e}). Pass a local folder in diffusers layout "
            "(model_index.json, unet/ or transformer/, vae/, text_encoder/, tokenizer/, scheduler/; e.g. made with "
            "pipe.save_pretrained or downloaded with `huggingface-cli download MODEL_ID --local-dir DIR`)"
        ) from e
    for attr in ("safety_checker",):
        if getattr(pipe, attr, None) is not None:
            setattr(pipe, attr, None)
    if device is not None:
        pipe = pipe.to(device)
    return pipe
