"""Denoiser adapters: the analytic Gaussian mixture, any EDM / consistency x0-predictor
(:class:`EDMDenoiser`, with :func:`edm_schedule`) and, with the ``diffusers`` extra, stock
diffusers pipelines (:class:`DiffusersModel`, imported on first use so that ``import tts_fast``
never imports diffusers or transformers)."""

from .base import Denoiser
from .edm import EDMDenoiser, edm_schedule
from .gaussian_mixture import GaussianMixture

__all__ = ["Denoiser", "GaussianMixture", "EDMDenoiser", "edm_schedule", "DiffusersModel"]

_LAZY = {"DiffusersModel": ".diffusers", "backends": ".backends"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(_LAZY[name], __name__)
        return mod if name == "backends" else getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
