#!/bin/bash
# Second call: the segment rule counted in slots (.devbin) against the old rule counted in SMs
# (.devbin/oldseg), the decode sweep alternated; HISA decode stage segments (.devbin/segx).
set -u
B=.devbin; OUT=${OUT:-out}; export LD_LIBRARY_PATH=$B; L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/device.txt
timeout 200 $B/hisa_cuda_tests > $L/tests.log 2>&1; echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED) " $L/tests.log
args="bench --backend cuda --contexts 8K --queries 16 --decode-contexts 32K,128K --batches 1,32,64,128 --next-n 1,2 --repeats 20 --regime sinks-local"
for r in 1 2; do
  for v in main oldseg; do
    bin=$B/hisa; [ $v != main ] && bin=$B/$v/hisa
    $bin $args > $L/decode_${v}_$r.txt 2>/dev/null
  done
done
for e in "HISA_S2_SEGMENTS=8" "HISA_S2_SEGMENTS=12" "HISA_S1_SEGMENTS=8" "HISA_S1_SEGMENTS=2"; do
  env $e $B/segx/hisa_gpu_bench --quick > $L/quick_segx_${e#HISA_}.txt 2>/dev/null
done
$B/hisa_gpu_bench --quick > $L/quick_main.txt 2>/dev/null
tar -C $OUT -czf $OUT/logs.tgz logs && rm -rf $L/quick_* $L/decode_*
cd $OUT && tar -xzf logs.tgz logs/decode_main_1.txt logs/decode_oldseg_1.txt && cat logs/decode_main_1.txt logs/decode_oldseg_1.txt | grep -E "decode|method" | head -80
