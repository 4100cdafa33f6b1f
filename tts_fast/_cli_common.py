"""Pieces shared by the ``tts-fast`` subcommands: user errors, argument types, device choice."""

from __future__ import annotations

import argparse
import json


class CLIError(Exception):
    """A user error: printed as ``tts-fast: error: ...`` with exit status 2."""


def positive_int(s: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def key_value(s: str):
    """argparse type: KEY=VALUE with a JSON value (a plain string when it is not JSON)."""
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"method options are KEY=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    try:
        v = json.loads(v)
    except json.JSONDecodeError:
        pass  # a plain string (e.g. temperature=increase)
    return k.strip(), v


def resolve_device(name: str):
    """'auto', 'cpu' or 'cuda[:i]' -> torch.device, with a clear error when it is not available."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"unknown device {name!r}; use auto, cpu or cuda[:index]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise CLIError(f"device {name!r} is not supported; use auto, cpu or cuda[:index]")
    return dev
