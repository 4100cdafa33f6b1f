"""Prompt sets beyond one process: torchrun ranks (:mod:`.torchrun`) and Ray clusters (:mod:`.ray`,
optional extra ``ray``), the rank assignment (:mod:`.sharding`), progress and the merged summary.

Particles of one prompt interact and stay on one device; prompt groups are independent, dealt to
ranks deterministically, and seeded by their index, so the records do not depend on the number
of ranks. ``tts_fast.distributed.ray`` is imported on use (it needs Ray).
"""

from . import summary
from .sharding import assign
from .torchrun import execute, rank_device, ranks

__all__ = ["assign", "execute", "rank_device", "ranks", "summary"]
