#!/bin/bash
# main (.devbin) vs onchip (first form) vs onchip2 (outputs staged in shared memory, written
# contiguously); onchip2's HISA tests; --quick at 32K / 128K and at 64K, alternated twice.
export LD_LIBRARY_PATH=$PWD/.devbin:${LD_LIBRARY_PATH:-}
F='Cuda.HisaPrefill*:Cuda.HisaSorted*:Cuda.HisaDecodeMatches*:Cuda.RepeatedRuns*'
timeout 120 .devbin/onchip2/hisa_cuda_tests --gtest_filter="$F" > $OUT/tests_onchip2.txt 2>&1; echo "rc=$?" >> $OUT/tests_onchip2.txt
tail -n 3 $OUT/tests_onchip2.txt
for i in 1 2; do
  for v in . onchip onchip2; do
    n=$( [ $v = . ] && echo main || echo $v )
    .devbin/$v/hisa_gpu_bench --quick >> $OUT/quick_$n.txt 2>/dev/null
    .devbin/$v/hisa_gpu_bench --quick --at 65536 >> $OUT/quick_$n.txt 2>/dev/null
  done
done
ncu --clock-control none --metrics gpu__time_duration.sum -k regex:ScoreKernel --launch-skip 3 --launch-count 1 .devbin/onchip2/hisa_gpu_bench --one --at 32768 > $OUT/ncu32k_onchip2.txt 2>&1
grep -E "ScoreKernel|duration" $OUT/ncu32k_onchip2.txt | cut -c1-100
for f in $OUT/quick_*.txt; do echo $f; grep -E "prefill +(flat|hisa)" $f; done
