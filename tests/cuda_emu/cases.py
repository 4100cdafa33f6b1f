"""The case sets that run every emulated CUDA kernel against tts_fast's CPU ops.

Each set is a list of (name, check) pairs; ``check(emu)`` runs the emulated launch and compares it
with the CPU op (``torch.ops.tts_fast.*`` on CPU tensors), raising AssertionError (or the
emulator's EmulatorError) on a difference. What "the same" means follows each op's contract:

- resample: bit for bit (the kernel and the CPU op share resample_math.h's arithmetic; the CPU op's
  exp is ATen's, the emulator's glibc's: they could differ in a last bit, which would move an
  ancestor only if a target fell within an ulp of a cdf entry -- none of these cases does);
- renoise / ddim_step / langevin_step with a noise tensor: bit for bit in every dtype, aligned or
  not, 32- or 64-bit indexing; with the max_norm clip within 2 ulp (the kernel sums the gradient
  norm in its own order, ATen in another); with in-kernel Philox normals within 2 ulp of the
  output dtype (the device branch of philox.h calls logf / sincosf, here glibc's; the CPU op ATen's);
- grad-norm partial sums: within 1e-12 of float64 sums of the same chunks;
- ess / normalize_log_weights: within 1e-12 (float64) or 2e-6 (float32), special values exact;
- adaptive_increment: bit for bit (both kernels take every sum in the same 32-lane order and call
  the same glibc exp / log here).

    python tests/cuda_emu/cases.py LIBEMU SET     # run one set; exit 1 at the first failing case
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: _ops_helpers, and cuda_emu when run as a script

from _ops_helpers import log_weights as make_log_weights  # noqa: E402
from _ops_helpers import tempering_rows  # noqa: E402
from _ops_helpers import uniforms as make_uniforms  # noqa: E402
from _ops_helpers import vp_tables  # noqa: E402

import tts_fast  # noqa: E402,F401  (loads the op libraries)

ops = torch.ops.tts_fast
SCHEMES = ("multinomial", "stratified", "systematic", "residual", "ssp")
Case = tuple[str, Callable]


def _equal(got, want, what):
    if not torch.equal(got, want):
        bad = (got != want) & ~(got.isnan() & want.isnan()) if got.is_floating_point() else got != want
        raise AssertionError(f"{what}: {int(bad.sum())} of {got.numel()} entries differ")


def _close(got, want, what, rtol, atol=None):
    atol = rtol if atol is None else atol
    g, w = got.double(), want.double()
    same_special = torch.equal(torch.isnan(g), torch.isnan(w)) and torch.equal(torch.isinf(g), torch.isinf(w))
    finite = torch.isfinite(w)
    if not same_special or not torch.equal(g[torch.isinf(w)], w[torch.isinf(w)]):
        raise AssertionError(f"{what}: NaN/inf entries differ")
    err = (g[finite] - w[finite]).abs() - (atol + rtol * w[finite].abs())
    if err.numel() and float(err.max()) > 0:
        raise AssertionError(f"{what}: {int((err > 0).sum())} entries beyond rtol {rtol} (max excess {float(err.max()):.3g})")


# ----------------------------------------------------------------------------------------------
# resample


def resample_cases() -> list[Case]:
    cases = []
    for scheme in SCHEMES:
        for n in (1, 2, 5, 31, 32, 33, 64, 100, 1000):
            for lw_dtype in (torch.float32, torch.float64):
                for source in ("u32", "u64", "philox-host", "philox-device"):
                    seed = len(cases)
                    cases.append((f"resample/{scheme}/N{n}/{lw_dtype}/{source}",
                                  _resample_check(scheme, 6, n, lw_dtype, source, "random", seed)))
        # ties: integer weights and uniforms on a grid, so targets land exactly on cdf entries
        for n in (4, 8, 33):
            for kind in ("grid", "zero", "high"):
                cases.append((f"resample/{scheme}/N{n}/ties-{kind}", _resample_check(scheme, 5, n, torch.float64, "u64", kind, 7 * n)))
    return cases


def _resample_check(scheme, b, n, lw_dtype, source, kind, seed):
    def check(emu):
        if kind == "random":
            lw = make_log_weights(b, n, scale=2.0, special=0.1, dtype=lw_dtype, seed=seed)
        else:
            g = torch.Generator().manual_seed(seed)
            lw = torch.randint(0, 4, (b, n), generator=g).double().log().to(lw_dtype)  # weights 0..3
        if source.startswith("philox"):
            rng = torch.tensor([seed, 3 * seed + 1], dtype=torch.int64)
            got = emu.resample(lw, rng=rng, rng_mode=source.split("-")[1], scheme=scheme)
            want = ops.resample(lw, None, rng, scheme)
        else:
            u = make_uniforms(b, n, kind=kind, dtype=torch.float32 if source == "u32" else torch.float64, seed=seed + 1)
            got = emu.resample(lw, u, scheme=scheme)
            want = ops.resample(lw, u, None, scheme)
        _equal(got, want, "ancestors")
    return check


# ----------------------------------------------------------------------------------------------
# ess and normalize_log_weights


def weight_cases() -> list[Case]:
    cases = []
    for n in (1, 2, 31, 32, 33, 100, 1000):
        for dtype in (torch.float32, torch.float64):
            for scale in (1.0, 30.0):
                cases.append((f"weights/N{n}/{dtype}/scale{scale:g}", _weights_check(n, dtype, scale, len(cases))))
    return cases


def _weights_check(n, dtype, scale, seed):
    rtol = 1e-12 if dtype == torch.float64 else 2e-6

    def check(emu):
        lw = make_log_weights(9, n, scale=scale, special=0.05, dtype=dtype, seed=seed)
        _close(emu.ess(lw), ops.ess(lw), "ess", rtol)
        _close(emu.normalize_log_weights(lw), ops.normalize_log_weights(lw), "normalize_log_weights", rtol)
    return check


# ----------------------------------------------------------------------------------------------
# fused renoise / ddim_step / langevin_step

X_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# (3, 5): tiles span many samples and blocks of four straddle them; (4, 3): inner < 4; (2, 1025)
# and (5, 700): a tile straddles two samples; (1, 20001): 20 tiles and a tail; numel = 15, 12,
# 2050, 3500, 20001 covers every remainder mod 4.
SHAPES = ((3, 5), (4, 3), (2, 1025), (5, 700), (1, 20001))


def _ulp_rtol(dtype):
    return 2.0 * torch.finfo(dtype).eps if dtype in (torch.float16, torch.bfloat16) else 2e-6


def fused_cases() -> list[Case]:
    cases = []
    for dtype in X_DTYPES:
        for shape in SHAPES:
            for op, source, extra in (
                ("renoise", "noise", {}),
                ("ddim", "noise", {"eta": 0.7}),
                ("ddim", "none", {"eta": 0.0}),
                ("langevin", "noise", {}),
                ("langevin", "noise", {"max_norm": 1e9}),  # partials computed, no clip: exact
                ("langevin", "noise", {"max_norm": 1.0}),  # clips: the norm's summation order shows
                ("renoise", "philox-host", {}),
                ("langevin", "philox-device", {}),
            ):
                cases.append((f"fused/{op}/{dtype}/{shape}/{source}/{extra}", _fused_check(op, dtype, shape, source, extra, len(cases))))
        for shape in ((3, 5), (2, 1025)):
            for op, extra in (("renoise", {}), ("ddim", {"eta": 0.7})):
                cases.append((f"fused/{op}/{dtype}/{shape}/misaligned", _fused_check(op, dtype, shape, "noise", extra, len(cases), misaligned=True)))
            cases.append((f"fused/renoise/{dtype}/{shape}/wide-index", _fused_check("renoise", dtype, shape, "noise", {}, len(cases), wide=True)))
            cases.append((f"fused/ddim/{dtype}/{shape}/wide-index-philox", _fused_check("ddim", dtype, shape, "philox-host", {"eta": 0.5}, len(cases), wide=True)))
    return cases


def _fused_inputs(dtype, shape, seed, misaligned):
    g = torch.Generator().manual_seed(seed)
    numel = shape[0] * shape[1]

    def make():
        t = torch.randn(numel + 1, generator=g, dtype=torch.float64).to(dtype)
        # misaligned: a contiguous view one element into its storage (no vector loads possible)
        return (t[1:] if misaligned else t[:numel].clone()).view(shape)
    return make(), make(), make()


def _fused_check(op, dtype, shape, source, extra, seed, *, misaligned=False, wide=False):
    def check(emu):
        x, y, z = _fused_inputs(dtype, shape, seed, misaligned)
        b = shape[0]
        alpha, sigma = vp_tables(50)
        lo = torch.arange(b, dtype=torch.int64) * 7 % 40
        noise = z if source == "noise" else None
        rng = torch.tensor([seed + 11, 5 * seed], dtype=torch.int64) if source.startswith("philox") else None
        mode = source.split("-")[1] if rng is not None else "host"
        if op == "renoise":
            lf, lt = lo, lo + 5
            got = emu.renoise(x, lf, lt, alpha, sigma, noise=noise, rng=rng, rng_mode=mode, wide_index=wide)
            want = ops.renoise(x, lf, lt, alpha, sigma, noise, rng)
        elif op == "ddim":
            lf, lt = lo + 5, lo
            eta = extra["eta"]
            got = emu.ddim_step(x, y, lf, lt, alpha, sigma, eta=eta, noise=noise, rng=rng, rng_mode=mode, wide_index=wide)
            want = ops.ddim_step(x, y, lf, lt, alpha, sigma, eta, noise if eta > 0 else None, rng if eta > 0 else None)
        else:
            step = (torch.arange(b, dtype=torch.float64) + 1) * 0.01
            max_norm = extra.get("max_norm")
            got = emu.langevin_step(x, y, step, noise=noise, rng=rng, rng_mode=mode, max_norm=max_norm, wide_index=wide)
            want = ops.langevin_step(x, y, step, noise, rng, max_norm)
        if source == "noise" and extra.get("max_norm") != 1.0:
            _equal(got, want, op)
        elif source == "noise":
            _close(got, want, op, 1e-6 if dtype in (torch.float32, torch.float64) else _ulp_rtol(dtype))
        else:
            _close(got, want, op, _ulp_rtol(dtype))
    return check


def grad_norm_cases() -> list[Case]:
    cases = []
    for dtype in X_DTYPES:
        # one partial; two (20001 > 16384); four; and the 64-partial cap (chunks longer than 16384)
        for shape in ((3, 5), (2, 1025), (1, 20001), (2, 3 * 16384 + 7)) + (((1, 64 * 16384 + 100),) if dtype == torch.float32 else ()):
            cases.append((f"grad_norm/{dtype}/{shape}", _grad_norm_check(dtype, shape, len(cases))))
    return cases


def _grad_norm_check(dtype, shape, seed):
    def check(emu):
        g = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
        got = emu.grad_norm_partials(g)
        b, inner = shape
        p = min(64, max(1, -(-inner // 16384)))
        if got.shape != (b, p):
            raise AssertionError(f"grad_norm_partials: shape {tuple(got.shape)}, want {(b, p)}")
        chunk = -(-inner // p)
        sq = g.double() ** 2
        want = torch.stack([sq[:, i * chunk:min((i + 1) * chunk, inner)].sum(1) for i in range(p)], dim=1)
        _close(got, want, "grad_norm_partials", 1e-12)
    return check


# ----------------------------------------------------------------------------------------------
# adaptive_increment

def tempering_cases() -> list[Case]:
    cases = []
    for n in (1, 2, 7, 31, 32, 33, 64, 100, 257):
        for seed in (0, 1):
            cases.append((f"tempering/N{n}/seed{seed}", _tempering_check(n, seed)))
    cases.append(("tempering/invalid-rows", _tempering_invalid_check()))
    return cases


def _tempering_check(n, seed):
    def check(emu):
        args = tempering_rows(n, 100 * n + seed)
        _equal(emu.adaptive_increment(*args), ops.adaptive_increment(*args), "adaptive_increment")
    return check


def _tempering_invalid_check():
    def check(emu):
        log_w, base, key, alive, target, cap = tempering_rows(33, 5)
        bad = [0, 3, 5, 7]  # a NaN key, a +inf log-weight, a negative cap, a NaN target
        key[0, 4] = math.nan
        log_w[3, 2] = math.inf
        cap[5] = -1.0
        target[7] = math.nan
        got = emu.adaptive_increment(log_w, base, key, alive, target, cap)
        if not bool(got[bad].isnan().all()):
            raise AssertionError(f"adaptive_increment: rows outside the method must be NaN, got {got[bad].tolist()}")
        good = [i for i in range(log_w.shape[0]) if i not in bad]
        _equal(got[good], ops.adaptive_increment(*(t[good] for t in (log_w, base, key, alive, target, cap))), "valid rows")
    return check


CASE_SETS = {
    "resample": resample_cases,
    "weights": weight_cases,
    "fused": fused_cases,
    "grad_norm": grad_norm_cases,
    "tempering": tempering_cases,
}


def run_set(emu, name: str, *, stop_at_first: bool = False) -> tuple[int, list[str]]:
    """Runs a case set; returns (number of cases, 'case: error' for each failure)."""
    cases = CASE_SETS[name]()
    failures = []
    for case_name, check in cases:
        try:
            check(emu)
        except AssertionError as exc:
            failures.append(f"{case_name}: {exc}")
            if stop_at_first:
                break
    return len(cases), failures


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in CASE_SETS:
        print(f"usage: cases.py LIBEMU {{{','.join(CASE_SETS)}}}", file=sys.stderr)
        return 2
    from cuda_emu.emu import Emulator

    n, failures = run_set(Emulator(Path(argv[1]).resolve()), argv[2], stop_at_first=True)
    for f in failures:
        print(f"FAIL {f}")
    print(f"{argv[2]}: {n} cases, {len(failures)} failed at the first")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
