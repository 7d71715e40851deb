#!/bin/bash
# Sixth call: CTA shapes of the register top-k for decode's few rows (.devbin/shapes, chosen by
# HISA_T1 = threads for stage 1's rows of 1024 blocks, HISA_T2 = 256 for stage 2's rows of 8192
# candidates as 256 x 32) against main (256 x 4 and 512 x 16).
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
V=$B/shapes/hisa_gpu_bench
ncu --clock-control none -k regex:TopkRegister --metrics gpu__time_duration.sum $B/hisa_gpu_bench --decode-one > $L/ncu_main.txt 2>&1
for e in HISA_T1=32 HISA_T1=64 HISA_T1=128 HISA_T2=256; do
  env $e ncu --clock-control none -k regex:TopkRegister --metrics gpu__time_duration.sum $V --decode-one > $L/ncu_${e#HISA_}.txt 2>&1
done
for r in 1 2; do
  $B/hisa_gpu_bench --quick > $L/quick_main_$r.txt 2>/dev/null
  for e in HISA_T1=32 HISA_T1=128 HISA_T2=256; do env $e $V --quick > $L/quick_${e#HISA_}_$r.txt 2>/dev/null; done
done
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L
cd $OUT && tar -xzf logs.tgz && for f in logs/ncu_*; do echo "$(basename $f .txt): $(grep -E 'gpu__time_duration' $f | awk '{printf "%s ", $NF}')"; done
for f in logs/quick_*; do echo "$(basename $f .txt): $(grep -E '^decode +(flat|hisa)' $f | awk '{printf "%s b%s %s | ", $2, $4, $6}')"; done
rm -rf logs
