"""PNG encoding and decoding without an imaging library: 8-bit grayscale or RGB, no interlace.

tts_fast writes every image of ``tts-fast run`` through :func:`encode`, so that the bytes are a
function of the pixels (and zlib) alone: no dependency on Pillow's version or its filter choice.
:func:`decode` reads those files back (for the contact sheet); PNGs written by other tools fall
back to Pillow when it is installed.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (0 gray, 2 RGB)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode(pixels) -> bytes:
    """uint8 pixels [H, W] (gray), [H, W, 1] or [H, W, 3] (RGB) -> PNG file bytes.

    Every row uses filter 0 and the data is compressed at zlib level 6: deterministic bytes.
    """
    a = np.ascontiguousarray(np.asarray(pixels))
    if a.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _COLOR_TYPES or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"pixels must be [H, W], [H, W, 1] or [H, W, 3], got shape {a.shape}")
    h, w, c = a.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, w * c)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def decode(data: bytes) -> np.ndarray:
    """PNG file bytes -> uint8 pixels [H, W, C] (C = 1 gray or 3 RGB).

    Reads what :func:`encode` writes; any other PNG (filters, palettes, alpha, 16 bit) is read with
    Pillow when it is installed. Raises ValueError for data that cannot be read.
    """
    try:
        return _decode_own(data)
    except ValueError:
        try:
            import io

            from PIL import Image
        except ImportError:
            raise ValueError("not a PNG written by tts_fast, and Pillow (to read other PNGs) is not installed") from None
        try:
            img = Image.open(io.BytesIO(data))
            img = img.convert("L" if img.mode in ("1", "L", "I", "I;16") else "RGB")
        except Exception as e:  # Pillow raises many types for a broken file
            raise ValueError(f"unreadable PNG: {e}") from None
        a = np.asarray(img, dtype=np.uint8)
        return a[:, :, None] if a.ndim == 2 else a


def _decode_own(data: bytes) -> np.ndarray:
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG")
    pos, header, idat = 8, None, []
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without a header")
    w, h, depth, color, _, _, interlace = header
    channels = {v: k for k, v in _COLOR_TYPES.items()}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError("not an 8-bit gray/RGB non-interlaced PNG")
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as e:
        raise ValueError(f"corrupt PNG data: {e}") from None
    if raw.size != h * (1 + w * channels):
        raise ValueError("PNG data of the wrong size")
    rows = raw.reshape(h, 1 + w * channels)
    if rows[:, 0].any():
        raise ValueError("PNG rows use filters other than 0")
    return rows[:, 1:].reshape(h, w, channels).copy()
