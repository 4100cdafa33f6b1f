"""The model families of ``tts-fast run`` (``--model``): how each builds its model and verifier.

A family class offers, before anything loads: ``check(args)`` (its own options), ``check_prompt(text)``,
``schedule(args)``, ``verifiers`` / ``default_verifier`` and ``images``; constructed on a device
(``Family(args, device)``) it holds the loaded model, and ``prepare(prompts) -> (model, verifier)``,
``pixels(result)`` (uint8 images per prompt, or None) and ``sample(result, b)`` serve each group.
"""

from __future__ import annotations

from .family_diffusers import DiffusersFamily
from .family_digits import DigitsFamily
from .family_gmm import GmmFamily

FAMILIES = {"sd15": DiffusersFamily, "sdxl": DiffusersFamily, "flux": DiffusersFamily, "digits": DigitsFamily, "gmm": GmmFamily}
