// Internal, host side of the CUDA backend: error handling, device properties, stream-ordered
// scratch memory. Included by .cu and .cc files of src/cuda only.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/check.h"
#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::cuda {

/// kDeviceError naming the failed call and CUDA's message; ok for cudaSuccess.
Status FromCuda(cudaError_t err, const char* what);

#define HISA_CUDA_RETURN(call) HISA_RETURN_IF_ERROR(::hisa::cuda::FromCuda((call), #call))
/// After a kernel launch: the launch error, if any.
#define HISA_CUDA_CHECK_LAUNCH(what) \
  HISA_RETURN_IF_ERROR(::hisa::cuda::FromCuda(cudaGetLastError(), what))

inline cudaStream_t StreamOf(const RunOptions& opts) {
  return static_cast<cudaStream_t>(opts.stream);
}

struct DeviceInfo {
  int device = -1;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  size_t smem_optin = 0;  // largest dynamic shared memory per block
};

/// Properties of the current device (queried once per device).
Status CurrentDevice(DeviceInfo* info);

/// Scratch device memory, allocated on the call's stream and freed on it when destroyed (the
/// stream-ordered allocator keeps it cached, so repeated calls do not hit cudaMalloc).
class Scratch {
 public:
  explicit Scratch(cudaStream_t stream) : stream_(stream) {}
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  /// A new zero-initialised-free block of `bytes` (256-byte aligned).
  Status Allocate(size_t bytes, void** out);
  template <typename T>
  Status Allocate(size_t count, T** out) {
    void* p = nullptr;
    HISA_RETURN_IF_ERROR(Allocate(count * sizeof(T), &p));
    *out = static_cast<T*>(p);
    return {};
  }
  size_t bytes() const { return bytes_; }

 private:
  cudaStream_t stream_;
  static constexpr int kMaxBlocks = 16;
  void* blocks_[kMaxBlocks] = {};
  int count_ = 0;
  size_t bytes_ = 0;
};

/// Raises a kernel's dynamic shared-memory limit (and, with large_clusters, allows clusters
/// beyond the portable 8 CTAs), once per device and kernel (`done` is the kernel's own flag
/// word, one bit per device).
Status AllowSharedMemory(const void* kernel, int bytes, std::atomic<uint64_t>* done,
                         bool large_clusters = false);

/// Copies `count` elements from device to host on `stream` and waits.
Status CopyToHost(const void* device, size_t bytes, void* host, cudaStream_t stream);

}  // namespace hisa::cuda
