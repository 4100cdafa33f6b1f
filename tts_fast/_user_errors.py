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
