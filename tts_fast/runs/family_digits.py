"""``--model digits``: the built-in 8x8 digits model; a prompt is a target digit.

Prompt "3" asks for a 3: the verifier is ``tts.zoo.digits_verifier(targets)`` (log p(target | x0)
under the zoo's CNN), one target per prompt of the group. Images are saved as 32x32 grayscale
PNGs (each pixel of the 8x8 sample repeated 4x4), ink black on white as in ``tts-fast demo``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .._user_errors import UserError
from .config import ModelConfig

SCALE = 4  # PNG pixels per sample pixel (8x8 is too small to look at)


class DigitsFamily:
    """The zoo's digits diffusion model with its classifier verifier; prompts "0" .. "9"."""

    name = "digits"
    verifiers = ("digits",)
    default_verifier = "digits"
    images = True
    pipeline_options = False

    @staticmethod
    def check(model: ModelConfig) -> None:
        """--weights is the zoo weights folder when given (digits_unet.pt, digits_verifier.pt)."""
        if model.weights is not None:
            from ..zoo import weights_path

            for name in ("unet", "verifier"):
                if not os.path.isfile(weights_path(name, model.weights)):
                    raise UserError(f"--weights {model.weights!r} has no {os.path.basename(weights_path(name, model.weights))} "
                                    "(for --model digits it is a zoo weights folder, written by python -m tts_fast.zoo.train)")

    @staticmethod
    def check_prompt(text: str) -> None:
        """A prompt is one target digit 0..9."""
        if text not in tuple("0123456789"):
            raise UserError(f"prompt {text!r}: --model digits takes target digits 0..9 as prompts (e.g. a line \"3\")")

    @staticmethod
    def schedule(model: ModelConfig):
        """The cosine schedule the digits UNet was trained with."""
        from ..zoo import digits_schedule

        return digits_schedule()

    @staticmethod
    def load(model: ModelConfig, device) -> "LoadedDigits":
        """The digits UNet (from ``model.weights`` or the shipped folder) on ``device``."""
        return LoadedDigits(model.weights, device)

    @staticmethod
    def profile_setup(model: ModelConfig, device, *, batch_size: int, smoke: bool, prompts: Sequence[str]) -> tuple:
        """(model, verifier) to profile: the shipped model, and targets 0, 1, 2, ... one per row."""
        import tts_fast as tts

        return tts.zoo.digits(device), tts.zoo.digits_verifier([d % 10 for d in range(batch_size)], device=device)


class LoadedDigits:
    """The loaded digits model; each group gets the verifier of its target digits."""

    def __init__(self, weights_dir, device):
        import tts_fast as tts

        self.weights_dir, self.device = weights_dir, device
        self.model = tts.zoo.digits(device, weights_dir=weights_dir)

    def prepare(self, prompts: list) -> tuple:
        """(model, verifier): the unconditional model and ``digits_verifier`` for these targets."""
        import tts_fast as tts

        return self.model, tts.zoo.digits_verifier([int(p) for p in prompts], device=self.device, weights_dir=self.weights_dir)

    @staticmethod
    def pixels(result) -> list:
        """uint8 [8*SCALE, 8*SCALE] per prompt: samples in [-1, 1] (1 = ink) -> 255 (white) .. 0 (black)."""
        x = result.samples.detach().float().cpu()[:, 0]
        arr = ((1.0 - x.clamp(-1, 1)) * 127.5).round().byte().numpy()
        return [np.ascontiguousarray(a.repeat(SCALE, 0).repeat(SCALE, 1)) for a in arr]

    @staticmethod
    def sample(result, b: int):
        """None: the PNG is the sample (to 8 bits; the record's reward is the exact check)."""
        return None
