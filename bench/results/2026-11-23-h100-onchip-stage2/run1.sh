#!/bin/bash
# main (.devbin) vs stage 2 selecting on chip (.devbin/onchip; .devbin/onchip_dec: also in decode).
export LD_LIBRARY_PATH=$PWD/.devbin:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader > $OUT/device.txt
F='Cuda.HisaPrefill*:Cuda.HisaSorted*:Cuda.HisaDecode*:Cuda.DecodeInSmall*:Cuda.RepeatedRuns*'
timeout 200 .devbin/onchip/hisa_cuda_tests --gtest_filter="$F" > $OUT/tests_onchip.txt 2>&1; echo "rc=$?" >> $OUT/tests_onchip.txt
timeout 120 .devbin/onchip_dec/hisa_cuda_tests --gtest_filter='Cuda.HisaDecode*:Cuda.DecodeInSmall*' > $OUT/tests_onchip_dec.txt 2>&1; echo "rc=$?" >> $OUT/tests_onchip_dec.txt
tail -3 $OUT/tests_onchip.txt $OUT/tests_onchip_dec.txt
for i in 1 2; do
  for v in . onchip; do
    n=$( [ $v = . ] && echo main || echo $v )
    .devbin/$v/hisa_gpu_bench --quick >> $OUT/quick_$n.txt 2>/dev/null
    .devbin/$v/hisa_gpu_bench --quick --at 65536 >> $OUT/quick_$n.txt 2>/dev/null
  done
done
for i in 1 2; do for v in onchip onchip_dec; do .devbin/$v/hisa_gpu_bench --decode >> $OUT/decode_$v.txt 2>/dev/null; done; done
for f in $OUT/quick_*.txt; do echo $f; grep -E "prefill +(flat|hisa)" $f; done
for f in $OUT/decode_*.txt; do echo $f; grep -E "hisa +131072 +(1|64|128) +1 " $f; done
