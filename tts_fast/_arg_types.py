"""argparse types of the ``tts-fast`` flags: numbers with their bounds, and ``KEY=VALUE`` method options.

Each turns the flag's text into a value or raises ``argparse.ArgumentTypeError`` saying what was
expected (argparse adds the flag's name and exits with status 2). NaN and infinities are refused
everywhere: they compare unequal when a run is resumed, or mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math


def _integer(s: str, low: int, expected: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {s!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {v}")
    return v


def positive_int(s: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(s, 1, "a positive integer")


def nonnegative_int(s: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(s, 0, "an integer >= 0")


def finite_float(s: str) -> float:
    """argparse type: a finite number."""
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


def has_nonfinite(v) -> bool:
    """Whether a JSON value (numbers, lists, dicts) holds NaN or an infinity anywhere."""
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, list):
        return any(has_nonfinite(x) for x in v)
    if isinstance(v, dict):
        return any(has_nonfinite(x) for x in v.values())
    return False


def key_value(s: str):
    """argparse type: KEY=VALUE with a JSON value (a plain string when it is not JSON) -> (key, value)."""
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
    if has_nonfinite(v):  # Python's JSON reads NaN and Infinity
        raise argparse.ArgumentTypeError(f"method option {k} must be finite, got {s.split('=', 1)[1]!r}")
    return k, v
