"""The model families (``--model``): one registry for ``tts-fast run`` and ``tts-fast profile``.

A family is an object of the :class:`ModelFamily` protocol. Before anything loads it says which
verifiers and options apply and checks them (``check``, ``check_prompt``) and gives the schedule the
search's own checks need; ``load`` builds what a run keeps for all its prompts (a
:class:`LoadedModel`: a pipeline, a network), whose ``prepare`` gives (model, verifier) per prompt
group; ``profile_setup`` builds the (model, verifier) that ``tts-fast profile`` times. Each family
reads :class:`~tts_fast.runs.config.ModelConfig` only: the search and run settings are not its
business.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, runtime_checkable

from .._user_errors import UserError
from .config import ModelConfig
from .family_diffusers import DiffusersFamily
from .family_digits import DigitsFamily
from .family_gmm import GmmFamily


@runtime_checkable
class LoadedModel(Protocol):
    """What a family loads once per process: it serves every prompt group of the run."""

    def prepare(self, prompts: list) -> tuple:
        """(model, verifier) for one group of prompt texts (a ``tts.Denoiser`` and a ``tts.Verifier``)."""

    def pixels(self, result) -> Optional[list]:
        """uint8 images [H, W] or [H, W, 3] per prompt of a ``tts.SearchResult``, or None (no images)."""

    def sample(self, result, b: int) -> Optional[list]:
        """Prompt b's returned sample as a JSON list for its record, or None (the image is the sample)."""


@runtime_checkable
class ModelFamily(Protocol):
    """A ``--model`` value: what applies to it, its checks, and how it builds its model and verifier.

    Attributes:
        name: the ``--model`` value.
        verifiers: the ``tts-fast run --verifier`` values it takes.
        default_verifier: the one used when none is given, or None when one must be chosen.
        images: whether a run writes a PNG per prompt (and a contact sheet).
        pipeline_options: whether the diffusers pipeline options (--guidance, --height, --dtype, ...) apply.
    """

    name: str
    verifiers: tuple
    default_verifier: Optional[str]
    images: bool
    pipeline_options: bool

    def check(self, model: ModelConfig) -> None:
        """Every option of a run that can be checked without loading anything (UserError naming it)."""

    def check_prompt(self, text: str) -> None:
        """A UserError when ``text`` is not a prompt of this family."""

    def schedule(self, model: ModelConfig):
        """The noise schedule of the model (the search's own checks depend on it)."""

    def load(self, model: ModelConfig, device) -> LoadedModel:
        """Load what a run keeps for all its prompts, on ``device``."""

    def profile_setup(self, model: ModelConfig, device, *, batch_size: int, smoke: bool, prompts: Sequence[str]) -> tuple:
        """(model, verifier) for ``tts-fast profile``: ``batch_size`` prompt rows; ``smoke``: a tiny network."""


FAMILIES: dict = {family.name: family for family in (DiffusersFamily("sd15"), DiffusersFamily("sdxl"), DiffusersFamily("flux"),
                                                     DigitsFamily(), GmmFamily())}

# options of the diffusers pipelines that mean nothing for the other families (refused, not ignored)
PIPELINE_ONLY = ("verifier_weights", "aesthetic_head", "tokenizer", "guidance", "negative_prompt", "height", "width", "dtype", "max_batch")


def family_of(model: ModelConfig) -> ModelFamily:
    """The family of ``model.name`` (a UserError naming the choices otherwise)."""
    if model.name not in FAMILIES:
        raise UserError(f"--model {model.name!r} is not a model family; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[model.name]


def refuse_pipeline_options(model: ModelConfig, family: ModelFamily, also: Sequence[str] = ()) -> None:
    """A UserError naming the pipeline options given to a family that takes none (they would be ignored).

    ``also``: more flags the calling command found given (e.g. profile's --smoke), named first.
    """
    if family.pipeline_options:
        return
    given = list(also) + [f"--{k.replace('_', '-')}" for k in PIPELINE_ONLY if getattr(model, k) is not None]
    given += [f"--backend {model.backend}"] if model.backend != "eager" else []
    given += ["--decode-scale"] if model.decode_scale != 1.0 else []
    if given:
        takers = ", ".join(name for name, f in FAMILIES.items() if f.pipeline_options)
        raise UserError(f"{', '.join(given)}: not an option of --model {model.name} (they apply to {takers})")
