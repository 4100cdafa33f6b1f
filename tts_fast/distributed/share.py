"""One process's share of a run's groups: the worker loop with its progress (one process, or a torchrun rank)."""

from __future__ import annotations

from ..runs.worker import Worker
from .progress import RankProgress


def run_share(job, device, groups: list, *, rank: int, world_size: int, launcher: str) -> list:
    """Run ``groups`` (this process's share) with one :class:`~tts_fast.runs.worker.Worker` on ``device``.

    Returns the worker's outcome per group. With progress bars on, one bar per rank (and, for a
    single process, the search's own per-step bar); off, one line per finished group.
    """
    if not groups:
        return []
    progress = job.config.progress
    worker = Worker(job, device, rank=rank, world_size=world_size, launcher=launcher, progress=world_size == 1 and progress)
    bar = RankProgress(sum(len(g.members) for g in groups), rank, world_size, enabled=progress)
    outcomes = []
    try:
        for g in groups:
            outcome = worker.run_group(g)
            outcomes.append(outcome)
            bar.update(outcome)
            if not progress:
                print(f"[rank {rank}] group {g.index} (prompts {g.members[0]}-{g.members[-1]}): "
                      f"{'failed' if outcome['failed'] else 'done'} in {outcome['seconds']:.2f}s", flush=True)
    finally:
        bar.close()
    return outcomes
