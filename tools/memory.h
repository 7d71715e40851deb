// Memory that a backend reads and writes: host memory for the CPU backends, device memory for
// CUDA. The command line keeps its tensors on the host and copies them where the backend runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hisa/status.h"
#include "hisa/types.h"
#include "return_if_error.h"

namespace hisa::tools {

class BackendBuffer {
 public:
  BackendBuffer() = default;
  ~BackendBuffer();
  BackendBuffer(BackendBuffer&& other) noexcept;
  BackendBuffer& operator=(BackendBuffer&& other) noexcept;
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;

  /// `bytes` zeroed bytes where `backend` reads them.
  static Status Allocate(Backend backend, size_t bytes, BackendBuffer* out);

  Status CopyFromHost(const void* host, size_t bytes, size_t offset = 0);
  Status CopyToHost(void* host, size_t bytes, size_t offset = 0) const;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Release();

  bool device_ = false;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

/// A buffer holding a copy of `host`.
template <typename T>
Status Upload(Backend backend, const std::vector<T>& host, BackendBuffer* out) {
  const size_t bytes = host.size() * sizeof(T);
  HISA_TOOLS_RETURN_IF_ERROR(BackendBuffer::Allocate(backend, bytes, out));
  return out->CopyFromHost(host.data(), bytes);
}

/// The whole buffer as elements of T.
template <typename T>
Status Download(const BackendBuffer& buffer, std::vector<T>* host) {
  host->resize(buffer.bytes() / sizeof(T));
  return buffer.CopyToHost(host->data(), host->size() * sizeof(T));
}

/// Waits for the backend's queued work (CUDA); a no-op for the CPU backends.
Status Synchronize(Backend backend);

}  // namespace hisa::tools
