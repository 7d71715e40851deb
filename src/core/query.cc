#include "core/query.h"

#include <algorithm>

namespace hisa::core {

std::vector<QueryTask> PrefillTasks(const IndexerConfig& cfg, const PrefillInputs& in,
                                    const ConstPooledKeys* pooled) {
  const int64_t q_row = int64_t{cfg.num_heads} * cfg.head_dim * DTypeSize(cfg.q_dtype);
  std::vector<QueryTask> tasks(static_cast<size_t>(in.num_queries));
  for (int64_t t = 0; t < in.num_queries; ++t) {
    QueryTask& task = tasks[static_cast<size_t>(t)];
    task.q = static_cast<const uint8_t*>(in.q) + t * q_row;
    task.w = in.w + t * cfg.num_heads;
    task.keys.k = in.keys.k;
    task.keys.kscale = in.keys.kscale;
    task.keys.base_row = in.ks[t];
    task.length = int64_t{in.ke[t]} - in.ks[t];
    if (pooled != nullptr) {
      task.pooled.k = pooled->k;
      task.pooled.kscale = pooled->kscale;
      task.pooled.base_slot = (int64_t{in.ks[t]} + cfg.block_size - 1) / cfg.block_size;
    }
  }
  return tasks;
}

std::vector<QueryTask> DecodeTasks(const IndexerConfig& cfg, const DecodeInputs& in,
                                   const ConstPooledKeys* pooled) {
  const int64_t q_row = int64_t{cfg.num_heads} * cfg.head_dim * DTypeSize(cfg.q_dtype);
  const int32_t page = in.cache.page_size;
  std::vector<QueryTask> tasks(static_cast<size_t>(in.seqs.num_seqs) * in.next_n);
  for (int32_t b = 0; b < in.seqs.num_seqs; ++b) {
    const int32_t* pages = in.seqs.block_table + int64_t{b} * in.seqs.max_pages_per_seq;
    for (int32_t i = 0; i < in.next_n; ++i) {
      const int64_t t = int64_t{b} * in.next_n + i;
      QueryTask& task = tasks[static_cast<size_t>(t)];
      task.q = static_cast<const uint8_t*>(in.q) + t * q_row;
      task.w = in.w + t * cfg.num_heads;
      task.keys.k = in.cache.k;
      task.keys.kscale = in.cache.kscale;
      task.keys.pages = pages;
      task.keys.page_size = page;
      task.length = int64_t{in.seqs.context_lens[b]} - in.next_n + i + 1;
      if (pooled != nullptr) {
        task.pooled.k = pooled->k;
        task.pooled.kscale = pooled->kscale;
        task.pooled.pages = pages;
        task.pooled.pages_per_block = std::max(1, cfg.block_size / page);
        task.pooled.slots_per_page = std::max(1, page / cfg.block_size);
      }
    }
  }
  return tasks;
}

}  // namespace hisa::core
