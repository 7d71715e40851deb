#!/bin/sh
# Call 3: the beside selection with its output pass loading the next chunk before the current
# chunk's scan, and a thread's block looked up once per block (hisa_gpu_bench), against the two
# kernels (bench_nobeside): stage 2's kernel time (Nsight Compute) and the quick sweeps at 32K
# and 64K, alternated; then the HISA GPU tests.
export LD_LIBRARY_PATH=.devbin
for at in 32768 65536; do
  for b in hisa_gpu_bench bench_nobeside hisa_gpu_bench; do
    echo "### $at $b" >> $OUT/ncu_all.txt
    ncu --clock-control none --metrics gpu__time_duration.sum .devbin/$b --one --at $at 2>/dev/null \
      | grep -E "^  [A-Za-z_].*\(|gpu__time_duration" | paste - - \
      | sed -E 's/\(const hisa.*\)|\(hisa::[^)]*\)//' | awk '{print substr($0,1,70), $NF}' >> $OUT/ncu_all.txt
  done
done
grep -E "###|ScoreKernel<64, 1, 1, 3, 2|Topk<256" $OUT/ncu_all.txt
for b in hisa_gpu_bench bench_nobeside; do
  .devbin/$b --quick --at 65536 2>/dev/null | grep hisa > $OUT/quick_$b.txt
done
cat $OUT/quick_*
.devbin/hisa_cuda_tests --gtest_filter='Cuda.Hisa*' > $OUT/tests.txt 2>&1
grep -E "^\[  (PASSED|FAILED) |FAILED" $OUT/tests.txt | head
