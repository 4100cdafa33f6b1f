"""Verifiers: rewards on clean samples (see :class:`Verifier`).

The image verifiers (:class:`ImageReward`, :class:`CLIPScore`, :class:`Aesthetic`) are imported
on first use: their optional dependencies (extras ``imagereward`` and ``clip``) are only needed
when they are used.
"""

from .analytic import GaussianReward, MixtureReward
from .base import Classifier, Function, Verifier

__all__ = ["Verifier", "Function", "Classifier", "GaussianReward", "MixtureReward", "ImageReward", "CLIPScore", "Aesthetic"]

_LAZY = {"ImageReward": ".image_reward", "CLIPScore": ".clip", "Aesthetic": ".clip"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
