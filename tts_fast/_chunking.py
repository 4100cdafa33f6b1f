"""Automatic chunking: run a batch whole, and on out-of-memory halve the chunk and remember what fits.

Used for the denoiser network, the VAE decode and verifiers, so that large particle counts fit in
device memory without the user choosing chunk sizes. (An out-of-memory error inside a backward
pass happens after the forward chunks have run and cannot be recovered here: gradient methods on
big models should set an explicit ``max_batch``.)
"""

from __future__ import annotations

from typing import Callable, Optional

import torch


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc).lower() or "can't allocate memory" in str(exc))


class AdaptiveChunks:
    """Chunk sizes for one stage, learned from out-of-memory errors.

    Args:
        cap: a user-given largest chunk (None: start with the whole batch).
        multiple: chunks stay multiples of this (e.g. CFG pairs).
    """

    def __init__(self, cap: Optional[int] = None, multiple: int = 1):
        self.cap = cap
        self.multiple = max(1, int(multiple))
        self.fits: Optional[int] = None  # largest chunk that is known to fit after an out-of-memory error

    def size(self, n: int) -> int:
        limit = min(v for v in (n, self.cap, self.fits) if v is not None)
        return max(1, limit)

    def run(self, n: int, fn: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
        """``fn(start, stop)`` over [0, n) in chunks; outputs concatenated along dim 0."""
        outs, start = [], 0
        step = self.size(n)
        while start < n:
            stop = min(n, start + step)
            oom = False
            try:
                outs.append(fn(start, stop))
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; the rest re-raises
                if not is_out_of_memory(exc) or stop - start <= self.multiple:
                    raise
                oom = True
            if oom:
                # outside the except block: the traceback (and the failed chunk's tensors) is released
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                step = max(self.multiple, ((stop - start) // 2) // self.multiple * self.multiple)
                self.fits = step
                continue
            start = stop
        return outs[0] if len(outs) == 1 else torch.cat(outs)
