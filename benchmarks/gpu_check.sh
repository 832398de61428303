#!/usr/bin/env bash
# One prepared check of the Triton recurrence and of the training-step speed on a GPU machine.
#
#   OUT=/path/for/results bash benchmarks/gpu_check.sh          (any working directory)
#
# Needs python3 with torch (CUDA), triton and pytest (the GPU image has them); nothing from this
# repository installed, no network. Writes under $OUT (7 files):
#   gpu_check.log                      everything printed
#   summary.txt                        one line per stage: verdict, exit status, seconds
#   bench_cuda_b128.json               training step at batch 128 (the SHD preset), delays in [0, 25]
#   bench_cuda_b32.json                the same at batch 32
#   bench_cuda_b128_zero_delays.json   batch 128 with all delays 0 (the first epoch's cost)
#   bench_cuda_ssc.json, bench_cuda_gsc.json   the SSC and GSC presets: 140-512-512-35 and
#                                      40-512-512-35 (8-bit graded inputs), batch 32, eager and CUDA graphs
# Each stage has its own time limit; together at most 620 s (10.3 min), normally about 3 minutes.
# Output is written as it comes, so a run cut short still leaves its log and finished JSON files.
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the repository root holds snn_toolchain/ (train/, export/, lava_models/ inside it): importable
# without installing anything
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
LOG="$OUT/gpu_check.log"
SUMMARY="$OUT/summary.txt"
: > "$LOG"
: > "$SUMMARY"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# compiled kernels go to a writable place even where $HOME is not
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-${TMPDIR:-/tmp}/snn_toolchain_triton_cache}"
unset TRITON_INTERPRET SNN_TOOLCHAIN_NO_TRITON

stage() {  # stage NAME LIMIT_SECONDS COMMAND [ARGS...]; never stops the script
  local name="$1" limit="$2"
  shift 2
  echo
  echo "=== $name (limit ${limit} s) ==="
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local status=$?
  local verdict=ok
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    verdict="TIMED-OUT"
  elif [ "$status" -ne 0 ]; then
    verdict="FAILED"
  fi
  printf '%-38s %-9s exit %3d  %4d s\n' "$name" "$verdict" "$status" "$((SECONDS - start))" >> "$SUMMARY"
}

{
  echo "gpu_check.sh in $PWD at $(date -u '+%Y-%m-%d %H:%M:%S UTC'); results in $OUT"
  stage "nvidia-smi" 20 nvidia-smi
  stage "versions" 60 "$PYTHON" - <<'PY'
import sys
print("python", sys.version.replace("\n", " "))
for name in ("numpy", "torch", "triton", "pytest"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except ImportError as error:
        print(name, "NOT INSTALLED", f"({error})")
import torch
print("torch CUDA", torch.version.cuda, "| cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
from snn_toolchain.train.model import gpu_recurrence
ok = gpu_recurrence.available()
print("gpu_recurrence.available():", ok)
sys.exit(0 if ok else 1)
PY
  stage "tests (Triton, recurrence, synapse)" 150 "$PYTHON" -m pytest tests/test_gpu_recurrence.py tests/test_recurrence.py tests/test_synapse.py tests/test_step.py -v -rfEs --tb=short -p no:cacheprovider
  stage "bench batch 128" 120 "$PYTHON" benchmarks/bench_training_step.py --device cuda --batch 128 \
    --profile --json "$OUT/bench_cuda_b128.json"
  stage "bench batch 32" 90 "$PYTHON" benchmarks/bench_training_step.py --device cuda --batch 32 \
    --json "$OUT/bench_cuda_b32.json"
  stage "bench batch 128, zero delays" 60 "$PYTHON" benchmarks/bench_training_step.py --device cuda --batch 128 \
    --delays zero --repeats 10 --json "$OUT/bench_cuda_b128_zero_delays.json"
  stage "bench SSC preset" 60 "$PYTHON" benchmarks/bench_training_step.py --device cuda --preset ssc \
    --repeats 10 --json "$OUT/bench_cuda_ssc.json"
  stage "bench GSC preset" 60 "$PYTHON" benchmarks/bench_training_step.py --device cuda --preset gsc \
    --repeats 10 --json "$OUT/bench_cuda_gsc.json"
  stage "train 5 epochs on the embedded set" 120 "$PYTHON" -c \
    'import sys; from snn_toolchain.cli import main; sys.exit(main(sys.argv[1:]))' \
    train --dataset shd --epochs 5 --device cuda --run-dir "${TMPDIR:-/tmp}/gpu_check_run"
  stage "train 5 epochs, CUDA graphs" 120 "$PYTHON" -c \
    'import sys; from snn_toolchain.cli import main; sys.exit(main(sys.argv[1:]))' \
    train --dataset shd --epochs 5 --device cuda --cuda-graphs --run-dir "${TMPDIR:-/tmp}/gpu_check_run_graphs"
  echo
  echo "=== summary ==="
  cat "$SUMMARY"
} 2>&1 | tee -a "$LOG"

# exit status: 0 only when every stage was ok
! grep -qv ' ok ' "$SUMMARY"
