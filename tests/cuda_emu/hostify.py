"""The source pass of the CUDA emulator: a .cu file as C++ that g++ compiles against cuda_emu.h.

Two rewrites, nothing else (the kernels and launchers are compiled as written):

- ``kernel<<<grid, block[, smem[, stream]]>>>(args)`` becomes
  ``::emu::launch_named([](auto... a) { kernel(a...); }, "kernel", grid, block[, smem[, stream]])(args)``
  (the lambda lets a template kernel deduce its arguments, as a CUDA launch does);
- ``extern __shared__ [__align__(A)] T name[];`` becomes a pointer to the block's dynamic shared
  memory, aligned to exactly A (or alignof(T) without __align__), as the declaration promises.

Line numbers are kept (a ``#line`` directive and the same count of newlines), so compiler errors
and emulator reports point at the original file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# A kernel name, optionally with template arguments that hold no angle brackets themselves.
_LAUNCH = re.compile(r"(?P<kernel>[A-Za-z_][\w:]*(?:<[^<>;{}]*>)?)\s*<<<(?P<config>.*?)>>>\s*\(", re.S)
_EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*(?P<align>\d+)\s*\)\s+)?(?P<type>[A-Za-z_][\w:\s]*?)\s+(?P<name>\w+)\s*\[\s*\]\s*;"
)


class HostifyError(ValueError):
    """A .cu construct the pass does not know how to rewrite."""


def _keep_lines(original: str, replacement: str) -> str:
    return replacement + "\n" * original.count("\n")


def hostify(source: str, path: str = "<cu>") -> tuple[str, int]:
    """The rewritten source and the number of kernel launches rewritten."""
    count = 0

    def launch(m: re.Match) -> str:
        nonlocal count
        count += 1
        kernel = m.group("kernel")
        config = " ".join(m.group("config").split())
        return _keep_lines(m.group(0), f'::emu::launch_named([](auto... a) {{ {kernel}(a...); }}, "{kernel}", {config})(')

    def shared(m: re.Match) -> str:
        t = " ".join(m.group("type").split())
        align = m.group("align") or f"alignof({t})"
        return _keep_lines(m.group(0), f"{t}* {m.group('name')} = reinterpret_cast<{t}*>(::emu::dynamic_smem({align}));")

    out = _LAUNCH.sub(launch, source)
    out = _EXTERN_SHARED.sub(shared, out)
    if "<<<" in out or ">>>" in out:
        line = out[: out.find("<<<") if "<<<" in out else out.find(">>>")].count("\n") + 1
        raise HostifyError(f"{path}:{line}: a kernel launch the pass could not rewrite")
    if re.search(r"extern\s+__shared__", out):
        raise HostifyError(f"{path}: an extern __shared__ declaration the pass could not rewrite")
    return f'#line 1 "{path}"\n' + out, count


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: hostify.py IN.cu OUT.cpp", file=sys.stderr)
        return 2
    text, _ = hostify(Path(argv[1]).read_text(), argv[1])
    Path(argv[2]).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
