#!/bin/bash
# Eighth call: more narrow top-k CTAs per SM for HISA prefill's stage-2 rows (1024 rows of 8192):
# main Topk<256, 2048, 2048, 4>; narrow5 <256, 2048, 2048, 5>; narrow6 <128, 2048, 2048, 6>;
# narrow7 <128, 2048, 1024, 7> (threads, selected room, bucket room, CTAs per SM).
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
for v in main narrow5 narrow6 narrow7; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  ncu --clock-control none -k regex:TopkKernel --metrics gpu__time_duration.sum,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active $bin --one --at 32768 > $L/ncu_$v.txt 2>&1
done
for r in 1 2; do for v in main narrow5 narrow6 narrow7; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  $bin --quick > $L/quick_${v}_$r.txt 2>/dev/null
done; done
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L
echo "== ncu TopkKernel at 32K: flat x2, HISA stage 2 x2 (time us, registers, warps active %)"
cd $OUT && tar -xzf logs.tgz && for f in logs/ncu_*; do echo "$(basename $f .txt): $(grep -E 'gpu__time_duration|registers_per|warps_active' $f | awk '{printf "%s ", $NF}')"; done
for f in logs/quick_*; do echo "$(basename $f .txt): $(grep -E '^prefill +hisa' $f | awk '{printf "%s %s %s | ", $2, $3, $6}')"; done
rm -rf logs
