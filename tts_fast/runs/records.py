"""The files of a run folder: one ``NNNNN.json`` record (and ``NNNNN.png`` image) per prompt.

A record is written last, atomically, so it exists only for a finished prompt. Its fields are a
function of the prompt, the settings and the seed -- except those under ``"run"`` (seconds, stage
timings, rank, world size, launcher, host, device, thread count, versions, and an error's
traceback), which describe the process that made it. :func:`comparable` drops them: two runs of
the same command on any number of ranks give equal comparable records and identical PNG bytes.
"""

from __future__ import annotations

import json
import os

from .._user_errors import UserError
from .._png import SIGNATURE

RUN_DEPENDENT = ("run",)


def record_path(out: str, i: int) -> str:
    """Path of prompt i's JSON record."""
    return os.path.join(out, f"{i:05d}.json")


def image_name(i: int) -> str:
    """File name of prompt i's PNG (inside the run folder)."""
    return f"{i:05d}.png"


def comparable(record: dict) -> dict:
    """The record without its run-dependent fields (:data:`RUN_DEPENDENT`)."""
    return {k: v for k, v in record.items() if k not in RUN_DEPENDENT}


def read_record(out: str, i: int):
    """Prompt i's record as a dict, or None when it is missing or unreadable (half-written files never exist)."""
    try:
        with open(record_path(out, i), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def _is_png(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == SIGNATURE
    except OSError:
        return False


def is_done(job, group, i: int) -> bool:
    """Whether prompt i (of ``group``) has a finished record of this run -- and its image, for image models.

    An error record is not done (the prompt is retried). A record of another run (other prompt,
    settings, seed or options) is a UserError, unless ``--overwrite`` asks to redo it.
    """
    rec = read_record(job.out, i)
    if rec is None:
        return False
    same = (rec.get("prompt") == job.specs[i].text and rec.get("settings") == job.settings and rec.get("seed") == group.seed
            and rec.get("options") == group.options)
    if same:
        if rec.get("status") != "ok":
            return False
        return not job.family.images or _is_png(os.path.join(job.out, image_name(i)))
    if job.config.overwrite:
        return False
    raise UserError(f"{record_path(job.out, i)} holds a record of a different run (prompt, settings, seed or options differ); "
                   "use another --out, or --overwrite to redo it")


def pending(job) -> list:
    """The groups of ``job`` with at least one prompt not done, in order."""
    return [g for g in job.groups if not all(is_done(job, g, i) for i in g.members)]
