"""CLIP-based image verifiers on tensors: :class:`CLIPScore` and the LAION :class:`Aesthetic` predictor.

Both take images [B, 3, H, W] in [0, 1] (what ``DiffusersModel.decode`` returns) and preprocess
them on the device with torch ops (resize of the short side with antialiased bicubic
interpolation, centre crop, CLIP normalisation), so they are batched and differentiable; there is
no PIL round trip. Against CLIPImageProcessor on uint8 PIL images the inputs differ by the 8-bit
quantisation and PIL's bicubic kernel (typically < 1e-2 per pixel after normalisation).

Weights come from a local folder in transformers layout (``save_pretrained``) or from the Hugging
Face cache by model id (``local_files_only=True`` never touches the network).
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .._checkpoints import expect_state_dict, load_weights
from .._device_checks import prompt_rows
from .._extras import require
from .base import Verifier

__all__ = ["CLIPScore", "Aesthetic", "clip_preprocess", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD"]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_CLIP = "openai/clip-vit-large-patch14"


def clip_preprocess(images: torch.Tensor, size: int, crop: int, mean, std) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> normalised [B, 3, crop, crop]: short side to ``size``, centre crop.

    Differentiable (torch ops only). Resizing uses antialiased bicubic interpolation when
    shrinking, like PIL's bicubic filter.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W] in [0, 1], got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    nh, nw = (size, new_long) if h <= w else (new_long, size)
    x = images.float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=(nh < h or nw < w), align_corners=False)
    top, left = max((nh - crop) // 2, 0), max((nw - crop) // 2, 0)
    x = x[..., top : top + crop, left : left + crop]
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return (x - m) / s


def _features(out) -> torch.Tensor:
    """Projected features from get_text_features/get_image_features (a tensor, or an output object)."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("text_embeds", "image_embeds", "pooler_output"):
        v = getattr(out, name, None)
        if v is not None:
            return v
    return out[0]


@contextlib.contextmanager
def _default_dtype(dtype: Optional[torch.dtype]):
    """torch's default dtype set to ``dtype`` inside (None: left as it is)."""
    before = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _field(v, key):
    """A size entry of an image processor: an int, a dict (transformers 4) or a SizeDict (5)."""
    if v is None or isinstance(v, (int, float)):
        return v
    if isinstance(v, dict):
        return v.get(key)
    return getattr(v, key, None)


def _prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings (one per prompt row)")
    return prompts


class _CLIPBackbone:
    """A transformers CLIPModel with its preprocessing settings, loaded from a path, id or instance."""

    def __init__(self, model, tokenizer, device, dtype, local_files_only: bool, what: str):
        transformers = require("transformers", "clip", what)
        src = model
        if isinstance(model, (str, os.PathLike)):
            try:
                model = transformers.CLIPModel.from_pretrained(str(src), local_files_only=local_files_only)
            except (OSError, ValueError) as e:  # a missing folder can surface as an invalid repo id (ValueError)
                raise OSError(
                    f"{what}: could not load CLIP weights from {str(src)!r} ({e}). Pass model= a local folder in transformers layout "
                    f"(config.json, model.safetensors, tokenizer and preprocessor files; e.g. from "
                    f"`huggingface-cli download {DEFAULT_CLIP} --local-dir DIR`), or download the model id to the Hugging Face cache first"
                ) from e
        if not isinstance(model, transformers.CLIPModel):
            raise TypeError(f"{what}: model must be a transformers CLIPModel or a path to one, got {type(model).__name__}")
        if tokenizer is None:
            if not isinstance(src, (str, os.PathLike)):
                raise ValueError(f"{what}: pass tokenizer= (a CLIPTokenizer) with a CLIPModel instance")
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(src), local_files_only=local_files_only)
        elif isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=local_files_only)
        vision = model.config.vision_config
        self.size = self.crop = int(vision.image_size)
        self.mean, self.std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        if isinstance(src, (str, os.PathLike)):
            try:
                proc = transformers.CLIPImageProcessor.from_pretrained(str(src), local_files_only=local_files_only)
                self.size = int(_field(proc.size, "shortest_edge") or self.size)
                self.crop = int(_field(proc.crop_size, "height") or self.crop)
                self.mean, self.std = tuple(proc.image_mean), tuple(proc.image_std)
            except (OSError, ValueError):
                pass  # no preprocessor config: CLIP's defaults
        _check_dtype(dtype)
        self.follow = device is None  # no explicit device: run where the scored images are
        device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(device=device, dtype=dtype or next(model.parameters()).dtype).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = next(self.model.parameters()).dtype

    def move(self, device: torch.device) -> None:
        """Move the CLIP model to ``device`` (its dtype is kept)."""
        self.model.to(device)
        self.device = device

    def text_features(self, prompts: list[str]) -> torch.Tensor:
        max_len = min(int(self.tokenizer.model_max_length), int(self.model.config.text_config.max_position_embeddings))
        tok = self.tokenizer(prompts, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
        # transformers builds CLIP's causal mask in torch's default dtype from the model dtype's
        # finfo.min, which overflows float32 for a float64 model: build it in float64 then
        with torch.no_grad(), _default_dtype(torch.float64 if self.dtype == torch.float64 else None):
            f = _features(self.model.get_text_features(input_ids=tok.input_ids.to(self.device), attention_mask=tok.attention_mask.to(self.device)))
        return F.normalize(f.float(), dim=-1)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        x = clip_preprocess(images.to(self.device), self.size, self.crop, self.mean, self.std).to(self.dtype)
        return F.normalize(_features(self.model.get_image_features(pixel_values=x)).float(), dim=-1)


class CLIPScore(Verifier):
    """Text-image similarity: ``scale * cos(image features, prompt features)`` under a CLIP model.

    With the default scale 100 this is the CLIPScore of torchmetrics and of most T2I papers,
    without its clamp at 0 (a clamp would cut gradients). Prompt features are computed once at
    construction and indexed by ``cond``.

    Args:
        prompts: one prompt per prompt row.
        model: a CLIPModel, a local folder, or a model id in the Hugging Face cache
            (default openai/clip-vit-large-patch14).
        tokenizer: a CLIP tokenizer or its folder (default: the model's folder).
        device: where to run CLIP. Default: where the scored images are: CLIP (and the cached
            prompt features) move there on the first call with images on a new device (once,
            not per call). Rewards [B] float32 are returned on the images' device either way.
        dtype: CLIP's dtype (default: the model's; kept when CLIP moves).
        batch_size: max images per forward (memory cap).
        scale: multiplier of the cosine similarity.
        local_files_only: never contact the Hub (only local folders and the cache).
    """

    differentiable = True

    def __init__(
        self,
        prompts: Union[str, Sequence[str]],
        model=DEFAULT_CLIP,
        *,
        tokenizer=None,
        device=None,
        dtype: Optional[torch.dtype] = None,
        batch_size: Optional[int] = None,
        scale: float = 100.0,
        local_files_only: bool = False,
    ):
        check_batch_size(batch_size)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number, got {scale!r}")
        self.prompts = _prompts(prompts)
        self.clip = _CLIPBackbone(model, tokenizer, device, dtype, local_files_only, "tts_fast.verifiers.CLIPScore")
        self.text = self.clip.text_features(self.prompts)
        self.batch_size = batch_size
        self.scale = float(scale)

    @property
    def num_prompts(self) -> int:
        return len(self.prompts)

    def set_prompts(self, prompts: Union[str, Sequence[str]]) -> "CLIPScore":
        """Replace the prompts (rows 0 .. P-1) and their cached text features."""
        self.prompts = _prompts(prompts)
        self.text = self.clip.text_features(self.prompts)
        return self

    @property
    def device(self) -> torch.device:
        """Where CLIP runs now (the explicit ``device``, or that of the last images scored)."""
        return self.clip.device

    def forward(self, x0, cond):
        if self.clip.follow and x0.device != self.clip.device:
            self._move(x0.device)
        rows = prompt_rows(cond, x0.shape[0], self.num_prompts, self.clip.device, "this CLIPScore")
        img = self.clip.image_features(x0)
        return (self.scale * (img * self.text[rows]).sum(-1)).to(x0.device)

    def _move(self, device: torch.device) -> None:
        """Move CLIP and the cached prompt features to ``device`` (once per change of the images' device)."""
        self.clip.move(device)
        self.text = self.text.to(device)


class _AestheticHead(torch.nn.Module):
    """The LAION improved-aesthetic-predictor MLP (state-dict keys layers.0 ... layers.7)."""

    def __init__(self, dim: int):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(dim, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.layers(x)


AESTHETIC_FILE = "sac+logos+ava1-l14-linearMSE.pth"


def default_aesthetic_path() -> str:
    root = os.environ.get("TTS_FAST_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "tts_fast"))
    return os.path.join(root, AESTHETIC_FILE)


class Aesthetic(Verifier):
    """LAION aesthetic score: an MLP head on L2-normalised CLIP ViT-L/14 image embeddings.

    The score does not depend on the prompt (``cond`` is ignored).

    Args:
        head: the head's weights (the improved-aesthetic-predictor ``sac+logos+ava1-l14-linearMSE.pth``
            state dict), a path; default ``$TTS_FAST_CACHE`` or ``~/.cache/tts_fast/`` + that file name.
        model: the CLIP model (CLIPModel, folder or cached id; default openai/clip-vit-large-patch14,
            the embedding the head was trained on).
        device, dtype, batch_size, local_files_only: as in :class:`CLIPScore` (by default CLIP and
            the head run where the scored images are; rewards come back on the images' device).
    """

    differentiable = True

    def __init__(
        self,
        head: Optional[Union[str, os.PathLike, dict]] = None,
        model=DEFAULT_CLIP,
        *,
        tokenizer=None,
        device=None,
        dtype: Optional[torch.dtype] = None,
        batch_size: Optional[int] = None,
        local_files_only: bool = False,
    ):
        check_batch_size(batch_size)
        state = _load_head(head)
        self.clip = _CLIPBackbone(model, tokenizer if tokenizer is not None else _NoTokenizer(), device, dtype, local_files_only, "tts_fast.verifiers.Aesthetic")
        dim = state["layers.0.weight"].shape[1]
        proj = int(self.clip.model.config.projection_dim)
        if dim != proj:
            raise ValueError(f"the aesthetic head takes {dim}-d embeddings but the CLIP model gives {proj}-d (the LAION head needs ViT-L/14)")
        self.head = _AestheticHead(dim)
        try:
            self.head.load_state_dict(state)
        except RuntimeError as e:  # wrong shapes or keys: not the LAION MLP
            raise ValueError(f"the aesthetic head weights{_source(head)} are not the LAION MLP's ({e})") from None
        self.head = self.head.to(self.clip.device).eval()
        self.batch_size = batch_size

    def set_prompts(self, prompts) -> "Aesthetic":
        """Prompt-independent: nothing to do (for a uniform verifier interface)."""
        return self

    @property
    def device(self) -> torch.device:
        """Where CLIP and the head run now (the explicit ``device``, or that of the last images scored)."""
        return self.clip.device

    def forward(self, x0, cond):
        if self.clip.follow and x0.device != self.clip.device:
            self._move(x0.device)
        return self.head(self.clip.image_features(x0)).squeeze(-1).to(x0.device)

    def _move(self, device: torch.device) -> None:
        """Move CLIP and the head to ``device`` (once per change of the images' device)."""
        self.clip.move(device)
        self.head.to(device)


class _NoTokenizer:
    """Placeholder: the aesthetic score needs no text."""


def _source(head) -> str:
    return "" if isinstance(head, dict) else f" at {str(head) if head is not None else default_aesthetic_path()}"


def _load_head(head) -> dict:
    what = "a LAION aesthetic head (improved-aesthetic-predictor MLP)"
    if isinstance(head, dict):
        state, path = head, "the given head state dict"
    else:
        if head is not None and not isinstance(head, (str, os.PathLike)):
            raise TypeError(f"head must be a path, a state dict or None, got {type(head).__name__}")
        path = str(head) if head is not None else default_aesthetic_path()
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"aesthetic head weights not found at {path}: download {AESTHETIC_FILE} (LAION improved-aesthetic-predictor) "
                f"and put it there, or pass head=PATH"
            )
        state = load_weights(path, what, "a state dict with layers.0.weight ... layers.7.bias")
    state = expect_state_dict(state, path, what)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if not any(k.startswith("layers.") for k in state):
        state = {f"layers.{k}": v for k, v in state.items()}
    w = state.get("layers.0.weight")
    if w is None or w.dim() != 2:
        raise ValueError(f"{path} is not {what}: the state dict must hold layers.0.weight [1024, D] ... layers.7.bias (the LAION MLP)")
    return state


def check_batch_size(batch_size) -> None:
    """batch_size of a verifier: an integer >= 1 or None."""
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")


def _check_dtype(dtype) -> None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype or None, got {dtype!r}")
