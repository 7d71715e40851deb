// Internal: the scoring kernel shared by every CUDA path (flat and both HISA stages).
//
// It computes I(t, c) = kscale * sum_h w[t, h] * ReLU(q[t, h] . k[row(c)]) for every query t of a
// group and every key coordinate c in the query's range [lo[t], hi[t]), and writes it to
// scores[t][c - lo[t]]. What a "coordinate" is depends on the key layout: a key row (flat
// prefill), a sequence position (paged decode), a block index (HISA stage 1), or an index into
// the query's list of candidate keys (HISA stage 2). Selection runs afterwards (topk.h), or, for
// HISA stage 2 with topk_out set, inside the kernel (select.cuh).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "hisa/status.h"

namespace hisa::cuda {

/// How a coordinate maps to a row of the key tensor map.
enum class KeyLayout : int32_t {
  kRows = 0,         ///< row = c (flat prefill keys; HISA prefill pooled slots)
  kPaged = 1,        ///< row = block_table[seq][c / P] * P + c % P (flat decode)
  kPooledPaged = 2,  ///< row = pooled slot of block c of the sequence (HISA decode stage 1)
  kBlocks = 3,       ///< c indexes the query's candidates: position blocks[t][c / B] * B + c % B,
                     ///< then row = row_base[t] + position (prefill) or its paged row (decode)
};

struct ScoreParams {
  // Queries: rows [t * H, (t + 1) * H) of the q map; w is [T, H] float32.
  const float* w = nullptr;
  int32_t num_queries = 0;  // T
  int32_t group_size = 1;   // queries per group, <= 128 / H; groups never mix sequences (decode)
  int32_t segments = 1;     // key segments per group (split over CTAs)

  // Per-query coordinate range [lo, hi) (device, [T]); the scores row of t has hi - lo entries.
  const int32_t* lo = nullptr;
  const int32_t* hi = nullptr;

  // Keys.
  KeyLayout layout = KeyLayout::kRows;
  int32_t box_rows = 64;           // rows per bulk copy (64; the page size when smaller; 1)
  int64_t num_rows = 0;            // rows of the key tensor (bounds for scale reads)
  const float* kscale = nullptr;   // [num_rows], null = 1
  int32_t page_size = 64;          // paged layouts
  const int32_t* block_table = nullptr;  // [seqs, bt_stride] paged layouts
  int32_t bt_stride = 0;
  int32_t next_n = 1;              // paged: query t belongs to sequence t / next_n
  int32_t slots_per_page = 1;      // kPooledPaged: max(1, P / B)
  int32_t pages_per_block = 1;     // kPooledPaged: max(1, B / P)
  const int32_t* blocks = nullptr;  // kBlocks: [T, blocks_stride] selected blocks, ascending
  int32_t blocks_stride = 0;
  int32_t block_size = 128;         // kBlocks / kPooledPaged: B
  const int32_t* row_base = nullptr;  // kBlocks prefill: [T] first key row of t's sequence (ks)
  bool blocks_paged = false;          // kBlocks: keys live in the paged cache
  // One-row boxes: copied by the producer warps' lanes from key_rows ([num_rows, 128] bytes)
  // instead of by bulk tensor copies (box_rows must be 1).
  bool row_copies = false;
  const uint8_t* key_rows = nullptr;

  // Output: scores[t * score_stride + (c - lo[t])], or column c when absolute_columns.
  float* scores = nullptr;
  int64_t score_stride = 0;
  bool absolute_columns = false;

  // Selection on chip (kBlocks, group_size 1, one segment: FusedSelectionFits): instead of
  // writing scores, the CTA keeps query t's candidate scores in shared memory and writes their
  // top topk_k as TopkOutput::kCandidate does (select.cuh's order and tie rule) to
  // topk_out[t * topk_stride + i], -1 padded to topk_stride; topk_scores (or null) their scores,
  // NaN padded. The values: position blocks[t][c / B] * B + c % B, plus topk_add[t] (or 0).
  // Prefill only (the keys are rows, not a paged cache).
  int32_t* topk_out = nullptr;
  float* topk_scores = nullptr;
  int32_t topk_k = 0;
  int32_t topk_stride = 0;
  const int32_t* topk_add = nullptr;
};

/// Launches the scoring kernel for H heads (32, 64 or 128; D = 128, FP8 q and k). q_map and
/// k_map are 2-D row maps (tma.h) with 128 and params.box_rows rows per box.
Status LaunchScore(int heads, const ScoreParams& params, const CUtensorMap& q_map,
                   const CUtensorMap& k_map, cudaStream_t stream);

/// Resident CTAs per SM of the scoring kernel for H heads and a group of queries per CTA: two
/// when the group fills at most 64 columns.
constexpr int ScoreCtasPerSm(int heads, int group_size) { return heads * group_size <= 64 ? 2 : 1; }

/// Slots of the scoring kernel's persistent grid on sm_count SMs: the CTAs resident at once, what
/// a round of work items fills.
constexpr int ScoreSlots(int sm_count, int heads, int group_size) {
  return sm_count * ScoreCtasPerSm(heads, group_size);
}

/// Keys per tile of the scoring kernel (a segment of fewer keys is no cheaper): 192 (three math
/// warpgroups), or 128 (two) for the pooled keys of a paged cache (one-row copies) when the group
/// fills at most 64 columns (HISA decode stage 1: a few tiles a query, latency-bound).
constexpr int kScoreTileKeys = 192;
constexpr int kScoreTileKeysSmall = 128;
inline int ScoreTileKeys(int heads, int group_size, const ScoreParams& p) {
  return p.row_copies && ScoreCtasPerSm(heads, group_size) == 2 ? kScoreTileKeysSmall
                                                               : kScoreTileKeys;
}

/// Candidates per query the on-chip selection holds (384 math threads x 22).
constexpr int kFusedSelectPerThread = 22;
constexpr int kFusedSelectMaxCandidates = 3 * 128 * kFusedSelectPerThread;

/// Whether the scoring kernel can select on chip for H heads, m blocks of B keys: one query fills
/// at most 64 columns (two CTAs per SM), its m * B candidates fit, and a thread's run of
/// kFusedSelectPerThread candidates spans at most two blocks.
constexpr bool FusedSelectionFits(int heads, int block_budget, int block_size) {
  return ScoreCtasPerSm(heads, 1) == 2 &&
         int64_t{block_budget} * block_size <= kFusedSelectMaxCandidates &&
         block_size >= kFusedSelectPerThread;
}

/// Rows per q box for H heads: 128 (the number of (query, head) rows one CTA holds).
constexpr int kQueryRowsPerCta = 128;

}  // namespace hisa::cuda
