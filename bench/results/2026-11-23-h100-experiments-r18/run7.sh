#!/bin/bash
# Seventh call: the flat top-k's keeping pass prefetching chunks into L2 ahead of its loads
# (.devbin: 4 chunks ahead; .devbin/aheadD: D chunks, 0 = none, as before).
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
for v in main ahead0 ahead2 ahead8; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  for n in 131072 32768; do
    ncu --clock-control none -k regex:Topk --metrics gpu__time_duration.sum,dram__bytes_read.sum $bin --one --at $n > $L/ncu_${n}_$v.txt 2>&1
  done
done
for r in 1 2; do for v in main ahead0; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  $bin --quick > $L/quick_${v}_$r.txt 2>/dev/null
done; done
timeout 200 $B/hisa_cuda_tests --gtest_filter='Cuda.LongRows*:Cuda.FewLongRows*:Cuda.NanScores*:Cuda.FlatDecode*:Cuda.FlatPrefill*:Cuda.RepeatedRuns*' > $L/tests.log 2>&1; echo "tests exit $?"; grep -E "^\[  (PASSED|FAILED) " $L/tests.log
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L
echo "== ncu Topk (us): flat prefill x2, HISA s1/s2 x2, decode b64 flat x2, HISA s1/s2 x2"
cd $OUT && tar -xzf logs.tgz && for f in logs/ncu_*; do echo "$(basename $f .txt): $(grep -E 'gpu__time_duration' $f | awk '{printf "%s ", $NF}') | MB: $(grep -E 'dram__bytes_read' $f | head -2 | awk '{printf "%s%s ", $NF, $(NF-1)}')"; done
for f in logs/quick_*; do echo "$(basename $f .txt): $(grep -E '^(decode|prefill) +(flat|hisa)' $f | awk '{printf "%s %s %s %s | ", $1, $2, $3"/"$4, $6}')"; done
rm -rf logs
