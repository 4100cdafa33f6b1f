"""The install lines the documentation gives, as written: found here, checked by tests/test_install_lines.py
and run by .ci/install_lines.sh.

    python .ci/install_lines.py            # one line per documented install command: FILE:LINE<TAB>COMMAND
    python .ci/install_lines.py --setup    # only README's set-up line of the demo
    python .ci/install_lines.py --extras   # only the lines that add extras from a clone: pip install --no-build-isolation ".[...]" [torchvision==X]

A documented install command is a ``pip install`` that installs tts_fast (a path of the checkout,
``tts_fast[...]``, or a wheel of it), in a fenced code block or inline code of README.md or docs/*.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what a tts_fast install names: the checkout ('.', '.[x]', "./"), the package by name, or a wheel of it
_PACKAGE = re.compile(r"""(?:^|\s)["']?(?:\.(?:\[[a-z,]+\])?|tts_fast(?:\[[a-z,]+\])?|\S*tts_fast-\S*\.whl(?:\[[a-z,]+\])?)["']?(?=\s|$|\))""")
# an extras line may name the torchvision of the set-up's torch (extras whose packages need torchvision)
_EXTRAS = re.compile(r"""^pip install --no-build-isolation "\.\[([a-z,]+)\]"( torchvision==[0-9.]+)?$""")


def _commands(text: str):
    """(line number, command) of every `pip install ...` in fenced blocks and in inline code."""
    fenced = False
    for no, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        pieces = [line.split("  #")[0]] if fenced else re.findall(r"`([^`]*pip install[^`]*)`", line)
        for piece in pieces:
            for part in re.split(r"&&|;", piece):
                part = part.strip()
                if part.startswith("pip install"):
                    yield no, part


def documented(root: str = ROOT) -> list:
    """[(file relative to root, line number, command)] of every documented pip install of tts_fast."""
    files = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    found = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for no, cmd in _commands(text):
            if _PACKAGE.search(cmd[len("pip install"):]):
                found.append((os.path.relpath(path, root), no, cmd))
    return found


def setup_line(root: str = ROOT) -> str:
    """README's one-line set-up of the demo (the fenced line that creates the virtual environment)."""
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.startswith("python3 -m venv .venv")]
    if len(lines) != 1:
        raise SystemExit(f"README.md must hold exactly one set-up line starting 'python3 -m venv .venv', found {len(lines)}")
    return lines[0]


def extras_lines(root: str = ROOT) -> list:
    """The documented commands that add extras from a clone, each once, in the order first documented."""
    return list(dict.fromkeys(cmd for _, _, cmd in documented(root) if _EXTRAS.match(cmd)))


def main(argv=None) -> int:
    """Print the lines asked for, one per line."""
    p = argparse.ArgumentParser(description="print the install lines the documentation gives")
    p.add_argument("--setup", action="store_true", help="only README's set-up line of the demo")
    p.add_argument("--extras", action="store_true", help="only the lines that add extras from a clone")
    a = p.parse_args(argv)
    if a.setup:
        print(setup_line())
    elif a.extras:
        print("\n".join(extras_lines()))
    else:
        print("\n".join(f"{f}:{n}\t{c}" for f, n, c in documented()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
