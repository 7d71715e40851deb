// Internal: one query's view of its sequence, shared by the CPU backends.
//
// Prefill and decode differ only in where a sequence's keys live (consecutive rows, or pages of a
// paged cache) and where its pooled keys live. Both reduce to a list of QueryTask: the query's
// q and w rows, how to find the key and pooled key of a position, and how many positions it sees.
#pragma once

#include <cstdint>
#include <vector>

#include "hisa/types.h"

namespace hisa::core {

/// Maps positions of one sequence (0 = its first token) to rows of a key array.
struct SequenceKeys {
  const void* k = nullptr;        // [rows, D] k_dtype
  const float* kscale = nullptr;  // [rows], null = 1
  const int32_t* pages = nullptr;  // paged: the sequence's block-table row; null for prefill
  int64_t base_row = 0;            // prefill: row of position 0 (ks)
  int32_t page_size = 0;           // paged: P

  int64_t Row(int64_t pos) const {
    return pages ? int64_t{pages[pos / page_size]} * page_size + pos % page_size : base_row + pos;
  }
  float Scale(int64_t row) const { return kscale ? kscale[row] : 1.0f; }
};

/// Maps block indices of one sequence to pooled-key slots.
struct SequencePooled {
  const void* k = nullptr;        // [slots, D] k_dtype
  const float* kscale = nullptr;  // [slots]
  const int32_t* pages = nullptr;  // paged: the block-table row; null for prefill
  int64_t base_slot = 0;           // prefill: ceil(ks / B)
  int32_t pages_per_block = 1;     // paged, B >= P: B / P
  int32_t slots_per_page = 1;      // paged, B < P: P / B

  int64_t Slot(int64_t block) const {
    if (!pages) return base_slot + block;
    if (slots_per_page > 1) {
      return int64_t{pages[block / slots_per_page]} * slots_per_page + block % slots_per_page;
    }
    return int64_t{pages[block * pages_per_block]};
  }
};

/// One query: its rows of q and w, and the positions [0, length) of its sequence it may see.
struct QueryTask {
  const void* q = nullptr;   // [H, D] q_dtype
  const float* w = nullptr;  // [H]
  SequenceKeys keys;
  SequencePooled pooled;     // HISA only
  int64_t length = 0;        // visible positions; the query sits at position length - 1
};

/// Builds the tasks of a prefill batch (pooled may be null for the flat indexer).
std::vector<QueryTask> PrefillTasks(const IndexerConfig& cfg, const PrefillInputs& in,
                                    const ConstPooledKeys* pooled);

/// Builds the tasks of a decode step (pooled may be null for the flat indexer).
std::vector<QueryTask> DecodeTasks(const IndexerConfig& cfg, const DecodeInputs& in,
                                   const ConstPooledKeys* pooled);

/// Output position of sequence position `pos` under the requested base.
inline int32_t OutputPosition(const QueryTask& task, int64_t pos, PositionBase base) {
  return static_cast<int32_t>(base == PositionBase::kRelative ? pos : task.keys.Row(pos));
}

// ---------------------------------------------------------------------------------------------
// HISA block geometry (SPEC.md section 2)
// ---------------------------------------------------------------------------------------------

/// The query's own block o = floor(p / B) for a query that sees `length` positions (p = length-1);
/// -1 for an empty row.
inline int64_t OwnBlock(int64_t length, int32_t block_size) {
  return length <= 0 ? -1 : (length - 1) / block_size;
}

/// True when every eligible block is selected (o + 1 <= m): HISA equals the flat indexer.
inline bool HisaIsFlat(int64_t length, const IndexerConfig& cfg) {
  return OwnBlock(length, cfg.block_size) + 1 <= cfg.block_budget;
}

}  // namespace hisa::core
