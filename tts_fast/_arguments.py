"""Argument checks shared by every layer (ops, schedules, the method dataclasses): each error names
the argument and what is allowed, before any work is spent."""

from __future__ import annotations

import math


def check_int(v, name: str, low: int, high: int | None = None) -> None:
    """An int (not a bool) >= low, and < high when high is given."""
    if not isinstance(v, int) or isinstance(v, bool) or v < low or (high is not None and v >= high):
        within = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {within}, got {v!r}")


def check_bool(v, name: str) -> None:
    # a truthy 1 or "no" would switch the option on by accident
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}")


def check_choice(v, name: str, allowed) -> None:
    if v not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {v!r}")


def check_float(v, name: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                high_open: bool = False) -> None:
    """A finite real number (not a bool) in [low, high], either end open on request."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        upper = f" and {'<' if high_open else '<='} {high}" if high < math.inf else ""
        raise ValueError(f"{name} must be a finite number {bound}{upper}, got {v!r}")


def check_eta(eta) -> None:
    check_float(eta, "eta", 0.0, 1.0)


def check_callable(v, name: str, optional: bool = True) -> None:
    if not (callable(v) or (optional and v is None)):
        raise ValueError(f"{name} must be callable{' or None' if optional else ''}, got {type(v).__name__}")


def as_device(device, name: str = "device"):
    """torch.device(device), with an error that names the argument."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} must be a torch.device or a device name such as 'cpu' or 'cuda:0', got {device!r}") from None
