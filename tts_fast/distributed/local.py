"""``tts-fast run`` in one process: the pending groups, one after the other, on one device."""

from __future__ import annotations

import os
import time

from .. import _threads as threads
from .._user_errors import UserError, user_device
from ..runs.records import pending
from .progress import announce, finish, rank_stats, this_run
from .share import run_share


def prepare_process(config):
    """Set the CPU threads (--threads) and create --out; the process-wide setup every launcher shares."""
    threads.apply(config.threads)
    try:
        os.makedirs(config.out, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out {config.out}: {e}") from None


def execute(job) -> int:
    """Run every pending group of ``job`` here, then write the summary. Returns the exit status (0, or
    1 when a prompt failed)."""
    config = job.config
    device = user_device(config.device)
    prepare_process(config)
    t0 = time.perf_counter()
    todo = pending(job)
    resumed = announce(job, sum(len(g.members) for g in todo))
    outcomes = run_share(job, device, todo, rank=0, world_size=1, launcher="single")
    wall = time.perf_counter() - t0
    run = this_run([rank_stats(outcomes, 0, wall)], wall, "single", resumed)
    finish(job, run)
    return 1 if run["prompts_failed"] else 0
