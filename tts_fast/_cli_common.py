"""Pieces shared by the ``tts-fast`` subcommands: user errors, argument types, device choice."""

from __future__ import annotations

import argparse
import json
import math


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


def nonnegative_int(s: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def finite_float(s: str) -> float:
    """argparse type: a finite number (NaN and infinities are refused: they compare unequal on resume, or mean nothing)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
    return v


def positive_float(s: str) -> float:
    """argparse type: a finite number > 0."""
    v = finite_float(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}")
    return v


def nonnegative_float(s: str) -> float:
    """argparse type: a finite number >= 0."""
    v = finite_float(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def _has_nonfinite(v) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, list):
        return any(_has_nonfinite(x) for x in v)
    if isinstance(v, dict):
        return any(_has_nonfinite(x) for x in v.values())
    return False


def key_value(s: str):
    """argparse type: KEY=VALUE with a JSON value (a plain string when it is not JSON)."""
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"method options are KEY=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    k = k.strip()
    if not k.isidentifier():
        raise argparse.ArgumentTypeError(f"method option names are identifiers (e.g. lam=2), got {k!r} in {s!r}")
    try:
        v = json.loads(v)
    except json.JSONDecodeError:
        pass  # a plain string (e.g. temperature=increase)
    if _has_nonfinite(v):  # Python's JSON reads NaN and Infinity
        raise argparse.ArgumentTypeError(f"method option {k} must be finite, got {s.split('=', 1)[1]!r}")
    return k, v


# keyword arguments of tts_fast.search that have their own flags: not method options
SEARCH_ARGUMENTS = ("model", "verifier", "method", "n_particles", "num_steps", "batch_size", "seed", "local_verifier", "budget",
                    "progress", "profile")


def check_options(method: str, pairs, reserved=()) -> dict:
    """``--option KEY=VALUE`` pairs -> the method's keyword options, checked before any work.

    Refuses a key given twice (the last would win silently), keys that are search arguments with
    their own flags (``reserved`` adds more), and names or values the method refuses (its
    dataclasses validate them; the same error ``tts_fast.search`` would raise after loading).
    """
    from .search.api import resolve_method

    options = {}
    for k, v in pairs:
        if k in options:
            raise CLIError(f"--option {k} is given twice")
        if k in SEARCH_ARGUMENTS or k in reserved:
            raise CLIError(f"--option {k}: {k} is not a method option (it has its own flag, or is set by the command)")
        options[k] = v
    try:
        resolve_method(method, dict(options))
    except (ValueError, TypeError) as e:
        raise CLIError(f"--option: {e}") from None
    return options


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
