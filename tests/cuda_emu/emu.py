"""The emulated CUDA kernels (libemu.so, built by build.py) as functions of torch CPU tensors.

Each function lays out memory as the CUDA glue (csrc/cuda/register.cpp) does -- contiguous inputs,
outputs and scratch of the same sizes, the rng as kernel arguments (host) or as a pointer read
in-kernel (device) -- calls the project's launcher through ctypes, and returns the result. To
catch what the glue would never notice:
- scratch and outputs start poisoned (NaN, 0xA5.., -7), so nothing may rely on zeroed memory;
- every output sits between guard zones that are checked after the launch (a write past either
  end raises);
- anything the emulator reported (a barrier some threads never reach, a refused launch, a failed
  device assert) raises EmulatorError.
"""

from __future__ import annotations

import ctypes
from typing import Optional

import torch

DTYPES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}
SCHEMES = {"multinomial": 0, "stratified": 1, "systematic": 2, "residual": 3, "ssp": 4}
FUSED_OPS = {"renoise": 0, "ddim": 1, "langevin": 2}
GUARD = 64  # elements of guard zone on each side of an output
_POISON = {torch.int64: -7, torch.bool: True}

_p = ctypes.c_void_p
_i64 = ctypes.c_int64
_u64 = ctypes.c_uint64
_int = ctypes.c_int
_dbl = ctypes.c_double
_FUSED_ARGTYPES = [_int, _int, _p, _p, _p, _int, _p, _u64, _u64, _i64, _i64, _i64, _p, _p, _p, _p, _i64, _dbl, _p,
                   _int, _p, _i64, _dbl, _p]


class EmulatorError(AssertionError):
    """The emulator reported a fault, or a kernel wrote outside its output."""


def _ptr(t: Optional[torch.Tensor]):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


class _Guarded:
    """An output of ``shape`` inside a buffer with poisoned guard zones on both sides."""

    def __init__(self, shape, dtype):
        numel = 1
        for s in shape:
            numel *= int(s)
        poison = _POISON.get(dtype, float("nan"))
        self.buf = torch.full((numel + 2 * GUARD,), poison, dtype=dtype)
        self.sentinel = self.buf[:GUARD].clone()
        self.tensor = self.buf[GUARD:GUARD + numel].view(shape)
        self.numel = numel

    def check(self, what: str) -> torch.Tensor:
        for zone in (self.buf[:GUARD], self.buf[GUARD + self.numel:]):
            same = torch.equal(zone, self.sentinel) if self.buf.dtype in (torch.int64, torch.bool) else bool(zone.isnan().all())
            if not same:
                raise EmulatorError(f"{what}: the kernel wrote outside its output")
        return self.tensor


class Emulator:
    """The kernels of csrc/cuda, run by the CPU emulator."""

    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.emu_take_errors.restype = ctypes.c_char_p
        self.lib.emu_launches.argtypes = [ctypes.c_char_p]
        self.lib.emu_launches.restype = _i64
        self.lib.emu_resample.argtypes = [_p, _int, _p, _int, _p, _u64, _u64, _i64, _i64, _int, _p, _p, _p, _p]
        self.lib.emu_fused.argtypes = _FUSED_ARGTYPES
        self.lib.emu_fused_wide_index.argtypes = _FUSED_ARGTYPES
        self.lib.emu_grad_norm_partials_count.argtypes = [_i64, _i64]
        self.lib.emu_grad_norm_partials_count.restype = _i64
        self.lib.emu_grad_norm_partials.argtypes = [_p, _int, _i64, _i64, _p]
        self.lib.emu_ess.argtypes = [_p, _int, _i64, _i64, _p]
        self.lib.emu_normalize.argtypes = [_p, _int, _i64, _i64, _p]
        self.lib.emu_adaptive_increment.argtypes = [_p, _p, _p, _p, _p, _p, _i64, _i64, _p]
        self.take_errors()

    def take_errors(self) -> str:
        """What the emulator reported since the last call ('' if nothing)."""
        return self.lib.emu_take_errors().decode()

    def launches(self, kernel: str) -> int:
        """How many times the kernel named ``kernel`` (no template arguments) was launched."""
        return int(self.lib.emu_launches(kernel.encode()))

    def _done(self, what: str) -> None:
        errors = self.take_errors()
        if errors:
            raise EmulatorError(f"{what}: {errors}")

    @staticmethod
    def _rng(rng: Optional[torch.Tensor], rng_mode: str, keep: list):
        """(device pointer, seed, offset) as register.cpp's rng_arg passes them."""
        if rng is None:
            return None, 0, 0
        if rng_mode == "device":
            keep.append(rng.contiguous())
            return _ptr(keep[-1]), 0, 0
        if rng_mode != "host":
            raise ValueError(f"rng_mode must be 'host' or 'device', got {rng_mode!r}")
        seed, offset = (int(v) & (2**64 - 1) for v in rng.tolist())
        return None, seed, offset

    def resample(self, log_weights, uniforms=None, *, rng=None, rng_mode="host", scheme="systematic"):
        """launch_resample: [B, N] log-weights -> [B, N] int64 ancestors."""
        lw = log_weights.contiguous()
        b, n = lw.shape
        out = _Guarded((b, n), torch.int64)
        ws_w = torch.full((b, n), float("nan"), dtype=torch.float64)
        keep = []
        u = None if uniforms is None else uniforms.contiguous()
        ws_u = torch.full((b, n), float("nan"), dtype=torch.float64) if u is None else None
        ws_i = torch.full((b, n), -7, dtype=torch.int64) if scheme in ("residual", "ssp") else None
        dev, seed, offset = self._rng(rng, rng_mode, keep)
        self.lib.emu_resample(
            _ptr(lw), DTYPES[lw.dtype], _ptr(u), DTYPES[u.dtype] if u is not None else 2, dev, seed, offset, b, n,
            SCHEMES[scheme], _ptr(ws_w), _ptr(ws_i), _ptr(ws_u), _ptr(out.tensor),
        )
        self._done(f"resample {scheme} {tuple(lw.shape)}")
        return out.check("resample")

    def _fused(self, op, x, y, *, noise, rng, rng_mode, levels=None, eta=0.0, step_size=None, max_norm=None,
               wide_index=False):
        keep = []
        xc = x.contiguous()
        b = xc.shape[0]
        numel = xc.numel()
        inner = numel // b if b > 0 else 0
        yc = None if y is None else y.contiguous()
        zc = None if noise is None else noise.contiguous()
        dev, seed, offset = self._rng(rng, rng_mode, keep)
        lf = lt = alpha = sigma = None
        if levels is not None:
            lf, lt, alpha, sigma = (t.contiguous() for t in levels)
        partials, n_partials = None, 0
        if max_norm is not None and numel > 0:
            partials = self.grad_norm_partials(yc).reshape(-1)
            n_partials = partials.numel() // b
        out = _Guarded(xc.shape, xc.dtype)
        step = None if step_size is None else step_size.contiguous()
        fn = self.lib.emu_fused_wide_index if wide_index else self.lib.emu_fused
        fn(
            FUSED_OPS[op], DTYPES[xc.dtype], _ptr(xc), _ptr(yc), _ptr(zc), int(rng is not None), dev, seed, offset,
            numel, b, inner, _ptr(lf), _ptr(lt), _ptr(alpha), _ptr(sigma), 0 if alpha is None else alpha.numel(),
            float(eta), _ptr(step), DTYPES[step.dtype] if step is not None else 2, _ptr(partials), n_partials,
            float(max_norm or 0.0), _ptr(out.tensor),
        )
        self._done(f"{op} {tuple(xc.shape)} {xc.dtype}")
        return out.check(op)

    def renoise(self, x, level_from, level_to, alpha, sigma, *, noise=None, rng=None, rng_mode="host", wide_index=False):
        """launch_fused, renoise."""
        return self._fused("renoise", x, None, noise=noise, rng=rng, rng_mode=rng_mode,
                           levels=(level_from, level_to, alpha, sigma), wide_index=wide_index)

    def ddim_step(self, x, x0_hat, level_from, level_to, alpha, sigma, *, eta, noise=None, rng=None, rng_mode="host",
                  wide_index=False):
        """launch_fused, ddim (no random source when eta = 0, as the glue)."""
        if eta == 0:
            noise, rng = None, None
        return self._fused("ddim", x, x0_hat, noise=noise, rng=rng, rng_mode=rng_mode,
                           levels=(level_from, level_to, alpha, sigma), eta=eta, wide_index=wide_index)

    def langevin_step(self, x, grad, step_size, *, noise=None, rng=None, rng_mode="host", max_norm=None,
                      wide_index=False):
        """launch_grad_norm_partials (with max_norm), then launch_fused, langevin."""
        return self._fused("langevin", x, grad, noise=noise, rng=rng, rng_mode=rng_mode, step_size=step_size,
                           max_norm=max_norm, wide_index=wide_index)

    def grad_norm_partials(self, grad) -> torch.Tensor:
        """launch_grad_norm_partials: [B, ...] -> [B, P] float64 partial sums of grad^2."""
        g = grad.contiguous()
        b = g.shape[0]
        inner = g.numel() // b
        p = int(self.lib.emu_grad_norm_partials_count(b, inner))
        out = _Guarded((b, p), torch.float64)
        self.lib.emu_grad_norm_partials(_ptr(g), DTYPES[g.dtype], b, inner, _ptr(out.tensor))
        self._done(f"grad_norm_partials {tuple(g.shape)}")
        return out.check("grad_norm_partials")

    def ess(self, log_weights) -> torch.Tensor:
        """launch_ess: [B, N] -> [B]."""
        lw = log_weights.contiguous()
        out = _Guarded((lw.shape[0],), lw.dtype)
        self.lib.emu_ess(_ptr(lw), DTYPES[lw.dtype], lw.shape[0], lw.shape[1], _ptr(out.tensor))
        self._done(f"ess {tuple(lw.shape)}")
        return out.check("ess")

    def normalize_log_weights(self, log_weights) -> torch.Tensor:
        """launch_normalize: [B, N] -> [B, N]."""
        lw = log_weights.contiguous()
        out = _Guarded(tuple(lw.shape), lw.dtype)
        self.lib.emu_normalize(_ptr(lw), DTYPES[lw.dtype], lw.shape[0], lw.shape[1], _ptr(out.tensor))
        self._done(f"normalize {tuple(lw.shape)}")
        return out.check("normalize")

    def adaptive_increment(self, log_w, base, key, alive, target, cap) -> torch.Tensor:
        """launch_adaptive_increment: [B, N] rows, [B] target and cap -> [B] float64."""
        t = [v.contiguous() for v in (log_w, base, key, alive, target, cap)]
        b, n = t[0].shape
        out = _Guarded((b,), torch.float64)
        self.lib.emu_adaptive_increment(*map(_ptr, t), b, n, _ptr(out.tensor))
        self._done(f"adaptive_increment {(b, n)}")
        return out.check("adaptive_increment")
