"""A ``tts-fast run`` over a prompt set: its config, options, prompts and groups, model families, records, the worker.

``options`` parses the command line once into a frozen :class:`RunConfig` (``config``); ``job``
checks it and every prompt before anything loads; ``families`` is the registry of ``--model``
values (shared with ``tts-fast profile``); ``worker`` runs prompt groups and writes ``records``.
The launchers that run a job on one process, torchrun ranks or a Ray cluster are in
:mod:`tts_fast.distributed`.
"""

from .config import ModelConfig, RunConfig
from .families import FAMILIES, LoadedModel, ModelFamily
from .job import Job, prepare
from .options import config_of, parse_config
from .prompts import Group, PromptSpec, make_groups, read_prompts
from .records import RUN_DEPENDENT, comparable, pending, read_record
from .worker import Worker

__all__ = ["RunConfig", "ModelConfig", "FAMILIES", "ModelFamily", "LoadedModel", "Job", "prepare", "config_of", "parse_config",
           "Group", "PromptSpec", "make_groups", "read_prompts", "RUN_DEPENDENT", "comparable", "pending", "read_record", "Worker"]
