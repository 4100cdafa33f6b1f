"""Short labels drawn as pixels (a 5x7 bitmap font), for images that tts_fast writes without an
imaging library (the contact sheet of ``tts-fast run``): no font file, no Pillow, the same bytes
everywhere.

The font covers what the labels say: digits, the signs of a number, '#', '=', a space and the
lower-case letters of 'failed', 'missing' and 'error'. :func:`render` refuses any other character.
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT = 5, 7

_FONT = {
    "0": ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    "1": ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    "2": ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    "3": ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    "4": ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    "5": ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    "6": ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    "7": ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    "8": ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    "9": ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
    "-": ["00000", "00000", "00000", "11111", "00000", "00000", "00000"],
    "+": ["00000", "00100", "00100", "11111", "00100", "00100", "00000"],
    ".": ["00000", "00000", "00000", "00000", "00000", "01100", "01100"],
    "#": ["01010", "01010", "11111", "01010", "11111", "01010", "01010"],
    "=": ["00000", "00000", "11111", "00000", "11111", "00000", "00000"],
    " ": ["00000"] * 7,
    "a": ["00000", "00000", "01110", "00001", "01111", "10001", "01111"],
    "d": ["00001", "00001", "01101", "10011", "10001", "10001", "01111"],
    "e": ["00000", "00000", "01110", "10001", "11111", "10000", "01110"],
    "f": ["00110", "01001", "01000", "11100", "01000", "01000", "01000"],
    "g": ["00000", "01111", "10001", "10001", "01111", "00001", "01110"],
    "i": ["00100", "00000", "01100", "00100", "00100", "00100", "01110"],
    "l": ["01100", "00100", "00100", "00100", "00100", "00100", "01110"],
    "m": ["00000", "00000", "11010", "10101", "10101", "10001", "10001"],
    "n": ["00000", "00000", "10110", "11001", "10001", "10001", "10001"],
    "o": ["00000", "00000", "01110", "10001", "10001", "10001", "01110"],
    "r": ["00000", "00000", "10110", "11001", "10000", "10000", "10000"],
    "s": ["00000", "00000", "01110", "10000", "01110", "00001", "11110"],
}
_BITS = {c: np.array([[int(b) for b in row] for row in rows], dtype=bool) for c, rows in _FONT.items()}


def text_width(text: str, scale: int = 1) -> int:
    """Pixels that :func:`render` needs for ``text`` across (one blank column between characters)."""
    return max(0, len(text) * (WIDTH + 1) - 1) * scale


def render(text: str, scale: int = 1) -> np.ndarray:
    """``text`` as a bool mask [7 * scale, text_width * scale] (True = ink); ValueError naming a character
    the font lacks."""
    missing = sorted({c for c in text if c not in _BITS})
    if missing:
        raise ValueError(f"text has characters the label font lacks: {missing}; it has {''.join(sorted(_BITS))!r}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    out = np.zeros((HEIGHT, max(0, len(text) * (WIDTH + 1) - 1)), dtype=bool)
    for k, c in enumerate(text):
        out[:, k * (WIDTH + 1):k * (WIDTH + 1) + WIDTH] = _BITS[c]
    return out.repeat(scale, axis=0).repeat(scale, axis=1)
