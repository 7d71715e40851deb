#include "cuda/tma.h"

#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <limits>
#include <mutex>

#include "core/check.h"

namespace hisa::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 EncodeTiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult query;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault,
                                         &query) != cudaSuccess ||
        query != cudaDriverEntryPointSuccess) {
      ptr = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}

}  // namespace

Status MakeRowMap(CUtensorMap* map, const void* base, int64_t rows, int row_bytes, int box_rows) {
  auto encode = EncodeTiled();
  if (encode == nullptr) {
    return {StatusCode::kDeviceError, "cuTensorMapEncodeTiled is not available from the driver"};
  }
  if (row_bytes != 128) return core::Unsupported("TMA row map needs 128-byte rows, got {}", row_bytes);
  // Bulk-copy coordinates are 32-bit: the kernels address rows as int32 (and bound them so).
  if (rows > std::numeric_limits<int32_t>::max()) {
    return core::Unsupported("the CUDA backend addresses at most 2^31 - 1 rows, got {}", rows);
  }
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(row_bytes),
                              static_cast<cuuint64_t>(rows > 0 ? rows : 1)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(row_bytes)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(row_bytes), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult result = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base),
                                 dims, strides, box, element_strides,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    return {StatusCode::kDeviceError,
            fmt::format("cuTensorMapEncodeTiled failed with CUresult {} (rows = {}, box_rows = {})",
                        static_cast<int>(result), rows, box_rows)};
  }
  return {};
}

}  // namespace hisa::cuda
