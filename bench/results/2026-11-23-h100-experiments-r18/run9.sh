#!/bin/bash
# Ninth call: HISA prefill's stage-2 top-k with the row held in registers (TopkResidentKernel):
# .devbin = 256 threads x 3 CTAs per SM, .devbin/r512 = 512 x 2, .devbin/nores = the narrow
# histogram kernel as before. GPU tests on this stop's code first.
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
timeout 300 $B/hisa_cuda_tests > $L/tests.log 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED) |FAILED|Failure" $L/tests.log | head -20
f='Cuda.HisaSortedAndUnsortedAgree:Cuda.HisaPrefillManyQueries*:Cuda.ShortRowsInRegisters'
timeout 250 compute-sanitizer --tool memcheck --error-exitcode 9 $B/hisa_cuda_tests --gtest_filter="$f" > $L/sanitizer_memcheck.log 2>&1
echo "memcheck exit $? $(grep -E 'ERROR SUMMARY' $L/sanitizer_memcheck.log | tail -1)"
for v in main r512 nores; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  for n in 32768 131072; do
    ncu --clock-control none -k regex:Topk --metrics gpu__time_duration.sum $bin --one --at $n > $L/ncu_${n}_$v.txt 2>&1
  done
done
for r in 1 2; do for v in main r512 nores; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  $bin --quick > $L/quick_${v}_$r.txt 2>/dev/null
done; done
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L
echo "== ncu Topk kernels (us): flat prefill x2, HISA s1/s2 x2, decode flat x2, HISA s1/s2 x2"
cd $OUT && tar -xzf logs.tgz && for f in logs/ncu_*; do echo "$(basename $f .txt): $(grep -E 'gpu__time_duration' $f | awk '{printf "%s ", $NF}')"; done
for f in logs/quick_*; do echo "$(basename $f .txt): $(grep -E '^prefill +hisa' $f | awk '{printf "%s %s %s | ", $2, $3, $6}')"; done
rm -rf logs
