// Internal: thread count for the CPU backends (OpenMP).
#pragma once

#include <omp.h>

#include "hisa/types.h"

namespace hisa::core {

/// Worker threads for a call: opts.num_threads, or every hardware thread when it is 0.
inline int ThreadCount(const RunOptions& opts) {
  return opts.num_threads > 0 ? opts.num_threads : omp_get_max_threads();
}

}  // namespace hisa::core
