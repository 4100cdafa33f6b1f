"""Verifiers: rewards on clean samples (see :class:`Verifier`)."""

from .analytic import GaussianReward, MixtureReward
from .base import Classifier, Function, Verifier

__all__ = ["Verifier", "Function", "Classifier", "GaussianReward", "MixtureReward"]
