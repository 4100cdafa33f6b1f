"""How many CPU threads torch uses in a command of tts_fast: one policy, one ``--threads`` flag.

torch starts one intra-op thread per core. The networks of this package's CPU work (the digits
UNet, the maze planner, the RL policies and critics, the analytic mixture) are small, so a search
is thousands of small kernels. On an idle machine a second thread saves little on them (or costs
time); on a machine where other work runs, OpenMP's threads meet at a barrier after every kernel
and wait there while the scheduler runs someone else: ``tts-fast run`` and ``tts-fast profile``
took 2-3x the wall time and 2.5-3.4x the CPU time with two threads than with one on a shared 2-CPU
machine (``benchmarks/threads.py``, side by side; docs/design.md, "CPU threads"), and up to 40x the
wall time in an earlier report. So every command that computes takes ``--threads N`` and, without
it, uses:

1. ``OMP_NUM_THREADS`` when the environment sets it: someone chose (torchrun sets it to 1 for
   every rank when it starts several, so ranks never share cores by default);
2. otherwise 1 thread per process. Big networks on a CPU that has cores to spare (an SD-sized
   UNet with ``--device cpu``) gain from more: pass ``--threads``.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

from ._user_errors import UserError

ENV = "OMP_NUM_THREADS"
DEFAULT = 1
HELP = (f"CPU threads for torch in this process (default: ${ENV} when it is set, which torchrun sets to 1 for each rank, "
        f"else {DEFAULT}; more threads only pay off for big networks on a machine with idle cores)")


def threads_type(s: str) -> int:
    """argparse type of ``--threads``: an integer >= 1."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def add_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--threads N`` (default None: the policy of :func:`resolve`) to ``parser``; returns it."""
    parser.add_argument("--threads", type=threads_type, default=None, metavar="N", help=HELP)
    return parser


def resolve(requested: Optional[int], environ=None) -> int:
    """The thread count for ``--threads requested`` (None: not given), by the policy of this module.

    Raises ValueError naming ``--threads`` or the variable for a value that is not an integer >= 1.
    """
    if requested is not None:
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise ValueError(f"--threads must be an integer >= 1, got {requested!r}")
        return requested
    env = (os.environ if environ is None else environ).get(ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{ENV} must be an integer >= 1, got {env!r}") from None
        if n < 1:
            raise ValueError(f"{ENV} must be an integer >= 1, got {env!r}")
        return n
    return DEFAULT


def idle_cpus() -> int:
    """The CPUs of this process that the 1-minute load average leaves idle, at least 1: how many
    single-thread worker processes a command may start without crowding others off a shared machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform: assume the machine is busy
        return 1
    return max(1, min(cpus, int(cpus - load + 0.5)))


def apply(requested: Optional[int] = None) -> int:
    """Set torch's intra-op threads by :func:`resolve`; returns the count now in effect.

    For commands: a bad value raises :class:`~tts_fast._user_errors.UserError` (exit status 2).
    """
    import torch

    try:
        n = resolve(requested)
    except ValueError as e:
        raise UserError(str(e)) from None
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()
