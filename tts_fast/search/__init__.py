"""Search methods: noise search, BFS (and its presets), DFS, tree search (DTS) and local search."""

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
