"""Tiny, randomly initialised diffusers pipelines and verifier backbones, built offline.

Stock pipeline classes assembled from components made from small configs (as diffusers' own
tests do). Tokenizers are written from small vocabularies: a byte-level CLIP BPE vocabulary with
no merges (every character is a token) and a T5 unigram tokenizer over letters and digits.
"""

from __future__ import annotations

import json
import os
import string
import warnings

import torch

warnings.filterwarnings("ignore", message=".*deprecated.*")

TEXT_LEN = 16  # tokenizer model_max_length (CLIP's is 77)


def _byte_chars() -> list:
    """The 256 printable stand-ins of byte-level BPE (GPT-2/CLIP): printable bytes map to
    themselves, the others to code points from 256 upward."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def clip_tokenizer(folder: str):
    from transformers import CLIPTokenizer

    os.makedirs(folder, exist_ok=True)
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), model_max_length=TEXT_LEN)


def t5_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in string.ascii_lowercase + string.digits]
    pieces += [("\u2581" + c, -1.5) for c in string.ascii_lowercase]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0)


def clip_text_config(**kw):
    from transformers import CLIPTextConfig

    base = dict(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
                num_hidden_layers=2, pad_token_id=1, vocab_size=1000, max_position_embeddings=TEXT_LEN, hidden_act="gelu", projection_dim=32)
    base.update(kw)
    return CLIPTextConfig(**base)


def tiny_vae(latent_channels=4, blocks=(8, 16), **kw):
    from diffusers import AutoencoderKL

    n = len(blocks)
    return AutoencoderKL(block_out_channels=list(blocks), in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * n,
                         up_block_types=["UpDecoderBlock2D"] * n, latent_channels=latent_channels, norm_num_groups=4, layers_per_block=1, **kw)


def sd_scheduler(kind="ddim", **kw):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    base = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=True,
                steps_offset=1, timestep_spacing="leading")
    base.update(kw)
    if kind == "euler":
        base.pop("clip_sample"), base.pop("set_alpha_to_one")
        return EulerDiscreteScheduler(**base)
    return DDIMScheduler(**base)


def _ready(pipe):
    """Eval mode (modules built from configs start in train mode, with dropout on), no progress bars."""
    for c in pipe.components.values():
        if isinstance(c, torch.nn.Module):
            c.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd(tmp, scheduler=None, seed=0):
    """SD-shaped pipeline: 16x16 latents (vae factor 2), 32x32 images."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, norm_num_groups=4, attention_head_dim=4)
    vae = tiny_vae()
    te = CLIPTextModel(clip_text_config())
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=clip_tokenizer(os.path.join(tmp, "sd_tok")), unet=unet,
                                   scheduler=scheduler or sd_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return _ready(pipe)


def tiny_sdxl(tmp, scheduler=None, seed=0):
    """SDXL-shaped pipeline: two text encoders (the second with projection), text_time added conditions."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
                                projection_class_embeddings_input_dim=80, cross_attention_dim=64, norm_num_groups=4)
    tok = clip_tokenizer(os.path.join(tmp, "sdxl_tok"))
    pipe = StableDiffusionXLPipeline(vae=tiny_vae(), text_encoder=CLIPTextModel(clip_text_config()), text_encoder_2=CLIPTextModelWithProjection(clip_text_config()),
                                     tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=scheduler or sd_scheduler("euler"))
    return _ready(pipe)


def tiny_flux(tmp, guidance_embeds=True, seed=0, with_text=True):
    """FLUX-shaped pipeline: tiny FluxTransformer2DModel (4 latent channels -> 16 packed), CLIP + T5 encoders."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
                                         guidance_embeds=guidance_embeds)
    vae = tiny_vae(latent_channels=4, shift_factor=0.0609, scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    te = te2 = tok = tok2 = None
    if with_text:
        te = CLIPTextModel(clip_text_config())
        te2 = T5EncoderModel(T5Config(vocab_size=70, d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
        tok, tok2 = clip_tokenizer(os.path.join(tmp, "flux_tok")), t5_tokenizer()
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=te, tokenizer=tok, text_encoder_2=te2, tokenizer_2=tok2, transformer=transformer)
    return _ready(pipe)


# -- verifier backbones ---------------------------------------------------------------------------


def tiny_clip(folder: str, projection_dim: int = 16, image_size: int = 32, seed: int = 0):
    """A tiny CLIPModel + tokenizer + image processor saved in transformers layout; returns the folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPVisionConfig

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=image_size,
                              patch_size=8, projection_dim=projection_dim)
    cfg = CLIPConfig(text_config=clip_text_config(projection_dim=projection_dim).to_dict(), vision_config=vision.to_dict(),
                     projection_dim=projection_dim)
    model = CLIPModel(cfg).eval()
    model.save_pretrained(folder)
    clip_tokenizer(folder).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def bert_vocab(folder: str) -> str:
    """A BERT wordpiece vocabulary of special tokens, letters and a few words; returns its folder."""
    os.makedirs(folder, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase]
    words += ["a", "cat", "dog", "red", "blue", "photo", "of"]
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(dict.fromkeys(words)) + "\n")
    return folder


TINY_VIT = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2}
TINY_MED = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37, "vocab_size": 80,
            "max_position_embeddings": 64, "type_vocab_size": 2, "pad_token_id": 0, "add_cross_attention": True,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02, "model_type": "bert", "encoder_width": 32}


def tiny_image_reward_checkpoint(folder: str, seed: int = 0) -> str:
    """A randomly initialised ImageReward state dict (the package's classes, tiny sizes) + med_config.json."""
    from tts_fast.verifiers.image_reward import _Net, load_blip_modules

    torch.manual_seed(seed)
    net = _Net(load_blip_modules(), TINY_VIT, TINY_MED)
    os.makedirs(folder, exist_ok=True)
    state = net.state_dict()
    state["blip.vision_proj.weight"] = torch.zeros(4, 32)  # an unused checkpoint key, as in the real file
    path = os.path.join(folder, "ImageReward.pt")
    torch.save(state, path)
    with open(os.path.join(folder, "med_config.json"), "w") as f:
        json.dump(TINY_MED, f)
    return path
