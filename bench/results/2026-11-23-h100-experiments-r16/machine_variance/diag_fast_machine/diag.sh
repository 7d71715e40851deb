#!/bin/bash
# Is this a slow run? If so, memory metrics of flat decode's scoring kernel for main and the
# by-block branch's binary (same kernel machine code).
export LD_LIBRARY_PATH=.devbin
D=$OUT/diag; mkdir -p $D
ncu --clock-control none --metrics gpu__time_duration.sum -k regex:ScoreKernel .devbin/hisa_gpu_bench --decode-one > $D/probe.txt 2>&1
t=$(grep -E "gpu__time" $D/probe.txt | awk '{print $NF}' | sort -n | tail -1)
echo "largest scoring time in --decode-one: $t us"
M=dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,lts__t_sector_hit_rate.pct,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read_lookup_miss.sum,l1tex__t_bytes.sum,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,sm__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum
for v in main byblock; do b=.devbin; [ $v = byblock ] && b=.devbin/byblock
  ncu --clock-control none -k regex:ScoreKernel --launch-skip 6 --launch-count 1 --metrics $M --section MemoryWorkloadAnalysis_Tables $b/hisa_gpu_bench --decode-one > $D/mem_$v.txt 2>&1
  echo "== $v"; grep -E "ScoreKernel|dram__|lts__|l1tex__t_bytes|long_scoreboard|sm__throughput|gpu__time" $D/mem_$v.txt | head -14
done
cd $OUT && tar czf diag.tgz diag && rm -rf diag
