"""The published SD 1.5, SDXL and FLUX.1 architectures with random weights, for speed work.

Throughput does not depend on the weights, and model hubs may be unreachable, so the profiler
(``tts-fast profile``) and the throughput benchmarks build the stock diffusers pipelines from
their published configurations with random weights and random prompt embeddings (no text
encoders, nothing downloaded). ``smoke=True`` gives a tiny network of the same family, for tests
and CPU runs of the harness.

Configurations transcribed from the model repositories' config files:
runwayml/stable-diffusion-v1-5 (unet/, vae/, scheduler/), stabilityai/stable-diffusion-xl-base-1.0
(unet/, vae/), black-forest-labs/FLUX.1-dev (transformer/, vae/, scheduler/).
"""

from __future__ import annotations

from typing import Optional

import torch

from .._extras import require

ARCHITECTURES = ("sd15", "sdxl", "flux")

_SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                     steps_offset=1, timestep_spacing="leading")
_SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32)

CONFIGS = {
    "sd15": dict(
        unet=dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                  cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0),
        vae=dict(_SD_VAE, sample_size=512, scaling_factor=0.18215),
        scheduler=_SD_SCHEDULER,
        embeds=dict(prompt=(77, 768)),
    ),
    "sdxl": dict(
        unet=dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                  transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                  use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                  projection_class_embeddings_input_dim=2816, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0),
        vae=dict(_SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
        scheduler=_SD_SCHEDULER,
        embeds=dict(prompt=(77, 2048), pooled=(1280,)),
    ),
    "flux": dict(
        transformer=dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                         num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                         axes_dims_rope=(16, 56, 56)),
        vae=dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
                 sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
        scheduler=dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15, shift=3.0,
                       use_dynamic_shifting=True),
        embeds=dict(prompt=(512, 4096), pooled=(768,)),
    ),
}

# Tiny networks of the same families (same pipeline classes and conditioning paths).
SMOKE = {
    "sd15": dict(
        unet=dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32),
        vae=dict(_SD_VAE, layers_per_block=1, block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, scaling_factor=0.18215),
        scheduler=_SD_SCHEDULER,
        embeds=dict(prompt=(8, 32)),
    ),
    "sdxl": dict(
        unet=dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                  transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4), cross_attention_dim=64,
                  use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                  projection_class_embeddings_input_dim=32 + 6 * 8, norm_num_groups=32),
        vae=dict(_SD_VAE, layers_per_block=1, block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, scaling_factor=0.13025),
        scheduler=_SD_SCHEDULER,
        embeds=dict(prompt=(8, 64), pooled=(32,)),
    ),
    "flux": dict(
        transformer=dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                         axes_dims_rope=(4, 6, 6)),
        vae=dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32,
                 scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
        scheduler=CONFIGS["flux"]["scheduler"],
        embeds=dict(prompt=(8, 32), pooled=(32,)),
    ),
}


def _check(name: str) -> None:
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {name!r}")


def build_pipeline(name: str, *, smoke: bool = False, device="cpu", dtype: torch.dtype = torch.float32, seed: int = 0):
    """A stock diffusers pipeline of architecture ``name`` with random weights and no text encoders.

    The networks are created directly on ``device`` (a 12B-parameter FLUX transformer is not built
    on the host first). Pass prompt embeddings to the model (see :func:`random_model`).
    """
    _check(name)
    require("diffusers", "diffusers", "tts_fast.models.architectures")
    import diffusers as d

    cfg = (SMOKE if smoke else CONFIGS)[name]
    torch.manual_seed(seed)
    # Random weights have no fp32-only modules to protect; diffusers warns about every cast.
    verbosity = d.utils.logging.get_verbosity()
    d.utils.logging.set_verbosity_error()
    try:
        return _build(d, name, cfg, device, dtype)
    finally:
        d.utils.logging.set_verbosity(verbosity)


def _build(d, name, cfg, device, dtype):
    with torch.device(device):
        vae = d.AutoencoderKL(**cfg["vae"]).to(dtype).eval()
        if name == "flux":
            net = d.FluxTransformer2DModel(**cfg["transformer"]).to(dtype).eval()
            pipe = d.FluxPipeline(scheduler=d.FlowMatchEulerDiscreteScheduler(**cfg["scheduler"]), vae=vae, text_encoder=None,
                                  tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=net)
        else:
            net = d.UNet2DConditionModel(**cfg["unet"]).to(dtype).eval()
            scheduler = d.DDIMScheduler(**cfg["scheduler"])
            if name == "sdxl":
                pipe = d.StableDiffusionXLPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
                                                   unet=net, scheduler=scheduler)
            else:
                pipe = d.StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=net, scheduler=scheduler,
                                                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def random_embeddings(name: str, n_prompts: int, *, smoke: bool = False, device="cpu", dtype=torch.float32, seed: int = 0) -> dict:
    """Random prompt (and negative) embeddings shaped as the architecture's text encoders give them."""
    _check(name)
    spec = (SMOKE if smoke else CONFIGS)[name]["embeds"]
    g = torch.Generator().manual_seed(seed)
    out = {"prompt_embeds": torch.randn(n_prompts, *spec["prompt"], generator=g)}
    if name != "flux":
        out["negative_prompt_embeds"] = torch.randn(n_prompts, *spec["prompt"], generator=g)
    if "pooled" in spec:
        out["pooled_prompt_embeds"] = torch.randn(n_prompts, *spec["pooled"], generator=g)
        if name != "flux":
            out["negative_pooled_prompt_embeds"] = torch.randn(n_prompts, *spec["pooled"], generator=g)
    return {k: v.to(device=device, dtype=dtype) for k, v in out.items()}


def random_model(name: str, n_prompts: int = 1, *, smoke: bool = False, device="cpu", dtype=torch.float32,
                 guidance_scale: Optional[float] = None, seed: int = 0, **model_kwargs):
    """A :class:`~tts_fast.models.DiffusersModel` of architecture ``name`` with random weights.

    ``model_kwargs`` go to DiffusersModel (backend, max_batch, height, width, decode_scale, ...).
    """
    from .diffusers import DiffusersModel

    pipe = build_pipeline(name, smoke=smoke, device=device, dtype=dtype, seed=seed)
    emb = random_embeddings(name, n_prompts, smoke=smoke, device=device, dtype=dtype, seed=seed)
    if smoke:
        model_kwargs.setdefault("height", 32)
        model_kwargs.setdefault("width", 32)
    return DiffusersModel(pipe, guidance_scale=guidance_scale, **emb, **model_kwargs)


def parameter_count(name: str, part: str = "denoiser") -> int:
    """Parameters of the full-size denoiser ('denoiser') or VAE ('vae'), counted on the meta device."""
    _check(name)
    require("diffusers", "diffusers", "tts_fast.models.architectures")
    import diffusers as d

    cfg = CONFIGS[name]
    with torch.device("meta"):
        if part == "vae":
            m = d.AutoencoderKL(**cfg["vae"])
        elif name == "flux":
            m = d.FluxTransformer2DModel(**cfg["transformer"])
        else:
            m = d.UNet2DConditionModel(**cfg["unet"])
    return sum(p.numel() for p in m.parameters())
