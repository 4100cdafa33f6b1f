"""``--model gmm``: the analytic Gaussian mixture; a prompt is a reward centre.

The model is the 2-D mixture of the README's quick start (modes at (-2, 0) and (2, 0), std 0.5,
weights 0.95 / 0.05, DDPM linear schedule, float64); prompt ``[2, 0]`` asks for samples near
(2, 0): the verifier is ``GaussianReward(center, var=1)``, log f(x) = -|x - center|^2 / 2. There is
no image: the record holds the returned sample's coordinates, and the summary has no contact sheet.
"""

from __future__ import annotations

import json
import math
from typing import Sequence

from .._user_errors import UserError
from .config import ModelConfig

MEANS = [[-2.0, 0.0], [2.0, 0.0]]
STDS = [0.5, 0.5]
WEIGHTS = [0.95, 0.05]
RARE_MODE = [2.0, 0.0]  # the reward centre tts-fast profile uses: the rare mode


def centre(text: str) -> list[float]:
    """Prompt text -> the reward centre [x, y] (a JSON list of two finite numbers)."""
    try:
        c = json.loads(text)
    except json.JSONDecodeError:
        c = None
    if (not isinstance(c, list) or len(c) != len(MEANS[0])
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in c)):
        raise UserError(f"prompt {text!r}: --model gmm takes reward centres as prompts, a JSON list of {len(MEANS[0])} finite numbers "
                        "(e.g. a line \"[2, 0]\")")
    return [float(v) for v in c]


class GmmFamily:
    """The exact 2-D Gaussian-mixture denoiser with a Gaussian reward around each prompt's centre."""

    name = "gmm"
    verifiers = ("gaussian",)
    default_verifier = "gaussian"
    images = False
    pipeline_options = False

    @staticmethod
    def check(model: ModelConfig) -> None:
        """The analytic model takes no --weights."""
        if model.weights is not None:
            raise UserError("--weights does not apply to --model gmm (the analytic model has no weights)")

    check_prompt = staticmethod(centre)

    @staticmethod
    def schedule(model: ModelConfig):
        """DDPM linear, 1000 levels (GaussianMixture's default)."""
        from .. import schedules

        return schedules.ddpm_linear()

    @staticmethod
    def load(model: ModelConfig, device) -> "LoadedGmm":
        """The mixture (float64) on ``device``."""
        import tts_fast as tts

        return LoadedGmm(tts.models.GaussianMixture(MEANS, STDS, WEIGHTS, device=device))

    @staticmethod
    def profile_setup(model: ModelConfig, device, *, batch_size: int, smoke: bool, prompts: Sequence[str]) -> tuple:
        """(model, verifier) to profile: the mixture in float32 (the dtype of the networks it stands in
        for) and the reward around the rare mode."""
        import torch

        import tts_fast as tts

        mixture = tts.models.GaussianMixture(MEANS, STDS, WEIGHTS, dtype=torch.float32, device=device)
        return mixture, tts.verifiers.GaussianReward(RARE_MODE, 1.0)


class LoadedGmm:
    """The mixture; each group gets the Gaussian rewards around its prompts' centres."""

    def __init__(self, model):
        self.model = model

    def prepare(self, prompts: list) -> tuple:
        """(model, verifier) for one group: one reward centre per prompt row."""
        import tts_fast as tts

        return self.model, tts.verifiers.GaussianReward([centre(p) for p in prompts], 1.0)

    @staticmethod
    def pixels(result):
        """None: 2-D samples have no image."""
        return None

    @staticmethod
    def sample(result, b: int):
        """The returned sample of prompt b: [x, y]."""
        return result.samples[b].detach().cpu().tolist()
