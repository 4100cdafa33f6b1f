"""Every command's --help: a plain-words line for every option, and no reStructuredText markup."""

import argparse
import re
from pathlib import Path

import pytest

from tts_fast.cli import reference

ROOT = Path(__file__).resolve().parents[1]
MARKUP = re.compile(r"``|:(func|class|mod|data|meth|attr):`")
_parsers = reference.parsers


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


def test_the_reference_page_is_current():
    """docs/cli.md is what the parsers define: an option, argument name, default or help changed
    without the page (or the page without the code) fails here. Rewrite it with
    ``python -m tts_fast.cli.reference > docs/cli.md``."""
    assert (ROOT / "docs" / "cli.md").read_text() == reference.markdown()
