"""The shipped digits networks: where their files are, loading them (checked, cached), and the verifier.

Files are ``{dir}/digits_unet.pt`` and ``{dir}/digits_{classifier}.pt`` (dir: given, else
$TTS_FAST_ZOO_WEIGHTS, else the shipped folder), written by ``python -m tts_fast.zoo.train``.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import torch

from .._checkpoints import build_network, expect_state_dict, load_checkpoint as _load, weights_folder
from .._devices import resolve_device
from ..verifiers.base import Classifier
from .model import DigitsModel, digits_schedule
from .nets import CLASSIFIER_ARCHS, NUM_CLASSES, DigitsUNet

CLASSIFIERS = tuple(CLASSIFIER_ARCHS)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DIFFUSION_FILE = "digits_unet.pt"


def weights_path(name: str, weights_dir: Optional[str] = None) -> str:
    """Path of a weights file: 'unet' or a classifier name.

    The folder is ``weights_dir``, else $TTS_FAST_ZOO_WEIGHTS, else the shipped ``WEIGHTS_DIR``.
    """
    if name != "unet" and name not in CLASSIFIERS:
        raise ValueError(f"weights name must be 'unet' or one of {', '.join(CLASSIFIERS)}; got {name!r}")
    fname = DIFFUSION_FILE if name == "unet" else f"digits_{name}.pt"
    return os.path.join(weights_folder(weights_dir, "TTS_FAST_ZOO_WEIGHTS", WEIGHTS_DIR), fname)


_WHAT = "a tts_fast digits zoo checkpoint"
_KEYS = ("kind", "config", "state_dict")


def _check_structure(ck: dict, path: str) -> None:
    if not isinstance(ck["config"], dict):
        raise ValueError(f"{path} is not {_WHAT}: its config must be a dict of constructor arguments, got {type(ck['config']).__name__}")
    expect_state_dict(ck["state_dict"], path, _WHAT)


def load_checkpoint(path: str, kind: Optional[str] = None) -> dict:
    """A zoo checkpoint: {'kind', 'config', 'state_dict', 'meta'} (cached per file version).

    Args:
        path: the file.
        kind: the network it must hold ('unet' or a classifier name), or None for any.

    Raises FileNotFoundError for a missing file and ValueError naming the file for one that is not
    a zoo checkpoint (truncated, corrupted, another kind of file, or another network's).
    """
    ck = _load(path, what=_WHAT, expected=f"a dict with keys {', '.join(_KEYS)}, meta (written by python -m tts_fast.zoo.train)",
               keys=_KEYS, kinds=("unet", *CLASSIFIERS), check=_check_structure,
               missing=f"no weights at {path}; reinstall tts_fast, or retrain with `python -m tts_fast.zoo.train --out DIR`")
    if kind is not None and ck["kind"] != kind:
        raise ValueError(f"{path} is a zoo checkpoint of {ck['kind']!r}, not of {kind!r} (files may have been swapped or renamed)")
    return ck


def digits(device=None, *, clip: bool = True, weights_dir: Optional[str] = None) -> DigitsModel:
    """The pretrained digits diffusion model (8x8, unconditional, epsilon-prediction UNet).

    Args:
        device: 'cpu', 'cuda', ... (default: CUDA when available, else CPU).
        clip: clamp x0-predictions to [-1, 1].
        weights_dir: load from another folder (e.g. the output of the training script).
    """
    path = weights_path("unet", weights_dir)
    ck = load_checkpoint(path, "unet")
    return DigitsModel(build_network(DigitsUNet, ck["config"], ck["state_dict"], path), digits_schedule(), clip=clip,
                       device=resolve_device(device))


def digits_classifier(name: str = "verifier", device=None, *, weights_dir: Optional[str] = None) -> torch.nn.Module:
    """A pretrained digit classifier ([B, 1, 8, 8] in [-1, 1] -> [B, 10] logits), in eval mode.

    Args:
        name: 'verifier' (CNN; what search selects with), 'guide' (LeNet-style CNN; the gradient
            verifier of the dual-verifier scheme) or 'evaluator' (MLP; held-out evaluation only).
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"classifier name must be one of {', '.join(CLASSIFIERS)}; got {name!r}")
    path = weights_path(name, weights_dir)
    ck = load_checkpoint(path, name)
    net = build_network(CLASSIFIER_ARCHS[name], ck["config"], ck["state_dict"], path).to(resolve_device(device))
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
