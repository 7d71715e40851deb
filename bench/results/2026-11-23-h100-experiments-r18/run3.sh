#!/bin/bash
# Third call: the register top-k's rank finish (.devbin) against radix steps to the end
# (.devbin/norank); the GPU tests and compute-sanitizer on the register top-k's tests.
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
timeout 240 $B/hisa_cuda_tests > $L/tests.log 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED) |FAILED|Failure" $L/tests.log | head -20
f='Cuda.ShortRowsInRegisters:Cuda.HisaDecode*'
for tool in memcheck racecheck; do
  timeout 200 compute-sanitizer --tool $tool --error-exitcode 9 $B/hisa_cuda_tests --gtest_filter="$f" > $L/sanitizer_$tool.log 2>&1
  echo "$tool exit $? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $L/sanitizer_$tool.log | tail -1)"
done
for v in main norank; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  ncu --clock-control none -k regex:TopkRegister --metrics gpu__time_duration.sum $bin --decode-one > $L/ncu_decode_$v.txt 2>&1
  for n in 32768 131072; do
    ncu --clock-control none -k regex:TopkRegister --metrics gpu__time_duration.sum $bin --one --at $n > $L/ncu_prefill${n}_$v.txt 2>&1
  done
done
for r in 1 2; do for v in main norank; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  $bin --quick > $L/quick_${v}_$r.txt 2>/dev/null
done; done
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L
echo "== ncu TopkRegisterKernel (us): decode-one (b1 s1,s2 x2, b64 s1,s2 x2); --one prefill (s1 x2 ..., decode b64)"
cd $OUT && tar -xzf logs.tgz && for f in logs/ncu_*; do echo "$(basename $f .txt): $(grep -E 'gpu__time_duration' $f | awk '{printf "%s ", $NF}')"; done
for f in logs/quick_*; do echo "$(basename $f .txt): $(grep -E '^(decode|prefill) +(flat|hisa)' $f | awk '{printf "%s %s %s %s | ", $1, $2, $3 $4, $6}')"; done
rm -rf logs
