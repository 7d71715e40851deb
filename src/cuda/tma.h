// Internal: bulk-tensor-copy descriptors (TMA) for the CUDA kernels.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "hisa/status.h"

namespace hisa::cuda {

/// 2-D map over `rows` rows of `row_bytes` bytes (uint8 elements), copied `box_rows` rows at a
/// time with the 128-byte swizzle the matrix instructions read (row_bytes must be 128). Rows
/// outside [0, rows) read as zeros.
Status MakeRowMap(CUtensorMap* map, const void* base, int64_t rows, int row_bytes, int box_rows);


}  // namespace hisa::cuda
