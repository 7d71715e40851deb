#!/bin/bash
# Experiments of the thirteenth stop, one call: .devbin = this stop's code (candidate-row table in
# the register top-k), .devbin/<variant>/hisa_gpu_bench = variants (see README.md here).
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $OUT/device.txt
timeout 200 $B/hisa_cuda_tests > $OUT/tests.log 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED) " $OUT/tests.log
for v in main notable t1024; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  ncu --clock-control none -k regex:TopkRegister --metrics gpu__time_duration.sum $bin --decode-one > $OUT/ncu_$v.txt 2>&1
done
for r in 1 2; do
  for v in main notable t1024; do
    bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
    $bin --quick > $OUT/quick_${v}_$r.txt 2>/dev/null
  done
done
for s in 4 6 8 12 5; do HISA_SEGMENTS=$s $B/seg/hisa_gpu_bench --quick > $OUT/quick_seg$s.txt 2>/dev/null; done
$B/hisa_gpu_bench --quick > $OUT/quick_main_3.txt 2>/dev/null
echo "== decode rows (batch, median_ms) per run"
for f in $OUT/quick_*.txt; do echo "$(basename $f .txt): $(grep -E '^decode' $f | awk '{printf "%s b%s %s | ", $2, $4, $6}')"; done
for v in main notable t1024; do echo "$v ncu (us):"; grep -E "gpu__time_duration" $OUT/ncu_$v.txt | awk '{printf "%s ", $NF}'; echo; done
