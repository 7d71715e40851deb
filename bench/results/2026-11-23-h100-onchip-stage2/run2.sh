#!/bin/bash
# Nsight Compute kernel times at 32K (--one --at 32768): main, onchip, noselect (onchip with the
# selection compiled out: its scoring alone, 2 stages).
export LD_LIBRARY_PATH=$PWD/.devbin:${LD_LIBRARY_PATH:-}
for v in . onchip noselect; do
  n=$( [ $v = . ] && echo main || echo $v )
  ncu --clock-control none --metrics gpu__time_duration.sum .devbin/$v/hisa_gpu_bench --one --at 32768 > $OUT/ncu32k_$n.txt 2>&1
done
for v in . onchip noselect; do
  n=$( [ $v = . ] && echo main || echo $v )
  .devbin/$v/hisa_gpu_bench --quick >> $OUT/quick_$n.txt 2>/dev/null
done
for f in $OUT/ncu32k_*; do echo $f; awk '/^  [A-Za-z].*\(/{k=$0} /gpu__time_duration.sum/{print substr(k,1,60), $NF, $(NF-1)}' $f | tail -6; done
for f in $OUT/quick_*.txt; do echo $f; grep -E "prefill +hisa" $f; done
