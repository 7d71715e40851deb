#!/bin/bash
# Runs on a machine with a Hopper GPU: the GPU tests, compute-sanitizer on a small suite, and the
# benchmark sweep; logs go to $OUT (or ./gpu_check_out), a short table is printed last.
#
#   bench/gpu_check.sh [DIR]   DIR holds hisa_cuda_tests, hisa and their shared libraries
#                              (default .devbin, filled by bench/stage_device.sh)
#
# Environment: SKIP_TESTS, SKIP_SANITIZER, SKIP_BENCH, SKIP_TORCH, SKIP_MILLION, SKIP_EVAL (=1
# skips that part), GTEST_ARGS, TEST_TIMEOUT (s, default 420), BENCH_ARGS. On the H100 the
# tests take about 300 s, the sanitizers about 330 s and the rest about 30 s (plus the PyTorch
# baseline), so a check within 600 s calls runs in two:
#   SKIP_SANITIZER=1 bench/gpu_check.sh .devbin          # tests, sweep, 1M, eval, baseline
#   SKIP_TESTS=1 SKIP_BENCH=1 bench/gpu_check.sh .devbin  # memcheck and racecheck
set -u
BIN=${1:-.devbin}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
summary=()
note() { summary+=("$1"); }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/device.txt"

# 1. GPU tests.
if [ "${SKIP_TESTS:-0}" != 1 ] && [ -x "$BIN/hisa_cuda_tests" ]; then
  timeout ${TEST_TIMEOUT:-420} "$BIN/hisa_cuda_tests" ${GTEST_ARGS:-} 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED|measure) *\]|Failure|error" | head -60
  note "gpu tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \]' "$OUT/gpu_tests.log" | tr '\n' ' ')"
fi

# 2. compute-sanitizer on a small suite (memcheck and racecheck).
if [ "${SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  # (HisaDecodeManyGroups, 300 sequences, takes about 30 s unsanitized: left out.)
  filter='Cuda.FlatPrefillEdgeRows*:Cuda.HisaPrefill*:Cuda.HisaDecode*:Cuda.DecodeInSmall*:Cuda.PooledKeys*:Cuda.BadIndices*:Cuda.FewLongRows*:Cuda.ShortRows*-Cuda.HisaDecodeManyGroups'
  for tool in memcheck racecheck; do
    echo "==== compute-sanitizer --tool $tool" >> "$OUT/sanitizer.log"
    compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/hisa_cuda_tests" --gtest_filter="$filter" \
      >> "$OUT/sanitizer.log" 2>&1
    note "compute-sanitizer $tool: exit $? ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer.log" | tail -1))"
  done
  # racecheck's hazard classes as source-line pairs, so that a new one stands out. Two are known
  # and mbarrier-ordered (racecheck does not model mbarriers): a stage's box-row table and a q
  # buffer's gate slot in score.cu (README, Status).
  classes=$(sed -n '/--tool racecheck/,$p' "$OUT/sanitizer.log" | grep -A1 'Race reported' |
    grep -oE '(Read|Write) access at .* in [A-Za-z_./]+:[0-9]+' | sed -E 's/.* in //' | paste -d' ' - - |
    sort -u | tr '\n' ';')
  [ -n "$classes" ] && note "racecheck hazard classes (source-line pairs): $classes"
fi

# 3. Benchmarks. The SM clock, power and throttle reasons are sampled every 200 ms during the
#    first sweep (clocks.csv), to see whether back-to-back replays run at lower clocks.
if [ "${SKIP_BENCH:-0}" != 1 ] && [ -x "$BIN/hisa_gpu_bench" ]; then
  clocks_pid=
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active \
      --format=csv -lms 200 > "$OUT/clocks.csv" 2>&1 &
    clocks_pid=$!
  fi
  "$BIN/hisa_gpu_bench" ${BENCH_ARGS:-} > "$OUT/bench.txt" 2> /dev/null
  note "bench: exit $? ($(wc -l < "$OUT/bench.txt") lines in bench.txt)"
  [ -n "$clocks_pid" ] && kill "$clocks_pid" 2>/dev/null && note "clocks during the sweep: clocks.csv ($(($(wc -l < "$OUT/clocks.csv") - 1)) samples after its header)"
  "$BIN/hisa_gpu_bench" --json ${BENCH_ARGS:-} > "$OUT/bench.json" 2>/dev/null
  if [ "${SKIP_TORCH:-0}" != 1 ] && python3 -c "import torch" 2>/dev/null; then
    python3 bench/torch_baseline.py "$OUT/bench.json" > "$OUT/torch_baseline.txt" 2>&1
    note "plain PyTorch baseline: exit $?"
  fi
  if [ "${SKIP_MILLION:-0}" != 1 ]; then
    "$BIN/hisa_gpu_bench" --million > "$OUT/bench_1m.txt" 2> /dev/null
    note "bench at 1M context: exit $?"
  fi
  if [ -x "$BIN/hisa" ] && [ "${SKIP_EVAL:-0}" != 1 ]; then
    "$BIN/hisa" eval --backend cuda --contexts 32K,64K,128K > "$OUT/eval_cuda.txt" 2> /dev/null
    note "hisa eval --backend cuda: exit $?"
  fi
fi

echo
echo "==== summary ===="
for line in "${summary[@]}"; do echo "$line"; done
[ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
[ -f "$OUT/bench_1m.txt" ] && cat "$OUT/bench_1m.txt"
[ -f "$OUT/torch_baseline.txt" ] && cat "$OUT/torch_baseline.txt"
[ -f "$OUT/eval_cuda.txt" ] && tail -22 "$OUT/eval_cuda.txt"
