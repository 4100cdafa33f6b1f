"""Launchers of a ``tts-fast run`` job: one process (:mod:`.local`), torchrun ranks (:mod:`.torchrun`)
and Ray clusters (:mod:`.ray`, optional extra ``ray``), chosen in :mod:`.launchers`; the rank
assignment (:mod:`.sharding`), one process's loop (:mod:`.share`), progress and the merged summary.

Particles of one prompt interact and stay on one device; prompt groups are independent, dealt to
ranks deterministically, and seeded by their index, so the records do not depend on the number
of ranks. ``tts_fast.distributed.ray`` is imported on use (it needs Ray).
"""

from . import summary
from .launchers import LAUNCHERS, choose_launcher, execute
from .sharding import assign
from .torchrun import rank_device, ranks

__all__ = ["assign", "execute", "choose_launcher", "LAUNCHERS", "rank_device", "ranks", "summary"]
