#!/usr/bin/env bash
# The first GPU run in one command: build the CUDA ops for this machine's GPU, run the CUDA tests,
# the ops benchmark and the SD1.5 throughput benchmark, compute-sanitizer last; every log and JSON
# lands in OUT_DIR as it goes, so a run cut at its limit still returns what it measured.
#
# On any machine with an NVIDIA GPU (compute capability >= 8.0), a CUDA build of torch >= 2.10 and
# nvcc, from a clone of this repository (docs/gpu.md):
#
#   bash .ci/gpu_check.sh OUT_DIR
#
# It installs diffusers and transformers (<5) from .gpu_wheels/ when that folder is there (made by
# `bash .ci/gpu_wheels.sh` on a machine that reaches the package registry, for GPU machines that do
# not), else from the package index. Then copy OUT_DIR/gpu_check.json to
# benchmarks/results/gpu_check_<gpu>.json (and the ops and throughput JSON files to
# benchmarks/results/) and read OUT_DIR/gpu_check.log. (This project's first run is one call of its
# device tool: run(command="bash .ci/gpu_check.sh $OUT", carry=[".gpu_wheels"], timeout_s=540).)
#
# Here, on the CPU, with the project's virtual environment active (tiny networks, CUDA tests skip):
#
#   bash .ci/gpu_check.sh --smoke /tmp/smoke_out
#
# OUT_DIR holds at most 7 files (the device tool returns 8): gpu_check.json (device, driver,
# versions, every step's rc / wall seconds / limit, every test outcome, the sanitizer's verdict,
# headline numbers), gpu_check.log (all output), tests.xml, ops_cuda.json and three throughput_*.json.
# Steps run in order of value, each under its own limit, all within GPU_CHECK_TOTAL_S (480 s) of the
# start; a step that would not fit is skipped and says so. One failed step does not stop the others.
# Other knobs: GPU_CHECK_STEPS (throughput sampling steps, 30), GPU_CHECK_REPEATS (timed runs after
# the warm-up, 1), GPU_CHECK_COMMIT (the commit to record where the tree has no .git), PYTHON.
#   env        device, driver, nvidia-smi, torch/CUDA/nvcc versions
#   install    diffusers + transformers (<5) and their missing dependencies from .gpu_wheels (no index),
#              or from the package index when there is no such folder
#   build      the extension for this GPU only (TORCH_CUDA_ARCH_LIST: its compute capability unless set;
#              MAX_JOBS: the CPUs unless set), editable, against the machine's torch; then
#              ops.backend('cuda') must be 'cuda'
#   tests      tests/test_gpu_device.py, tests/test_ops*.py, tests/test_gpu_sync.py and the other
#              CUDA-parametrised tests (-k "cuda or gpu"), plus the build-info checks
#   ops        benchmarks/ops.py on cuda: resampling 1024 x 64, renoise/ddim/langevin at 1-64 M
#              elements against the copy bandwidth of the same run
#   throughput_n8_g7.5, throughput_n8_g1, throughput_n16_g7.5
#              benchmarks/throughput.py --arch sd15: plain diffusers, the peer-style loop, tts_fast
#              eager / cudagraphs / compile (default mode), bfs_best and DFS fixed slots
#   sanitizer  compute-sanitizer --tool memcheck over a small subset of the CUDA op tests (some
#              runtimes refuse the tool: the verdict says so)
set -uo pipefail

SMOKE=0
if [ "${1:-}" = "--smoke" ]; then
  SMOKE=1
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: bash .ci/gpu_check.sh [--smoke] OUT_DIR" >&2
  exit 2
fi
mkdir -p "$1" || exit 2
OUT_DIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

PY=${PYTHON:-python3}
TOTAL=${GPU_CHECK_TOTAL_S:-480}
# Time kept for later steps: the last report, the sanitizer (a short run, but the one memory check)
# and the N = 8 run without CFG (so that both guidance values get their eager and cudagraphs rows).
FINAL_RESERVE=15
SANITIZER_RESERVE=40
G1_RESERVE=50
START=$(date +%s)
DEADLINE=$((START + TOTAL))
LOG="$OUT_DIR/gpu_check.log"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DIFFUSERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
# nvcc and compute-sanitizer live in the CUDA toolkit, which need not be on PATH
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  if [ -d "$d" ]; then export PATH="$PATH:$d"; fi
done
: >"$LOG"

log() { echo "[gpu_check $(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

report() { "$PY" .ci/gpu_check_report.py "$@" --out "$OUT_DIR" 2>&1 | tee -a "$LOG" || true; }

# run_step NAME CAP_S MIN_S RESERVE_S COMMAND: COMMAND (a bash string) under a limit of CAP_S,
# shortened to end RESERVE_S before the deadline; skipped when fewer than MIN_S seconds remain.
# SIGINT first (pytest then writes its XML, the benchmarks keep their rows), SIGKILL 15 s later.
run_step() {
  local name=$1 cap=$2 min=$3 reserve=$4 cmd=$5
  local left=$((DEADLINE - $(date +%s) - reserve))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt "$min" ]; then
    log "== $name: skipped, ${left}s left before the reserve (it needs ${min}s)"
    report step --name "$name" --rc -1 --seconds 0 --limit "$limit" --status skipped --note "no time left: ${left}s < ${min}s"
    return 0
  fi
  log "== $name (limit ${limit}s): $cmd"
  local t0 t1 rc
  t0=$(date +%s%N)
  timeout -s INT -k 15 "$limit" bash -c "$cmd" 2>&1 | tee -a "$LOG" "$WORK/$name.log"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s%N)
  local secs=$(((t1 - t0) / 1000000))
  secs="$((secs / 1000)).$(printf '%03d' $((secs % 1000)))"
  local status=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=timeout; elif [ "$rc" -ne 0 ]; then status=failed; fi
  log "== $name: $status (rc $rc, ${secs}s)"
  report step --name "$name" --rc "$rc" --seconds "$secs" --limit "$limit" --status "$status" --log "$WORK/$name.log"
}

skip_step() {
  log "== $1: skipped ($2)"
  report step --name "$1" --rc -1 --seconds 0 --limit 0 --status skipped --note "$2"
}

log "gpu_check: smoke=$SMOKE out=$OUT_DIR root=$ROOT python=$("$PY" -c 'import sys; print(sys.executable)') total=${TOTAL}s"

# -- env: what the machine is (nvidia-smi in full into the log) ---------------------------------
run_step env 60 5 "$FINAL_RESERVE" "nvidia-smi || true; nvcc --version || true; '$PY' .ci/gpu_check_report.py env --out '$OUT_DIR' $([ $SMOKE = 1 ] && echo --smoke)"

# -- install: the wheels carried in .gpu_wheels (no index needed on the GPU machine), else the index --
if [ $SMOKE = 1 ]; then
  skip_step install "smoke: the current environment"
else
  if ls .gpu_wheels/*.whl >/dev/null 2>&1; then
    SOURCE="--no-index --find-links .gpu_wheels"  # carried wheels: the GPU machine needs no network
  else
    SOURCE=""  # no carried wheels: the package index
  fi
  run_step install 90 10 "$FINAL_RESERVE" "'$PY' -m pip install $SOURCE \
    'diffusers>=0.30,<0.40' 'transformers>=4.40,<5' 'setuptools>=64' wheel ninja && \
    '$PY' -m pip list 2>/dev/null | grep -i -E '^(torch|diffusers|transformers|huggingface.hub|tokenizers|safetensors|setuptools|ninja|numpy) '"
fi

# -- build: this GPU's architecture only, against the machine's torch ------------------------------
if [ $SMOKE = 1 ]; then
  if "$PY" -c "from tts_fast import ops; assert ops._C is not None" 2>/dev/null; then
    skip_step build "smoke: the compiled ops load"
  else
    run_step build 600 30 "$FINAL_RESERVE" "TTS_FAST_CUDA=0 '$PY' setup.py build_ext --inplace"
  fi
else
  ARCH=${TORCH_CUDA_ARCH_LIST:-$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null || echo 9.0)}
  run_step build 150 30 "$FINAL_RESERVE" "export TORCH_CUDA_ARCH_LIST='$ARCH' MAX_JOBS=${MAX_JOBS:-$(nproc)} TTS_FAST_CUDA=1; \
    '$PY' -m pip install --no-index --no-build-isolation --no-deps -v -e . && \
    '$PY' -c \"from tts_fast import ops; print('build_info', ops.build_info()); assert ops.backend('cuda') == 'cuda', ops.backend('cuda')\""
fi

# -- tests: the GPU ones first --------------------------------------------------------------------
# torch.compile tests last: each compiles on the device (tens of seconds).
TESTS="tests/test_gpu_device.py tests/test_gpu_sync.py tests/test_ops.py tests/test_ops_api.py tests/test_ops_reference.py \
tests/test_ops_stats.py tests/test_schedules.py tests/test_ops_build.py tests/test_ops_compile.py"
run_step tests 110 20 "$FINAL_RESERVE" "'$PY' -m pytest -v -rfEs --durations=25 -p no:cacheprovider --junitxml='$OUT_DIR/tests.xml' \
  $TESTS -k 'cuda or gpu or build_info_keys or compiled_schemas'"

# -- ops benchmark ------------------------------------------------------------------------------
if [ $SMOKE = 1 ]; then
  run_step ops 120 10 "$FINAL_RESERVE" "'$PY' benchmarks/ops.py --device cpu --quick --out '$OUT_DIR/ops_cpu.json'"
else
  run_step ops 60 20 "$FINAL_RESERVE" "'$PY' benchmarks/ops.py --device cuda --out '$OUT_DIR/ops_cuda.json'"
fi

# -- throughput: SD1.5, N = 8 with CFG 7.5 then without, N = 16 if time is left ------------------
# 30 steps by default (GPU_CHECK_STEPS): every setting of one file runs at the same steps, and the
# compile rows (one inductor compile per batch shape, the most expensive part) come last in each.
throughput() {  # N GUIDANCE -> the command (smoke: tiny networks on the CPU, N / 8 + 1 particles, 3 steps)
  local args="--arch sd15 --guidance $2 --backends eager cudagraphs compile --methods bfs_best 'dfs fixed slots'"
  if [ $SMOKE = 1 ]; then
    args="$args --smoke --particles $((1 + $1 / 8)) --steps 3 --repeats 1"
  else
    args="$args --device cuda --particles $1 --steps ${GPU_CHECK_STEPS:-30} --repeats ${GPU_CHECK_REPEATS:-1}"
  fi
  echo "'$PY' benchmarks/throughput.py $args --out '$OUT_DIR/throughput_sd15_n$1_g$2.json'"
}
run_step throughput_n8_g7.5 170 45 $((FINAL_RESERVE + SANITIZER_RESERVE + G1_RESERVE)) "$(throughput 8 7.5)"
run_step throughput_n8_g1 120 45 $((FINAL_RESERVE + SANITIZER_RESERVE)) "$(throughput 8 1)"
run_step throughput_n16_g7.5 150 60 $((FINAL_RESERVE + SANITIZER_RESERVE)) "$(throughput 16 7.5)"

# -- compute-sanitizer memcheck over a few CUDA op tests (no caching allocator: bounds are exact) --
if [ $SMOKE = 1 ]; then
  skip_step sanitizer "smoke: no GPU"
elif ! command -v compute-sanitizer >/dev/null; then
  skip_step sanitizer "compute-sanitizer is not on PATH"
else
  run_step sanitizer 75 30 "$FINAL_RESERVE" "PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 99 \
    --print-limit 20 '$PY' -m pytest -q -p no:cacheprovider tests/test_ops.py tests/test_gpu_device.py \
    -k '(cuda and (noncontiguous or empty or philox_normals or weights_ops_match or B4N1000)) or (layouts and float16) \
    or philox_uniforms or (langevin_step_bitwise and 40000 and float32)'"
fi

report final
log "done in $(($(date +%s) - START))s"
rm -rf "$WORK"
exit 0
