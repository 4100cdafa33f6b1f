"""A ``tts-fast run`` over a prompt set: options, prompts and groups, model families, records, the worker.

The launchers that run a job on one process, torchrun ranks or a Ray cluster are in
:mod:`tts_fast.distributed`.
"""

from .job import Job, prepare, settings_of
from .prompts import Group, PromptSpec, make_groups, read_prompts
from .records import RUN_DEPENDENT, comparable, pending, read_record
from .worker import Worker

__all__ = ["Job", "prepare", "settings_of", "Group", "PromptSpec", "make_groups", "read_prompts", "RUN_DEPENDENT", "comparable",
           "pending", "read_record", "Worker"]
