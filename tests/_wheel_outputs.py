"""Run every compiled op on fixed inputs and save the outputs: `python _wheel_outputs.py OUT.pt`.

tests/test_wheel.py runs this in environments with different torch versions and the same installed
wheel; the saved outputs must be equal bit for bit. It also records where tts_fast was imported
from and how its ops were built.
"""

from __future__ import annotations

import sys

import torch

import tts_fast
from tts_fast import ops


def _outputs() -> dict:
    g = torch.Generator().manual_seed(1234)
    out = {}
    for dtype in (torch.float32, torch.float64):
        lw = torch.randn(16, 37, generator=g, dtype=dtype) * 3
        lw[0, 3] = float("nan")
        lw[1] = float("-inf")
        lw[2, 5] = float("inf")
        u = torch.rand(16, 37, generator=g, dtype=dtype)
        for scheme in ops.SCHEMES:
            out[f"resample/{scheme}/{dtype}"] = ops.resample(lw, u, scheme=scheme)
            out[f"resample_rng/{scheme}/{dtype}"] = ops.resample(lw, rng=torch.tensor([7, 3]), scheme=scheme)
        out[f"ess/{dtype}"] = ops.ess(lw)
        out[f"normalize/{dtype}"] = ops.normalize_log_weights(lw)
    levels = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    alpha, sigma = (1 - levels**2).sqrt(), levels
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.randn(6, 3, 5, 7, generator=g).to(dtype)
        x0 = torch.randn(6, 3, 5, 7, generator=g).to(dtype)
        lf = torch.tensor([0, 3, 7, 10, 20, 30])
        lt = lf + torch.tensor([1, 5, 2, 9, 19, 18])
        rng = torch.tensor([2**40 + 5, 11])
        noise = torch.randn(6, 3, 5, 7, generator=g).to(dtype)
        step = torch.rand(6, generator=g, dtype=torch.float64) * 0.1
        out[f"renoise/{dtype}"] = ops.renoise(x, lf, lt, alpha, sigma, rng=rng)
        out[f"renoise_noise/{dtype}"] = ops.renoise(x, lf, lt, alpha, sigma, noise=noise)
        out[f"ddim/{dtype}"] = ops.ddim_step(x, x0, lt, lf, alpha, sigma, eta=0.7, rng=rng)
        out[f"ddim_eta0/{dtype}"] = ops.ddim_step(x, x0, lt, lf, alpha, sigma, eta=0.0)
        out[f"langevin/{dtype}"] = ops.langevin_step(x, x0, step, rng=rng, max_norm=3.0)
        out[f"langevin_noise/{dtype}"] = ops.langevin_step(x, x0, step, noise=noise)
    return out


def main(path: str) -> None:
    """Save {"outputs", "torch", "tts_fast_file", "build_info", "backend"} to ``path``."""
    torch.save(
        {
            "outputs": _outputs(),
            "torch": str(torch.__version__),  # a plain str: torch.load(weights_only=True) takes no TorchVersion
            "tts_fast_file": tts_fast.__file__,
            "build_info": ops.build_info(),
            "backend": ops.backend("cpu"),
        },
        path,
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python _wheel_outputs.py OUT.pt")
    main(sys.argv[1])
