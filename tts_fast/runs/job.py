"""A checked ``tts-fast run`` job: the prompt set, its groups and seeds, the settings records must match.

:func:`prepare` checks every option and every prompt before anything is loaded or written, so a
bad one never costs a model load; every launcher (one process, torchrun ranks, Ray workers) runs
the same :class:`Job`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._user_errors import UserError
from .config import RunConfig
from .families import ModelFamily, family_of, refuse_pipeline_options
from .options import check_method_options
from .probe import probe_search
from .prompts import Group, PromptSpec, make_groups, read_prompts


@dataclass(frozen=True)
class Job:
    """What every worker of a run needs: the ``config`` (its verifier filled in), the model ``family``,
    the prompt ``specs``, the search ``groups`` and the ``settings`` dict stored in every record."""

    config: RunConfig
    family: ModelFamily
    specs: list
    groups: list
    settings: dict

    @property
    def out(self) -> str:
        """The output folder (--out)."""
        return self.config.out


def _with_verifier(config: RunConfig, family: ModelFamily) -> RunConfig:
    """``config`` with the family's default verifier filled in, after checking the family takes it."""
    model = config.model
    if model.verifier is None:
        if family.default_verifier is None:
            raise UserError(f"--model {model.name} needs --verifier, one of {', '.join(family.verifiers)}")
        model = dataclasses.replace(model, verifier=family.default_verifier)
    if model.verifier not in family.verifiers:
        raise UserError(f"--verifier {model.verifier} does not apply to --model {model.name} (choose {', '.join(family.verifiers)})")
    return dataclasses.replace(config, model=model)


def _probe_groups(config: RunConfig, family: ModelFamily, specs: list, groups: list, base: dict) -> None:
    """Run the search's own checks once per distinct option set, at its largest group (naming the
    prompt line whose options fail)."""
    schedule = family.schedule(config.model)
    probed = []  # distinct option sets (dicts are not hashable)
    for g in groups:
        if g.options in probed:
            continue
        probed.append(g.options)
        where = next(specs[i].where for i in g.members)
        try:
            opts = check_method_options(config.method, list(g.options.items()))
            probe_search(config, schedule, opts, max(len(h.members) for h in groups if h.options == g.options))
        except UserError as e:
            raise UserError(f"{e}" if g.options == base else f"{where}: {e}") from None


def prepare(config: RunConfig) -> Job:
    """Check ``config`` and every prompt; the Job to run.

    Raises UserError naming the option, or the prompt's file and line, before any work.
    """
    if config.ray is None and config.ray_workers is not None:
        raise UserError("--ray-workers applies with --ray ADDRESS")
    family = family_of(config.model)
    config = _with_verifier(config, family)
    refuse_pipeline_options(config.model, family)
    family.check(config.model)
    specs: list[PromptSpec] = read_prompts(config.prompts, config.prompts_file)
    for s in specs:
        try:
            family.check_prompt(s.text)
        except UserError as e:
            raise UserError(f"{s.where}: {e}") from None
    base = check_method_options(config.method, config.options)
    groups: list[Group] = make_groups(specs, config.prompt_batch, config.seed, base)
    _probe_groups(config, family, specs, groups, base)
    return Job(config, family, specs, groups, config.settings())
