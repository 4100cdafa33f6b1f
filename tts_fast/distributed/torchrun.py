"""``tts-fast run`` on the ranks of ``torchrun --nproc-per-node k -m tts_fast run ...`` (k > 1).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; the processes join one torch.distributed process
group (NCCL when the ranks use GPUs, gloo on CPUs; the small control messages -- the pending
groups, the final counts -- always go through gloo). Rank 0 lists the
pending groups (resume) and sends the list to all; each rank runs its round-robin share
(:mod:`.sharding`) on its own device (cuda:LOCAL_RANK), writing its prompts' files; at the end
rank 0 gathers the counts and writes the summary. A rank that dies takes its in-flight group with
it (torchrun stops the others, which lose theirs); rerunning the command finishes the set. One
process (no torchrun, or a world of one) is :mod:`.local`'s; :mod:`.launchers` chooses.
"""

from __future__ import annotations

import datetime
import os
import signal
import time

from .._user_errors import UserError, user_device
from ..runs.records import pending
from .local import prepare_process
from .progress import announce, finish, rank_stats, this_run
from .share import run_share
from .sharding import assign


def ranks() -> tuple:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    except ValueError:
        raise UserError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun), got {os.environ.get('RANK')!r}, "
                        f"{os.environ.get('WORLD_SIZE')!r}, {os.environ.get('LOCAL_RANK')!r}") from None


def rank_device(name: str, world_size: int, local_rank: int):
    """--device for this rank: with several ranks 'auto' and 'cuda' mean cuda:LOCAL_RANK (one GPU per process)."""
    import torch

    dev = user_device(name)
    if dev.type == "cuda":
        if dev.index is not None:
            raise UserError(f"--device {name} with {world_size} ranks would put every rank on one GPU; "
                            "pass --device cuda (or auto): rank r uses cuda:LOCAL_RANK")
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s): "
                            "start at most one process per GPU (--nproc-per-node)")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def _terminate(signum, frame):
    # torchrun stops the other ranks with SIGTERM when one dies: unwind, so that the atomic writes
    # in progress remove their temporary files instead of leaving them behind.
    raise SystemExit(128 + signum)


def execute(job) -> int:
    """Run this rank's share of ``job``'s groups; rank 0 writes the summary. Returns the exit status
    (0, or 1 when a prompt failed on any rank; a UserError stops every rank)."""
    import torch.distributed as dist

    config = job.config
    rank, world, local = ranks()
    device = rank_device(config.device, world, local)
    prepare_process(config)
    timeout = datetime.timedelta(hours=config.dist_timeout)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    control = dist.new_group(backend="gloo", timeout=timeout) if device.type == "cuda" else dist.group.WORLD
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _work(job, device, rank, world, control)
    finally:
        dist.destroy_process_group()


def _pending_on_rank0(job, rank: int, control) -> list:
    """The pending group indices, listed by rank 0 and sent to every rank (a record of another run is
    an error on every rank)."""
    import torch.distributed as dist

    todo = None
    if rank == 0:
        try:
            todo = ("ok", [g.index for g in pending(job)])
        except UserError as e:
            todo = ("error", str(e))
    box = [todo]
    dist.broadcast_object_list(box, src=0, group=control)
    status, payload = box[0]
    if status == "error":
        raise UserError(payload)
    return payload


def _work(job, device, rank: int, world: int, control) -> int:
    import torch.distributed as dist

    t0 = time.perf_counter()
    todo = _pending_on_rank0(job, rank, control)
    todo_prompts = sum(len(job.groups[g].members) for g in todo)
    resumed = announce(job, todo_prompts) if rank == 0 else len(job.specs) - todo_prompts
    mine = [job.groups[g] for g in assign(todo, world, rank)]
    outcomes = run_share(job, device, mine, rank=rank, world_size=world, launcher="torchrun")
    gathered = [None] * world
    dist.all_gather_object(gathered, rank_stats(outcomes, rank, time.perf_counter() - t0), group=control)  # waits for the slowest rank
    if rank == 0:
        finish(job, this_run(gathered, time.perf_counter() - t0, "torchrun", resumed))
    dist.barrier(group=control)  # no rank exits (a failure status would stop the job) before the summary is written
    return 1 if sum(s["failed"] for s in gathered) else 0
