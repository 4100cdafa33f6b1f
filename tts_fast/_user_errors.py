"""Errors of the person at the command line: :class:`UserError`, and the device they name.

A UserError is bad input that the user can fix (an option, a prompt line, a folder of another
run), raised before any work where possible; ``tts-fast`` prints it as ``tts-fast COMMAND: error:
MESSAGE`` with exit status 2, and Python callers of the run layer (``tts_fast.distributed.ray.run``)
get it as an exception. Every message names the option (or the file and line) at fault.
"""

from __future__ import annotations

from ._devices import AUTO, resolve_device


class UserError(Exception):
    """A user error: bad input named by its option; printed as ``tts-fast ...: error: ...``, exit status 2."""


def user_device(name: str):
    """``--device`` (auto, cpu, cuda or cuda:i) -> torch.device, refusing a device this machine lacks.

    'auto' follows :func:`tts_fast._devices.resolve_device` (CUDA when available, else the CPU).
    """
    import torch

    if name == AUTO:
        return resolve_device(AUTO)
    try:
        dev = resolve_device(name)
    except ValueError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:index]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r} is not supported; use auto, cpu or cuda[:index]")
    return dev


# What a command reports as the user's mistake: its own UserError, a library ValueError / TypeError
# naming an argument, a file that is missing or cannot be written, a missing optional extra.
USER_MISTAKES = (UserError, ValueError, TypeError, OSError, ImportError)


def command(prog: str):
    """Decorator of a command's ``main(argv=None)``: a user mistake ends as one line
    ``PROG: error: MESSAGE`` on stderr and exit status 2 (as argparse's own errors do), Ctrl-C as
    status 130; the decorated main returns the exit status instead of raising."""
    import functools
    import sys

    def wrap(main):
        @functools.wraps(main)
        def run(argv=None) -> int:
            try:
                return int(main(argv) or 0)
            except USER_MISTAKES as e:
                message = " ".join(str(e).split()) or type(e).__name__
                print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
                return 2
            except KeyboardInterrupt:
                print(f"\n{prog}: interrupted", file=sys.stderr, flush=True)
                return 130

        return run

    return wrap
