"""Broken weight files for loader tests: truncated, random bytes, empty, and a pickle of a foreign object."""

from __future__ import annotations

import collections
import os
import pickle


def bad_weight_files(folder, valid_path: str, name: str) -> dict:
    """Files named ``name`` in subfolders of ``folder``, one per way of being broken -> their paths.

    - truncated: the first half of the valid file ``valid_path`` (an interrupted download);
    - random: random bytes; empty: zero bytes;
    - foreign_pickle: a plain pickle of an object that weights_only loading refuses (a class instance).
    """
    with open(valid_path, "rb") as f:
        data = f.read()
    contents = {
        "truncated": data[: len(data) // 2],
        "random": os.urandom(4096),
        "empty": b"",
        "foreign_pickle": pickle.dumps(collections.Counter("abc"), protocol=2),
    }
    out = {}
    for kind, blob in contents.items():
        d = os.path.join(str(folder), kind)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(blob)
        out[kind] = path
    return out
