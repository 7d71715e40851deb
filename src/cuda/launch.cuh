// Internal: kernel launches with programmatic dependent launch (PDL). A call's kernels run one
// after another on its stream (preparation, scoring, top-k, and HISA's second stage); launched
// this way, a kernel's CTAs may be scheduled while its predecessor finishes, so that the launch
// latency and the prologue (the scoring kernel's barrier set-up) of one kernel hide behind the
// tail of the other. Measured on the H100 the gain is small (HISA decode at batch 1 about 1 us of
// 27; batch 64 and prefill unchanged within noise), and where the next kernel is allowed to start
// matters: the preparation and top-k kernels let their successor start at once, the scoring
// kernel does not (its top-k CTAs, scheduled early, made batch-64 HISA decode 60 -> 63-64 us).
// The pooled-key kernels launch plainly.
//
// The contract, for every kernel launched through LaunchKernel: each CTA calls
// WaitForPrecedingGrids() before its first global memory access (read or write) and before it
// can exit, and may call LetDependentsStart() at any point. The wait returns once every grid this
// one depends on has completed and its writes are visible; since each kernel waits so, completion
// is transitive: when a kernel passes its wait, every kernel launched before it on the stream has
// finished.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "cuda/common.h"

namespace hisa::cuda {

/// Blocks until the grids this one depends on have completed and their memory is visible.
__device__ __forceinline__ void WaitForPrecedingGrids() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
}

/// Lets the next kernel on the stream be scheduled once every CTA of this grid has called this
/// or exited (it still waits for this grid's completion before touching memory).
__device__ __forceinline__ void LetDependentsStart() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

struct LaunchShape {
  dim3 grid;
  dim3 block;
  size_t smem = 0;
  int cluster = 1;  // CTAs per cluster along x
};

/// Launches `kernel` on `stream` with PDL allowed (and the cluster size, if any); `what` names
/// it in the error.
template <typename... Params, typename... Args>
Status LaunchKernel(const char* what, void (*kernel)(Params...), const LaunchShape& shape,
                    cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attributes[2] = {};
  attributes[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = shape.grid;
  config.blockDim = shape.block;
  config.dynamicSmemBytes = shape.smem;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = 1;
  if (shape.cluster > 1) {
    attributes[1].id = cudaLaunchAttributeClusterDimension;
    attributes[1].val.clusterDim.x = static_cast<unsigned>(shape.cluster);
    attributes[1].val.clusterDim.y = 1;
    attributes[1].val.clusterDim.z = 1;
    config.numAttrs = 2;
  }
  return FromCuda(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), what);
}

}  // namespace hisa::cuda
