"""The command-line reference (docs/cli.md): every command's options, argument, default and help,
read from the parsers themselves so the page cannot drift from what the commands accept.

    python -m tts_fast.cli.reference > docs/cli.md
"""

from __future__ import annotations

import argparse
import importlib
from typing import Iterator

# the module commands besides ``tts-fast`` (each module has ``build_parser()``)
MODULE_COMMANDS = ("tts_fast.rl.train", "tts_fast.rl.distill", "tts_fast.rl.generate", "tts_fast.rl.check_data", "tts_fast.maze.train",
                   "tts_fast.zoo.train", "tts_fast.zoo.real28.train")


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command as typed, its parser) for ``tts-fast``, each subcommand, and each module command."""
    from .dispatch import build_parser

    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    yield "tts-fast", top
    yield from ((f"tts-fast {name}", p) for name, p in sub.choices.items())
    for module in MODULE_COMMANDS:
        yield f"python -m {module}", importlib.import_module(module).build_parser()


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _argument(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ", ".join(str(c) for c in action.choices) + "}"
    return action.metavar if isinstance(action.metavar, str) else action.dest.upper()


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{action.default!r}`"


def markdown() -> str:
    """The reference page: one section per command, one table row per option."""
    out = ["# Command-line reference", "",
           "Every command's options as its parser defines them (`python -m tts_fast.cli.reference > docs/cli.md`",
           "writes this page; `tests/test_cli_help.py` checks it is current). Each command's `--help` prints the same.", ""]
    for name, parser in parsers():
        out += [f"## `{name}`", "", _cell(parser.description or ""), ""]
        actions = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        if actions:
            out += ["| option | argument | default | what it does |", "|---|---|---|---|"]
        for a in actions:
            opts = ", ".join(f"`{o}`" for o in a.option_strings) or f"`{a.dest}` (positional)"
            out.append(f"| {opts} | {_cell(_argument(a))} | {_default(a)} | {_cell(a.help or '')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
