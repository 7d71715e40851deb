#!/bin/bash
# Profiler evidence for the README's "where the time goes": on a Hopper machine, Nsight Compute
# over one flat and one HISA prefill at 128K (hisa_gpu_bench --one) and over decode at batch 1
# and 64 at 128K (--decode-one). Writes to $OUT (or ./gpu_check_out): profile_kernels.txt (time
# of every kernel of the first prefill calls), profile_decode.txt (of every decode kernel) and
# profile_score.txt (issue-slot, scheduler and stall statistics of the flat scoring kernel).
#
#   bench/profile_gpu.sh [DIR]   DIR holds hisa_gpu_bench and its libraries (default .devbin)
set -u
BIN=${1:-.devbin}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
ncu --clock-control none -c 16 --metrics gpu__time_duration.sum "$BIN/hisa_gpu_bench" --one \
  > "$OUT/profile_kernels.txt" 2>&1
ncu --clock-control none --metrics gpu__time_duration.sum "$BIN/hisa_gpu_bench" --decode-one \
  > "$OUT/profile_decode.txt" 2>&1
ncu --clock-control none -k regex:ScoreKernel -c 1 --section SpeedOfLight --section SchedulerStats \
  --section WarpStateStats --section Occupancy "$BIN/hisa_gpu_bench" --one \
  > "$OUT/profile_score.txt" 2>&1
grep -E "^\s+[a-zA-Z_].*\(|gpu__time_duration" "$OUT/profile_kernels.txt" | sed 's/(hisa::cuda.*//' \
  | paste - - | awk '{print $NF, $(NF-1), $1, $2}'
grep -E "Duration|Issue Slots Busy|Issued Ipc|No Eligible|Eligible Warps|Warp Cycles Per Issued" \
  "$OUT/profile_score.txt"
