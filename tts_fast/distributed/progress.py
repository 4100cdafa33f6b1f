"""Progress of a run: what every launcher says at the start (resume) and does at the end (the summary,
the throughput line), and a bar per rank (prompts done / total, NFE/s)."""

from __future__ import annotations

import sys

from . import summary


class RankProgress:
    """A tqdm bar for one rank's share (``total`` prompts), at line ``rank`` of the terminal.

    ``update(outcome)`` takes what :meth:`tts_fast.runs.worker.Worker.run_group` returns; NFE/s is
    the rank's model NFE over its seconds of work so far. Disabled: nothing is drawn.
    """

    def __init__(self, total: int, rank: int = 0, world_size: int = 1, enabled: bool = True, desc: str = None):
        self.nfe, self.seconds, self.bar = 0, 0.0, None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="prompt", position=rank, desc=desc or f"rank {rank}/{world_size}", dynamic_ncols=True)

    def update(self, outcome: dict) -> None:
        """Count one finished group (its prompts, model NFE and seconds)."""
        self.nfe += outcome["nfe"]
        self.seconds += outcome["seconds"]
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.nfe / max(self.seconds, 1e-9):.0f} NFE/s" + (f", {outcome['failed']} failed" if outcome["failed"] else ""),
                                     refresh=False)
            self.bar.update(outcome["prompts"])

    def close(self) -> None:
        """Finish the bar (a no-op when disabled)."""
        if self.bar is not None:
            self.bar.close()


def rank_stats(outcomes: list, rank: int, seconds: float) -> dict:
    """One rank's totals: prompts computed / failed, model NFE, busy seconds and wall seconds."""
    return {"rank": rank, "groups": len(outcomes), "prompts": sum(o["prompts"] for o in outcomes),
            "failed": sum(o["failed"] for o in outcomes), "nfe_model": sum(o["nfe"] for o in outcomes),
            "busy_seconds": sum(o["seconds"] for o in outcomes), "wall_seconds": seconds}


def this_run(ranks: list, wall_seconds: float, launcher: str, resumed: int) -> dict:
    """The invocation's totals over ``ranks`` (from :func:`rank_stats`): prompts/s and NFE/s over the wall time."""
    computed = sum(r["prompts"] for r in ranks)
    nfe = sum(r["nfe_model"] for r in ranks)
    return {"launcher": launcher, "world_size": len(ranks), "wall_seconds": wall_seconds, "prompts_computed": computed,
            "prompts_failed": sum(r["failed"] for r in ranks), "prompts_resumed": resumed,
            "prompts_per_second": computed / wall_seconds if wall_seconds > 0 else None, "nfe_model": nfe,
            "nfe_per_second": nfe / wall_seconds if wall_seconds > 0 else None, "ranks": ranks}


def final_line(run: dict, out: str) -> str:
    """'tts-fast run: 20 prompt(s) on 2 rank(s) in 6.1 s: 3.28 prompts/s, 1312 NFE/s; ...'."""
    pps = run["prompts_per_second"] or 0.0
    nps = run["nfe_per_second"] or 0.0
    failed = f", {run['prompts_failed']} failed" if run["prompts_failed"] else ""
    resumed = f", {run['prompts_resumed']} resumed" if run["prompts_resumed"] else ""
    return (f"tts-fast run: {run['prompts_computed']} prompt(s) on {run['world_size']} {'rank' if run['launcher'] != 'ray' else 'worker'}(s) "
            f"in {run['wall_seconds']:.1f} s: {pps:.2f} prompts/s, {nps:.0f} NFE/s{failed}{resumed}; summary: {out}/summary.md")


def announce(job, todo_prompts: int) -> int:
    """Say what is already done in ``job.out`` (all of it, or a resume); returns the prompts resumed."""
    resumed = len(job.specs) - todo_prompts
    if not todo_prompts:
        print(f"tts-fast run: all {len(job.specs)} prompt(s) already done in {job.out}", flush=True)
    elif resumed:
        print(f"tts-fast run: resuming: {resumed} prompt(s) already done, {todo_prompts} to go", flush=True)
    return resumed


def finish(job, run: dict) -> dict:
    """Write the summary of ``job.out`` with this invocation's totals ``run`` (:func:`this_run`), say the
    failures and the throughput line; returns the summary dict."""
    result = summary.write(job, run)
    if result["failed"]:
        print(f"tts-fast run: {result['failed']} prompt(s) failed (listed in {job.out}/summary.md)", file=sys.stderr, flush=True)
    print(final_line(run, job.out), flush=True)
    return result
