#!/bin/bash
# main (.devbin) against branch stage2-topk-coalesced (.devbin/branch), one call, alternated.
export LD_LIBRARY_PATH=$PWD/.devbin:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader > $OUT/device.txt
.devbin/branch/hisa_cuda_tests --gtest_filter='Cuda.HisaDecode*:Cuda.DecodeInSmall*' > $OUT/branch_tests.txt 2>&1; echo "tests rc=$?" >> $OUT/branch_tests.txt
for i in 1 2; do
  .devbin/hisa_gpu_bench --decode > $OUT/decode_main_$i.txt 2>&1
  .devbin/branch/hisa_gpu_bench --decode > $OUT/decode_branch_$i.txt 2>&1
done
for v in . branch; do
  ncu --clock-control none --metrics gpu__time_duration.sum .devbin/$v/hisa_gpu_bench --decode-one > $OUT/ncu_$( [ $v = . ] && echo main || echo branch ).txt 2>&1
done
tail -3 $OUT/branch_tests.txt
for f in $OUT/decode_*; do echo $f; grep -E "131072 +(1|64) +1 " $f; done
