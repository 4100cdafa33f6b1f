"""The ``tts-fast`` command: one subcommand per module of this package, dispatched here.

    tts-fast demo                      # the search methods on real digits, judged by a third-party classifier
    tts-fast run --model sd15 --weights PATH --prompt "a red bicycle" --method bfs_best ...
    tts-fast profile --model sd15 --method bfs_best --particles 8 --device cuda --trace trace.json

Each subcommand module (:mod:`.demo`, :mod:`.run`, :mod:`.profile`) has ``add_parser(subparsers)``
registering its options and handler; a handler returns the exit status, and a
:class:`~tts_fast._user_errors.UserError` it raises (or a ValueError, a missing file, a missing extra:
``tts_fast._user_errors.USER_MISTAKES``) is printed as ``tts-fast COMMAND: error: ...`` (status 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .._user_errors import USER_MISTAKES

# subcommand -> its module (imported when the parser is built; each imports its heavy parts on use)
COMMANDS = {"demo": ".demo", "run": ".run", "profile": ".profile"}


def build_parser() -> argparse.ArgumentParser:
    """The ``tts-fast`` parser with every subcommand."""
    p = argparse.ArgumentParser(prog="tts-fast", description="tts_fast: inference-time scaling of diffusion models through classical search")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module, __package__).add_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tts-fast`` with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except USER_MISTAKES as e:  # an option, a file, a missing extra: one line, status 2
        parser.exit(2, f"tts-fast {args.command}: error: {' '.join(str(e).split()) or type(e).__name__}\n")
    except KeyboardInterrupt:
        print("\ninterrupted: results written so far are complete files; nothing half-written was left", file=sys.stderr)
        return 130
