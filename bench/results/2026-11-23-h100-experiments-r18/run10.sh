#!/bin/bash
# Tenth call: the sampled threshold from every 32nd (.devbin/s1024) or 64th (.devbin/s2048) run
# of 32 keys instead of every 16th (.devbin).
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
for v in main s1024 s2048; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  for n in 131072 32768; do
    ncu --clock-control none -k regex:Topk --metrics gpu__time_duration.sum $bin --one --at $n > $L/ncu_${n}_$v.txt 2>&1
  done
  ncu --clock-control none -k regex:TopkCluster --metrics gpu__time_duration.sum $bin --decode-one > $L/ncu_decode_$v.txt 2>&1
done
for r in 1 2; do for v in main s1024; do
  bin=$B/hisa_gpu_bench; [ $v != main ] && bin=$B/$v/hisa_gpu_bench
  $bin --quick > $L/quick_${v}_$r.txt 2>/dev/null
done; done
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L
echo "== ncu Topk (us): --one: flat prefill x2, HISA s1/s2 x2, decode b64 flat x2, HISA x4; decode-one: cluster b1 x2, b64 x2"
cd $OUT && tar -xzf logs.tgz && for f in logs/ncu_*; do echo "$(basename $f .txt): $(grep -E 'gpu__time_duration' $f | awk '{printf "%s ", $NF}')"; done
for f in logs/quick_*; do echo "$(basename $f .txt): $(grep -E '^(decode|prefill) +flat' $f | awk '{printf "%s %s %s %s | ", $1, $2, $3"/"$4, $6}')"; done
rm -rf logs
