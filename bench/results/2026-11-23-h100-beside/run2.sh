#!/bin/sh
# Call 2: where the beside selection's time goes. Every kernel's time (Nsight Compute) of one
# 64K and one 32K prefill (--one: and a decode batch 64) for main (selection beside),
# bench_nobeside (two kernels), bench_idle (the selecting warps only wait for each row and free
# it: wrong results, a bound), bench_nowrite (threshold passes only), bench_sleep (the selecting
# warps wait with nanosleep). Then the GPU tests of main.
export LD_LIBRARY_PATH=.devbin
for at in 65536 32768; do
  for b in hisa_gpu_bench bench_nobeside bench_idle bench_nowrite bench_sleep hisa_gpu_bench bench_nobeside; do
    echo "### $at $b" >> $OUT/ncu_all.txt
    ncu --clock-control none --metrics gpu__time_duration.sum .devbin/$b --one --at $at 2>/dev/null \
      | grep -E "^  [A-Za-z_].*\(|gpu__time_duration" | paste - - \
      | sed -E 's/\(const hisa.*\)|\(hisa::[^)]*\)//' | awk '{print substr($0,1,70), $NF}' >> $OUT/ncu_all.txt
  done
done
grep -E "###|ScoreKernel<64, 1, 1, 3" $OUT/ncu_all.txt
.devbin/hisa_cuda_tests --gtest_filter='Cuda.Hisa*:Cuda.*Determin*' > $OUT/tests.txt 2>&1
grep -E "^\[  (PASSED|FAILED) |FAILED|tests ran" $OUT/tests.txt | head -20
