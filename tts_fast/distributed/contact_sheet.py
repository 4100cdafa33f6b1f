"""``contact_sheet.png`` of a run folder: the best image of every prompt, in index order, labelled.

Every tile is brought to a readable size by an integer factor (small images such as the 32-pixel
digits are enlarged to at least :data:`MIN_TILE` pixels a side by repeating pixels; large ones are
shrunk to at most :data:`MAX_TILE` by averaging blocks), and carries a caption under it: the
prompt's index over the reward of its image (``#3`` over ``-0.125`` or ``-2.35e-05``), or ``#3``
over ``failed`` / ``missing`` on a grey tile. The captions are drawn with tts_fast's own pixel font (:mod:`tts_fast._glyphs`), so the
sheet's bytes depend on the images alone.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .. import _glyphs
from .._png import decode, encode

MIN_TILE = 128  # smallest tile side after enlarging, pixels
MAX_TILE = 128  # largest tile side after shrinking, pixels
GAP = 4  # pixels between tiles
SCALE = 2  # caption pixels per font pixel
LINE = _glyphs.HEIGHT * SCALE + 4  # one caption line, pixels
CAPTION = 2 * LINE + 2  # the caption strip under each tile: index, then reward


def shrink(a: np.ndarray) -> np.ndarray:
    """Average f x f blocks (f the smallest integer that brings the image to <= MAX_TILE a side)."""
    f = math.ceil(max(a.shape[0], a.shape[1]) / MAX_TILE)
    if f == 1:
        return a
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    blocks = a[:h, :w].astype(np.float64).reshape(h // f, f, w // f, f, a.shape[2]).mean(axis=(1, 3))
    return np.floor(blocks + 0.5).astype(np.uint8)


def enlarge(a: np.ndarray) -> np.ndarray:
    """Repeat each pixel f x f times (f the smallest integer that brings the longer side to >= MIN_TILE)."""
    f = math.ceil(MIN_TILE / max(a.shape[0], a.shape[1]))
    return a if f <= 1 else a.repeat(f, axis=0).repeat(f, axis=1)


def tile_of(pixels: np.ndarray) -> np.ndarray:
    """An image [H, W, C] brought to the sheet's tile size."""
    return enlarge(shrink(pixels))


def caption(row: dict) -> tuple:
    """The two lines under a prompt's tile: '#INDEX', then its reward (3 significant digits) or 'failed' / 'missing'."""
    if row["status"] == "ok" and row.get("reward") is not None:
        return f"#{row['index']}", f"{row['reward']:.3g}"
    return f"#{row['index']}", "failed" if row["status"] == "error" else "missing"


def _draw_caption(strip: np.ndarray, lines) -> None:
    """Dark text, one line under the other, left-aligned (cut at the strip's right edge)."""
    for k, text in enumerate(lines):
        ink = _glyphs.render(text, SCALE)[:, :strip.shape[1] - 4]
        y = 2 + k * LINE
        strip[y:y + ink.shape[0], 2:2 + ink.shape[1]][ink] = 0


def contact_sheet(out: str, rows: list):
    """PNG bytes of the best images of ``rows`` (summary rows: index, status, reward, image) in index
    order, each captioned (None without images), and notes on unreadable images."""
    tiles, notes = {}, []
    for r in rows:
        if r["status"] != "ok" or not r["image"]:
            continue
        try:
            with open(os.path.join(out, r["image"]), "rb") as f:
                tiles[r["index"]] = tile_of(decode(f.read()))
        except (OSError, ValueError) as e:
            notes.append(f"{r['image']}: {e}")
    if not tiles:
        return None, notes
    first = next(iter(tiles.values()))
    th, tw = first.shape[:2]
    c = 3 if any(t.shape[2] == 3 for t in tiles.values()) else 1
    cols = math.ceil(math.sqrt(len(rows)))
    nrows = math.ceil(len(rows) / cols)
    cell_h = th + CAPTION
    sheet = np.full((nrows * (cell_h + GAP) - GAP, cols * (tw + GAP) - GAP, c), 255, np.uint8)
    for k, r in enumerate(rows):
        y, x = (k // cols) * (cell_h + GAP), (k % cols) * (tw + GAP)
        t = tiles.get(r["index"])
        if t is not None and t.shape[:2] != (th, tw):
            notes.append(f"{r['image']}: {t.shape[1]}x{t.shape[0]} tile, not {tw}x{th} like the first (shown grey)")
            t = None
        sheet[y:y + th, x:x + tw] = 128 if t is None else (np.repeat(t, c, axis=2) if t.shape[2] != c else t)
        # an ok prompt whose image could not be read (see notes) is a grey tile marked 'error'
        _draw_caption(sheet[y + th:y + cell_h, x:x + tw], caption(r) if t is not None or r["status"] != "ok" else (f"#{r['index']}", "error"))
    return encode(sheet), notes
