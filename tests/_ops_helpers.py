"""Shared pieces of the op tests: devices, schedules, input builders, comparisons."""

from __future__ import annotations

import math
import os

import pytest
import torch

from tts_fast import _reference as ref

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine (CUDA kernels untested here)")
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
X_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
W_DTYPES = [torch.float32, torch.float64]


def vp_tables(n_levels: int = 50, device="cpu"):
    """alpha, sigma [L] float64 of a DDPM-linear VP path (level 0 = nearly clean)."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1.0 - betas, 0)[torch.linspace(0, 999, n_levels).round().long()]
    return ab.sqrt().to(device), (1.0 - ab).sqrt().to(device)


def flow_tables(n_levels: int = 50, device="cpu"):
    """alpha = 1 - t, sigma = t on t in [0.001, 0.999] (rectified flow)."""
    t = torch.linspace(0.001, 0.999, n_levels, dtype=torch.float64)
    return (1.0 - t).to(device), t.to(device)


def log_weights(b: int, n: int, *, scale: float = 1.0, special: float = 0.0, dtype=torch.float64, seed: int = 0,
                row_kinds: bool = True) -> torch.Tensor:
    """Random [b, n] log-weights: normal * scale, a fraction `special` of NaN/-inf/+inf entries, and
    (row_kinds) some rows all -inf, all NaN, or holding several +inf."""
    g = torch.Generator().manual_seed(seed)
    lw = torch.randn(b, n, generator=g, dtype=torch.float64) * scale
    if special > 0:
        pick = torch.rand(b, n, generator=g) < special
        kind = torch.randint(0, 3, (b, n), generator=g)
        vals = torch.tensor([math.nan, -math.inf, math.inf], dtype=torch.float64)[kind]
        lw = torch.where(pick, vals, lw)
    if row_kinds and b >= 4:
        r = torch.randint(0, 4, (1,), generator=g).item()
        lw[r] = -math.inf
        lw[(r + 1) % b] = math.nan
        lw[(r + 2) % b, : max(1, n // 3)] = math.inf
    return lw.to(dtype)


def uniforms(b: int, n: int, *, kind: str = "random", dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """[b, n] uniforms in [0, 1): random, all zero, the largest value below 1, or a coarse grid (ties)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "zero":
        u = torch.zeros(b, n, dtype=torch.float64)
    elif kind == "high":
        top = 1.0 - 2.0**-24 if dtype == torch.float32 else 1.0 - 2.0**-53
        u = torch.full((b, n), top, dtype=torch.float64)
    elif kind == "grid":
        u = torch.randint(0, 8, (b, n), generator=g).to(torch.float64) / 8
    else:
        u = torch.rand(b, n, generator=g, dtype=torch.float64)
    return u.to(dtype)


def rng_tensor(seed: int, offset: int, device="cpu") -> torch.Tensor:
    return torch.tensor([seed, offset], dtype=torch.int64, device=device)


def assert_ancestors_equal(got: torch.Tensor, want: torch.Tensor, device: str, want_on_device=None) -> None:
    """Bit for bit on the CPU. On CUDA the kernel's exp() may differ from the CPU reference's in
    the last bit, which moves an index only when a target falls within an ulp of a cdf entry:
    allow at most 0.1% of entries to differ from the CPU reference there, and require bit-for-bit
    equality with ``want_on_device``, the reference run on the same device (the same device exp),
    so that an ordering bug cannot hide under that allowance."""
    assert got.dtype == torch.int64 and got.shape == want.shape
    if device != "cpu" and want_on_device is not None:
        assert torch.equal(got, want_on_device), f"{(got != want_on_device).sum().item()} ancestors differ from the on-device reference"
    got, want = got.cpu(), want.cpu()
    if device == "cpu":
        assert torch.equal(got, want), f"{(got != want).sum().item()} of {got.numel()} ancestors differ"
    else:
        assert (got != want).float().mean().item() <= 1e-3


def float_tol(dtype: torch.dtype) -> dict:
    return {
        torch.float16: dict(atol=2e-3, rtol=2e-3),
        torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
        torch.float32: dict(atol=2e-5, rtol=2e-5),
        torch.float64: dict(atol=1e-5, rtol=1e-6),  # rng mode: normals are float32 in both
    }[dtype]


def expected_counts_floor(w: torch.Tensor) -> torch.Tensor:
    """floor(N w / W) per particle, float64 [..., N]."""
    n = w.shape[-1]
    return torch.floor(n * w / w.sum(-1, keepdim=True))


def offspring_counts(anc: torch.Tensor, n: int) -> torch.Tensor:
    """[R, N] number of children of each particle per row."""
    return torch.zeros(anc.shape[0], n, dtype=torch.int64, device=anc.device).scatter_add_(
        1, anc, torch.ones_like(anc)
    )


def ref_call(fn, *args, **kwargs):
    """Run a reference function on CPU copies of tensor arguments (the spec is device-independent)."""
    to_cpu = lambda v: v.cpu() if isinstance(v, torch.Tensor) else v  # noqa: E731
    return fn(*[to_cpu(a) for a in args], **{k: to_cpu(v) for k, v in kwargs.items()})


def skip_unless_device(device: str) -> None:
    if device == "cuda" and not HAS_CUDA:
        pytest.skip("no CUDA device")


# An explicit reference-only run: the one case where missing compiled ops are not a failure.
REFERENCE_ONLY = os.environ.get("TTS_FAST_BACKEND", "").lower() == "reference"


def require_compiled_ops() -> None:
    """Fail unless tts_fast._C is loaded; skip instead in a run that asked for the references
    (TTS_FAST_BACKEND=reference). setup.py always builds the C++ ops, so their absence is a broken
    build or a checkout that was never built, not a configuration to pass quietly."""
    from tts_fast import ops

    if ops._C is not None:
        return
    if REFERENCE_ONLY:
        pytest.skip("reference-only run (TTS_FAST_BACKEND=reference): no compiled kernel to test")
    pytest.fail(
        "tts_fast._C is not built, so torch.ops.tts_fast.* are the references themselves and a "
        "kernel-vs-reference test would compare the reference with itself. Build the ops "
        "(`python setup.py build_ext --inplace` or `pip install -e .`), or set "
        "TTS_FAST_BACKEND=reference for an explicit reference-only run.",
        pytrace=False,
    )


def kernel_under_test(device: str, *, cross_device: bool = False) -> None:
    """Call first in a test that compares the kernel serving ``device`` with the reference.

    CUDA without a GPU: skip. CPU: the compiled C++ kernels must be loaded (require_compiled_ops).
    CUDA with a CPU-only build (the reference serves CUDA tensors): skip a test that compares with
    the reference on the same device (it could not fail), but run one that compares the on-device
    result with the CPU kernel (``cross_device``): that checks the reference is device-independent.
    """
    skip_unless_device(device)
    from tts_fast import ops

    if torch.device(device).type == "cpu":
        require_compiled_ops()
    elif ops.backend(device) == "reference" and not cross_device:
        pytest.skip("the CUDA kernels are not built: the reference serves CUDA tensors, nothing to compare on-device")


def ops_module():
    from tts_fast import ops

    return ops


__all__ = [
    "DEVICES",
    "HAS_CUDA",
    "W_DTYPES",
    "X_DTYPES",
    "assert_ancestors_equal",
    "expected_counts_floor",
    "float_tol",
    "flow_tables",
    "kernel_under_test",
    "log_weights",
    "offspring_counts",
    "ref",
    "ref_call",
    "REFERENCE_ONLY",
    "require_compiled_ops",
    "requires_cuda",
    "rng_tensor",
    "tempering_rows",
    "TEMPERING_ROWS",
    "uniforms",
    "vp_tables",
]


TEMPERING_ROWS = ("random", "dead-slots", "flat", "all-dead", "cap-zero", "cap-inf", "cap-huge", "unreachable",
                  "target-zero", "base", "tiny-keys", "huge-keys")


def tempering_rows(n: int, seed: int, device="cpu"):
    """Inputs of adaptive_increment with one row of each kind in TEMPERING_ROWS (R rows):
    log_w, base, key [R, n] float64, alive [R, n] bool, target, cap [R] float64."""
    g = torch.Generator().manual_seed(seed)
    r = len(TEMPERING_ROWS)
    log_w = torch.randn(r, n, generator=g, dtype=torch.float64) * 0.5
    key = torch.randn(r, n, generator=g, dtype=torch.float64)
    base = torch.zeros(r, n, dtype=torch.float64)
    alive = torch.ones(r, n, dtype=torch.bool)
    cap = torch.rand(r, generator=g, dtype=torch.float64) * 5 + 0.1
    target = torch.full((r,), 0.5 * n, dtype=torch.float64)
    kind = {k: i for i, k in enumerate(TEMPERING_ROWS)}
    alive[kind["dead-slots"]] = torch.rand(n, generator=g) > 0.3
    key[kind["flat"]] = 1.25
    alive[kind["all-dead"]] = False
    cap[kind["cap-zero"]] = 0.0
    cap[kind["cap-inf"]] = math.inf
    cap[kind["cap-huge"]] = 1e15
    target[kind["unreachable"]] = n + 1.0
    target[kind["target-zero"]] = 0.0
    base[kind["base"]] = torch.randn(n, generator=g, dtype=torch.float64) * 0.3
    key[kind["tiny-keys"]] *= 1e-8
    key[kind["huge-keys"]] *= 1e8
    log_w = torch.where(alive, log_w, torch.full_like(log_w, -math.inf))
    target = torch.where(alive.any(1), target, torch.zeros_like(target))
    return tuple(t.to(device) for t in (log_w, base, key, alive, target, cap))
