"""Denoiser adapters: the analytic Gaussian mixture (and, with extras, diffusers pipelines)."""

from .base import Denoiser
from .gaussian_mixture import GaussianMixture

__all__ = ["Denoiser", "GaussianMixture"]
