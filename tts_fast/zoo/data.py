"""scikit-learn's handwritten digits (8x8, 1,797 images) with the zoo's fixed train/test split.

Pixels 0..16 are mapped to [-1, 1] by x / 8 - 1. The split is a seeded permutation: 1,397 train
and 400 test images. The diffusion model and all classifiers are trained on the train split only;
the test split measures the classifiers. Needs scikit-learn (the data ships with it, no download).
"""

from __future__ import annotations

import numpy as np
import torch

N_TEST = 400
SPLIT_SEED = 0


def to_model_space(pixels) -> torch.Tensor:
    """Digits pixels 0..16 ([n, 64] or [n, 8, 8]) to float32 images [n, 1, 8, 8] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(pixels), dtype=torch.float32).reshape(-1, 1, 8, 8)
    return x / 8.0 - 1.0


def load_split(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n, 1, 8, 8] in [-1, 1] and labels [n] (int64) of the 'train', 'test' or 'all' split."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all'; got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits data comes with scikit-learn: pip install scikit-learn (or tts_fast[train])"
        ) from e
    d = load_digits()
    x, y = to_model_space(d.images), torch.as_tensor(d.target, dtype=torch.int64)
    if split == "all":
        return x, y
    perm = torch.as_tensor(np.random.RandomState(SPLIT_SEED).permutation(len(y)))
    idx = perm[:N_TEST] if split == "test" else perm[N_TEST:]
    return x[idx], y[idx]
