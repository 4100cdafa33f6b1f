"""``python -m tts_fast COMMAND ...`` = ``tts-fast COMMAND ...`` (demo, run, profile)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
