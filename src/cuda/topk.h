// Internal: exact top-k over rows of scores (one CTA per row, or a cluster of CTAs per row when
// there are fewer rows than SMs), for every CUDA path.
//
// Order: core::OrderKey's (higher score first, NaN last, +0 == -0, ties by lower index), so the
// selected set is exactly the reference's up to the scores' rounding. Deterministic: the same
// row gives the same output, in the same order, on every run.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "hisa/status.h"

namespace hisa::cuda {

/// What an output slot holds for a selected row index `idx` of row r.
enum class TopkOutput : int32_t {
  kIndex = 0,       ///< idx + (add ? add[r] : 0)             (flat: relative, or ks + idx)
  kPagedRow = 1,    ///< paged slot of position idx            (flat decode, absolute)
  kCandidate = 2,   ///< position blocks[r][idx / B] * B + idx % B, then as kIndex / kPagedRow
  kBlocks = 3,      ///< HISA stage 1: block idx + 1, framed by block 0 first and block own[r] last
};

struct TopkParams {
  const float* scores = nullptr;  // [rows, stride]; row r holds hi[r] - lo[r] entries
  int64_t stride = 0;
  const int32_t* lo = nullptr;    // [rows]
  const int32_t* hi = nullptr;    // [rows]
  int32_t rows = 0;
  int32_t k = 0;                  // selected per row (<= 4096)
  int64_t max_len = 0;            // an upper bound of hi - lo (0: unknown; picks the kernel)

  TopkOutput output = TopkOutput::kIndex;
  int32_t* out = nullptr;         // [rows, out_stride], -1 padded to out_stride
  int32_t out_stride = 0;
  float* out_scores = nullptr;    // [rows, out_stride] or null: scores of the selected
  bool sort_by_score = false;     // highest first (else: an unspecified, deterministic order)
  bool sort_by_index = false;     // ascending output value (kBlocks always)

  const int32_t* add = nullptr;          // kIndex / kCandidate: [rows] offset added (or null)
  const int32_t* block_table = nullptr;  // kPagedRow (and kCandidate when paged)
  int32_t bt_stride = 0;
  int32_t page_size = 0;
  int32_t next_n = 1;                    // row r belongs to sequence r / next_n
  bool paged = false;                    // kCandidate: map positions through the block table
  const int32_t* blocks = nullptr;       // kCandidate: [rows, blocks_stride]
  int32_t blocks_stride = 0;
  int32_t block_size = 0;
  const int32_t* own = nullptr;          // kBlocks: [rows] the query's own block (-1: empty row)
  int32_t* lo2 = nullptr;                // kBlocks, optional: [rows] receive stage 2's candidate
  int32_t* hi2 = nullptr;                //   range [0, hi2) (block_size and length[rows] needed)
  const int32_t* length = nullptr;
};

Status LaunchTopk(const TopkParams& params, cudaStream_t stream);

}  // namespace hisa::cuda
