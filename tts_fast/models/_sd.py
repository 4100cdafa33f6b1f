"""Stable Diffusion 1.x/2.x and SDXL specifics of :class:`tts_fast.models.DiffusersModel`.

Prompts are encoded once with the stock pipeline's own ``encode_prompt`` (so textual inversion,
LoRA scale and clip_skip behave as in the pipeline); the UNet is called directly on a batch of
particles at per-particle timesteps.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._adapter import PipelineAdapter, as_list, reject_micro_conditioning, reject_unused


class SDAdapter(PipelineAdapter):
    """SD 1.x / 2.x: ``unet(x, t, encoder_hidden_states)``."""

    kind = "sd"
    pipeline = "StableDiffusionPipeline"
    default_guidance = 7.5
    size_multiple = 8
    gpu_dtype = torch.float16

    def guidance(self, guidance_scale: Optional[float], true_cfg_scale: float, guidance_rescale: float, has_negative: bool) -> tuple:
        """(cfg, guidance scale of the CFG mix, distilled guidance or None) from DiffusersModel's options.

        SD/SDXL: classifier-free guidance with ``guidance_scale`` (default :attr:`default_guidance`),
        on when it is > 1 (diffusers' convention).
        """
        if true_cfg_scale != 1.0:
            raise ValueError("true_cfg_scale is a FLUX option; SD/SDXL use guidance_scale")
        g = self.default_guidance if guidance_scale is None else float(guidance_scale)
        return g > 1, g, None

    def encode_options(self, *, original_size, crops_coords_top_left, target_size, **other_families) -> dict:
        """The family's own keyword arguments of :meth:`encode` from DiffusersModel's options (SD: none);
        SDXL's micro-conditioning is refused (it would be ignored)."""
        reject_micro_conditioning(self.kind, original_size, crops_coords_top_left, target_size)
        return {}

    def __init__(self, pipe):
        self.pipe = pipe
        self.net = pipe.unet
        if getattr(self.net.config, "time_cond_proj_dim", None) is not None:
            raise ValueError(
                "this UNet takes a guidance-scale embedding (time_cond_proj_dim is set: an LCM-distilled model); "
                "DiffusersModel supports UNets without it"
            )
        self.vae_scale_factor = int(getattr(pipe, "vae_scale_factor", 8))
        self.in_channels = int(self.net.config.in_channels)

    def default_size(self) -> tuple[int, int]:
        s = int(self.net.config.sample_size) * self.vae_scale_factor
        return s, s

    def sample_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = self.vae_scale_factor
        if height % f or width % f:
            raise ValueError(f"height and width must be multiples of the VAE scale factor {f}, got {height}x{width}")
        return (self.in_channels, height // f, width // f)

    def encode(self, prompts, *, cfg, negative_prompt, prompt_embeds, negative_prompt_embeds, device, encode_kwargs, **unused):
        reject_unused(unused, self.kind)
        n = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        pe, ne = self.pipe.encode_prompt(
            prompts,
            device,
            1,
            cfg,
            negative_prompt=as_list(negative_prompt, n, "negative_prompt"),
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            **encode_kwargs,
        )
        return {"encoder_hidden_states": pe}, ({"encoder_hidden_states": ne} if cfg else None)

    def pack(self, x):
        return x

    def unpack(self, out, x):
        return out

    def timestep(self, t):
        return t.float()

    def call(self, x, t, encoder_hidden_states):
        return self.net(x, t, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class SDXLAdapter(SDAdapter):
    """SDXL: two text encoders, pooled text embeddings and size/crop time ids as added conditions."""

    kind = "sdxl"
    pipeline = "StableDiffusionXLPipeline"
    default_guidance = 5.0

    def encode_options(self, *, height, width, original_size, crops_coords_top_left, target_size, **other_families) -> dict:
        """SDXL's micro-conditioning (the image size and crop) for :meth:`encode`."""
        return dict(height=height, width=width, original_size=original_size, crops_coords_top_left=crops_coords_top_left,
                    target_size=target_size)

    def __init__(self, pipe):
        super().__init__(pipe)
        if getattr(pipe.config, "requires_aesthetics_score", False):
            raise ValueError("SDXL refiner pipelines (aesthetic-score conditioning) are not supported; use the base model")

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
        height=None,
        width=None,
        original_size=None,
        crops_coords_top_left=(0, 0),
        target_size=None,
        **unused,
    ):
        reject_unused(unused, self.kind)
        n = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        pe, ne, ppe, npe = self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=as_list(prompts_2, n, "prompts_2"),
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=cfg,
            negative_prompt=as_list(negative_prompt, n, "negative_prompt"),
            negative_prompt_2=as_list(negative_prompt_2, n, "negative_prompt_2"),
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds,
            negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
            **encode_kwargs,
        )
        ids = self.time_ids(original_size or (height, width), crops_coords_top_left, target_size or (height, width), ppe.shape[-1])
        ids = ids.to(device=device, dtype=pe.dtype).expand(n, -1)
        table = {"encoder_hidden_states": pe, "text_embeds": ppe, "time_ids": ids}
        uncond = {"encoder_hidden_states": ne, "text_embeds": npe, "time_ids": ids} if cfg else None
        return table, uncond

    def time_ids(self, original_size, crops_coords_top_left, target_size, pooled_dim: int) -> torch.Tensor:
        """SDXL micro-conditioning: (original h, w, crop top, left, target h, w) as a [1, 6] row."""
        ids = [*original_size, *crops_coords_top_left, *target_size]
        cfg = self.net.config
        expected = getattr(getattr(self.net, "add_embedding", None), "linear_1", None)
        if expected is not None:
            got = int(cfg.addition_time_embed_dim) * len(ids) + int(pooled_dim)
            if got != expected.in_features:
                raise ValueError(
                    f"the UNet's added embedding takes {expected.in_features} features but the time ids and pooled text "
                    f"embeddings give {got}: check unet.config.addition_time_embed_dim and the text encoders' projection_dim"
                )
        return torch.tensor([ids], dtype=torch.float32)

    def call(self, x, t, encoder_hidden_states, text_embeds, time_ids):
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.net(x, t, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added, return_dict=False)[0]
