"""Field validation shared by the method dataclasses (errors name the field and allowed values)."""

from __future__ import annotations

import math


def check_int(v, name: str, low: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")


def check_bool(v, name: str) -> None:
    # a truthy 1 or "no" would switch the option on by accident
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}")


def check_choice(v, name: str, allowed) -> None:
    if v not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {v!r}")


def check_float(v, name: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v <= high
    ok = ok and (v > low if low_open else v >= low)
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}" + (f" and <= {high}" if high < math.inf else "") + f", got {v!r}")


def check_eta(eta) -> None:
    check_float(eta, "eta", 0.0, 1.0)
