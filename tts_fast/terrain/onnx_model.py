"""The terrain model of ``adaptive-terrain-diffusion`` (PyPI, MIT): its ONNX file, run by onnxruntime or
converted to a differentiable torch module.

The package ships ``terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx`` (45 MB):
an EDM-parameterised consistency UNet, ``denoised = D(noisy, sigma, difficulty)`` on 1x128x128
heightmaps in [-1, 1], sigma in [0.002, 80], sigma_data 0.5, difficulty in [0, 1]. Nothing is
copied into tts_fast: the file is read from the installed package (located without importing it).

Install (the package's metadata asks for onnxruntime-gpu on Linux x86-64; the CPU runtime is enough)::

    pip install --no-build-isolation 'tts_fast[terrain]'  # onnx, onnx2torch, onnxruntime
    pip install --no-deps adaptive-terrain-diffusion      # the model file, without onnxruntime-gpu

The torch conversion (onnx2torch) needs three fixes for this opset-18 graph: onnx2torch has no
opset-18 converters for ``Split`` and ``Resize``, and refuses ``Reshape`` with ``allowzero=1``.
The graph uses only what the opset-13 converters do (Split by ``num_outputs`` into equal parts,
nearest ``Resize`` without antialiasing or axes), so they are registered for opset 18 after that
is checked; ``allowzero`` only changes what a 0 in a target shape means, and the graph's reshapes
never ask for a 0-sized dimension, so it is set to 0. The module agrees with onnxruntime to a few
1e-6 (checked in tests/test_terrain.py).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from .._extras import require

ONNX_NAME = "terrain_consistency_unet_difficulty100.onnx"
SIGMA_MIN, SIGMA_MAX, SIGMA_DATA = 0.002, 80.0, 0.5
SIZE = 128
INPUTS = ("noisy", "sigma", "difficulty")
_WHO = "the terrain model (tts_fast.terrain)"


def onnx_file() -> str:
    """Path of the package's ONNX file; ImportError saying how to install it when the package is missing."""
    spec = importlib.util.find_spec("terrain_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{_WHO} needs the optional package 'adaptive-terrain-diffusion', which is not installed. Install it with: "
            "pip install --no-build-isolation 'tts_fast[terrain]' && pip install --no-deps adaptive-terrain-diffusion "
            "(--no-deps: its metadata asks for onnxruntime-gpu; the CPU onnxruntime of the extra is enough)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "weights", ONNX_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"adaptive-terrain-diffusion is installed but has no {path}; reinstall it "
                                "(pip install --no-deps --force-reinstall adaptive-terrain-diffusion)")
    return path


@functools.lru_cache(maxsize=4)
def ort_session(threads: int = 1):
    """An onnxruntime CPU session of the model (``threads`` intra-op threads), cached per thread count."""
    ort = require("onnxruntime", "terrain", _WHO)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_file(), sess_options=options, providers=["CPUExecutionProvider"])


def run_ort(noisy: torch.Tensor, sigma: torch.Tensor, difficulty: torch.Tensor) -> torch.Tensor:
    """D(noisy [B, 1, 128, 128], sigma [B], difficulty [B]) through onnxruntime (no gradients), float32 on the CPU."""
    session = ort_session(max(1, torch.get_num_threads()))
    feeds = {name: v.detach().to("cpu", torch.float32).contiguous().numpy() for name, v in zip(INPUTS, (noisy, sigma, difficulty))}
    return torch.from_numpy(session.run(["denoised"], feeds)[0])


def _fixed_graph(onnx):
    """The ONNX model with allowzero = 0 on every Reshape, after checking Split and Resize are opset-13 compatible."""
    model = onnx.load(onnx_file())
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Split" and (len(node.input) > 1 and node.input[1] or attrs.get("num_outputs", len(node.output)) != len(node.output)):
            raise ValueError(f"{node.name}: a Split with explicit sizes; the opset-13 converter splits into equal parts only")
        if node.op_type == "Resize" and (attrs.get("antialias", 0) or "axes" in attrs
                                         or attrs.get("keep_aspect_ratio_policy", b"stretch") != b"stretch"):
            raise ValueError(f"{node.name}: a Resize with opset-18 options (antialias, axes or an aspect policy) the converter lacks")
        if node.op_type == "Reshape":
            for a in node.attribute:
                if a.name == "allowzero":
                    a.i = 0
    return model


@functools.lru_cache(maxsize=1)
def torch_module() -> torch.nn.Module:
    """The model as a differentiable torch module ``D(noisy, sigma, difficulty)`` (CPU, eval mode, frozen), built once."""
    onnx = require("onnx", "terrain", _WHO)
    onnx2torch = require("onnx2torch", "terrain", _WHO)
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription

    for op in ("Split", "Resize"):
        new, old = OperationDescription("", op, 18), OperationDescription("", op, 13)
        _CONVERTER_REGISTRY.setdefault(new, _CONVERTER_REGISTRY[old])
    net = onnx2torch.convert(_fixed_graph(onnx)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
