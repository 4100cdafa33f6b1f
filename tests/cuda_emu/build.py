"""Build tts_fast's CUDA kernels (csrc/cuda/*.cu, unmodified) for the CPU emulator.

The csrc tree is mirrored into the build folder (so that a mutant of any file, header or kernel,
can be compiled in place of the original), each .cu is passed through hostify.py, and everything
is compiled by g++ against the stand-in CUDA headers of include/ with cuda_emu.h included first,
``-D__CUDACC__ -D__CUDA_ARCH__=900`` (the device branches of the shared headers) and
``-ffp-contract=off`` (no fused multiply-add, as nvcc --fmad=false). Objects are cached by the
hash of their sources and flags, so a mutant recompiles only the translation units it touches.

    python tests/cuda_emu/build.py OUT_DIR [--sanitize address|thread|memcheck] [--driver]

``--sanitize address`` is AddressSanitizer + UndefinedBehaviorSanitizer, ``thread``
ThreadSanitizer, ``memcheck`` a build for valgrind's memcheck (dynamic shared memory left
undefined instead of poisoned). ``--driver`` links driver.cpp into a program (for the sanitizers,
which want no Python in the process); without it the result is libemu.so for ctypes (emu.py),
with the emulator's own test kernels (selftest.cu) beside the project's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CSRC = REPO / "csrc"

# importable as cuda_emu.build (tests/ on sys.path) and runnable as a script
sys.path.insert(0, str(HERE.parent))
from cuda_emu.hostify import hostify  # noqa: E402

SANITIZERS = {
    None: ["-O2"],
    "address": ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"],
    "thread": ["-O1", "-fsanitize=thread"],
    "memcheck": ["-O1", "-DEMU_MEMCHECK"],
}
# Kernel-side hooks compiled into a .cu's own translation unit (they reach its internal names).
HOOKS = {"elementwise.cu": HERE / "hooks" / "elementwise.inc"}


class BuildError(RuntimeError):
    """g++ failed; the message holds its output."""


def compiler() -> str:
    return os.environ.get("CXX", "g++")


def _flags(sanitize: Optional[str]) -> list[str]:
    if sanitize not in SANITIZERS:
        raise ValueError(f"sanitize must be one of {sorted(k for k in SANITIZERS if k)} or None, got {sanitize!r}")
    return ["-std=c++20", "-g", "-fPIC", "-pthread", "-ffp-contract=off", "-D__CUDACC__", "-D__CUDA_ARCH__=900",
            "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas", "-I", str(HERE / "include"),
            "-include", "cuda_emu.h"] + SANITIZERS[sanitize]


def _mirror(src_root: Path, dest: Path, mutations: Mapping[str, Sequence[tuple[str, str]]]) -> list[Path]:
    """Copy csrc into dest (applying mutations: path relative to csrc -> [(old, new)], each old
    found exactly once), hostify the .cu files; returns the translation units to compile."""
    unused = set(mutations)
    units = []
    for path in sorted(src_root.rglob("*")):
        if not path.is_file() or path.suffix not in (".h", ".cuh", ".cu"):
            continue
        rel = path.relative_to(src_root).as_posix()
        text = path.read_text()
        for old, new in mutations.get(rel, ()):
            if text.count(old) != 1:
                raise ValueError(f"mutation of {rel}: {old!r} occurs {text.count(old)} times, not once")
            text = text.replace(old, new)
        unused.discard(rel)
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".cu":
            text, _ = hostify(text, f"csrc/{rel}")
            hook = HOOKS.get(path.name)
            if hook is not None:
                text += f'\n#include "{hook}"\n'
            out = out.with_suffix(".cu.cpp")
            units.append(out)
        out.write_text(text)
    if unused:
        raise ValueError(f"mutations name files that are not in csrc: {sorted(unused)}")
    return units


def _compile(unit: Path, headers: Path, obj_dir: Path, flags: list[str], cache: Optional[Path]) -> Path:
    """unit -> object file, reused from ``cache`` when the unit, every header it may include
    (the mirrored csrc under ``headers``, the emulator's) and the flags are unchanged."""
    deps = [unit.read_bytes()] + [p.read_bytes() for p in sorted(headers.rglob("*")) if p.suffix in (".h", ".cuh")]
    deps += [p.read_bytes() for p in sorted(HERE.rglob("*")) if p.suffix in (".h", ".inc") and ".build" not in p.parts]
    key = hashlib.sha256(b"\0".join(deps + [" ".join(flags + [compiler()]).encode()])).hexdigest()[:24]
    obj = obj_dir / f"{unit.stem}.{key}.o"
    if cache is not None and (cache / obj.name).exists():
        shutil.copy(cache / obj.name, obj)
        return obj
    cmd = [compiler(), *flags, "-c", str(unit), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / (obj.name + f".{os.getpid()}.tmp")
        shutil.copy(obj, tmp)
        os.replace(tmp, cache / obj.name)
    return obj


def build(out_dir: os.PathLike, *, sanitize: Optional[str] = None, driver: bool = False,
          mutations: Optional[Mapping[str, Sequence[tuple[str, str]]]] = None, cache: Optional[os.PathLike] = None,
          src_root: os.PathLike = CSRC) -> Path:
    """Build the emulated kernels into out_dir: libemu.so, or the program ``emu_driver`` with
    ``driver=True``. ``mutations`` maps a path under csrc/ to (old, new) text replacements (for
    mutant checks); ``cache`` is a folder of compiled objects reused across builds."""
    out = Path(out_dir)
    flags = _flags(sanitize)
    mirror = out / "csrc"
    if mirror.exists():
        shutil.rmtree(mirror)
    units = _mirror(Path(src_root), mirror, mutations or {})
    if driver:
        extra = [HERE / "driver.cpp"]
    else:  # the emulator's own test kernels, hostified like the project's
        selftest = out / "selftest.cu.cpp"
        selftest.write_text(hostify((HERE / "selftest.cu").read_text(), "tests/cuda_emu/selftest.cu")[0])
        extra = [selftest]
    sources = units + [HERE / "emu_api.cpp"] + extra
    api_flags = flags + ["-I", str(mirror / "cuda"), "-I", str(HERE)]
    obj_dir = out / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, min(len(sources), os.cpu_count() or 1))) as pool:
        objs = list(pool.map(lambda u: _compile(u, mirror, obj_dir, api_flags, Path(cache) if cache else None), sources))
    target = out / ("emu_driver" if driver else "libemu.so")
    link = [compiler(), *flags, *([] if driver else ["-shared"]), *map(str, objs), "-o", str(target)]
    proc = subprocess.run(link, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(link)}\n{proc.stdout}{proc.stderr}")
    return target


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--sanitize", choices=[k for k in SANITIZERS if k], default=None)
    p.add_argument("--driver", action="store_true")
    a = p.parse_args(argv)
    print(build(a.out_dir, sanitize=a.sanitize, driver=a.driver))
    return 0


if __name__ == "__main__":
    sys.exit(main())
