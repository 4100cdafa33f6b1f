"""``python -m tts_fast demo`` = ``tts-fast demo``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
