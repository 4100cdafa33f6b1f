"""Search methods: noise search, BFS (and its presets), DFS and local search."""

from . import presets
from .api import METHODS, resolve_method, search
from .bfs import BFS
from .dfs import DFS
from .engine import Context, SearchResult
from .local import LocalSearch
from .noise import BestOfN, SearchOverPaths, ZeroOrder

__all__ = [
    "search", "METHODS", "resolve_method", "SearchResult", "Context", "BFS", "DFS", "LocalSearch",
    "BestOfN", "ZeroOrder", "SearchOverPaths", "presets",
]
