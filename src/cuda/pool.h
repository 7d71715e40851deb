// Internal: pooled-key kernels (SPEC.md section 2, step 2), bit-identical to core::PoolBlock.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::cuda {

/// Pools every complete block of each sequence [seq_starts[i], + seq_lens[i]) of key rows.
Status LaunchPoolRows(const IndexerConfig& cfg, const KeyRows& keys, const int32_t* seq_starts,
                      const int32_t* seq_lens, int32_t num_seqs, const PooledKeys& pooled,
                      cudaStream_t stream);

/// Pools the blocks of each paged sequence completed between old_lens[b] (0 when null) and
/// context_lens[b].
Status LaunchPoolPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                       const PagedSequences& seqs, const int32_t* old_lens,
                       const PooledKeys& pooled, cudaStream_t stream);

}  // namespace hisa::cuda
