// Internal: small kernels that turn the caller's index arrays into the per-query coordinate
// ranges the scoring and top-k kernels read, clamped so that no input can make them read or write
// out of bounds (validation reports bad inputs; clamping keeps unchecked calls memory-safe).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::cuda {

/// Per-query ranges of one call. Device arrays of T entries each.
struct QueryRanges {
  int32_t* lo = nullptr;     // flat: first visible coordinate; HISA stage 1: first scored block
  int32_t* hi = nullptr;     // one past the last
  int32_t* base = nullptr;   // prefill: clamped ks (row of position 0); decode: 0
  int32_t* length = nullptr; // visible positions (p + 1)
  // HISA (set with block_size > 0), filled by the flat preparation too, so that stage 1 needs no
  // launch of its own: own block o = (length - 1) / B (-1 when empty); lo1/hi1 = the complete
  // blocks 1 .. o - 1 in pooled coordinates, slots ceil(base / B) + j (prefill) or block indices
  // (decode).
  int32_t* own = nullptr;
  int32_t* lo1 = nullptr;
  int32_t* hi1 = nullptr;
  int32_t block_size = 0;
};

/// Prefill, flat: lo = clamp(ks), hi = clamp(ke) with hi - lo <= max_len; base = lo (and, for
/// HISA, own, lo1 and hi1).
Status PrepareFlatPrefill(const int32_t* ks, const int32_t* ke, int32_t num_queries,
                          int64_t num_keys, int32_t max_len, const QueryRanges& r,
                          cudaStream_t stream);

/// Decode, flat: lo = 0, hi = length = min(len_b, capacity) - next_n + i + 1 (>= 0) (and, for
/// HISA, own, lo1 and hi1).
Status PrepareFlatDecode(const int32_t* context_lens, int32_t num_seqs, int32_t next_n,
                         int64_t capacity, const QueryRanges& r, cudaStream_t stream);

/// HISA with o + 1 <= m for every query: blocks[t] = 0 .. own, then -1 (from r.own).
Status PrepareAllBlocks(int32_t num_queries, int32_t block_budget, const QueryRanges& r,
                        int32_t* blocks, cudaStream_t stream);

/// logits[t * stride + c] = -inf for t < rows, c < cols outside [lo[t], hi[t]).
Status FillOutside(float* logits, const int32_t* lo, const int32_t* hi, int32_t rows, int64_t cols,
                   int64_t stride, cudaStream_t stream);

}  // namespace hisa::cuda
