"""Build of tts_fast: the package plus its compiled ops, tts_fast._C (csrc/).

The C++ (CPU) ops are always built. The CUDA ops are built when nvcc is found and torch is a CUDA
build (torch.version.cuda) -- never decided by torch.cuda.is_available(), since wheel builders and
CI machines often have no GPU. Environment:
  TTS_FAST_CUDA=0|1      force the CUDA ops off, or on (1 fails clearly when impossible)
  CUDA_HOME / CUDA_PATH  the CUDA toolkit (default: /usr/local/cuda, or the one nvcc belongs to)
  TORCH_CUDA_ARCH_LIST   default "8.0;8.6;8.9;9.0+PTX"
  DEBUG=1                -O0 -g (asserts on) instead of -O3
  MAX_JOBS=N             parallel compile jobs (ninja)
The build writes tts_fast/_build_info.py next to the extension (torch and CUDA versions it was
built against; tts_fast.ops refuses a _C built for another torch).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;8.6;8.9;9.0+PTX"


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


def _hex(s: str) -> str:
    """A string as hex digits: one preprocessor number, immune to shell quoting (see csrc/module.cpp)."""
    return s.encode().hex() or "0"


import torch  # noqa: E402  (after the helpers: they must not depend on it)

WITH_CUDA, CUDA_HOME = _want_cuda(torch.version.cuda)
if WITH_CUDA:
    # torch.utils.cpp_extension reads both at import time.
    os.environ["CUDA_HOME"] = CUDA_HOME
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

DEBUG = os.environ.get("DEBUG", "0") == "1"
ARCHS = os.environ.get("TORCH_CUDA_ARCH_LIST", "") if WITH_CUDA else ""
CUDA_VERSION = torch.version.cuda if WITH_CUDA else ""


def _extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # DEBUG: no optimisation, debug info, and assert() on (Python's CFLAGS carry -DNDEBUG).
    opt = ["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O3"]
    # No floating-point contraction anywhere: resampling must round exactly like the reference.
    cxx = opt + ["-ffp-contract=off", "-fvisibility=hidden"]
    macros = [
        ("TTS_FAST_TORCH_VERSION_HEX", _hex(torch.__version__)),
        ("TTS_FAST_CUDA_VERSION_HEX", _hex(CUDA_VERSION)),
        ("TTS_FAST_CUDA_ARCHS_HEX", _hex(ARCHS)),
        ("TTS_FAST_WITH_CUDA", "1" if WITH_CUDA else "0"),
    ]
    if not WITH_CUDA:
        return CppExtension("tts_fast._C", sources, define_macros=macros, extra_compile_args={"cxx": cxx})
    sources += sorted(glob.glob("csrc/cuda/*.cpp") + glob.glob("csrc/cuda/*.cu"))
    nvcc = opt + ["--fmad=false", "-Xcompiler=-ffp-contract=off", "--expt-relaxed-constexpr"]
    if DEBUG:
        nvcc.append("-lineinfo")
    return CUDAExtension("tts_fast._C", sources, define_macros=macros, extra_compile_args={"cxx": cxx, "nvcc": nvcc})


class build_ext(BuildExtension):
    """BuildExtension that also writes tts_fast/_build_info.py beside the built _C."""

    def run(self):
        super().run()
        target = os.path.join(os.path.dirname(self.get_ext_fullpath("tts_fast._C")), "_build_info.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        backends = ("cpu", "cuda") if WITH_CUDA else ("cpu",)
        text = (
            '"""Written by setup.py at build time: what tts_fast._C was compiled against."""\n\n'
            f"TORCH_VERSION = {str(torch.__version__)!r}\n"
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
    ext_modules=[_extension()],
    cmdclass={"build_ext": build_ext.with_options(use_ninja=shutil.which("ninja") is not None)},
)
