#!/bin/sh
# The command line's --workspace-limit: HISA and flat prefill at 64K, 1024 queries, default
# limit and 8 MiB (decode skipped).
export LD_LIBRARY_PATH=.devbin
for mib in 1024 8; do
  .devbin/hisa bench --backend cuda --contexts 64K --batches "" --workspace-limit $mib 2>/dev/null \
    > $OUT/cli_64k_${mib}mib.txt
  cat $OUT/cli_64k_${mib}mib.txt
done
