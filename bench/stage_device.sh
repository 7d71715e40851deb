#!/bin/sh
# Copies the GPU binaries built here (build/release) and the shared libraries they need that a
# bare CUDA machine may lack into .devbin, which the device run carries.
set -eu
cd "$(dirname "$0")/.."
rm -rf .devbin && mkdir -p .devbin
for f in build/release/tests/hisa_cuda_tests build/release/tools/hisa build/release/bench/hisa_gpu_bench; do
  [ -f "$f" ] && cp "$f" .devbin/
done
for lib in libgomp.so.1 libbenchmark.so.1debian libfmt.so.9; do
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  [ -n "$p" ] && cp -L "$p" .devbin/
done
du -sh .devbin
