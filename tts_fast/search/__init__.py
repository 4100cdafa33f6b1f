"""Search methods: noise search, BFS (and its presets), DAS, DFS, tree search (DTS) and local search -- and
``tts.search`` itself.

This package is callable: ``tts_fast.search(model, verifier, method, ...)`` is
:func:`tts_fast.search.api.search`, the one entry point over every method, while
``import tts_fast.search.dfs as m`` still gives the module (see :mod:`tts_fast._callable_module`).
One file per family: ``noise`` (best-of-N, zero-order, search over paths), ``bfs``, ``das`` (DAS with
its guided proposal), ``dfs``, ``dts`` (tree search), ``local`` (local search), ``presets``; ``engine``
holds the four primitives every method is written in, ``counting`` the NFE counts, timers and
traces, ``smc`` the resampling and tempering that BFS and DAS share, ``tempering`` BFS's adaptive
path, ``calibration`` DFS thresholds fitted once over a prompt set.
"""

from .._callable_module import make_callable
from . import presets
from .api import METHODS, resolve_method, search
from .bfs import BFS
from .das import DAS
from .dfs import DFS
from .dts import DTS
from .engine import Context, SearchResult
from .local import LocalSearch
from .noise import BestOfN, SearchOverPaths, ZeroOrder

__all__ = [
    "search", "METHODS", "resolve_method", "SearchResult", "Context", "BFS", "DAS", "DFS", "DTS", "LocalSearch",
    "BestOfN", "ZeroOrder", "SearchOverPaths", "presets",
]

# tts.search(...) calls the search function; tts_fast.search stays this package
make_callable(__name__, search)
