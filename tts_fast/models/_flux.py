"""FLUX.1 specifics of :class:`tts_fast.models.DiffusersModel`.

- Samples live in the *unpacked* latent layout (C, H/8, W/8), the layout the VAE decodes and the
  one FluxPipeline draws its initial noise in; the 2x2 packing into a token sequence happens
  inside the network call (pipeline helpers ``_pack_latents`` / ``_unpack_latents``).
- Positional ids of the image tokens (``img_ids``) and of the text tokens (``txt_ids``) are
  computed once.
- FLUX.1-dev is guidance-distilled: ``guidance_scale`` enters as an embedding, one pass per
  particle (``cfg=False``). True classifier-free guidance (``true_cfg_scale`` > 1 with a negative
  prompt) runs the negative prompt in the same batched call (``cfg=True``).
- The transformer takes the flow time in [0, 1]: diffusers passes ``timestep / 1000``; the
  schedule's model timesteps are ``t * num_train_timesteps`` and are divided back here.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ._adapter import PipelineAdapter, as_list, reject_micro_conditioning, reject_unused


def calculate_mu(image_seq_len: int, config) -> float:
    """FLUX's resolution-dependent shift parameter mu (linear in the number of image tokens)."""
    base_len = config.get("base_image_seq_len", 256)
    max_len = config.get("max_image_seq_len", 4096)
    base_shift = config.get("base_shift", 0.5)
    max_shift = config.get("max_shift", 1.15)
    m = (max_shift - base_shift) / (max_len - base_len)
    return image_seq_len * m + (base_shift - m * base_len)


def equivalent_shift(mu: float, time_shift_type: str = "exponential") -> float:
    """The constant shift s with s t / (1 + (s - 1) t) equal to diffusers' time_shift(mu, 1, t).

    exponential: e^mu / (e^mu + 1/t - 1) = e^mu t / (1 + (e^mu - 1) t), so s = e^mu.
    linear: mu / (mu + 1/t - 1), so s = mu.
    """
    if time_shift_type == "exponential":
        return math.exp(mu)
    if time_shift_type == "linear":
        return float(mu)
    raise ValueError(f"unknown time_shift_type {time_shift_type!r}")


class FluxAdapter(PipelineAdapter):
    """FLUX.1: the transformer on packed 2x2 latent tokens, T5 + CLIP text, distilled guidance
    (``default_guidance``: FluxPipeline's 3.5 for the embedding)."""

    kind = "flux"
    pipeline = "FluxPipeline"
    default_guidance = 3.5
    size_multiple = 16
    gpu_dtype = torch.bfloat16

    def guidance(self, guidance_scale: Optional[float], true_cfg_scale: float, guidance_rescale: float, has_negative: bool) -> tuple:
        """(cfg, guidance scale of the CFG mix, distilled guidance or None) from DiffusersModel's options.

        FLUX: ``guidance_scale`` is the distilled guidance embedding (default :attr:`default_guidance`;
        None for transformers without one); true classifier-free guidance runs when
        ``true_cfg_scale`` > 1, with a negative prompt.
        """
        if true_cfg_scale > 1 and not has_negative:
            raise ValueError("true_cfg_scale > 1 needs a negative_prompt (or negative_prompt_embeds)")
        if guidance_rescale:
            raise ValueError("guidance_rescale applies to SD/SDXL classifier-free guidance, not to FLUX")
        cfg = true_cfg_scale > 1
        distilled = float(self.default_guidance if guidance_scale is None else guidance_scale) if self.guidance_embeds else None
        return cfg, (float(true_cfg_scale) if cfg else 1.0), distilled

    def encode_options(self, *, guidance_scale, max_sequence_length, original_size, crops_coords_top_left, target_size,
                       **other_families) -> dict:
        """FLUX's own keyword arguments of :meth:`encode` (the distilled guidance, the T5 length); SDXL's
        micro-conditioning is refused."""
        reject_micro_conditioning(self.kind, original_size, crops_coords_top_left, target_size)
        return {"guidance_scale": guidance_scale, "max_sequence_length": max_sequence_length}

    def __init__(self, pipe):
        self.pipe = pipe
        self.net = pipe.transformer
        self.vae_scale_factor = int(getattr(pipe, "vae_scale_factor", 8))
        self.channels = int(self.net.config.in_channels) // 4
        self.guidance_embeds = bool(getattr(self.net.config, "guidance_embeds", False))
        self.timestep_scale = float(pipe.scheduler.config.get("num_train_timesteps", 1000))
        self.img_ids = None
        self.txt_ids = None
        self._hw = None

    def default_size(self) -> tuple[int, int]:
        s = int(getattr(self.pipe, "default_sample_size", 128)) * self.vae_scale_factor
        return s, s

    def sample_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = 2 * self.vae_scale_factor
        if height % f or width % f:
            raise ValueError(f"FLUX height and width must be multiples of {f} (VAE factor x 2x2 packing), got {height}x{width}")
        h, w = 2 * (height // f), 2 * (width // f)
        self._hw = (height, width, h, w)
        return (self.channels, h, w)

    def image_seq_len(self) -> int:
        _, _, h, w = self._hw
        return (h // 2) * (w // 2)

    def encode(
        self,
        prompts,
        *,
        cfg,
        negative_prompt,
        prompt_embeds,
        negative_prompt_embeds,
        device,
        encode_kwargs,
        prompts_2=None,
        negative_prompt_2=None,
        pooled_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        guidance_scale=None,
        max_sequence_length=512,
        **unused,
    ):
        reject_unused(unused, self.kind)
        n = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        pe, ppe, txt_ids = self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=as_list(prompts_2, n, "prompts_2"),
            device=device,
            num_images_per_prompt=1,
            prompt_embeds=prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds,
            max_sequence_length=max_sequence_length,
            **encode_kwargs,
        )
        table = {"encoder_hidden_states": pe, "pooled_projections": ppe}
        uncond = None
        if cfg:
            neg = as_list(negative_prompt, n, "negative_prompt")
            ne, npe, neg_ids = self.pipe.encode_prompt(
                prompt=neg,
                prompt_2=as_list(negative_prompt_2, n, "negative_prompt_2"),
                device=device,
                num_images_per_prompt=1,
                prompt_embeds=negative_prompt_embeds,
                pooled_prompt_embeds=negative_pooled_prompt_embeds,
                max_sequence_length=max_sequence_length,
                **encode_kwargs,
            )
            if ne.shape != pe.shape:
                raise ValueError(f"negative prompt embeddings {tuple(ne.shape)} must match the prompt embeddings {tuple(pe.shape)}")
            uncond = {"encoder_hidden_states": ne, "pooled_projections": npe}
        if self.guidance_embeds:
            g = torch.full((n,), float(self.default_guidance if guidance_scale is None else guidance_scale), device=device, dtype=torch.float32)
            table["guidance"] = g
            if uncond is not None:
                uncond["guidance"] = g
        elif guidance_scale is not None:
            raise ValueError("this FLUX transformer has no guidance embedding (e.g. FLUX.1-schnell): leave guidance_scale unset")
        txt = (txt_ids[0] if txt_ids.dim() == 3 else txt_ids).to(device)
        _, _, h, w = self._hw
        img = self._image_ids(h // 2, w // 2, device, pe.dtype)
        if self.txt_ids is not None and self.txt_ids.shape == txt.shape and self.img_ids.shape == img.shape:
            # keep the addresses: a captured CUDA graph reads these tensors on every replay
            self.txt_ids.copy_(txt)
            self.img_ids.copy_(img)
        else:
            self.txt_ids, self.img_ids = txt, img
        return table, uncond

    def _image_ids(self, h: int, w: int, device, dtype) -> torch.Tensor:
        helper = getattr(type(self.pipe), "_prepare_latent_image_ids", None)
        ids = helper(1, h, w, device, dtype)
        return ids[0] if ids.dim() == 3 else ids

    def pack(self, x):
        b, c, h, w = x.shape
        return type(self.pipe)._pack_latents(x, b, c, h, w)

    def unpack(self, out, x):
        height, width, _, _ = self._hw
        return type(self.pipe)._unpack_latents(out, height, width, self.vae_scale_factor)

    def timestep(self, t):
        return t.float() / self.timestep_scale

    def call(self, x, t, encoder_hidden_states, pooled_projections, guidance: Optional[torch.Tensor] = None):
        return self.net(
            hidden_states=x,
            timestep=t,
            guidance=guidance,
            pooled_projections=pooled_projections,
            encoder_hidden_states=encoder_hidden_states,
            txt_ids=self.txt_ids,
            img_ids=self.img_ids,
            return_dict=False,
        )[0]
