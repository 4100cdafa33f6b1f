"""ImageReward (Xu et al. 2023) on tensors: a BLIP ViT + cross-attention BERT and an MLP head.

The network classes come from the ``image-reward`` package (its BLIP ``VisionTransformer``, its
cross-attention ``BertModel`` and its ``MLP``); the weights from the ImageReward-v1.0
checkpoint. What this module adds:

- tensor inputs [B, 3, H, W] in [0, 1]: the package's PIL preprocessing (bicubic resize of the
  short side to 224, centre crop, CLIP normalisation) is done with torch ops on the device, so
  scoring is batched and differentiable;
- prompts tokenised once (padded to 35 tokens, as the package does) and gathered by ``cond``
  (the BERT cross-attends to the image, so only the tokens, not text features, can be cached);
- loading without network access and without importing the package's training script: the
  package's ``__init__`` imports its ReFL trainer (datasets, accelerate, diffusers) and the
  ``clip`` package, so its BLIP modules are loaded on their own (:func:`load_blip_modules`).
  image-reward 1.5 imports three helpers from ``transformers.modeling_utils`` that moved to
  ``transformers.pytorch_utils``; they are aliased back before loading. transformers >= 5 is not
  supported by the package's BERT (it relies on PreTrainedModel methods removed there).

Rewards are standardised as in the package: (mlp(features) - 0.16717) / 1.03334.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import types
import warnings
from typing import Optional, Sequence, Union

import torch

from .._checkpoints import expect_state_dict, load_weights
from .._device_checks import prompt_rows
from .._extras import require
from .base import Verifier
from .clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, _check_dtype, _prompts, check_batch_size, clip_preprocess

__all__ = ["ImageReward", "load_blip_modules", "BLIP_MED_CONFIG", "IMAGE_REWARD_VIT_LARGE"]

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
TEXT_LEN = 35

# The BERT configuration of BLIP's multimodal encoder (the package's med_config.json); its
# encoder_width is set to the ViT width when the model is built.
BLIP_MED_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30524,
    "encoder_width": 768,
    "add_cross_attention": True,
}

# ImageReward-v1.0's vision tower: BLIP's ViT-L/16 at 224 px.
IMAGE_REWARD_VIT_LARGE = {"img_size": 224, "patch_size": 16, "embed_dim": 1024, "depth": 24, "num_heads": 16}


def _package_root() -> str:
    spec = importlib.util.find_spec("ImageReward")
    if spec is None or not spec.submodule_search_locations:
        require("ImageReward", "imagereward", "tts_fast.verifiers.ImageReward")  # raises with the install hint
    return list(spec.submodule_search_locations)[0]


def load_blip_modules() -> types.SimpleNamespace:
    """The image-reward package's BLIP ViT, BERT (med) and ImageReward modules, without its __init__.

    Returns a namespace with ``vit`` (VisionTransformer), ``med`` (BertConfig, BertModel) and
    ``head`` (the module defining MLP).
    """
    require("transformers", "imagereward", "tts_fast.verifiers.ImageReward")
    require("timm", "imagereward", "tts_fast.verifiers.ImageReward (the package's ViT uses timm layers)")
    require("fairscale", "imagereward", "tts_fast.verifiers.ImageReward (the package's ViT imports fairscale)")
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        raise ImportError(
            f"the image-reward package's BLIP text encoder does not run with transformers {transformers.__version__}: "
            "install transformers<5 (pip install --no-build-isolation 'tts_fast[imagereward]')"
        )
    pkg = sys.modules.get("ImageReward")
    if pkg is None or not hasattr(pkg, "__path__"):
        root = _package_root()
        # Namespace stubs for the package and its subpackages, so importing the BLIP modules does
        # not run ImageReward/__init__.py (which imports the ReFL trainer and the clip package).
        for name, sub in (("ImageReward", ""), ("ImageReward.models", "models"), ("ImageReward.models.BLIP", os.path.join("models", "BLIP"))):
            if name not in sys.modules:
                stub = types.ModuleType(name)
                stub.__path__ = [os.path.join(root, sub)]
                sys.modules[name] = stub
    import transformers.modeling_utils as mu
    import transformers.pytorch_utils as pu

    for name in ("apply_chunking_to_forward", "find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(mu, name) and hasattr(pu, name):
            setattr(mu, name, getattr(pu, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vit = importlib.import_module("ImageReward.models.BLIP.vit")
        med = importlib.import_module("ImageReward.models.BLIP.med")
        head = importlib.import_module("ImageReward.ImageReward")
    return types.SimpleNamespace(vit=vit, med=med, head=head)


class _Net(torch.nn.Module):
    """The scoring parts of the package's ImageReward model, with its state-dict key names."""

    def __init__(self, mods, vision: dict, med_config: dict):
        super().__init__()
        self.blip = torch.nn.Module()
        self.blip.visual_encoder = mods.vit.VisionTransformer(**vision)
        cfg = mods.med.BertConfig.from_dict(dict(med_config))
        cfg.encoder_width = int(vision["embed_dim"])
        self.blip.text_encoder = mods.med.BertModel(config=cfg, add_pooling_layer=False)
        self.mlp = mods.head.MLP(cfg.hidden_size)


def default_checkpoint() -> str:
    """Where the image-reward package keeps ImageReward-v1.0 (``~/.cache/ImageReward/ImageReward.pt``)."""
    return os.path.join(os.path.expanduser("~"), ".cache", "ImageReward", "ImageReward.pt")


class ImageReward(Verifier):
    """ImageReward-v1.0 human-preference reward of (prompt, image) pairs.

    Args:
        prompts: one prompt per prompt row.
        checkpoint: the ImageReward state dict (``ImageReward.pt``), default
            ``~/.cache/ImageReward/ImageReward.pt`` (the package's download location).
        med_config: the BLIP BERT config: a path to ``med_config.json`` or a dict (default: the file
            beside the checkpoint if present, else :data:`BLIP_MED_CONFIG`).
        tokenizer: a BertTokenizer, or its folder / id in the Hugging Face cache (default
            bert-base-uncased); [DEC] and [ENC] special tokens are added as BLIP does.
        vision: the ViT settings (default :data:`IMAGE_REWARD_VIT_LARGE`); for tests and variants.
        device: where to run the network. Default: where the scored images are: the network
            (and the cached tokens) start on the CPU and move to the images' device on the first
            call with images there (once, not per call). Rewards [B] float32 are returned on the
            images' device either way.
        dtype: the network's dtype (default float32; kept when the network moves).
        batch_size: max images per forward (memory cap).
        local_files_only: never contact the Hub for the tokenizer.
        state_dict: a state dict in place of ``checkpoint`` (tests, custom storage).
    """

    differentiable = True

    def __init__(
        self,
        prompts: Union[str, Sequence[str]],
        checkpoint: Optional[Union[str, os.PathLike]] = None,
        *,
        med_config: Optional[Union[str, os.PathLike, dict]] = None,
        tokenizer=None,
        vision: Optional[dict] = None,
        device=None,
        dtype: Optional[torch.dtype] = None,
        batch_size: Optional[int] = None,
        local_files_only: bool = False,
        state_dict: Optional[dict] = None,
    ):
        check_batch_size(batch_size)
        _check_dtype(dtype)
        self.prompts = _prompts(prompts)
        mods = load_blip_modules()
        if state_dict is None:
            path = str(checkpoint) if checkpoint is not None else default_checkpoint()
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"ImageReward weights not found at {path}: download ImageReward.pt (and med_config.json) from the "
                    f"THUDM/ImageReward model repository into {os.path.dirname(path) or '.'}, or pass checkpoint=PATH"
                )
            state_dict = load_weights(path, _WHAT, "the state dict of ImageReward-v1.0 (blip.visual_encoder.*, blip.text_encoder.*, mlp.*)")
            if med_config is None and os.path.isfile(os.path.join(os.path.dirname(path), "med_config.json")):
                med_config = os.path.join(os.path.dirname(path), "med_config.json")
        else:
            path = "the given state_dict"
        state_dict = expect_state_dict(state_dict, path, _WHAT)
        med_config = _med_config(med_config)
        net = _Net(mods, dict(vision or IMAGE_REWARD_VIT_LARGE), med_config)
        try:
            missing, _unexpected = net.load_state_dict(state_dict, strict=False)
        except RuntimeError as e:  # shape mismatches: another network's weights
            raise ValueError(f"{path} is not {_WHAT}: its weights do not fit the scoring network ({str(e).splitlines()[0]} ...)") from None
        if missing:
            raise ValueError(f"{path}: the ImageReward checkpoint lacks {len(missing)} weights of the scoring network, e.g. {missing[:3]}")
        self._follow = device is None  # no explicit device: run where the scored images are
        device = torch.device(device) if device is not None else torch.device("cpu")
        self.net = net.to(device=device, dtype=dtype or torch.float32).eval()
        self.device = device
        self.dtype = next(self.net.parameters()).dtype
        self.image_size = int((vision or IMAGE_REWARD_VIT_LARGE)["img_size"])
        self.tokenizer = _tokenizer(tokenizer, local_files_only)
        self.set_prompts(self.prompts)
        self.batch_size = batch_size

    @property
    def num_prompts(self) -> int:
        return len(self.prompts)

    def set_prompts(self, prompts: Union[str, Sequence[str]]) -> "ImageReward":
        """Replace the prompts (rows 0 .. P-1); they are tokenised once here."""
        self.prompts = _prompts(prompts)
        tok = self.tokenizer(self.prompts, padding="max_length", truncation=True, max_length=TEXT_LEN, return_tensors="pt")
        self.input_ids = tok.input_ids.to(self.device)
        self.attention_mask = tok.attention_mask.to(self.device)
        return self

    def _move(self, device: torch.device) -> None:
        """Move the network and the cached tokens to ``device`` (once per change of the images' device)."""
        self.net.to(device)
        self.input_ids, self.attention_mask = self.input_ids.to(device), self.attention_mask.to(device)
        self.device = device

    def forward(self, x0, cond):
        if self._follow and x0.device != self.device:
            self._move(x0.device)
        rows = prompt_rows(cond, x0.shape[0], self.num_prompts, self.device, "this ImageReward")
        x = clip_preprocess(x0.to(self.device), self.image_size, self.image_size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD).to(self.dtype)
        image_embeds = self.net.blip.visual_encoder(x)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        out = self.net.blip.text_encoder(
            self.input_ids[rows],
            attention_mask=self.attention_mask[rows],
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
            return_dict=True,
        )
        reward = self.net.mlp(out.last_hidden_state[:, 0, :]).squeeze(-1).float()
        return ((reward - REWARD_MEAN) / REWARD_STD).to(x0.device)


_WHAT = "an ImageReward checkpoint"


def _med_config(med_config) -> dict:
    """The BLIP BERT config as a dict: given, read from a JSON file, or the default."""
    if med_config is None:
        return BLIP_MED_CONFIG
    if isinstance(med_config, dict):
        return med_config
    if not isinstance(med_config, (str, os.PathLike)):
        raise TypeError(f"med_config must be a path to med_config.json, a dict or None, got {type(med_config).__name__}")
    try:
        with open(med_config, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"med_config: no file at {med_config}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"med_config {med_config} is not a JSON file (the BLIP BERT config, med_config.json): {e}") from None
    if not isinstance(cfg, dict) or "hidden_size" not in cfg:
        raise ValueError(f"med_config {med_config} is not a BERT config (expected a JSON object with hidden_size, num_hidden_layers, ...)")
    return cfg


def _tokenizer(tokenizer, local_files_only: bool):
    transformers = require("transformers", "imagereward", "tts_fast.verifiers.ImageReward")
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        src = "bert-base-uncased" if tokenizer is None else str(tokenizer)
        try:
            tokenizer = transformers.BertTokenizer.from_pretrained(src, local_files_only=local_files_only)
        except (OSError, ValueError, TypeError) as e:  # offline and uncached, transformers 4 fails with a TypeError (vocab_file None)
            raise OSError(
                f"could not load the BERT tokenizer {src!r} that ImageReward uses ({e}): pass tokenizer= a local folder with "
                "bert-base-uncased's vocab.txt, or download bert-base-uncased to the Hugging Face cache first"
            ) from e
        # BLIP's special tokens (as the package's init_tokenizer adds them).
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer
