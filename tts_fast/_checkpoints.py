"""Loading weight files of tts_fast (zoo, maze planners, offline-RL agents, verifier heads) with errors
that say what is wrong.

``torch.load`` on a truncated, corrupted or foreign file raises whatever its reader trips over (a
zip-reader RuntimeError, an UnpicklingError that suggests ``weights_only=False``, an EOFError, a
struct.error). :func:`load_weights` keeps ``weights_only=True`` (loading never runs code) and turns
those into one ValueError that names the file and what it should have held; :func:`expect_dict`
and :func:`expect_state_dict` check the structure of what was loaded.

The three domain packages (``zoo``, ``maze``, ``rl``) store the same kind of file, a dict with a
``kind`` tag, the network ``config`` (constructor arguments) and state dicts; they load it with
:func:`load_checkpoint` (checked once, cached per file version) and build their networks with
:func:`build_network`.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterable, Optional

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


def load_checkpoint(path, *, what: str, expected: str, keys: Iterable[str], kinds: Iterable[str], missing: str,
                    check: Optional[Callable[[dict, str], None]] = None) -> dict:
    """A tagged checkpoint dict, checked once and cached per file version (path and modification time).

    Args:
        path: the file.
        what: what it should be, with its article (e.g. "a tts_fast maze planner checkpoint").
        expected: its expected content, for messages (e.g. "a dict with keys kind, config, ...").
        keys: the keys the dict must hold.
        kinds: the values allowed for its ``kind`` key.
        missing: the message of the FileNotFoundError for a missing file (say how to make one).
        check: ``check(checkpoint, path)``, the caller's own structure checks (a module-level
            function: it is part of the cache key).

    The dict is shared by every caller of the same file version: do not modify it.

    Raises:
        FileNotFoundError: ``missing``, when there is no file at ``path``.
        ValueError: naming the file, when it is not such a checkpoint (unreadable, not a dict with
            ``keys``, another ``kind``, or refused by ``check``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(missing)
    return _load_cached(path, os.path.getmtime(path), what, expected, tuple(keys), tuple(kinds), check)


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, mtime: float, what: str, expected: str, keys: tuple, kinds: tuple, check) -> dict:
    ck = expect_dict(load_weights(path, what, expected), path, what, keys)
    if ck["kind"] not in kinds:
        allowed = repr(kinds[0]) if len(kinds) == 1 else f"one of {', '.join(kinds)}"
        raise ValueError(f"{path} is not {what}: it holds kind={ck['kind']!r} (expected {allowed})")
    if check is not None:
        check(ck, path)
    return ck


def build_network(cls, config: dict, state: dict, path, *, what: Optional[str] = None) -> torch.nn.Module:
    """``cls(**config)`` with the weights ``state``, in eval mode, or a ValueError naming the file.

    Args:
        cls: the network class (an ``nn.Module``).
        config: its constructor arguments, as stored in the checkpoint.
        state: its state dict.
        path: the checkpoint file, for the message.
        what: the network, for the message (default the class name).
    """
    try:
        net = cls(**config)
        net.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as e:  # config or weights of another network
        raise ValueError(f"{os.fspath(path)} does not hold a {what or cls.__name__} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return net.eval()


def weights_folder(weights_dir, env_var: str, default: str) -> str:
    """The folder of a domain's weight files: ``weights_dir``, else $``env_var``, else ``default``
    (the shipped files). A folder that does not exist is the loaders' to report (FileNotFoundError,
    with how to train the weights); a non-path is refused here."""
    if weights_dir is not None:
        if not isinstance(weights_dir, (str, os.PathLike)) or not os.fspath(weights_dir):
            raise ValueError(f"weights_dir must be a folder path or None, got {weights_dir!r}")
        return os.fspath(weights_dir)
    return os.environ.get(env_var) or default
