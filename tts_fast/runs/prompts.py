"""Prompt sets: reading them (command line, text files, JSONL) and cutting them into search groups.

A prompt file is one prompt per line (blank lines skipped), or, when its name ends in ``.jsonl``,
one JSON object per line: ``{"prompt": "a cat", "seed": 7, "options": {"lam": 2.0}}`` where
``seed`` (an integer >= 0) and ``options`` (method options, over the ``--option`` ones) are
optional. Group g holds prompts g*K .. g*K+K-1 (K = ``--prompt-batch``) and is searched with seed
``base_seed + g`` unless its prompts give their own: a group's seed depends on its index only,
never on which rank or worker runs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from .._arg_types import has_nonfinite
from .._user_errors import UserError

_JSONL_KEYS = ("prompt", "seed", "options")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class PromptSpec:
    """One prompt of a set: its position ``index``, its text, and its own seed / options if any."""

    index: int
    text: str
    seed: Optional[int] = None
    options: dict = field(default_factory=dict)
    where: str = "--prompt"  # where it was given, for error messages


@dataclass(frozen=True)
class Group:
    """Prompts searched together in one call: their indices, the seed and the method options."""

    index: int
    members: tuple
    seed: int
    options: dict


def _jsonl_spec(line: str, where: str) -> tuple:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not a JSON object ({e.msg})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object with a \"prompt\", got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_JSONL_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_JSONL_KEYS)}")
    text = obj.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{where}: \"prompt\" must be a non-empty string, got {text!r}")
    seed = obj.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise UserError(f"{where}: \"seed\" must be an integer in 0..2**63-1, got {seed!r}")
    options = obj.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(k, str) and k.isidentifier() for k in options):
        raise UserError(f"{where}: \"options\" must be an object of method options (identifier keys), got {options!r}")
    if has_nonfinite(options):
        raise UserError(f"{where}: \"options\" values must be finite")
    return text.strip(), seed, options


def read_prompts(prompts, prompts_file: Optional[str]) -> list[PromptSpec]:
    """``--prompt`` texts, then the lines of ``--prompts-file`` -> PromptSpecs in order (indices 0..n-1)."""
    items = [(p, None, {}, f"--prompt #{i + 1}") for i, p in enumerate(prompts)]
    for i, (p, *_rest) in enumerate(items):
        if not p.strip():
            raise UserError(f"--prompt #{i + 1} is empty")
    if prompts_file:
        try:
            with open(prompts_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read --prompts-file: {e}") from None
        jsonl = prompts_file.endswith(".jsonl")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"--prompts-file {prompts_file}:{n}"
            if jsonl:
                items.append((*_jsonl_spec(line, where), where))
            else:
                items.append((line.strip(), None, {}, where))
    if not items:
        raise UserError("no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE")
    return [PromptSpec(i, text, seed, options, where) for i, (text, seed, options, where) in enumerate(items)]


def make_groups(specs: list[PromptSpec], prompt_batch: int, base_seed: int, base_options: dict) -> list[Group]:
    """Cut the prompt set into groups of ``prompt_batch`` consecutive prompts (the last may be shorter).

    A group's options are ``base_options`` updated by its prompts' own, and its seed is theirs or
    ``base_seed + g``; prompts that would share a search call but ask for different seeds or
    options are an error (name them, suggest ``--prompt-batch 1``).
    """
    groups = []
    for g, start in enumerate(range(0, len(specs), prompt_batch)):
        members = specs[start:start + prompt_batch]
        first = members[0]
        for s in members[1:]:
            if (s.seed, s.options) != (first.seed, first.options):
                raise UserError(
                    f"{first.where} and {s.where} share a search call (--prompt-batch {prompt_batch}) but give different "
                    "seeds or options; give them the same, or use --prompt-batch 1"
                )
        seed = first.seed if first.seed is not None else base_seed + g
        if seed > MAX_SEED:
            raise UserError(f"--seed {base_seed} is too large: prompt group g uses seed + g, which must stay below 2**63")
        groups.append(Group(g, tuple(s.index for s in members), seed, {**base_options, **first.options}))
    return groups
