#!/usr/bin/env bash
# The documented install lines, run as written, as a newcomer would: README's set-up line of the demo
# in a fresh copy of the clone (its own virtual environment, torch 2.13.0, the ops compiled against
# it, the demo), then every documented line that adds extras from the clone
# (pip install --no-build-isolation ".[x]", listed by .ci/install_lines.py --extras).
#
#   bash .ci/install_lines.sh [WORK_DIR]        # called by .ci/run; prints a timing line per step
#
# After every line it checks: tts_fast.ops.build_info() names the torch that runs (the ops were
# compiled against the installed torch, not a second one in a build environment), exactly one torch
# is installed and it is still the set-up's, and the op libraries are byte for byte those of the
# first build (adding an extra compiles nothing). Nothing here needs a GPU (the set-up's torch is a
# CPU build on this project's machines); the lines that need one are not documented as install
# lines. Time-boxed: INSTALL_LINES_TIMEOUT_S per line (default 900), and pip's own cache of
# downloaded wheels is used, as on a user's machine. Needs the package registry.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
limit=${INSTALL_LINES_TIMEOUT_S:-900}
src="$work/clone"
rm -rf "$src"
mkdir -p "$src"
# a fresh clone: the tracked and untracked-not-ignored files, no build products of the checkout
(cd "$root" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf -) | tar -xf - -C "$src"

setup=$(python3 "$root/.ci/install_lines.py" --setup)
mapfile -t extras < <(python3 "$root/.ci/install_lines.py" --extras)
# the environment of a newcomer's shell: none of CI's build settings, no virtual environment active
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$VIRTUAL_ENV/bin" | paste -sd: -)
  export PATH
fi
unset TTS_FAST_CUDA CUDA_HOME MAX_JOBS PYTHONSAFEPATH VIRTUAL_ENV || true

check() {
  # $1: what ran. The ops as built against the runtime torch, one torch, the set-up's torch still.
  (cd "$src" && PYTHONSAFEPATH=1 .venv/bin/python - "$1" <<'PY'
import importlib.metadata as md
import os
import sys

import torch

import tts_fast
from tts_fast import ops

what = sys.argv[1]
where = os.path.realpath(tts_fast.__file__)
assert "site-packages" in where, f"{what}: tts_fast imported from {where}, not from the installed package"
info = ops.build_info()
assert info["backend"] == "compiled", f"{what}: the compiled ops are not loaded ({info})"
assert info["torch_version"] == torch.__version__, (
    f"{what}: the ops were built against torch {info['torch_version']} but torch {torch.__version__} runs")
torches = [d for d in md.distributions() if (d.metadata["Name"] or "").lower() == "torch"]
assert len(torches) == 1, f"{what}: {len(torches)} torch distributions installed"
print(f"  ok: build_info torch {info['torch_version']} == runtime torch {torch.__version__}; one torch installed")
PY
  )
}

libs() {
  (cd "$src" && PYTHONSAFEPATH=1 .venv/bin/python -c 'import glob, hashlib, os, tts_fast
d = os.path.dirname(tts_fast.__file__)
for f in sorted(glob.glob(os.path.join(d, "*.so"))):
    print(os.path.basename(f), hashlib.sha256(open(f, "rb").read()).hexdigest())')
}

run_line() {
  # $1: the line, run as written from the clone in bash; prints its wall and CPU seconds (user + sys,
  # children included) and the load average after it
  local status=0 TIMEFORMAT='%R %U %S'
  echo "+ $1"
  { time (cd "$src" && timeout -s INT "$limit" bash -c "set -e; $1" >"$work/line.log" 2>&1) ; } 2>"$work/line.time" || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$work/line.log" >&2
    echo "install line failed (status $status, or ran past ${limit} s): $1" >&2
    exit 1
  fi
  read -r wall user sys <"$work/line.time"
  echo "  ${wall} s wall, $(python3 -c "print(f'{$user + $sys:.1f}')") s CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  tail -n 2 "$work/line.log" | sed 's/^/  | /'
}

echo "install lines (a fresh copy of the clone in $src; timeout ${limit} s each)"
run_line "$setup"
check "the set-up line"
torch_before=$(cd "$src" && .venv/bin/python -c 'import torch; print(torch.__version__)')
libs >"$work/libs.before"
for line in "${extras[@]}"; do
  # each extras line runs in the set-up's environment, as the README says
  run_line ". .venv/bin/activate && $line"
  check "$line"
  libs >"$work/libs.after"
  if ! cmp -s "$work/libs.before" "$work/libs.after"; then
    diff "$work/libs.before" "$work/libs.after" >&2 || true
    echo "$line: the op libraries changed (compiled again)" >&2
    exit 1
  fi
  torch_now=$(cd "$src" && .venv/bin/python -c 'import torch; print(torch.__version__)')
  [ "$torch_now" = "$torch_before" ] || { echo "$line: torch changed from $torch_before to $torch_now" >&2; exit 1; }
  echo "  ok: the op libraries are the first build's, byte for byte; torch still $torch_now"
done
compiled=$(find "$src/build" -name '*.o' -newer "$work/libs.before" | wc -l)
[ "$compiled" -eq 0 ] || { echo "the extras lines compiled $compiled object files again" >&2; exit 1; }
echo "install lines: all ${#extras[@]} extras lines and the set-up line work as written"
