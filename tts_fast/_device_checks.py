"""Value checks of device tensors without a host read per call.

Checking a CUDA tensor's values on the host (``bool((cond >= n).any())``) waits for the device, and
an out-of-range index on CUDA is a device-side assert that kills the CUDA context. So value checks
of device data are *deferred*: :func:`require` records a 0-d bool tensor ("this call was fine")
with its message, and the collector that a search run opens reads every recorded flag in one host
read at the points the run chooses (the first scoring level, and the end). Code that indexes with
a checked value clamps it to the valid range after recording the flag, so the kernel stays in
bounds; the error is raised at the next read. Inside a run this holds on every device, CPU
included (one behaviour, tested on the CPU); outside a run (a direct call) the check is immediate.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Optional

import torch

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("tts_fast_device_checks", default=None)


class Collector:
    """Flags recorded during a run, read together by :meth:`check` (one host read per call).

    Flags with the same message are combined on the device as they come (a running AND), so a long
    run keeps one flag per distinct check.
    """

    def __init__(self):
        self._flags: dict[str, torch.Tensor] = {}

    def add(self, ok: torch.Tensor, message: str) -> None:
        ok = ok.reshape(()).to(torch.bool)
        prev = self._flags.get(message)
        self._flags[message] = ok if prev is None else prev & ok.to(prev.device)

    def check(self) -> None:
        """Raise ValueError with the first failed check's message; forget the flags read."""
        if not self._flags:
            return
        messages, flags = list(self._flags), list(self._flags.values())
        self._flags = {}
        ok = torch.stack([f.to(flags[0].device) for f in flags]).cpu()  # the one host read
        bad = (~ok).nonzero()
        if bad.numel():
            raise ValueError(messages[int(bad[0])])


@contextmanager
def collect(collector: Collector):
    """Within this block, :func:`require` on device tensors records into ``collector``."""
    token = _ACTIVE.set(collector)
    try:
        yield collector
    finally:
        _ACTIVE.reset(token)


def require(ok: torch.Tensor, message: str) -> None:
    """Assert the 0-d bool tensor ``ok``: at the run's next read inside a search run, else now."""
    collector: Optional[Collector] = _ACTIVE.get()
    if collector is None:
        if not bool(ok):
            raise ValueError(message)
        return
    collector.add(ok, message)


def prompt_rows(cond: Optional[torch.Tensor], n: int, num_prompts: int, device, what: str) -> torch.Tensor:
    """Prompt rows [n] int64 on ``device`` from ``cond`` (None: row 0 of a one-prompt holder).

    Args:
        cond: int64 [n] prompt rows, or None.
        n: the batch size the rows belong to.
        num_prompts: rows the holder has; values must lie in [0, num_prompts).
        device: where the rows are used.
        what: the holder, for messages (e.g. "this verifier holds 3 prompts").

    Raises ValueError (now, or at the run's next read for device tensors) naming ``cond``.
    """
    if cond is None:
        if num_prompts != 1:
            raise ValueError(f"cond (prompt rows) is required: {what} holds {num_prompts} prompts")
        return torch.zeros(n, dtype=torch.int64, device=device)
    if not isinstance(cond, torch.Tensor) or cond.dtype != torch.int64 or cond.shape != (n,):
        got = f"{tuple(cond.shape)} {cond.dtype}" if isinstance(cond, torch.Tensor) else type(cond).__name__
        raise ValueError(f"cond must be an int64 tensor [B] = [{n}] of prompt rows, got {got}")
    cond = cond.to(device)
    if n:
        require(((cond >= 0) & (cond < num_prompts)).all(), f"cond holds prompt rows outside [0, {num_prompts}) ({what})")
        cond = cond.clamp(0, num_prompts - 1)  # in bounds until the flag is read
    return cond
