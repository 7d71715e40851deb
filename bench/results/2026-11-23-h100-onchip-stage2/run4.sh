#!/bin/bash
# Nsight Compute, full set, on HISA prefill stage 2 at 32K (the fourth ScoreKernel launch of
# --one --at 32768): main's (scores to global memory, then a top-k kernel) and onchip's.
export LD_LIBRARY_PATH=$PWD/.devbin:${LD_LIBRARY_PATH:-}
for v in . onchip; do
  n=$( [ $v = . ] && echo main || echo $v )
  timeout 250 ncu --clock-control none --set full -k regex:ScoreKernel --launch-skip 3 --launch-count 1 \
    .devbin/$v/hisa_gpu_bench --one --at 32768 > $OUT/ncu_full_$n.txt 2>&1
done
for f in $OUT/ncu_full_*; do echo $f; grep -E "Duration|Throughput|Stall|Issue Slots|Eligible|Active Warps|L2 Hit|Pipe|Warp Cycles" $f | head -60; grep -B2 -A30 "Section: Warp State" $f | head -60; done
