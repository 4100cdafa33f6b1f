"""A checked ``tts-fast run`` job: the prompt set, its groups and seeds, the settings records must match.

:func:`prepare` checks every option and every prompt before anything is loaded or written, so a
bad one never costs a model load; every launcher (one process, torchrun ranks, Ray workers) runs
the same :class:`Job`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .._cli_common import CLIError, check_options
from .families import FAMILIES
from .probe import probe_search
from .prompts import Group, PromptSpec, make_groups, read_prompts

# options of the diffusers pipelines that mean nothing for the built-in models (refused, not ignored)
_PIPELINE_ONLY = ("verifier_weights", "aesthetic_head", "tokenizer", "guidance", "negative_prompt", "height", "width", "dtype", "max_batch")


@dataclass
class Job:
    """What every worker of a run needs: ``args`` (the parsed options), the model ``family`` class,
    the prompt ``specs``, the search ``groups`` and the ``settings`` dict stored in every record."""

    args: object
    family: type
    specs: list
    groups: list
    settings: dict

    @property
    def out(self) -> str:
        """The output folder (--out)."""
        return self.args.out


def settings_of(args) -> dict:
    """What a record must match to be resumed (everything that changes the result)."""
    return {
        "model": args.model,
        "weights": None if args.weights is None else os.path.abspath(args.weights),
        "method": args.method,
        "options": dict(args.option),
        "particles": args.particles,
        "steps": args.steps,
        "budget": args.budget,
        "verifier": args.verifier,
        "verifier_weights": args.verifier_weights,
        "aesthetic_head": args.aesthetic_head,
        "guidance": args.guidance,
        "negative_prompt": args.negative_prompt,
        "height": args.height,
        "width": args.width,
        "seed": args.seed,
        "prompt_batch": args.prompt_batch,
        "dtype": args.dtype,
        "decode_scale": args.decode_scale,
    }


def _check_family_options(args, family) -> None:
    if args.verifier is None:
        if family.default_verifier is None:
            raise CLIError(f"--model {args.model} needs --verifier, one of {', '.join(family.verifiers)}")
        args.verifier = family.default_verifier
    if args.verifier not in family.verifiers:
        raise CLIError(f"--verifier {args.verifier} does not apply to --model {args.model} (choose {', '.join(family.verifiers)})")
    if not getattr(family, "pipeline_options", False):
        given = [f"--{k.replace('_', '-')}" for k in _PIPELINE_ONLY if getattr(args, k) is not None]
        given += [f"--backend {args.backend}"] if args.backend != "eager" else []
        given += ["--decode-scale"] if args.decode_scale != 1.0 else []
        if given:
            raise CLIError(f"{', '.join(given)}: not an option of --model {args.model} (they apply to sd15, sdxl, flux)")
    family.check(args)


def prepare(args) -> Job:
    """Check ``args`` (from :func:`tts_fast.runs.options.add_arguments`) and every prompt; the Job to run.

    Raises CLIError naming the option, or the prompt's file and line, before any work.
    """
    if args.ray is None and args.ray_workers is not None:
        raise CLIError("--ray-workers applies with --ray ADDRESS")
    family = FAMILIES[args.model]
    _check_family_options(args, family)
    specs: list[PromptSpec] = read_prompts(args.prompt, args.prompts_file)
    for s in specs:
        try:
            family.check_prompt(s.text)
        except CLIError as e:
            raise CLIError(f"{s.where}: {e}") from None
    base = check_options(args.method, args.option)
    groups: list[Group] = make_groups(specs, args.prompt_batch, args.seed, base)
    schedule = family.schedule(args)
    probed = []  # distinct option sets (dicts are not hashable), each checked once at its largest group
    for g in groups:
        if g.options in probed:
            continue
        probed.append(g.options)
        where = next(specs[i].where for i in g.members)
        try:
            opts = check_options(args.method, list(g.options.items()))
            probe_search(args, schedule, opts, max(len(h.members) for h in groups if h.options == g.options))
        except CLIError as e:
            raise CLIError(f"{e}" if g.options == base else f"{where}: {e}") from None
    return Job(args, family, specs, groups, settings_of(args))
