"""The same job on a Ray cluster: one actor per GPU (or CPU) holding the model and verifier.

    tts-fast run --ray auto --model sd15 --weights /shared/sd15 --prompts-file drawbench.txt ... --out /shared/runs/sd15
    tts_fast.distributed.ray.run(["--model", "digits", "--prompts-file", "digits.txt", "--out", "runs/d"])  # in Python

The driver lists the pending groups (resume), starts the actors -- each loads the model once, like
a Ray Data ``map_batches`` actor pool, without Ray Data's pyarrow dependency -- and hands them
groups through ``ray.util.ActorPool`` as they become free. The records are the ones torchrun
ranks write (the same seed per group index), into ``--out``, which must be a folder every node
sees. A worker that dies is restarted by Ray and its group retried; the driver writes the summary.
Needs the optional extra ``ray`` (``pip install --no-build-isolation 'tts_fast[ray]'``).
"""

from __future__ import annotations

import dataclasses
import sys
import time

from .. import _threads as threads
from .._extras import require
from .._user_errors import UserError
from ..runs.job import prepare
from ..runs.options import parse_config
from ..runs.records import pending
from ..runs.worker import Worker
from .progress import RankProgress, announce, finish, rank_stats, this_run

RESTARTS = 2  # times Ray restarts a dead worker and retries its group


class _Actor:
    """A Ray actor: one :class:`~tts_fast.runs.worker.Worker` (model + verifier) on its device."""

    def __init__(self, job, device: str, rank: int, world_size: int):
        import torch

        threads.apply(job.config.threads)
        self.worker = Worker(job, torch.device(device), rank=rank, world_size=world_size, launcher="ray")

    def run_group(self, group) -> dict:
        """The worker's outcome for ``group``, with this actor's index as 'rank'."""
        return dict(self.worker.run_group(group), rank=self.worker.run_info["rank"])


def _connect(ray, address: str) -> bool:
    """Join (or, for 'local', start) a cluster unless this process already has one; True if we started it."""
    if ray.is_initialized():
        return False
    ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=True)
    return True


def execute(job, address: str = None, workers=None) -> int:
    """Run ``job`` on a Ray cluster; the driver writes the summary. Returns 0, or 1 when a prompt failed
    or a worker died for good.

    Args:
        address: 'auto', 'local' or 'ray://host:port' (ignored when ``ray.init`` was already called);
            default: the job's ``--ray``, else 'auto'.
        workers: number of actors (default: the job's ``--ray-workers``, else one per GPU of the
            cluster, else one per CPU; never more than the pending groups).
    """
    config = job.config
    return _execute(job, address or config.ray or "auto", workers or config.ray_workers)[0]


def _execute(job, address, workers) -> tuple:
    """(exit status, summary dict or None)."""
    ray = require("ray", "ray", "tts_fast.distributed.ray")
    from ray.util import ActorPool

    config = job.config
    started = _connect(ray, address)
    try:
        t0 = time.perf_counter()
        todo = pending(job)
        resumed = announce(job, sum(len(g.members) for g in todo))
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if config.device.startswith("cuda") and not gpus:
            raise UserError(f"--device {config.device}: the Ray cluster has no GPU")
        if config.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device {config.device}: with --ray use auto, cuda or cpu (Ray gives each worker its own GPU)")
        use_gpu = gpus > 0 and config.device != "cpu"
        n = workers or (gpus if use_gpu else max(1, int(ray.cluster_resources().get("CPU", 1))))
        n = min(n, len(todo))
        outcomes = []
        if n:
            actor = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(_Actor)
            pool = ActorPool([actor.remote(job, "cuda" if use_gpu else "cpu", r, n) for r in range(n)])
            bar = RankProgress(sum(len(g.members) for g in todo), enabled=config.progress, desc=f"ray x{n}")
            try:
                for outcome in pool.map_unordered(lambda a, g: a.run_group.remote(g), todo):
                    outcomes.append(outcome)
                    bar.update(outcome)
            except ray.exceptions.RayError as e:
                print(f"tts-fast run: a Ray worker failed ({type(e).__name__}: {e}); finished prompts are saved, "
                      "rerun the same command to complete the set", file=sys.stderr, flush=True)
                return 1, None
            finally:
                bar.close()
        wall = time.perf_counter() - t0
        ranks = [rank_stats([o for o in outcomes if o["rank"] == r], r, wall) for r in range(n)]
        run = this_run(ranks, wall, "ray", resumed)
        return (1 if run["prompts_failed"] else 0), finish(job, run)
    finally:
        if started:
            ray.shutdown()


def run(argv, *, address: str = "auto", workers=None) -> dict:
    """``tts-fast run`` options (a list of strings, without ``run``) -> run them on Ray; the summary dict
    (what summary.json holds; its ``this_run`` has prompts/s).

    Uses the cluster of an earlier ``ray.init`` when there is one. Raises UserError (naming the
    option) for bad input, before any worker starts, and RuntimeError when a worker died for good.
    """
    config = parse_config(argv)
    config = dataclasses.replace(config, ray=config.ray or address, ray_workers=workers or config.ray_workers)
    status, result = _execute(prepare(config), config.ray, config.ray_workers)
    if result is None:
        raise RuntimeError("a Ray worker died for good: finished prompts are saved; call run() again to complete the set")
    return result
