"""Which launcher runs a job, chosen in one place: one process, torchrun ranks, or a Ray cluster.

- ``ray``: the config names a cluster (``--ray ADDRESS``); refused under torchrun, since Ray
  starts its own workers;
- ``torchrun``: torchrun started more than one rank (WORLD_SIZE > 1);
- ``single``: otherwise (a plain ``tts-fast run``, or torchrun with one rank).
"""

from __future__ import annotations

from .._user_errors import UserError
from .torchrun import ranks

LAUNCHERS = ("single", "torchrun", "ray")


def choose_launcher(config, world_size: int) -> str:
    """'single', 'torchrun' or 'ray' for a :class:`~tts_fast.runs.config.RunConfig` in a process group of
    ``world_size`` (torchrun's WORLD_SIZE; 1 outside torchrun)."""
    if config.ray is not None:
        if world_size > 1:
            raise UserError("--ray starts its own workers: run it as one process, not under torchrun")
        return "ray"
    return "torchrun" if world_size > 1 else "single"


def execute(job) -> int:
    """Run ``job`` with the launcher :func:`choose_launcher` picks for this process; the exit status."""
    launcher = choose_launcher(job.config, ranks()[1])
    if launcher == "ray":
        from . import ray as on_ray

        return on_ray.execute(job)
    if launcher == "torchrun":
        from . import torchrun

        return torchrun.execute(job)
    from . import local

    return local.execute(job)
