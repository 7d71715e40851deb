#!/bin/bash
# Selection phases in step across CTAs? main, onchip, noselect, and onchip with the second half of
# the grid starting 10 / 25 us late (stagger10 / stagger25); --quick, alternated twice.
export LD_LIBRARY_PATH=$PWD/.devbin:${LD_LIBRARY_PATH:-}
for i in 1 2; do
  for v in . onchip noselect stagger10 stagger25; do
    n=$( [ $v = . ] && echo main || echo $v )
    .devbin/$v/hisa_gpu_bench --quick >> $OUT/quick_$n.txt 2>/dev/null
  done
done
for f in $OUT/quick_*.txt; do echo $f; grep -E "prefill +hisa" $f; done
