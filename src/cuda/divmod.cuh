// Internal, device side: the quotient and remainder of a position by a page or block size, by
// shifts when the size is a power of two (the usual page and block sizes). Used wherever a
// kernel maps positions to pages or blocks per key: the scoring kernel's producer, the pooling
// kernel, the top-k's candidate and paged-row outputs.
#pragma once

#include <cuda_runtime.h>

namespace hisa::cuda {

/// q = c / d, *r = c % d, for c >= 0 and d > 0.
__device__ __forceinline__ int DivMod(int c, int d, int* r) {
  if ((d & (d - 1)) == 0) {
    *r = c & (d - 1);
    return c >> (__ffs(d) - 1);
  }
  *r = c % d;
  return c / d;
}

}  // namespace hisa::cuda
