#!/bin/sh
# Installs what hisa needs to build and test on a fresh Debian 12 machine:
#   Debian packages: compiler tool chain, CMake, GoogleTest, Google Benchmark, CLI11, fmt,
#                    nlohmann-json, OpenMP (see README, "Dependencies")
#   PyPI:            nvidia-cutlass, for the CUTLASS/CuTe C++ headers the CUDA kernels use
#                    (unpacked into third_party/cutlass; only needed when nvcc is present)
# Safe to run again: it skips what is already there.
set -eu
cd "$(dirname "$0")/.."

packages="build-essential cmake libgtest-dev libbenchmark-dev libcli11-dev libfmt-dev
nlohmann-json3-dev libomp-dev python3 python3-pip unzip"
missing=""
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing Debian packages:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

CUTLASS_VERSION=4.2.0.0
if command -v nvcc >/dev/null 2>&1 && [ ! -f third_party/cutlass/include/cute/tensor.hpp ]; then
  echo "deps: fetching CUTLASS/CuTe headers (nvidia-cutlass==$CUTLASS_VERSION from PyPI)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --dest "$tmp" "nvidia-cutlass==$CUTLASS_VERSION"
  mkdir -p third_party/cutlass
  (cd "$tmp" && unzip -q nvidia_cutlass-*.whl 'cutlass_library/source/include/*')
  rm -rf third_party/cutlass/include
  mv "$tmp/cutlass_library/source/include" third_party/cutlass/include
  rm -rf "$tmp"
fi
echo "deps: ok"
