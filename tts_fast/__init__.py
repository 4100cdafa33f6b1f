"""tts_fast: inference-time scaling of diffusion models through classical search.

    import tts_fast as tts
    result = tts.search(model, verifier, "bfs_best", n_particles=8, num_steps=50)

``tts.search`` is the search package, callable as the search function
(:func:`tts_fast.search.api.search`), so that ``import tts_fast.search.dfs`` works too.
"""

from . import models, ops, schedules, search, verifiers, zoo
from .models import Denoiser
from .search.counting import NFE
from .search import (
    BFS,
    DAS,
    DFS,
    DTS,
    BestOfN,
    LocalSearch,
    SearchOverPaths,
    SearchResult,
    ZeroOrder,
    presets,
)
from .verifiers import Verifier

__version__ = "0.1.0"


def __getattr__(name):
    # tts.maze, tts.rl and tts.terrain are loaded on first use (their simulator and model parts need optional extras).
    if name in ("maze", "rl", "terrain"):
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "search", "SearchResult", "NFE", "Denoiser", "Verifier", "BFS", "DAS", "DFS", "DTS", "LocalSearch", "BestOfN",
    "ZeroOrder", "SearchOverPaths", "presets", "models", "verifiers", "schedules", "ops", "zoo", "maze", "rl", "terrain",
]
