"""The ``tts-fast`` command (also ``python -m tts_fast``): ``demo``, ``run`` and ``profile``.

``dispatch`` builds the parser and runs a subcommand; one module per subcommand (``demo`` with its
``demo_report``, ``run``, ``profile``). The console script is ``tts_fast.cli:main``.
"""

from .dispatch import build_parser, main

__all__ = ["build_parser", "main"]
