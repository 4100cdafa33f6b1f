"""Every command's --help: a plain-words line for every option, and no reStructuredText markup."""

import argparse
import importlib
import re

import pytest

from tts_fast.cli.dispatch import build_parser

MODULE_COMMANDS = ["tts_fast.rl.train", "tts_fast.rl.distill", "tts_fast.rl.generate", "tts_fast.maze.train", "tts_fast.zoo.train",
                   "tts_fast.zoo.real28.train"]
MARKUP = re.compile(r"``|:(func|class|mod|data|meth|attr):`")


def _parsers():
    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    yield "tts-fast", top
    yield from ((f"tts-fast {name}", p) for name, p in sub.choices.items())
    for module in MODULE_COMMANDS:
        yield f"python -m {module}", importlib.import_module(module).build_parser()


@pytest.mark.parametrize("name,parser", list(_parsers()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_has_help_in_plain_words(name, parser):
    missing = [a.option_strings or [a.dest] for a in parser._actions
               if not isinstance(a, argparse._SubParsersAction) and not (a.help and a.help.strip())]
    assert not missing, f"{name}: options without help: {missing}"
    text = parser.format_help()
    assert not MARKUP.search(text), f"{name} --help shows markup: {MARKUP.search(text).group(0)!r}"
    assert parser.description and not MARKUP.search(parser.description)


def test_the_computing_commands_all_take_threads():
    for name, parser in _parsers():
        if name == "tts-fast":
            continue
        assert "--threads" in parser._option_string_actions, f"{name} has no --threads"
