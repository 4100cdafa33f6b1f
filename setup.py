"""Build of tts_fast: the package plus its compiled ops (csrc/).

Three shared objects, none tied to one torch version:
  tts_fast/_ops.abi3.so       op schemas and C++ (CPU) kernels, on the LibTorch stable ABI
                              (TORCH_TARGET_VERSION = MIN_TORCH): loads in every torch >= 2.10
  tts_fast/_ops_cuda.abi3.so  CUDA kernels, same ABI (CUDA runtime linked statically)
  tts_fast/_C.<python>.so     pybind11 module that reports how the ops were built; it includes no
                              torch header, so it depends on the CPython version only
tts_fast.ops loads the op libraries with torch.ops.load_library. A wheel built here therefore
serves every torch >= MIN_TORCH of its platform and CPython version.

The C++ ops are always built. The CUDA ops are built when nvcc is found and torch is a CUDA
build (torch.version.cuda) -- never decided by torch.cuda.is_available(), since wheel builders and
CI machines often have no GPU. Environment:
  TTS_FAST_CUDA=0|1      force the CUDA ops off, or on (1 fails clearly when impossible)
  CUDA_HOME / CUDA_PATH  the CUDA toolkit (default: /usr/local/cuda, or the one nvcc belongs to)
  TORCH_CUDA_ARCH_LIST   default "8.0;8.6;8.9;9.0+PTX"
  DEBUG=1                -O0 -g (asserts on) instead of -O3
  MAX_JOBS=N             parallel compile jobs (ninja)
The build writes tts_fast/_build_info.py next to the extensions (torch and CUDA versions it was
built against, the minimum torch it serves; tts_fast.ops refuses a torch below that minimum).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys

from setuptools import Extension, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;8.6;8.9;9.0+PTX"
# Oldest torch the op libraries serve: the stable-ABI version they target (TORCH_TARGET_VERSION).
MIN_TORCH = (2, 10)


def _version() -> str:
    with open(os.path.join(ROOT, "tts_fast", "__init__.py"), encoding="utf-8") as f:
        match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', f.read(), re.M)
    if not match:
        raise RuntimeError("tts_fast/__init__.py defines no __version__")
    return match.group(1)


def _is_cuda_home(path: str | None) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, "bin", "nvcc")) and os.path.isfile(
        os.path.join(path, "include", "cuda_runtime.h")
    )


def _find_cuda_home() -> str | None:
    """A CUDA toolkit with nvcc and headers: $CUDA_HOME/$CUDA_PATH, the one nvcc belongs to, /usr/local/cuda."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates += [os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), os.path.dirname(os.path.dirname(nvcc))]
    candidates.append("/usr/local/cuda")
    for c in candidates:
        if _is_cuda_home(c):
            return os.path.realpath(c)
    return None


def _want_cuda(torch_cuda: str | None) -> tuple[bool, str | None]:
    flag = os.environ.get("TTS_FAST_CUDA", "").strip()
    if flag not in ("", "0", "1"):
        raise RuntimeError(f"TTS_FAST_CUDA must be 0, 1 or unset, got {flag!r}")
    if flag == "0":
        return False, None
    home = _find_cuda_home()
    if flag == "1":
        if torch_cuda is None:
            raise RuntimeError("TTS_FAST_CUDA=1 but the installed torch is not a CUDA build (torch.version.cuda is None)")
        if home is None:
            raise RuntimeError("TTS_FAST_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to a directory with bin/nvcc")
    return (home is not None and torch_cuda is not None), home


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, ...) of a version string such as '2.14.1+cu130' or '2.10.0a0'."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def _hex(s: str) -> str:
    """A string as hex digits: one preprocessor number, immune to shell quoting (see csrc/module.cpp)."""
    return s.encode().hex() or "0"


import torch  # noqa: E402  (after the helpers: they must not depend on it)

if _release(torch.__version__) < MIN_TORCH:
    raise RuntimeError(
        f"building tts_fast needs torch >= {'.'.join(map(str, MIN_TORCH))} (the LibTorch stable ABI that its ops "
        f"target); torch {torch.__version__} is installed"
    )

WITH_CUDA, CUDA_HOME = _want_cuda(torch.version.cuda)
if WITH_CUDA:
    # torch.utils.cpp_extension reads both at import time.
    os.environ["CUDA_HOME"] = CUDA_HOME
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)

from torch.utils.cpp_extension import BuildExtension, CppExtension  # noqa: E402

DEBUG = os.environ.get("DEBUG", "0") == "1"
MIN_TORCH_STR = ".".join(map(str, MIN_TORCH))
ARCHS = os.environ.get("TORCH_CUDA_ARCH_LIST", "") if WITH_CUDA else ""
CUDA_VERSION = torch.version.cuda if WITH_CUDA else ""


def _pybind11_include() -> str:
    """pybind11's headers: the pybind11 package, else the copy torch ships (a plain
    `pip install --no-build-isolation .` next to torch has no pybind11 package)."""
    try:
        import pybind11
    except ImportError:
        return os.path.join(os.path.dirname(torch.__file__), "include")
    return pybind11.get_include()


def _extensions():
    # DEBUG: no optimisation, debug info, and assert() on (Python's CFLAGS carry -DNDEBUG).
    opt = ["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O3"]
    # No floating-point contraction anywhere: resampling must round exactly like the reference.
    cxx = opt + ["-ffp-contract=off", "-fvisibility=hidden"]
    # Only the stable ABI of MIN_TORCH is visible: the libraries load in every later torch.
    target = "-DTORCH_TARGET_VERSION=0x%02x%02x000000000000" % MIN_TORCH
    macros = [
        ("TTS_FAST_TORCH_VERSION_HEX", _hex(torch.__version__)),
        ("TTS_FAST_CUDA_VERSION_HEX", _hex(CUDA_VERSION)),
        ("TTS_FAST_CUDA_ARCHS_HEX", _hex(ARCHS)),
        ("TTS_FAST_MIN_TORCH_HEX", _hex(MIN_TORCH_STR)),
        ("TTS_FAST_WITH_CUDA", "1" if WITH_CUDA else "0"),
    ]
    exts = [
        # The build-facts module: pybind11 only, no torch header, no torch library.
        Extension("tts_fast._C", ["csrc/module.cpp"], include_dirs=[_pybind11_include()], define_macros=macros,
                  extra_compile_args=cxx, language="c++"),
        # py_limited_api: no libtorch_python, no Python symbol; the file is named _ops.abi3.so.
        CppExtension("tts_fast._ops", sorted(["csrc/ops.cpp"] + glob.glob("csrc/cpu/*.cpp")), py_limited_api=True,
                     extra_compile_args={"cxx": cxx + [target]}),
    ]
    if WITH_CUDA:
        # USE_CUDA exposes the CUDA parts of the stable shims (current stream, CUDA error text).
        nvcc = opt + ["--fmad=false", "-Xcompiler=-ffp-contract=off", "--expt-relaxed-constexpr", target, "-DUSE_CUDA"]
        if DEBUG:
            nvcc.append("-lineinfo")
        # The CUDA runtime is linked statically (nvcc's default): the library then needs the
        # driver only, whichever CUDA runtime the installed torch ships. libtorch_cuda provides
        # the stable shims for the current stream and launch errors.
        exts.append(CppExtension(
            "tts_fast._ops_cuda", sorted(glob.glob("csrc/cuda/*.cpp") + glob.glob("csrc/cuda/*.cu")),
            py_limited_api=True, include_dirs=[os.path.join(CUDA_HOME, "include")],
            library_dirs=[os.path.join(CUDA_HOME, "lib64")], libraries=["torch_cuda", "cudart_static", "rt", "dl"],
            extra_compile_args={"cxx": cxx + [target, "-DUSE_CUDA"], "nvcc": nvcc},
        ))
    return exts


class build_ext(BuildExtension):
    """BuildExtension that also writes tts_fast/_build_info.py beside the built extensions."""

    def run(self):
        super().run()
        target = os.path.join(os.path.dirname(self.get_ext_fullpath("tts_fast._C")), "_build_info.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        backends = ("cpu", "cuda") if WITH_CUDA else ("cpu",)
        text = (
            '"""Written by setup.py at build time: what the compiled ops of tts_fast were built against."""\n\n'
            f"TORCH_VERSION = {str(torch.__version__)!r}\n"
            f"MIN_TORCH = {MIN_TORCH_STR!r}\n"
            f"CUDA_VERSION = {CUDA_VERSION or None!r}\n"
            f"CUDA_ARCHS = {[a for a in re.split(r'[; ]+', ARCHS) if a]!r}\n"
            f"BACKENDS = {backends!r}\n"
        )
        tmp = target + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)


print(
    f"tts_fast: building C++ ops{' and CUDA ops (' + CUDA_HOME + ', archs ' + ARCHS + ')' if WITH_CUDA else ' only (no CUDA)'}"
    f"{', DEBUG' if DEBUG else ''}",
    file=sys.stderr,
)

setup(
    version=_version(),
    ext_modules=_extensions(),
    cmdclass={"build_ext": build_ext.with_options(use_ninja=shutil.which("ninja") is not None)},
)
