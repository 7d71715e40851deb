#include "memory.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#if HISA_TOOLS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace hisa::tools {
namespace {

#if HISA_TOOLS_WITH_CUDA
Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return {};
  return {error == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kDeviceError,
          fmt::format("{}: {}", what, cudaGetErrorString(error))};
}
#endif

Status NoCuda() {
  return {StatusCode::kUnsupported, "backend = cuda: the hisa command line was built without CUDA"};
}

Status OutOfRange(size_t bytes, size_t offset, size_t size) {
  return {StatusCode::kInternal, fmt::format("copy of {} bytes at offset {} overruns a buffer of "
                                             "{} bytes",
                                             bytes, offset, size)};
}

}  // namespace

BackendBuffer::~BackendBuffer() {
  Release();
}

BackendBuffer::BackendBuffer(BackendBuffer&& other) noexcept
    : device_(other.device_),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

BackendBuffer& BackendBuffer::operator=(BackendBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    device_ = other.device_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void BackendBuffer::Release() {
  if (data_ == nullptr) return;
#if HISA_TOOLS_WITH_CUDA
  if (device_) {
    cudaFree(data_);
    data_ = nullptr;
    return;
  }
#endif
  std::free(data_);
  data_ = nullptr;
}

Status BackendBuffer::Allocate(Backend backend, size_t bytes, BackendBuffer* out) {
  BackendBuffer buffer;
  buffer.device_ = backend == Backend::kCuda;
  buffer.bytes_ = bytes;
  const size_t allocated = bytes > 0 ? bytes : 1;  // a valid pointer even when empty
  if (buffer.device_) {
#if HISA_TOOLS_WITH_CUDA
    HISA_TOOLS_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&buffer.data_, allocated), "cudaMalloc"));
    HISA_TOOLS_RETURN_IF_ERROR(CudaStatus(cudaMemset(buffer.data_, 0, allocated), "cudaMemset"));
#else
    return NoCuda();
#endif
  } else {
    buffer.data_ = std::calloc(allocated, 1);
    if (buffer.data_ == nullptr) {
      return {StatusCode::kOutOfMemory, fmt::format("cannot allocate {} bytes", bytes)};
    }
  }
  *out = std::move(buffer);
  return {};
}

Status BackendBuffer::CopyFromHost(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) return OutOfRange(bytes, offset, bytes_);
  if (bytes == 0) return {};
  char* target = static_cast<char*>(data_) + offset;
  if (device_) {
#if HISA_TOOLS_WITH_CUDA
    return CudaStatus(cudaMemcpy(target, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
#else
    return NoCuda();
#endif
  }
  std::memcpy(target, host, bytes);
  return {};
}

Status BackendBuffer::CopyToHost(void* host, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) return OutOfRange(bytes, offset, bytes_);
  if (bytes == 0) return {};
  const char* source = static_cast<const char*>(data_) + offset;
  if (device_) {
#if HISA_TOOLS_WITH_CUDA
    return CudaStatus(cudaMemcpy(host, source, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
#else
    return NoCuda();
#endif
  }
  std::memcpy(host, source, bytes);
  return {};
}

Status Synchronize(Backend backend) {
  if (backend != Backend::kCuda) return {};
#if HISA_TOOLS_WITH_CUDA
  return CudaStatus(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#else
  return NoCuda();
#endif
}

}  // namespace hisa::tools
