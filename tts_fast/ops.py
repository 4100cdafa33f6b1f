"""The search primitives as PyTorch custom ops: ``torch.ops.tts_fast.*``.

Schemas are defined once in C++ (csrc/ops.cpp) with CPU kernels in csrc/cpu/ and CUDA kernels in
csrc/cuda/, built on the LibTorch stable ABI into ``tts_fast/_ops.abi3.so`` (and
``_ops_cuda.abi3.so``), which load in every torch >= the minimum they target (``MIN_TORCH``);
``tts_fast._C`` (no torch inside) says how they were built. When the compiled ops are absent (a
source checkout that was never built, or ``TTS_FAST_BACKEND=reference``), the same schemas are
defined here and served by the pure-PyTorch references of ``tts_fast._reference``; ``backend()``
says which is active per device.
Fake (meta) kernels are registered here so every op traces under ``torch.compile(fullgraph=True)``.

None of the ops reads device memory on the host: randomness arrives as tensors (``uniforms``,
``noise``) or as ``rng`` = int64 tensor [seed, offset] read inside the kernel (a CUDA-graph replay
sees the current value; use :class:`Philox` to advance it on the device).
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Optional

import torch

from . import _philox
from . import _reference as _ref
from ._arguments import as_device, check_int

__all__ = [
    "resample",
    "renoise",
    "ddim_step",
    "langevin_step",
    "ess",
    "normalize_log_weights",
    "adaptive_increment",
    "gather_particles",
    "Philox",
    "backend",
    "build_info",
    "SCHEMES",
    "SCHEMAS",
]

SCHEMES = _ref.SCHEMES

# Kept identical to csrc/ops.cpp (tests/test_ops_build.py compares them when _C is loaded).
SCHEMAS = {
    "resample": "resample(Tensor log_weights, Tensor? uniforms, Tensor? rng, str scheme) -> Tensor",
    "renoise": "renoise(Tensor x, Tensor level_from, Tensor level_to, Tensor alpha, Tensor sigma, Tensor? noise, Tensor? rng) -> Tensor",
    "ddim_step": "ddim_step(Tensor x, Tensor x0_hat, Tensor level_from, Tensor level_to, Tensor alpha, Tensor sigma, float eta, Tensor? noise, Tensor? rng) -> Tensor",
    "langevin_step": "langevin_step(Tensor x, Tensor grad, Tensor step_size, Tensor? noise, Tensor? rng, float? max_norm) -> Tensor",
    "ess": "ess(Tensor log_weights) -> Tensor",
    "normalize_log_weights": "normalize_log_weights(Tensor log_weights) -> Tensor",
    "adaptive_increment": "adaptive_increment(Tensor log_w, Tensor base, Tensor key, Tensor alive, Tensor target, Tensor cap) -> Tensor",
}

_REFERENCES = {
    "resample": _ref.resample,
    "renoise": _ref.renoise,
    "ddim_step": _ref.ddim_step,
    "langevin_step": _ref.langevin_step,
    "ess": _ref.ess,
    "normalize_log_weights": _ref.normalize_log_weights,
    "adaptive_increment": _ref.adaptive_increment,
}


# ----------------------------------------------------------------------------------------------
# loading the extension


# The oldest torch the compiled ops serve when the build does not say (setup.py's MIN_TORCH).
MIN_TORCH = "2.10"


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a torch version string such as '2.14.1+cu130' or '2.10.0a0'."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def _load_extension():
    """Import tts_fast._C, or return None when it is absent. A torch below the minimum is an error."""
    if os.environ.get("TTS_FAST_BACKEND", "").lower() == "reference":
        return None
    try:
        info = importlib.import_module("tts_fast._build_info")
    except ImportError:
        info = None
    minimum = getattr(info, "MIN_TORCH", MIN_TORCH)
    if info is not None and _release(torch.__version__) < _release(minimum):
        raise ImportError(
            f"tts_fast's compiled ops need torch >= {minimum} (they use the LibTorch stable ABI of torch "
            f"{minimum}), but torch {torch.__version__} is installed. Upgrade torch "
            f"(`pip install 'torch>={minimum}'`), or set TTS_FAST_BACKEND=reference to use the pure-PyTorch ops."
        )
    try:
        return importlib.import_module("tts_fast._C")
    except ImportError as exc:
        if info is None and "No module named" in str(exc):
            return None  # never built: serve the references
        raise ImportError(
            f"tts_fast._C failed to load ({exc}). It was built against torch "
            f"{getattr(info, 'TORCH_VERSION', '?')} (CUDA {getattr(info, 'CUDA_VERSION', None)}); "
            f"installed torch is {torch.__version__}. Rebuild with "
            "`pip install --no-build-isolation --force-reinstall --no-deps .`."
        ) from exc


def _library_path(name: str) -> str:
    """Path of the op library ``name`` (built with py_limited_api, hence the .abi3 suffix) in this package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".abi3.so")


def _load_op_libraries(with_cuda: bool) -> bool:
    """Load the op libraries with torch.ops.load_library: the schemas and CPU kernels always, the
    CUDA kernels when they were built and torch is a CUDA build. Returns whether CUDA kernels loaded."""
    names = ["_ops"] + (["_ops_cuda"] if with_cuda and torch.version.cuda is not None else [])
    for name in names:
        path = _library_path(name)
        try:
            torch.ops.load_library(path)
        except OSError as exc:
            raise ImportError(
                f"tts_fast's op library {path} failed to load ({exc.__cause__ or exc}); torch "
                f"{torch.__version__} is installed. Reinstall tts_fast, or rebuild with "
                "`pip install --no-build-isolation --force-reinstall --no-deps .`."
            ) from exc
    return "_ops_cuda" in names


_C = _load_extension()
_lib_def = None
_lib_impl = None

if _C is None:
    _lib_def = torch.library.Library("tts_fast", "DEF")
    for _name, _schema in SCHEMAS.items():
        _lib_def.define(_schema)
        _lib_def.impl(_name, _REFERENCES[_name], "CompositeExplicitAutograd")
    _BACKENDS = {"cpu": "reference", "cuda": "reference"}
else:
    _cuda_built = _load_op_libraries(bool(_C.build_info().get("cuda", False)))
    if not _cuda_built:
        # A CPU-only build still serves CUDA tensors, through the references.
        _lib_impl = torch.library.Library("tts_fast", "IMPL")
        for _name in SCHEMAS:
            _lib_impl.impl(_name, _REFERENCES[_name], "CUDA")
    _BACKENDS = {"cpu": "cpp", "cuda": "cuda" if _cuda_built else "reference"}


def backend(device: str | torch.device = "cpu") -> str:
    """Which implementation serves ``torch.ops.tts_fast.*`` on ``device``: 'cpp', 'cuda' or 'reference'."""
    kind = torch.device(device).type
    if kind not in _BACKENDS:
        raise ValueError(f"device must be a cpu or cuda device, got {device!r}")
    return _BACKENDS[kind]


def build_info() -> dict:
    """How the compiled ops were built: backends, CUDA architectures, torch and CUDA versions.

    Without the extension: ``{"backend": "reference", "torch_version": <installed torch>}``.
    """
    if _C is None:
        return {"backend": "reference", "cpu": False, "cuda": False, "torch_version": torch.__version__}
    return dict(_C.build_info(), backend="compiled")


# ----------------------------------------------------------------------------------------------
# fake kernels (shapes only) for torch.compile / export


@torch.library.register_fake("tts_fast::resample")
def _resample_fake(log_weights, uniforms, rng, scheme):
    torch._check(log_weights.dim() == 2, lambda: "log_weights must be 2-D [B, N]")
    return log_weights.new_empty(log_weights.shape, dtype=torch.int64)


@torch.library.register_fake("tts_fast::renoise")
def _renoise_fake(x, level_from, level_to, alpha, sigma, noise, rng):
    return torch.empty_like(x)


@torch.library.register_fake("tts_fast::ddim_step")
def _ddim_step_fake(x, x0_hat, level_from, level_to, alpha, sigma, eta, noise, rng):
    torch._check(x0_hat.shape == x.shape, lambda: "x0_hat must match x")
    return torch.empty_like(x)


@torch.library.register_fake("tts_fast::langevin_step")
def _langevin_step_fake(x, grad, step_size, noise, rng, max_norm):
    torch._check(grad.shape == x.shape, lambda: "grad must match x")
    return torch.empty_like(x)


@torch.library.register_fake("tts_fast::ess")
def _ess_fake(log_weights):
    return log_weights.new_empty((log_weights.shape[0],))


@torch.library.register_fake("tts_fast::normalize_log_weights")
def _normalize_fake(log_weights):
    return torch.empty_like(log_weights)


@torch.library.register_fake("tts_fast::adaptive_increment")
def _adaptive_increment_fake(log_w, base, key, alive, target, cap):
    torch._check(log_w.dim() == 2, lambda: "log_w must be 2-D [B, N]")
    return log_w.new_empty((log_w.shape[0],), dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# Python API


def resample(
    log_weights: torch.Tensor,
    uniforms: Optional[torch.Tensor] = None,
    *,
    rng: Optional[torch.Tensor] = None,
    scheme: str = "systematic",
) -> torch.Tensor:
    """Ancestor indices for each prompt row: exactly N children per row, in one launch.

    Args:
        log_weights: [B, N] float32/float64 unnormalised log-weights, one row per prompt. NaN is
            treated as -inf; a row that is all -inf is resampled uniformly; +inf entries share
            all of the weight.
        uniforms: [B, N] uniforms in [0, 1) (float32/float64, same device). multinomial and
            stratified use all N of a row, systematic the first, residual the first R (R = number
            of residual draws), ssp the first N-1.
        rng: instead of ``uniforms``, an int64 tensor [seed, offset] for the in-kernel Philox
            generator (uniform for (b, k) is element b*N + k).
        scheme: 'multinomial', 'stratified', 'systematic', 'residual' or 'ssp' (Srinivasan
            sampling process: counts floor(N w) or floor(N w)+1, exact total, unbiased,
            negatively associated).

    Returns:
        [B, N] int64 ancestors in [0, N) per row (indices into the row, not flat). ssp and
        residual return them grouped by parent in index order; gather any per-particle state
        with :func:`gather_particles`.
    """
    return torch.ops.tts_fast.resample(log_weights, uniforms, rng, scheme)


def renoise(
    x: torch.Tensor,
    level_from: torch.Tensor,
    level_to: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    *,
    noise: Optional[torch.Tensor] = None,
    rng: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Exact forward kernel q(x_to | x_from) for per-sample levels of a Gaussian path.

    A level l has x_l = alpha[l] * x0 + sigma[l] * eps (VP: alpha = sqrt(alpha_bar),
    sigma = sqrt(1 - alpha_bar); rectified flow: alpha = 1 - t, sigma = t). The move is
    x_to = r * x_from + sqrt(sigma_to^2 - r^2 sigma_from^2) * eps with r = alpha_to / alpha_from,
    which for VP is sqrt(ab_to/ab_from) * x + sqrt(1 - ab_to/ab_from) * eps.

    Args:
        x: [B, ...] float16/bfloat16/float32/float64.
        level_from, level_to: [B] int64 indices into the tables; level_to must be at least as
            noisy as level_from (a less noisy target gives NaN rows).
        alpha, sigma: [L] float64 tables on x's device.
        noise: [B, ...] standard normals like x, or ``rng`` (int64 [seed, offset]) for in-kernel
            Philox normals.

    Returns:
        [B, ...] like x.
    """
    return torch.ops.tts_fast.renoise(x, level_from, level_to, alpha, sigma, noise, rng)


def ddim_step(
    x: torch.Tensor,
    x0_hat: torch.Tensor,
    level_from: torch.Tensor,
    level_to: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    *,
    eta: float = 1.0,
    noise: Optional[torch.Tensor] = None,
    rng: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """One DDIM step from x at level_from to level_to given the x0-prediction, fused.

    x_to = alpha_to * x0_hat + sqrt(sigma_to^2 - s^2) * eps_hat + s * z with
    eps_hat = (x - alpha_from * x0_hat) / sigma_from and s^2 = eta^2 sigma_to^2 v / sigma_from^2,
    v the variance of q(x_from | x_to). eta = 1 is the ancestral (DDPM posterior) step, eta = 0 the
    deterministic DDIM/ODE step; the same formula is the stochastic sampler of flow models.

    Args:
        x, x0_hat: [B, ...] same shape and float dtype.
        level_from, level_to: [B] int64 levels (level_to less noisy; sigma may be 0 there).
        alpha, sigma: [L] float64 tables.
        eta: in [0, 1]. A random source (``noise`` or ``rng``) is required when eta > 0.

    Returns:
        [B, ...] like x.
    """
    _check_real(eta, "eta")
    return torch.ops.tts_fast.ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, float(eta), noise, rng)


def langevin_step(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: torch.Tensor,
    *,
    noise: Optional[torch.Tensor] = None,
    rng: Optional[torch.Tensor] = None,
    max_norm: Optional[float] = None,
) -> torch.Tensor:
    """Unadjusted Langevin move x + eta * g + sqrt(2 eta) * z with per-sample eta, fused.

    Args:
        x, grad: [B, ...] same shape and dtype (grad = gradient of the log target at x).
        step_size: [B] float32/float64, eta >= 0 per sample.
        noise / rng: standard normals like x, or int64 [seed, offset].
        max_norm: if given, each sample's gradient is scaled by min(1, max_norm / ||g_b||_2).

    Returns:
        [B, ...] like x.
    """
    if max_norm is not None:
        _check_real(max_norm, "max_norm")
    return torch.ops.tts_fast.langevin_step(x, grad, step_size, noise, rng, max_norm)


def ess(log_weights: torch.Tensor) -> torch.Tensor:
    """Effective sample size per row, (sum w)^2 / sum w^2, in [1, N]: [B, N] -> [B]."""
    return torch.ops.tts_fast.ess(log_weights)


def normalize_log_weights(log_weights: torch.Tensor) -> torch.Tensor:
    """Log-weights minus their row log-sum-exp (NaN -> -inf, all -inf row -> -log N): [B, N] -> [B, N]."""
    return torch.ops.tts_fast.normalize_log_weights(log_weights)


def adaptive_increment(
    log_w: torch.Tensor,
    base: torch.Tensor,
    key: torch.Tensor,
    alive: torch.Tensor,
    target: torch.Tensor,
    cap: torch.Tensor,
) -> torch.Tensor:
    """The adaptive-tempering increment of each prompt row, in one launch (tts_fast.search.tempering).

    For each row, the increment delta >= 0 whose incremental log-weights base + delta * key keep a
    conditional ESS (Zhou, Johansen & Aston 2016) of at least ``target`` particles under the
    current weights, found by a fixed 48-step bisection on log(delta * spread) (spread = range of
    the live keys): no host read, no data-dependent shape, CUDA-graph safe. Rows whose CESS at
    ``cap`` meets the target get ``cap`` exactly.

    Args:
        log_w: [B, N] float64 current log-weights, -inf for dead particles (no NaN, no +inf).
        base: [B, N] float64 incremental log-weight at delta = 0 (finite where alive).
        key: [B, N] float64 what the temperature multiplies (finite where alive).
        alive: [B, N] bool live particles.
        target: [B] float64 CESS to keep, in particles (>= 0).
        cap: [B] float64 largest increment (>= 0; +inf for a free final tilt).

    Returns:
        [B] float64 increments. On CPU tensors a row outside these rules raises ValueError naming
        the argument; on a GPU (where checking would sync the host) such a row returns NaN.
    """
    return torch.ops.tts_fast.adaptive_increment(log_w, base, key, alive, target, cap)


def gather_particles(state: torch.Tensor, ancestors: torch.Tensor) -> torch.Tensor:
    """Gather per-particle state along per-row ancestors.

    Args:
        state: [B, N, ...] or flat [B*N, ...] per-particle tensors (latents, rewards, caches).
        ancestors: [B, N] int64 row-local indices from :func:`resample`.

    Returns:
        The state of each child, in the layout it came in.
    """
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"state must be a tensor, got {type(state).__name__}")
    if not isinstance(ancestors, torch.Tensor) or ancestors.dtype != torch.int64 or ancestors.dim() != 2:
        raise ValueError("ancestors must be an int64 tensor [B, N] of row-local indices (what resample returns), got "
                         + (f"{ancestors.dtype} {tuple(ancestors.shape)}" if isinstance(ancestors, torch.Tensor) else type(ancestors).__name__))
    if ancestors.device != state.device:
        raise ValueError(f"ancestors are on {ancestors.device} but state is on {state.device}; they must share a device")
    b, n = ancestors.shape
    if ancestors.numel():
        # An asynchronous assert: raised at once on the CPU, a device-side assert on a GPU; no host
        # read either way, so the search loop (which gathers at every resampling) stays sync-free.
        in_range = (ancestors.amin() >= 0) & (ancestors.amax() < n)
        try:
            torch._assert_async(in_range, f"ancestors must lie in [0, N) = [0, {n})")
        except RuntimeError as exc:
            raise ValueError(f"ancestors must lie in [0, N) = [0, {n})") from exc
    flat = (ancestors + torch.arange(b, device=ancestors.device).unsqueeze(1) * n).reshape(-1)
    if state.dim() >= 2 and tuple(state.shape[:2]) == (b, n):
        return state.reshape(b * n, *state.shape[2:]).index_select(0, flat).reshape(state.shape)
    if state.shape[0] != b * n:
        raise ValueError(f"state must be [B, N, ...] = [{b}, {n}, ...] or [B*N, ...], got {tuple(state.shape)}")
    return state.index_select(0, flat)


def _check_real(v, name: str) -> None:
    """A real number (not a bool, not a string); its range is the op's to check."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")


class Philox:
    """A device-side (seed, offset) counter for the ops' in-kernel generator.

    ``take(numel)`` returns the current [seed, offset] and advances the offset on the device with an
    in-place add, so a CUDA-graph replay of a step that calls it draws fresh numbers each time.
    """

    def __init__(self, seed: int, device: str | torch.device = "cpu"):
        """``seed``: an integer in [-2**63, 2**64), the generator's 64-bit key (seeds from 2**63 on are
        stored as the int64 with the same bits); ``device``: where the counter lives."""
        check_int(seed, "seed", -(2**63), 2**64)
        device = as_device(device)
        bits = seed - 2**64 if seed >= 2**63 else seed
        self.state = torch.tensor([bits, 0], dtype=torch.int64, device=device)

    def take(self, numel: int) -> torch.Tensor:
        """The rng tensor for a call drawing ``numel`` values (uniforms or normals; an integer >= 0)."""
        check_int(numel, "numel", 0)
        current = self.state.clone()
        self.state[1:].add_(_philox.blocks_for(numel))
        return current
