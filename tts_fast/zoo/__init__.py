"""The built-in pretrained model: handwritten digits (8x8), a diffusion model and its classifiers.

A small version of the classical-search paper's ImageNet experiment (an unconditional diffusion
model, a classifier as the verifier for a target label, and a different classifier to measure
what was really achieved), small enough to train on a laptop CPU and to ship inside the package::

    import tts_fast as tts
    model = tts.zoo.digits()                                  # unconditional, epsilon-prediction UNet
    verifier = tts.zoo.digits_verifier([0, 3, 5, 8])           # log p(target | x0), one target per prompt row
    result = tts.search(model, verifier, "bfs_best", n_particles=8, num_steps=50, batch_size=4)
    evaluator = tts.zoo.digits_classifier("evaluator")         # held out: measure with it, never search with it
    accuracy = (evaluator(result.samples).argmax(1) == torch.tensor([0, 3, 5, 8])).float().mean()

Classifiers (``CLASSIFIERS``): 'verifier' (CNN: selection), 'guide' (LeNet-style CNN: the second,
gradient verifier of the dual-verifier scheme) and 'evaluator' (MLP: held-out evaluation). The
weights live in ``tts_fast/zoo/weights/`` and are reproduced by ``python -m tts_fast.zoo.train``.
"""

from __future__ import annotations

import functools
import os
from typing import Optional, Sequence, Union

import torch

from .. import schedules as _schedules
from .._checkpoints import expect_dict, expect_state_dict, load_weights
from ..models.base import Denoiser, per_sample_timesteps
from ..verifiers.base import Classifier
from .nets import CLASSIFIER_ARCHS, IMAGE_SIZE, NUM_CLASSES, DigitsUNet

__all__ = [
    "digits", "digits_classifier", "digits_verifier", "DigitsModel", "CLASSIFIERS", "WEIGHTS_DIR",
    "weights_path", "load_checkpoint", "parse_digits",
]

CLASSIFIERS = tuple(CLASSIFIER_ARCHS)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DIFFUSION_FILE = "digits_unet.pt"


def digits_schedule() -> _schedules.VPSchedule:
    """The schedule the digits UNet was trained with: cosine, 1000 train timesteps."""
    return _schedules.cosine(1000)


def weights_path(name: str, weights_dir: Optional[str] = None) -> str:
    """Path of a weights file: 'unet' or a classifier name.

    The folder is ``weights_dir``, else $TTS_FAST_ZOO_WEIGHTS, else the shipped ``WEIGHTS_DIR``.
    """
    if name != "unet" and name not in CLASSIFIERS:
        raise ValueError(f"weights name must be 'unet' or one of {', '.join(CLASSIFIERS)}; got {name!r}")
    fname = DIFFUSION_FILE if name == "unet" else f"digits_{name}.pt"
    return os.path.join(weights_dir or os.environ.get("TTS_FAST_ZOO_WEIGHTS") or WEIGHTS_DIR, fname)


_WHAT = "a tts_fast digits zoo checkpoint"
_KEYS = ("kind", "config", "state_dict")


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime: float) -> dict:
    ck = load_weights(path, _WHAT, f"a dict with keys {', '.join(_KEYS)}, meta (written by python -m tts_fast.zoo.train)")
    ck = expect_dict(ck, path, _WHAT, _KEYS)
    if ck["kind"] not in ("unet", *CLASSIFIERS):
        raise ValueError(f"{path} is not {_WHAT}: it holds kind={ck['kind']!r} (expected one of unet, {', '.join(CLASSIFIERS)})")
    if not isinstance(ck["config"], dict):
        raise ValueError(f"{path} is not {_WHAT}: its config must be a dict of constructor arguments, got {type(ck['config']).__name__}")
    expect_state_dict(ck["state_dict"], path, _WHAT)
    return ck


def load_checkpoint(path: str, kind: Optional[str] = None) -> dict:
    """A zoo checkpoint: {'kind', 'config', 'state_dict', 'meta'} (cached per file version).

    Args:
        path: the file.
        kind: the network it must hold ('unet' or a classifier name), or None for any.

    Raises FileNotFoundError for a missing file and ValueError naming the file for one that is not
    a zoo checkpoint (truncated, corrupted, another kind of file, or another network's).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no weights at {path}; reinstall tts_fast, or retrain with `python -m tts_fast.zoo.train --out DIR`"
        )
    ck = _load_cached(path, os.path.getmtime(path))
    if kind is not None and ck["kind"] != kind:
        raise ValueError(f"{path} is a zoo checkpoint of {ck['kind']!r}, not of {kind!r} (files may have been swapped or renamed)")
    return ck


def _build(cls, ck: dict, path: str) -> torch.nn.Module:
    """``cls(**config)`` with the checkpoint's weights, or a ValueError naming the file."""
    try:
        net = cls(**ck["config"])
        net.load_state_dict(ck["state_dict"])
    except (TypeError, ValueError, RuntimeError) as e:  # config or weights of another network
        raise ValueError(f"{path} does not hold a {cls.__name__} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return net


class DigitsModel(Denoiser):
    """The digits diffusion model as a :class:`tts_fast.Denoiser` (x0-prediction from epsilon).

    x0 = (x_t - sigma_t eps_theta(x_t, t)) / alpha_t, clamped to the data range [-1, 1] (``clip``,
    as the paper's ImageNet setup does). Unconditional: ``cond`` is ignored (any number of rows).

    Args:
        net: the trained :class:`~tts_fast.zoo.nets.DigitsUNet`.
        schedule: its training schedule (cosine, 1000 steps).
        clip: clamp x0-predictions to [-1, 1].
    """

    num_prompts = None
    sample_shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, net: DigitsUNet, schedule: Optional[_schedules.Schedule] = None, *, clip: bool = True, device="cpu"):
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.schedule = schedule if schedule is not None else digits_schedule()
        self.clip = bool(clip)
        self._alpha_bar = self.schedule.alpha_bar.to(self.device)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's noise prediction at train timesteps t [B]."""
        return self.net(x_t, t.to(x_t.device, torch.float32))

    def forward(self, x_t, t, cond=None):
        if x_t.shape[1:] != self.sample_shape:
            raise ValueError(f"x_t must be [B, {', '.join(map(str, self.sample_shape))}], got {tuple(x_t.shape)}")
        t = per_sample_timesteps(t, x_t.shape[0], x_t.device)
        ab = self._alpha_bar[t.round().long().clamp(0, self._alpha_bar.numel() - 1)]
        alpha = ab.sqrt().to(x_t.dtype).view(-1, 1, 1, 1)
        sigma = (1.0 - ab).sqrt().to(x_t.dtype).view(-1, 1, 1, 1)
        x0 = _schedules.x0_from_eps(x_t, self.eps(x_t, t), alpha, sigma)
        return x0.clamp(-1.0, 1.0) if self.clip else x0

    def to(self, device) -> "DigitsModel":
        return DigitsModel(self.net, self.schedule, clip=self.clip, device=device)


def _resolve_device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'auto', None, 'cpu', 'cuda', 'cuda:1', ... or a torch.device, got {device!r}") from None


def digits(device=None, *, clip: bool = True, weights_dir: Optional[str] = None) -> DigitsModel:
    """The pretrained digits diffusion model (8x8, unconditional, epsilon-prediction UNet).

    Args:
        device: 'cpu', 'cuda', ... (default: CUDA when available, else CPU).
        clip: clamp x0-predictions to [-1, 1].
        weights_dir: load from another folder (e.g. the output of the training script).
    """
    path = weights_path("unet", weights_dir)
    net = _build(DigitsUNet, load_checkpoint(path, "unet"), path)
    return DigitsModel(net, digits_schedule(), clip=clip, device=_resolve_device(device))


def digits_classifier(name: str = "verifier", device=None, *, weights_dir: Optional[str] = None) -> torch.nn.Module:
    """A pretrained digit classifier ([B, 1, 8, 8] in [-1, 1] -> [B, 10] logits), in eval mode.

    Args:
        name: 'verifier' (CNN; what search selects with), 'guide' (LeNet-style CNN; the gradient
            verifier of the dual-verifier scheme) or 'evaluator' (MLP; held-out evaluation only).
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"classifier name must be one of {', '.join(CLASSIFIERS)}; got {name!r}")
    path = weights_path(name, weights_dir)
    net = _build(CLASSIFIER_ARCHS[name], load_checkpoint(path, name), path)
    net = net.to(_resolve_device(device)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def parse_digits(targets) -> list[int]:
    """Validate target digits (an int or a sequence of ints in 0..9) and return them as a list."""
    items = [targets] if isinstance(targets, (int, str)) else list(targets)
    out = []
    for v in items:
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < NUM_CLASSES:
            raise ValueError(f"target digits must be integers in 0..9; got {v!r}")
        out.append(v)
    if not out:
        raise ValueError("give at least one target digit (0..9)")
    return out


def digits_verifier(
    target: Union[int, Sequence[int]], name: str = "verifier", device=None, *, batch_size: Optional[int] = None,
    weights_dir: Optional[str] = None,
) -> Classifier:
    """``tts.verifiers.Classifier``: reward log p(target | x0) under a zoo classifier.

    Args:
        target: one digit, or one digit per prompt row (row b of a search gets target[b]; pass
            ``batch_size=len(target)`` to :func:`tts_fast.search`).
        name: which classifier ('verifier', 'guide' or 'evaluator').
    """
    targets = parse_digits(target)
    net = digits_classifier(name, device, weights_dir=weights_dir)
    return Classifier(net, targets if len(targets) > 1 else targets[0], batch_size=batch_size)
