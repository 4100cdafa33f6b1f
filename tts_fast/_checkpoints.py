"""Loading weight files of tts_fast (zoo, maze planners, verifier heads) with errors that say what is wrong.

``torch.load`` on a truncated, corrupted or foreign file raises whatever its reader trips over (a
zip-reader RuntimeError, an UnpicklingError that suggests ``weights_only=False``, an EOFError, a
struct.error). :func:`load_weights` keeps ``weights_only=True`` (loading never runs code) and turns
those into one ValueError that names the file and what it should have held; :func:`expect_dict`
and :func:`expect_state_dict` check the structure of what was loaded.
"""

from __future__ import annotations

import os
from typing import Iterable

import torch


def load_weights(path, what: str, expected: str):
    """``torch.load(path, map_location='cpu', weights_only=True)``, or a ValueError naming the file.

    Args:
        path: the file (must exist: callers raise their own FileNotFoundError with a hint).
        what: what the file should be, with its article, for messages (e.g. "a tts_fast maze planner checkpoint").
        expected: its expected content, for messages (e.g. "a dict with keys kind, config, ...").

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable torch file (truncated, corrupted, not a torch file, or
            holding objects that weights_only loading refuses).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist (expected {what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # permissions and the like: the OS error names the file already
    except Exception as e:  # noqa: BLE001 - the reader's errors for a bad file are of many types
        raise ValueError(
            f"{path} is not {what}: it could not be read as a torch weights file ({_reason(e)}); "
            f"expected {expected}. The file may be truncated, corrupted or of another kind (re-download or re-create it)"
        ) from None


def _reason(e: BaseException) -> str:
    """The gist of a torch.load error, without its advice to load with weights_only=False."""
    msg = " ".join(str(e).split())
    if "WeightsUnpickler error:" in msg:  # weights_only refused the content: keep what it refused
        msg = msg.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0].strip()
        msg = f"content that weights-only loading refuses: {msg}" if msg else "content that weights-only loading refuses"
    elif ". " in msg:
        msg = msg.split(". ", 1)[0]
    msg = msg[:200] + ("..." if len(msg) > 200 else "")
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def expect_dict(obj, path, what: str, keys: Iterable[str]) -> dict:
    """``obj`` if it is a dict holding ``keys``; else a ValueError naming the file and the keys expected."""
    keys = list(keys)
    if not isinstance(obj, dict) or not all(k in obj for k in keys):
        got = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ValueError(f"{os.fspath(path)} is not {what} (expected a dict with keys {', '.join(keys)}; it holds {got})")
    return obj


def expect_state_dict(obj, path, what: str) -> dict:
    """``obj`` if it is a non-empty dict of tensors with string keys (a state dict); else a ValueError naming the file."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        got = f"a {type(obj).__name__}" + (f" of {len(obj)} entries" if isinstance(obj, dict) else "")
        raise ValueError(f"{os.fspath(path)} is not {what} (expected a state dict: a dict of named tensors; it holds {got})")
    return obj
