#!/bin/sh
# HISA prefill under a workspace limit that splits the two-kernel path into query chunks: main
# (stage 2 selects on chip there) against bench_noonchip (api.cu with -DHISA_EXPERIMENT_NO_ONCHIP:
# the chunked two-kernel path), alternated, at 8 and 16 MiB; 32K, 64K and 128K.
export LD_LIBRARY_PATH=.devbin
for mib in 8 16; do
  for i in 1 2; do
    for b in hisa_gpu_bench bench_noonchip; do
      for at in 32768 65536 131072; do
        .devbin/$b --quick --at $at --workspace-limit $mib 2>/dev/null | grep "prefill  hisa" \
          | sed "s/^/$mib MiB $b run$i: /" >> $OUT/hisa_limited.txt
      done
    done
  done
done
cat $OUT/hisa_limited.txt
