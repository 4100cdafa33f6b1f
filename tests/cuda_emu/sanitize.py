"""The emulated CUDA kernels under AddressSanitizer + UBSan, ThreadSanitizer and valgrind's memcheck.

    python tests/cuda_emu/sanitize.py [--only address|thread|memcheck] [--keep DIR]

For each tool: build driver.cpp with the kernels (build.py --driver), run every case, and expect a
clean run; then put back each fixed review finding (mutants.REVERTED_FIXES) and expect its tool to
flag it, so the fixes stay covered. Prints one verdict line per run; exit status 0 when every
verdict is as expected. What each tool sees:
- address (ASan + UBSan): reads and writes past any buffer (every buffer of the driver is a heap
  allocation of exactly its size), misaligned loads and stores (dynamic shared memory is aligned
  to exactly what its declaration promises), integer overflow and other undefined behaviour;
- thread (TSan): races between emulated threads; __syncthreads / __syncwarp order memory,
  shuffles do not (as on a GPU), so memory ordered only by a shuffle is a race;
- memcheck (valgrind): reads of memory no kernel wrote that decide a branch or an address
  (dynamic shared memory starts undefined in this build).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # importable as cuda_emu.sanitize and runnable as a script
from cuda_emu.build import build  # noqa: E402
from cuda_emu.mutants import REVERTED_FIXES  # noqa: E402

TOOLS = ("address", "thread", "memcheck")
# What each tool prints when it finds something (the exit status says it too).
_MARKERS = {"address": ("ERROR: AddressSanitizer", "runtime error:"), "thread": ("WARNING: ThreadSanitizer",),
            "memcheck": ("uninitialised", "Invalid read", "Invalid write")}


@dataclass
class Verdict:
    tool: str
    variant: str
    returncode: int
    findings: list[str]
    summary: str
    seconds: float

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.findings


def missing_tools() -> list[str]:
    """Tools this machine lacks (valgrind, a sanitizer runtime)."""
    missing = []
    if shutil.which("valgrind") is None:
        missing.append("valgrind")
    cxx = os.environ.get("CXX", "g++")
    for lib in ("libasan.so", "libtsan.so", "libubsan.so"):
        out = subprocess.run([cxx, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(out):
            missing.append(lib)
    return missing


def run(tool: str, work: Path, *, mutations=None, case_filter: str = "", variant: str = "as shipped",
        cache: Optional[Path] = None) -> Verdict:
    """Build the driver for ``tool`` (with ``mutations``) and run the cases matching ``case_filter``."""
    import time

    start = time.perf_counter()
    exe = build(work, sanitize=tool, driver=True, mutations=mutations, cache=cache)
    env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:detect_leaks=1",
               UBSAN_OPTIONS="print_stacktrace=1", TSAN_OPTIONS="halt_on_error=0:exitcode=66")
    cmd = ([shutil.which("valgrind") or "valgrind", "-q", "--error-exitcode=3"] if tool == "memcheck" else []) + [str(exe)]
    proc = subprocess.run(cmd + ([case_filter] if case_filter else []), capture_output=True, text=True, env=env, timeout=1800)
    text = proc.stdout + proc.stderr
    findings = [line.strip() for line in text.splitlines() if any(m in line for m in _MARKERS[tool])]
    summary = next((line for line in reversed(proc.stdout.splitlines()) if "cases" in line), "(no summary)")
    return Verdict(tool, variant, proc.returncode, findings, summary, time.perf_counter() - start)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=TOOLS, default=None, help="one tool instead of all three")
    p.add_argument("--keep", default=None, metavar="DIR", help="build in DIR and keep it (default: a temporary folder)")
    a = p.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"sanitize.py: this machine lacks {', '.join(missing)}", file=sys.stderr)
        return 2
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="tts_emu_sanitize_"))
    cache = root / "cache"
    ok = True
    try:
        for tool in [a.only] if a.only else TOOLS:
            v = run(tool, root / tool, cache=cache)
            ok &= v.clean
            print(f"{tool:9s} {'clean' if v.clean else 'FINDINGS'}  {v.summary}  ({v.seconds:.0f} s)")
            for line in v.findings[:5]:
                print(f"    {line}")
            for name, (what, mutations, fix_tool, flt) in REVERTED_FIXES.items():
                if fix_tool != tool:
                    continue
                r = run(tool, root / f"{tool}-{name}", mutations=mutations, case_filter=flt, variant=name, cache=cache)
                caught = not r.clean
                ok &= caught
                print(f"{tool:9s} {'flags' if caught else 'MISSES'} {name} ({what}): "
                      f"{r.findings[0] if r.findings else 'nothing reported'}  ({r.seconds:.0f} s)")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
