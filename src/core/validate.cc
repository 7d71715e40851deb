#include "core/validate.h"

#include "core/check.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace hisa::core {
namespace {

bool ValidDType(DType t) { return t == DType::kFp8E4M3 || t == DType::kBf16; }

Status CheckPageSize(int32_t page_size) {
  if (page_size < 16 || page_size % 16 != 0 || page_size > 65536) {
    return Invalid("page_size = {} must be a multiple of 16 in [16, 65536]", page_size);
  }
  return {};
}

Status CheckKeyScale(const float* kscale, DType k_dtype, const char* name) {
  if (kscale == nullptr && k_dtype == DType::kFp8E4M3) {
    return Invalid("{} is null: FP8 keys need a per-token scale", name);
  }
  return {};
}

}  // namespace

Status ValidateConfig(const IndexerConfig& cfg, Method method) {
  if (cfg.num_heads < 1 || cfg.num_heads > 1024) {
    return Invalid("num_heads = {} is out of range [1, 1024]", cfg.num_heads);
  }
  if (cfg.head_dim < 1 || cfg.head_dim > 4096) {
    return Invalid("head_dim = {} is out of range [1, 4096]", cfg.head_dim);
  }
  if (cfg.top_k < 1 || cfg.top_k > (1 << 20)) {
    return Invalid("top_k = {} is out of range [1, 1048576]", cfg.top_k);
  }
  if (!ValidDType(cfg.q_dtype)) return Invalid("q_dtype = {} is not a dtype", int(cfg.q_dtype));
  if (!ValidDType(cfg.k_dtype)) return Invalid("k_dtype = {} is not a dtype", int(cfg.k_dtype));
  if (cfg.pooled_scale_rule != ScaleRule::kAmax && cfg.pooled_scale_rule != ScaleRule::kUe8m0) {
    return Invalid("pooled_scale_rule = {} is not a scale rule", int(cfg.pooled_scale_rule));
  }
  if (method == Method::kHisa) {
    if (cfg.block_size < 16 || cfg.block_size % 16 != 0 || cfg.block_size > 65536) {
      return Invalid("block_size = {} must be a multiple of 16 in [16, 65536]", cfg.block_size);
    }
    if (cfg.block_budget < 2 || cfg.block_budget > 65536) {
      return Invalid("block_budget = {} is out of range [2, 65536] (block 0 and the query's "
                     "own block are always kept)",
                     cfg.block_budget);
    }
    const int64_t candidates = int64_t{cfg.block_budget} * cfg.block_size;
    if (candidates < cfg.top_k) {
      return Invalid("block_budget * block_size = {} * {} = {} is less than top_k = {}",
                     cfg.block_budget, cfg.block_size, candidates, cfg.top_k);
    }
  }
  return {};
}

Status ValidateOptions(const RunOptions& opts) {
  if (opts.backend != Backend::kReference && opts.backend != Backend::kCpu &&
      opts.backend != Backend::kCuda) {
    return Invalid("backend = {} is not a backend", int(opts.backend));
  }
  if (opts.positions != PositionBase::kRelative && opts.positions != PositionBase::kAbsolute) {
    return Invalid("positions = {} is not a position base", int(opts.positions));
  }
  if (opts.num_threads < 0) return Invalid("num_threads = {} is negative", opts.num_threads);
  return {};
}

Status ValidateOutputs(const IndexerConfig& cfg, const TopkOutputs& out, Method method) {
  (void)cfg;
  if (out.indices == nullptr) return Invalid("indices is null");
  if (method == Method::kFlat && out.blocks != nullptr) {
    return Invalid("blocks is not null: block output exists for HISA only");
  }
  return {};
}

Status ValidatePrefill(const IndexerConfig& cfg, const PrefillInputs& in, bool host_readable) {
  if (in.num_queries < 0) return Invalid("num_queries = {} is negative", in.num_queries);
  if (in.keys.num_keys < 0) return Invalid("num_keys = {} is negative", in.keys.num_keys);
  if (in.keys.num_keys >= kMaxPositions) {
    return Invalid("num_keys = {} exceeds the int32 position limit {}", in.keys.num_keys,
                   kMaxPositions - 1);
  }
  if (in.num_queries > 0) {
    if (in.q == nullptr) return Invalid("q is null with num_queries = {}", in.num_queries);
    if (in.w == nullptr) return Invalid("w is null with num_queries = {}", in.num_queries);
    if (in.ks == nullptr) return Invalid("ks is null with num_queries = {}", in.num_queries);
    if (in.ke == nullptr) return Invalid("ke is null with num_queries = {}", in.num_queries);
  }
  if (in.keys.num_keys > 0) {
    if (in.keys.k == nullptr) return Invalid("k is null with num_keys = {}", in.keys.num_keys);
    HISA_RETURN_IF_ERROR(CheckKeyScale(in.keys.kscale, cfg.k_dtype, "kscale"));
  }
  if (!host_readable) return {};
  for (int64_t t = 0; t < in.num_queries; ++t) {
    const int64_t ks = in.ks[t], ke = in.ke[t];
    if (ks < 0) return Invalid("ks[{}] = {} is negative", t, ks);
    if (ke > in.keys.num_keys) {
      return Invalid("ke[{}] = {} is beyond num_keys = {}", t, ke, in.keys.num_keys);
    }
    if (ks > ke) return Invalid("ks[{}] = {} is greater than ke[{}] = {}", t, ks, t, ke);
  }
  return {};
}

Status ValidatePagedBlocks(const IndexerConfig& cfg, int32_t page_size) {
  HISA_RETURN_IF_ERROR(CheckPageSize(page_size));  // before dividing by it
  const int32_t b = cfg.block_size;
  if (b >= page_size ? b % page_size != 0 : page_size % b != 0) {
    return Invalid("block_size = {} and page_size = {}: one must be a multiple of the other", b,
                   page_size);
  }
  return {};
}

Status ValidatePaged(const IndexerConfig& cfg, const PagedKeys& cache, const PagedSequences& seqs,
                     int32_t min_len, bool host_readable) {
  HISA_RETURN_IF_ERROR(CheckPageSize(cache.page_size));
  if (cache.num_pages < 0) return Invalid("num_pages = {} is negative", cache.num_pages);
  if (cache.num_pages > kMaxPositions / cache.page_size) {
    return Invalid("num_pages * page_size = {} * {} exceeds the int32 position limit",
                   cache.num_pages, cache.page_size);
  }
  if (cache.num_pages > 0) {
    if (cache.k == nullptr) return Invalid("cache.k is null with num_pages = {}", cache.num_pages);
    HISA_RETURN_IF_ERROR(CheckKeyScale(cache.kscale, cfg.k_dtype, "cache.kscale"));
  }
  if (seqs.num_seqs < 0) return Invalid("num_seqs = {} is negative", seqs.num_seqs);
  if (seqs.max_pages_per_seq < 0) {
    return Invalid("max_pages_per_seq = {} is negative", seqs.max_pages_per_seq);
  }
  if (seqs.num_seqs > 0) {
    if (seqs.context_lens == nullptr) return Invalid("context_lens is null");
    if (seqs.block_table == nullptr && seqs.max_pages_per_seq > 0) {
      return Invalid("block_table is null with max_pages_per_seq = {}", seqs.max_pages_per_seq);
    }
  }
  if (!host_readable) return {};
  const int64_t capacity = int64_t{seqs.max_pages_per_seq} * cache.page_size;
  for (int32_t b = 0; b < seqs.num_seqs; ++b) {
    const int64_t len = seqs.context_lens[b];
    if (len < min_len) {
      return Invalid("context_lens[{}] = {} is less than {}", b, len,
                     min_len == 0 ? "0" : fmt::format("next_n = {}", min_len));
    }
    if (len > capacity) {
      return Invalid("context_lens[{}] = {} exceeds max_pages_per_seq * page_size = {} * {}", b,
                     len, seqs.max_pages_per_seq, cache.page_size);
    }
    const int64_t pages = (len + cache.page_size - 1) / cache.page_size;
    for (int64_t i = 0; i < pages; ++i) {
      const int64_t page = seqs.block_table[int64_t{b} * seqs.max_pages_per_seq + i];
      if (page < 0 || page >= cache.num_pages) {
        return Invalid("block_table[{}][{}] = {} is outside [0, num_pages = {})", b, i, page,
                       cache.num_pages);
      }
    }
  }
  return {};
}

Status ValidateDecode(const IndexerConfig& cfg, const DecodeInputs& in, bool host_readable) {
  if (in.next_n < 1 || in.next_n > 1024) {
    return Invalid("next_n = {} is out of range [1, 1024]", in.next_n);
  }
  if (in.seqs.num_seqs > 0) {
    if (in.q == nullptr) return Invalid("q is null with num_seqs = {}", in.seqs.num_seqs);
    if (in.w == nullptr) return Invalid("w is null with num_seqs = {}", in.seqs.num_seqs);
  }
  return ValidatePaged(cfg, in.cache, in.seqs, in.next_n, host_readable);
}

Status ValidatePooled(const IndexerConfig& cfg, const void* k, const float* kscale,
                      int64_t num_slots, int64_t required_slots) {
  (void)cfg;
  if (num_slots < required_slots) {
    return Invalid("pooled num_slots = {} is less than the {} slots this cache needs", num_slots,
                   required_slots);
  }
  if (required_slots > 0) {
    if (k == nullptr) return Invalid("pooled k is null");
    if (kscale == nullptr) return Invalid("pooled kscale is null");
  }
  return {};
}

Status ValidateSequences(const int32_t* seq_starts, const int32_t* seq_lens, int32_t num_seqs,
                         int64_t num_keys) {
  if (num_seqs < 0) return Invalid("num_seqs = {} is negative", num_seqs);
  if (num_seqs == 0) return {};
  if (seq_starts == nullptr) return Invalid("seq_starts is null with num_seqs = {}", num_seqs);
  if (seq_lens == nullptr) return Invalid("seq_lens is null with num_seqs = {}", num_seqs);
  for (int32_t i = 0; i < num_seqs; ++i) {
    if (seq_starts[i] < 0) return Invalid("seq_starts[{}] = {} is negative", i, seq_starts[i]);
    if (seq_lens[i] < 0) return Invalid("seq_lens[{}] = {} is negative", i, seq_lens[i]);
    if (int64_t{seq_starts[i]} + seq_lens[i] > num_keys) {
      return Invalid("seq_starts[{}] + seq_lens[{}] = {} + {} is beyond num_keys = {}", i, i,
                     seq_starts[i], seq_lens[i], num_keys);
    }
  }
  // Non-empty sequences sorted by start overlap iff two neighbours do. Empty ones hold no rows
  // and must not sit between two neighbours (they would hide an overlap).
  std::vector<int32_t> order;
  for (int32_t i = 0; i < num_seqs; ++i) {
    if (seq_lens[i] > 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return seq_starts[a] < seq_starts[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    const int32_t a = order[i - 1], b = order[i];
    if (int64_t{seq_starts[a]} + seq_lens[a] > seq_starts[b]) {
      return Invalid("sequences {} (rows [{}, {})) and {} (rows [{}, {})) overlap", a,
                     seq_starts[a], int64_t{seq_starts[a]} + seq_lens[a], b, seq_starts[b],
                     int64_t{seq_starts[b]} + seq_lens[b]);
    }
  }
  return {};
}

}  // namespace hisa::core
