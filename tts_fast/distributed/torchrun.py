"""``tts-fast run`` in one process, or on the ranks of ``torchrun --nproc-per-node k -m tts_fast run ...``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; with more than one rank the processes join one
torch.distributed process group (NCCL when the ranks use GPUs, gloo on CPUs; the small control
messages -- the pending groups, the final counts -- always go through gloo). Rank 0 lists the
pending groups (resume) and sends the list to all; each rank runs its round-robin share
(:mod:`.sharding`) on its own device (cuda:LOCAL_RANK), writing its prompts' files; at the end
rank 0 gathers the counts and writes the summary. A rank that dies takes its in-flight group with
it (torchrun stops the others, which lose theirs); rerunning the command finishes the set.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import time

from .._cli_common import CLIError, resolve_device
from ..runs.records import pending
from ..runs.worker import Worker
from . import summary
from .progress import RankProgress, final_line, rank_stats, this_run
from .sharding import assign


def ranks() -> tuple:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    except ValueError:
        raise CLIError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun), got {os.environ.get('RANK')!r}, "
                       f"{os.environ.get('WORLD_SIZE')!r}, {os.environ.get('LOCAL_RANK')!r}") from None


def rank_device(name: str, world_size: int, local_rank: int):
    """--device for this rank: with several ranks 'auto' and 'cuda' mean cuda:LOCAL_RANK (one GPU per process)."""
    import torch

    if world_size == 1:
        return resolve_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = resolve_device(name)
    if dev.type == "cuda":
        if dev.index is not None:
            raise CLIError(f"--device {name} with {world_size} ranks would put every rank on one GPU; "
                           "pass --device cuda (or auto): rank r uses cuda:LOCAL_RANK")
        if local_rank >= torch.cuda.device_count():
            raise CLIError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s): "
                           "start at most one process per GPU (--nproc-per-node)")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def _terminate(signum, frame):
    # torchrun stops the other ranks with SIGTERM when one dies: unwind, so that the atomic writes
    # in progress remove their temporary files instead of leaving them behind.
    raise SystemExit(128 + signum)


def execute(job) -> int:
    """Run ``job`` on this process's share of the groups; rank 0 writes the summary. Returns the exit status
    (0, or 1 when a prompt failed; a CLIError stops every rank)."""
    import torch

    args = job.args
    rank, world, local = ranks()
    if args.ray is not None and world > 1:
        raise CLIError("--ray starts its own workers: run it as one process, not under torchrun")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = rank_device(args.device, world, local)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create --out {args.out}: {e}") from None
    control = None
    if world > 1:
        import torch.distributed as dist

        timeout = datetime.timedelta(hours=args.dist_timeout)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
        control = dist.new_group(backend="gloo", timeout=timeout) if device.type == "cuda" else dist.group.WORLD
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return _work(job, device, rank, world, control)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _broadcast(obj, control):
    """rank 0's ``obj`` on every rank (identity with one rank)."""
    if control is None:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0, group=control)
    return box[0]


def _work(job, device, rank: int, world: int, control) -> int:
    args = job.args
    t0 = time.perf_counter()
    todo = None
    if rank == 0:
        try:
            todo = ("ok", [g.index for g in pending(job)])  # a record of another run is an error on every rank
        except CLIError as e:
            todo = ("error", str(e))
    status, payload = _broadcast(todo, control)
    if status == "error":
        raise CLIError(payload)
    mine = [job.groups[g] for g in assign(payload, world, rank)]
    todo_prompts = sum(len(job.groups[g].members) for g in payload)
    resumed = len(job.specs) - todo_prompts
    if rank == 0:
        if not payload:
            print(f"tts-fast run: all {len(job.specs)} prompt(s) already done in {args.out}", flush=True)
        elif resumed:
            print(f"tts-fast run: resuming: {resumed} prompt(s) already done, {todo_prompts} to go", flush=True)
    outcomes = []
    if mine:
        worker = Worker(job, device, rank=rank, world_size=world, launcher="torchrun" if world > 1 else "single",
                        progress=world == 1 and not args.no_progress)
        bar = RankProgress(sum(len(g.members) for g in mine), rank, world, enabled=not args.no_progress)
        try:
            for g in mine:
                outcome = worker.run_group(g)
                outcomes.append(outcome)
                bar.update(outcome)
                if args.no_progress:
                    print(f"[rank {rank}] group {g.index} (prompts {g.members[0]}-{g.members[-1]}): "
                          f"{'failed' if outcome['failed'] else 'done'} in {outcome['seconds']:.2f}s", flush=True)
        finally:
            bar.close()
    stats = rank_stats(outcomes, rank, time.perf_counter() - t0)
    if control is None:
        gathered = [stats]
    else:
        import torch.distributed as dist

        gathered = [None] * world
        dist.all_gather_object(gathered, stats, group=control)  # waits for the slowest rank
    failed = sum(s["failed"] for s in gathered)
    if rank == 0:
        run = this_run(gathered, time.perf_counter() - t0, "torchrun" if world > 1 else "single", resumed)
        result = summary.write(job, run)
        if result["failed"]:
            print(f"tts-fast run: {result['failed']} prompt(s) failed (listed in {args.out}/summary.md)", file=sys.stderr, flush=True)
        print(final_line(run, args.out), flush=True)
    if control is not None:
        import torch.distributed as dist

        dist.barrier(group=control)  # no rank exits (a failure status would stop the job) before the summary is written
    return 1 if failed else 0
