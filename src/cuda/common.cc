#include "cuda/common.h"

#include <fmt/format.h>

#include <mutex>
#include <vector>

namespace hisa::cuda {

Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return {};
  cudaGetLastError();  // clear a sticky launch error so later calls start clean
  const StatusCode code =
      err == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kDeviceError;
  return {code, fmt::format("{} failed: {} ({})", what, cudaGetErrorString(err),
                            cudaGetErrorName(err))};
}

Status CurrentDevice(DeviceInfo* info) {
  static std::mutex mutex;
  static std::vector<DeviceInfo> cache;
  int device = 0;
  HISA_CUDA_RETURN(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  if (device < static_cast<int>(cache.size()) && cache[device].device == device) {
    *info = cache[device];
    return {};
  }
  DeviceInfo d;
  d.device = device;
  HISA_CUDA_RETURN(cudaDeviceGetAttribute(&d.sm_count, cudaDevAttrMultiProcessorCount, device));
  HISA_CUDA_RETURN(cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, device));
  HISA_CUDA_RETURN(cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, device));
  int smem = 0;
  HISA_CUDA_RETURN(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  d.smem_optin = static_cast<size_t>(smem);
  if (static_cast<int>(cache.size()) <= device) cache.resize(device + 1);
  cache[device] = d;
  // Keep freed scratch memory in the stream-ordered pool instead of returning it to the driver.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    uint64_t threshold = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  }
  *info = d;
  return {};
}

Scratch::~Scratch() {
  for (int i = 0; i < count_; ++i) cudaFreeAsync(blocks_[i], stream_);
}

Status Scratch::Allocate(size_t bytes, void** out) {
  if (count_ == kMaxBlocks) return {StatusCode::kInternal, "too many scratch blocks"};
  void* p = nullptr;
  HISA_CUDA_RETURN(cudaMallocAsync(&p, bytes == 0 ? 256 : bytes, stream_));
  blocks_[count_++] = p;
  bytes_ += bytes;
  *out = p;
  return {};
}

Status AllowSharedMemory(const void* kernel, int bytes, std::atomic<uint64_t>* done,
                         bool large_clusters) {
  int device = 0;
  HISA_CUDA_RETURN(cudaGetDevice(&device));
  const uint64_t bit = uint64_t{1} << (device & 63);
  if (done->load(std::memory_order_acquire) & bit) return {};
  HISA_CUDA_RETURN(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  if (large_clusters) {
    HISA_CUDA_RETURN(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  }
  done->fetch_or(bit, std::memory_order_release);
  return {};
}

Status CopyToHost(const void* device, size_t bytes, void* host, cudaStream_t stream) {
  if (bytes == 0) return {};
  HISA_CUDA_RETURN(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream));
  HISA_CUDA_RETURN(cudaStreamSynchronize(stream));
  return {};
}

}  // namespace hisa::cuda
