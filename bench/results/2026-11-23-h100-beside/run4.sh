#!/bin/sh
# Call 4: clock64 trace of the beside selection (second form; bench_trace: -DHISA_EXPERIMENT_
# BESIDE_TRACE): for CTAs 0-3 and their rows 0-3, the math warps' cycles scoring the row and
# waiting for the row two back to be taken, and the selecting warps' cycles waiting for the row
# and selecting it. Stage 2's kernel time of the traced build (Nsight Compute) beside it.
export LD_LIBRARY_PATH=.devbin
.devbin/bench_trace --one --at 32768 2>/dev/null | grep TRACE | head -16 > $OUT/trace_32k.txt
ncu --clock-control none --metrics gpu__time_duration.sum .devbin/bench_trace --one --at 32768 2>/dev/null \
  | grep -E "^  [A-Za-z_].*\(|gpu__time_duration" | paste - - | grep "ScoreKernel<64, 1, 1, 3, 2" \
  | awk '{print $NF}' > $OUT/ncu_trace_32k.txt
cat $OUT/trace_32k.txt $OUT/ncu_trace_32k.txt
