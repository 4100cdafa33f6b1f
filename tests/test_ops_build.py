"""How the ops are built and loaded: the compiled schemas equal ops.SCHEMAS, build_info's keys,
the op libraries loaded from the package, a _C free of torch, the reference fallback
(TTS_FAST_BACKEND=reference), the message for a torch below the minimum, and the CMake build of
the same op library (loaded with torch.ops.load_library)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from tts_fast import ops
from tts_fast import _reference as ref

from _ops_helpers import log_weights, require_compiled_ops, uniforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def compiled():
    """The test is about tts_fast._C: fails when it is not built, unless TTS_FAST_BACKEND=reference."""
    require_compiled_ops()


def _run_python(code: str, env_extra: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=300)


def test_compiled_schemas_equal_python_schemas(compiled):
    for name, schema in ops.SCHEMAS.items():
        assert str(getattr(torch.ops.tts_fast, name).default._schema) == f"tts_fast::{schema}"


def test_build_info_keys(compiled):
    info = ops._C.build_info()
    assert {"cpu", "cuda", "cuda_archs", "torch_version", "cuda_version", "min_torch", "compiler"} <= set(info)
    assert info["cpu"] is True and isinstance(info["cuda"], bool)
    assert isinstance(info["cuda_archs"], list) and all(isinstance(a, str) for a in info["cuda_archs"])
    # Built against one torch (a wheel: 2.13.0), it serves any torch from the minimum on.
    assert info["min_torch"] == ops.MIN_TORCH
    assert ops._release(info["torch_version"]) >= ops._release(info["min_torch"])
    assert ops._release(torch.__version__) >= ops._release(info["min_torch"])
    assert info["cuda"] == bool(info["cuda_archs"]) and (info["cuda_version"] is None) == (not info["cuda"])
    assert ops.backend("cpu") == "cpp"
    assert ops.backend("cuda") == ("cuda" if info["cuda"] else "reference")
    from tts_fast import _build_info

    assert _build_info.TORCH_VERSION == info["torch_version"]
    assert _build_info.MIN_TORCH == info["min_torch"]
    assert _build_info.CUDA_VERSION == info["cuda_version"]
    assert list(_build_info.CUDA_ARCHS) == info["cuda_archs"]


def test_reference_backend_by_env():
    r = _run_python(
        """
        import torch, tts_fast
        from tts_fast import ops
        assert ops.backend() == "reference" and ops.backend("cuda") == "reference", ops.backend()
        assert ops._C is None and ops.build_info()["backend"] == "reference"
        lw = torch.randn(3, 5, dtype=torch.float64)
        out = ops.resample(lw, torch.rand(3, 5, dtype=torch.float64), scheme="ssp")
        assert out.shape == (3, 5) and out.dtype == torch.int64
        for name in ops.SCHEMAS:
            getattr(torch.ops.tts_fast, name)
        print("ok")
        """,
        {"TTS_FAST_BACKEND": "reference"},
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


_WITHOUT_C = """
import importlib.abc, sys

class HideCompiledOps(importlib.abc.MetaPathFinder):
    # What a checkout that was never built looks like to tts_fast.ops.
    def find_spec(self, name, path=None, target=None):
        if name in ("tts_fast._C", "tts_fast._build_info"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideCompiledOps())
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rs", "tests/test_ops.py::test_weights_ops_empty_and_noncontiguous[cpu]"]))
"""


def test_parity_tests_fail_without_the_compiled_ops():
    """Without tts_fast._C a kernel-vs-reference test fails (it would compare the reference with
    itself), and is skipped, not passed, in an explicit reference-only run."""
    r = _run_python(_WITHOUT_C, {"TTS_FAST_BACKEND": ""})
    assert r.returncode == 1 and "tts_fast._C is not built" in r.stdout, (r.stdout[-3000:], r.stderr[-3000:])
    r = _run_python(_WITHOUT_C, {"TTS_FAST_BACKEND": "reference"})
    assert r.returncode == 0 and "1 skipped" in r.stdout and "reference-only run" in r.stdout, (r.stdout[-3000:], r.stderr[-3000:])


def test_op_libraries_are_loaded_from_the_package(compiled):
    """The schemas and kernels come from tts_fast/_ops.abi3.so (and _ops_cuda.abi3.so when built),
    loaded with torch.ops.load_library."""
    loaded = {os.path.realpath(p) for p in torch.ops.loaded_libraries}
    assert os.path.realpath(ops._library_path("_ops")) in loaded
    cuda_lib = os.path.realpath(ops._library_path("_ops_cuda"))
    assert (cuda_lib in loaded) == (ops.backend("cuda") == "cuda")


def test_build_info_module_needs_no_torch(compiled):
    """tts_fast._C (build facts) loads in a process where torch cannot be imported and maps no torch
    library: it is tied to the CPython version only, not to a torch version."""
    r = _run_python(
        f"""
        import importlib.util, sys
        sys.modules["torch"] = None  # any import of torch now fails
        spec = importlib.util.spec_from_file_location("tts_fast._C", {ops._C.__file__!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        info = mod.build_info()
        maps = open("/proc/self/maps").read()
        assert "libtorch" not in maps and "libc10" not in maps, "a torch library was loaded"
        print("ok", info["torch_version"])
        """,
    )
    assert r.returncode == 0 and r.stdout.startswith("ok "), (r.stdout, r.stderr)


def test_torch_below_the_minimum_message():
    """With a build that asks for a newer torch than the installed one, importing the ops fails
    with the installed and the required versions (a real old torch is not needed to see it)."""
    r = _run_python(
        """
        import sys, types
        fake = types.ModuleType("tts_fast._build_info")
        fake.TORCH_VERSION, fake.MIN_TORCH, fake.CUDA_VERSION, fake.CUDA_ARCHS, fake.BACKENDS = (
            "99.0.0", "99.0", None, [], ("cpu",))
        sys.modules["tts_fast._build_info"] = fake
        try:
            import tts_fast.ops
        except ImportError as exc:
            print("IMPORTERROR:", exc)
        else:
            print("no error")
        """,
        {"TTS_FAST_BACKEND": ""},
    )
    out = r.stdout
    assert "IMPORTERROR:" in out, (out, r.stderr)
    assert "need torch >= 99.0" in out and f"but torch {torch.__version__} is installed" in out
    assert "pip install 'torch>=99.0'" in out


def _cmake_prefix() -> str:
    return torch.utils.cmake_prefix_path


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_library_cpu(tmp_path):
    """Build tts_fast_ops with CMake (CPU only), load it with torch.ops.load_library in a fresh
    process (no tts_fast import there: it would define the library twice) and compare resample
    with the reference."""
    build = tmp_path / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run(
        ["cmake", "-S", ROOT, "-B", str(build), *gen, "-DTTS_FAST_CUDA=OFF", "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_PREFIX_PATH={_cmake_prefix()}"],
        capture_output=True, text=True, timeout=600,
    )
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    bld = subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)], capture_output=True,
                         text=True, timeout=1200)
    assert bld.returncode == 0, bld.stdout[-3000:] + bld.stderr[-3000:]
    libs = [p for p in build.iterdir() if p.name.startswith("libtts_fast_ops")]
    assert libs, list(build.iterdir())

    lw = log_weights(8, 33, scale=3.0, special=0.1, seed=11)
    u = uniforms(8, 33, seed=12)
    inputs = tmp_path / "inputs.pt"
    torch.save({"lw": lw, "u": u}, inputs)
    outputs = tmp_path / "outputs.pt"
    r = _run_python(
        f"""
        import torch
        torch.ops.load_library({str(libs[0])!r})
        d = torch.load({str(inputs)!r})
        out = {{s: torch.ops.tts_fast.resample(d["lw"], d["u"], None, s)
               for s in ("multinomial", "stratified", "systematic", "residual", "ssp")}}
        out["ess"] = torch.ops.tts_fast.ess(d["lw"])
        torch.save(out, {str(outputs)!r})
        """,
        cwd=str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    got = torch.load(outputs)
    for scheme in ref.SCHEMES:
        assert torch.equal(got[scheme], ref.resample(lw, u, None, scheme)), scheme
    torch.testing.assert_close(got["ess"], ref.ess(lw))
