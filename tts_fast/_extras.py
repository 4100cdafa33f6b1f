"""Optional dependencies: import them on first use, with an error that says what to install."""

from __future__ import annotations

import importlib

# extra name -> what `pip install tts_fast[extra]` brings (for the error messages)
EXTRAS = {
    "diffusers": "diffusers, transformers, accelerate",
    "clip": "transformers",
    "imagereward": "image-reward (with transformers<5, timm, fairscale)",
    "tensorrt": "torch-tensorrt",
    "ray": "ray",
    "rl": "gymnasium[mujoco], mujoco, minari[hdf5], stable-baselines3",
    "realdata": "mlxtend, ccexam",
    "terrain": "onnx, onnx2torch, onnxruntime; then pip install --no-deps adaptive-terrain-diffusion",
}


def require(module: str, extra: str, what: str):
    """Import ``module`` or raise an ImportError naming the extra that provides it.

    Args:
        module: the module to import (e.g. 'diffusers').
        extra: the tts_fast extra that installs it (a key of EXTRAS).
        what: the feature that needs it, for the message (e.g. 'tts_fast.models.DiffusersModel').
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{what} needs the optional package {module!r}, which could not be imported ({e}). "
            f"Install it with: pip install --no-build-isolation 'tts_fast[{extra}]'  (brings {EXTRAS.get(extra, module)})"
        ) from e
