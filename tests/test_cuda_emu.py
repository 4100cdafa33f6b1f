"""The shipped CUDA kernels (csrc/cuda/*.cu, unmodified) run on the CPU under an emulation of the
CUDA execution model (tests/cuda_emu/), compared with the CPU ops; the emulator's own behaviour;
kernel mutants that must be caught; and the sanitizer builds (ASan + UBSan, TSan, memcheck).

What this cannot answer waits for a GPU (docs/gpu.md): device libm's last bits, streams and
CUDA-graph capture (register.cpp is not compiled here), the memory model beyond barriers, timing.
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tts_fast import ops

from cuda_emu.build import build
from cuda_emu.cases import CASE_SETS, run_set
from cuda_emu.emu import Emulator, EmulatorError, _Guarded
from cuda_emu.hostify import HostifyError, hostify
from cuda_emu.mutants import KERNEL_MUTANTS, REVERTED_FIXES

HERE = Path(__file__).resolve().parent
EMU = HERE / "cuda_emu"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator is compiled with g++"),
    pytest.mark.skipif(ops.backend("cpu") != "cpp", reason="the emulated kernels are compared with the compiled CPU ops"),
]
CSRC_CUDA = HERE.parent / "csrc" / "cuda"


@pytest.fixture(scope="session")
def emu_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("emu_cache")


@pytest.fixture(scope="session")
def emu(tmp_path_factory, emu_cache):
    return Emulator(build(tmp_path_factory.mktemp("emu"), cache=emu_cache))


@pytest.fixture(scope="session")
def results(emu):
    """Every case set run once: {set: (cases, failures)}."""
    return {name: run_set(emu, name) for name in CASE_SETS}


@pytest.mark.parametrize("case_set", list(CASE_SETS))
def test_emulated_kernels_match_the_cpu_ops(results, case_set):
    n, failures = results[case_set]
    print(f"{case_set}: {n} cases, {len(failures)} failed")
    assert n >= 15
    assert not failures, "\n".join(failures[:20])


def test_every_kernel_of_the_sources_ran(results, emu):
    """Each __global__ function in csrc/cuda was launched by the case sets (a new kernel needs cases)."""
    names = set()
    for cu in CSRC_CUDA.glob("*.cu"):
        names |= set(re.findall(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(", cu.read_text()))
    assert len(names) >= 6
    missing = sorted(n for n in names if emu.launches(n) == 0)
    assert not missing, f"kernels no case launched: {missing}"


def test_wide_index_instance_runs(emu):
    """The 64-bit-index instance of the fused kernel (taken from 2^31 elements on) gives the same bits."""
    x = torch.randn(3, 1025, dtype=torch.float32)
    z = torch.randn(3, 1025, dtype=torch.float32)
    lf = torch.tensor([0, 3, 7])
    alpha, sigma = torch.linspace(1, 0.1, 10, dtype=torch.float64), torch.linspace(0.01, 1, 10, dtype=torch.float64)
    want = ops.renoise(x, lf, lf + 2, alpha, sigma, noise=z)
    assert torch.equal(emu.renoise(x, lf, lf + 2, alpha, sigma, noise=z, wide_index=True), want)
    assert torch.equal(emu.renoise(x, lf, lf + 2, alpha, sigma, noise=z), want)


# ----------------------------------------------------------------------------------------------
# the checks are not vacuous: hand-made kernel mutants are caught


@pytest.mark.parametrize("mutant", list(KERNEL_MUTANTS))
def test_kernel_mutant_is_caught(mutant, tmp_path, emu_cache):
    what, mutations, case_set = KERNEL_MUTANTS[mutant]
    lib = build(tmp_path, mutations=mutations, cache=emu_cache)
    # in a subprocess: a mutant may crash its process
    proc = subprocess.run([sys.executable, str(EMU / "cases.py"), str(lib), case_set], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0, f"mutant {mutant} ({what}) survived the {case_set} cases:\n{proc.stdout[-2000:]}"
    assert "FAIL" in proc.stdout or proc.returncode < 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    print(f"{mutant}: {proc.stdout.strip().splitlines()[0][:300]}")


def test_mutations_name_text_that_exists():
    """A mutant whose text no longer matches the source would silently test nothing: build refuses it."""
    for _, mutations, *_ in list(KERNEL_MUTANTS.values()) + list(REVERTED_FIXES.values()):
        for rel, edits in mutations.items():
            text = (HERE.parent / "csrc" / rel).read_text()
            for old, _new in edits:
                assert text.count(old) == 1, f"{rel}: {old!r}"


# ----------------------------------------------------------------------------------------------
# the emulator itself


def _fn(emu, name, argtypes):
    f = getattr(emu.lib, name)
    f.argtypes = argtypes
    return f


def test_shuffles_exchange_lane_values(emu):
    run = _fn(emu, "selftest_shuffle", [ctypes.c_int, ctypes.c_void_p])
    for src in (0, 7, 31):
        out = torch.full((64,), -1, dtype=torch.int64)
        run(src, ctypes.c_void_p(out.data_ptr()))
        assert emu.take_errors() == ""
        assert out[0::2].tolist() == [100 * src] * 32  # __shfl_sync broadcasts lane src
        assert out[1::2].tolist() == [100 * sum(range(32))] * 32  # the xor butterfly sums every lane


def test_shared_memory_and_syncthreads_across_blocks(emu):
    run = _fn(emu, "selftest_shared", [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p])
    blocks, threads = 3, 96
    out = torch.full((blocks * threads,), -1, dtype=torch.int64)
    run(blocks, threads, ctypes.c_void_p(out.data_ptr()))
    assert emu.take_errors() == ""
    t = torch.arange(threads)
    want = torch.cat([7 * ((t + 1) % threads) + b for b in range(blocks)])
    assert torch.equal(out, want)


def test_dynamic_shared_memory_is_poisoned_and_exactly_aligned(emu):
    run = _fn(emu, "selftest_dynamic_smem", [ctypes.c_void_p, ctypes.c_void_p])
    first = torch.zeros(8, dtype=torch.uint8)
    where = torch.zeros(1, dtype=torch.int64)
    run(ctypes.c_void_p(first.data_ptr()), ctypes.c_void_p(where.data_ptr()))
    assert emu.take_errors() == ""
    assert first.tolist() == [0xA5] * 8
    assert int(where) % 16 == 0 and int(where) % 32 == 16  # __align__(16): 16-aligned, and no more


def test_a_barrier_some_threads_never_reach_is_reported(emu):
    _fn(emu, "selftest_early_return_syncthreads", [])()
    assert "__syncthreads" in emu.take_errors()
    out = torch.zeros(32, dtype=torch.float64)
    _fn(emu, "selftest_early_return_shuffle", [ctypes.c_void_p])(ctypes.c_void_p(out.data_ptr()))
    assert "returned from the kernel while others waited" in emu.take_errors()


def test_a_full_mask_in_a_partial_warp_is_reported(emu):
    run = _fn(emu, "selftest_any_block_shuffle", [ctypes.c_uint, ctypes.c_void_p])
    out = torch.zeros(64, dtype=torch.float64)
    run(64, ctypes.c_void_p(out.data_ptr()))
    assert emu.take_errors() == "" and out.eq(2.0).all()
    run(48, ctypes.c_void_p(out.data_ptr()))
    assert "warp of 16 threads" in emu.take_errors()


@pytest.mark.parametrize("config, why", [
    ((1, 1, 1, 1025, 1, 1, 0), "more than 1024 threads"),
    ((1, 1, 1, 32, 32, 2, 0), "more than 1024 threads"),
    ((1, 1, 1, 1, 1, 65, 0), "block.z > 64"),
    ((1, 65536, 1, 32, 1, 1, 0), "a grid beyond"),
    ((1, 1, 65536, 32, 1, 1, 0), "a grid beyond"),
    ((0, 1, 1, 32, 1, 1, 0), "an empty grid"),
    ((1, 1, 1, 32, 1, 1, 48 * 1024 + 1), "48 KiB"),
])
def test_launches_a_gpu_refuses_are_refused(emu, config, why):
    run = _fn(emu, "selftest_launch", [ctypes.c_uint] * 6 + [ctypes.c_uint64])
    run(*config)
    assert why in emu.take_errors()


def test_largest_legal_launch_runs(emu):
    run = _fn(emu, "selftest_launch", [ctypes.c_uint] * 6 + [ctypes.c_uint64])
    run(2, 1, 1, 1024, 1, 1, 48 * 1024)
    assert emu.take_errors() == ""


def test_device_asserts_are_reported(emu):
    run = _fn(emu, "selftest_assert", [ctypes.c_int])
    run(0)
    assert emu.take_errors() == ""
    run(1)
    assert "device-side assert failed: value == 0" in emu.take_errors()


def test_half_and_bfloat16_conversions_round_like_torch(emu):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([
        torch.randn(4000, generator=g) * 10 ** torch.randint(-9, 6, (4000,), generator=g).float(),
        torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 65504.0, 65520.0, 65519.99, 6e-8, 5.9e-8, 3e-5, 1e-40, 3.4e38]),
        torch.tensor([1 + k * 2.0**-11 for k in range(8)]),  # halfway cases of float16
    ])
    half, bf16 = torch.empty_like(x), torch.empty_like(x)
    run = _fn(emu, "selftest_convert", [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p])
    run(ctypes.c_void_p(x.data_ptr()), x.numel(), ctypes.c_void_p(half.data_ptr()), ctypes.c_void_p(bf16.data_ptr()))
    assert emu.take_errors() == ""
    torch.testing.assert_close(half, x.half().float(), rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(bf16, x.bfloat16().float(), rtol=0, atol=0, equal_nan=True)


def test_guard_zones_catch_writes_past_an_output(emu):
    """The wrapper's own check: a kernel writing past its output raises (shown with a too-short N)."""
    lw = torch.zeros(2, 8, dtype=torch.float64)
    u = torch.rand(2, 8, dtype=torch.float64)
    emu.resample(lw, u, scheme="systematic")
    g = _Guarded((4,), torch.int64)
    g.buf[-1] = 3  # a stray write after the end
    with pytest.raises(EmulatorError, match="outside its output"):
        g.check("resample")


# ----------------------------------------------------------------------------------------------
# the source pass


def test_hostify_rewrites_launches_and_dynamic_shared_memory():
    src = (
        "extern __shared__ __align__(16) unsigned char smem[];\n"
        "extern __shared__ float plain[];\n"
        "k<<<g, b>>>(x);\n"
        "t<float, int><<<static_cast<unsigned>(n),\n   256, s, stream>>>(a, b);\n"
    )
    out, n = hostify(src, "x.cu")
    assert n == 2
    assert out.startswith('#line 1 "x.cu"\n')
    assert "unsigned char* smem = reinterpret_cast<unsigned char*>(::emu::dynamic_smem(16));" in out
    assert "float* plain = reinterpret_cast<float*>(::emu::dynamic_smem(alignof(float)));" in out
    assert '::emu::launch_named([](auto... a) { k(a...); }, "k", g, b)(x);' in out
    # a launch over two lines keeps its line count: the arguments move to the launch's last line
    assert '"t<float, int>", static_cast<unsigned>(n), 256, s, stream)(\na, b);' in out
    assert out.count("\n") == src.count("\n") + 1  # line numbers kept


def test_hostify_refuses_what_it_cannot_rewrite():
    with pytest.raises(HostifyError, match="x.cu:2"):
        hostify("ok();\n(f())<<<1, 1>>>();\n", "x.cu")


def test_every_shipped_cu_file_is_rewritten():
    for cu in CSRC_CUDA.glob("*.cu"):
        _, n = hostify(cu.read_text(), str(cu))
        assert n == cu.read_text().count("<<<") and n >= 1


# ----------------------------------------------------------------------------------------------
# sanitizers


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize("tool", ["address", "thread", "memcheck"])
def test_sanitizer_finds_nothing_and_flags_each_reverted_fix(tool, tmp_path, emu_cache):
    from cuda_emu.sanitize import missing_tools, run

    if missing_tools():
        pytest.skip(f"this machine lacks {missing_tools()}")
    clean = run(tool, tmp_path / "clean", cache=emu_cache)
    print(f"{tool}: {clean.summary}, {len(clean.findings)} findings, {clean.seconds:.0f} s")
    assert clean.clean, "\n".join(clean.findings[:10]) or f"exit status {clean.returncode}"
    assert clean.summary.startswith("426 cases")
    for name, (what, mutations, fix_tool, flt) in REVERTED_FIXES.items():
        if fix_tool == tool:
            r = run(tool, tmp_path / name, mutations=mutations, case_filter=flt, cache=emu_cache)
            assert not r.clean, f"{tool} no longer flags {name}: {what}"


# ----------------------------------------------------------------------------------------------
# the device-side argument checks (the CPU ops raise before any work; the kernels assert)


def test_kernels_assert_on_values_the_cpu_ops_refuse(emu):
    """What the host cannot check on a GPU without a sync, the kernels assert in-kernel."""
    lw = torch.zeros(3, 5, dtype=torch.float64)
    u = torch.rand(3, 5, dtype=torch.float64)
    emu.resample(lw, u, scheme="stratified")
    bad_u = u.clone()
    bad_u[2, 4] = 1.0
    with pytest.raises(EmulatorError, match=r"uniforms must lie in \[0, 1\)"):
        emu.resample(lw, bad_u, scheme="stratified")
    x = torch.randn(2, 7)
    ab = torch.linspace(0.999, 0.01, 10, dtype=torch.float64)
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    up, down = torch.tensor([1, 3]), torch.tensor([2, 9])
    emu.renoise(x, up, down, alpha, sigma, noise=torch.randn(2, 7))
    with pytest.raises(EmulatorError, match="renoise needs level_to at least as noisy"):
        emu.renoise(x, down, up, alpha, sigma, noise=torch.randn(2, 7))
    emu.ddim_step(x, x, down, up, alpha, sigma, eta=0.5, noise=torch.randn(2, 7))
    with pytest.raises(EmulatorError, match="ddim_step at most as noisy"):
        emu.ddim_step(x, x, up, down, alpha, sigma, eta=0.5, noise=torch.randn(2, 7))
    with pytest.raises(EmulatorError, match="level_from/level_to must lie in"):
        emu.renoise(x, up, down + 1, alpha, sigma, noise=torch.randn(2, 7))
    emu.langevin_step(x, x, torch.tensor([0.1, 0.0]), noise=torch.randn(2, 7))
    for step in (-0.1, math.nan, math.inf):
        with pytest.raises(EmulatorError, match="step_size must be finite and >= 0"):
            emu.langevin_step(x, x, torch.tensor([0.1, step]), noise=torch.randn(2, 7))
