"""Which worker runs which prompt group.

Groups are dealt round-robin over the ranks (group j of the pending list to rank j mod k): each
group to exactly one rank, so two ranks never write the same file, and the split is a function of
the pending list and k alone. Results do not depend on it -- a group's seed is fixed by its index
(:mod:`tts_fast.runs.prompts`) -- only the balance of the work does.
"""

from __future__ import annotations


def assign(pending: list, world_size: int, rank: int) -> list:
    """The items of ``pending`` that ``rank`` (0 <= rank < world_size) runs: pending[rank::world_size]."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in 0..{world_size - 1}, got {rank!r}")
    return list(pending[rank::world_size])
