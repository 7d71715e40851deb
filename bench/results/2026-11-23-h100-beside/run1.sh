#!/bin/sh
# Call 1: GPU tests of the HISA paths with stage 2 selecting beside its scoring (main), then
# main against the two-kernel build (bench_nobeside: -DHISA_EXPERIMENT_NO_BESIDE), alternated,
# and Nsight Compute's kernel times of one 32K / 64K prefill each.
export LD_LIBRARY_PATH=.devbin
.devbin/hisa_cuda_tests --gtest_filter='Cuda.Hisa*:Cuda.*Determin*' > $OUT/tests.txt 2>&1
tail -3 $OUT/tests.txt
for i in 1 2; do
  for b in hisa_gpu_bench bench_nobeside; do
    .devbin/$b --quick > $OUT/quick_${b}_$i.txt 2>/dev/null
    .devbin/$b --quick --at 65536 | grep -i "prefill\|65536\|64K" >> $OUT/quick_${b}_$i.txt 2>/dev/null
  done
done
for b in hisa_gpu_bench bench_nobeside; do
  for at in 32768 65536; do
    ncu --clock-control none --metrics gpu__time_duration.sum .devbin/$b --one --at $at 2>/dev/null \
      | grep -E "^  [A-Za-z_].*\(|gpu__time_duration" > $OUT/ncu_${b}_$at.txt
  done
done
for f in $OUT/quick_*; do echo "== $f"; cat $f; done
