// The public entry points: validate, build the per-query view, dispatch to a backend.
#include "hisa/hisa.h"

#include <algorithm>
#include <vector>

#include "core/check.h"
#include "core/parallel.h"
#include "core/pool.h"
#include "core/query.h"
#include "core/validate.h"
#include "cpu/fast.h"
#include "cpu/reference.h"
#include "cuda/api.h"

namespace hisa {
namespace {

using core::Method;

Status ValidateCommon(const IndexerConfig& cfg, const TopkOutputs& out, const RunOptions& opts,
                      Method method) {
  HISA_RETURN_IF_ERROR(core::ValidateConfig(cfg, method));
  HISA_RETURN_IF_ERROR(core::ValidateOptions(opts));
  HISA_RETURN_IF_ERROR(core::ValidateOutputs(cfg, out, method));
  if (opts.backend == Backend::kCuda) {
    std::string why;
    if (!cuda::Available(&why)) return core::Unsupported("backend = cuda: {}", why);
  }
  return {};
}

Status RunCpu(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
              const TopkOutputs& out, const RunOptions& opts, Method method) {
  if (opts.backend == Backend::kReference) {
    return method == Method::kFlat ? ref::FlatTopk(cfg, tasks, out, opts)
                                   : ref::HisaTopk(cfg, tasks, out, opts);
  }
  return method == Method::kFlat ? cpu::FlatTopk(cfg, tasks, out, opts)
                                 : cpu::HisaTopk(cfg, tasks, out, opts);
}

}  // namespace

Status FlatTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in, const TopkOutputs& out,
                       const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(ValidateCommon(cfg, out, opts, Method::kFlat));
  const bool host = opts.backend != Backend::kCuda;
  HISA_RETURN_IF_ERROR(core::ValidatePrefill(cfg, in, host));
  if (!host) return cuda::FlatTopkPrefill(cfg, in, out, opts);
  return RunCpu(cfg, core::PrefillTasks(cfg, in, nullptr), out, opts, Method::kFlat);
}

Status HisaTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                       const ConstPooledKeys& pooled, const TopkOutputs& out,
                       const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(ValidateCommon(cfg, out, opts, Method::kHisa));
  const bool host = opts.backend != Backend::kCuda;
  HISA_RETURN_IF_ERROR(core::ValidatePrefill(cfg, in, host));
  HISA_RETURN_IF_ERROR(core::ValidatePooled(cfg, pooled.k, pooled.kscale, pooled.num_slots,
                                            PooledSlotsForRows(cfg, in.keys.num_keys)));
  if (!host) return cuda::HisaTopkPrefill(cfg, in, pooled, out, opts);
  return RunCpu(cfg, core::PrefillTasks(cfg, in, &pooled), out, opts, Method::kHisa);
}

Status FlatTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in, const TopkOutputs& out,
                      const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(ValidateCommon(cfg, out, opts, Method::kFlat));
  const bool host = opts.backend != Backend::kCuda;
  HISA_RETURN_IF_ERROR(core::ValidateDecode(cfg, in, host));
  if (!host) return cuda::FlatTopkDecode(cfg, in, out, opts);
  return RunCpu(cfg, core::DecodeTasks(cfg, in, nullptr), out, opts, Method::kFlat);
}

Status HisaTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                      const ConstPooledKeys& pooled, const TopkOutputs& out,
                      const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(ValidateCommon(cfg, out, opts, Method::kHisa));
  HISA_RETURN_IF_ERROR(core::ValidatePagedBlocks(cfg, in.cache.page_size));
  const bool host = opts.backend != Backend::kCuda;
  HISA_RETURN_IF_ERROR(core::ValidateDecode(cfg, in, host));
  HISA_RETURN_IF_ERROR(
      core::ValidatePooled(cfg, pooled.k, pooled.kscale, pooled.num_slots,
                           PooledSlotsForPages(cfg, in.cache.num_pages, in.cache.page_size)));
  if (!host) return cuda::HisaTopkDecode(cfg, in, pooled, out, opts);
  return RunCpu(cfg, core::DecodeTasks(cfg, in, &pooled), out, opts, Method::kHisa);
}

Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(core::ValidateConfig(cfg, Method::kFlat));
  HISA_RETURN_IF_ERROR(core::ValidateOptions(opts));
  if (logits == nullptr && in.num_queries > 0) return core::Invalid("logits is null");
  if (logits_stride < in.keys.num_keys) {
    return core::Invalid("logits_stride = {} is less than num_keys = {}", logits_stride,
                         in.keys.num_keys);
  }
  const bool host = opts.backend != Backend::kCuda;
  if (!host) {
    std::string why;
    if (!cuda::Available(&why)) return core::Unsupported("backend = cuda: {}", why);
  }
  HISA_RETURN_IF_ERROR(core::ValidatePrefill(cfg, in, host));
  if (!host) return cuda::FlatLogitsPrefill(cfg, in, logits, logits_stride, opts);
  if (opts.backend == Backend::kReference) {
    return ref::FlatLogitsPrefill(cfg, in, logits, logits_stride, opts);
  }
  return cpu::FlatLogitsPrefill(cfg, in, logits, logits_stride, opts);
}

int64_t PooledSlotsForRows(const IndexerConfig& cfg, int64_t num_keys) {
  return cfg.block_size > 0 ? (num_keys + cfg.block_size - 1) / cfg.block_size : 0;
}

int64_t PooledSlotsForPages(const IndexerConfig& cfg, int64_t num_pages, int32_t page_size) {
  if (cfg.block_size <= 0) return 0;
  return num_pages * std::max(1, page_size / cfg.block_size);
}

Status BuildPooledKeysPrefill(const IndexerConfig& cfg, const KeyRows& keys,
                              const int32_t* seq_starts, const int32_t* seq_lens,
                              int32_t num_seqs, const PooledKeys& pooled,
                              const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(core::ValidateConfig(cfg, Method::kHisa));
  HISA_RETURN_IF_ERROR(core::ValidateOptions(opts));
  if (keys.num_keys < 0) return core::Invalid("num_keys = {} is negative", keys.num_keys);
  if (keys.num_keys >= core::kMaxPositions) {
    return core::Invalid("num_keys = {} exceeds the int32 position limit", keys.num_keys);
  }
  if (keys.num_keys > 0 && keys.k == nullptr) return core::Invalid("k is null");
  if (keys.num_keys > 0 && keys.kscale == nullptr && cfg.k_dtype == DType::kFp8E4M3) {
    return core::Invalid("kscale is null: FP8 keys need a per-token scale");
  }
  HISA_RETURN_IF_ERROR(core::ValidatePooled(cfg, pooled.k, pooled.kscale, pooled.num_slots,
                                            PooledSlotsForRows(cfg, keys.num_keys)));
  if (opts.backend == Backend::kCuda) {
    std::string why;
    if (!cuda::Available(&why)) return core::Unsupported("backend = cuda: {}", why);
    return cuda::BuildPooledKeysPrefill(cfg, keys, seq_starts, seq_lens, num_seqs, pooled, opts);
  }
  HISA_RETURN_IF_ERROR(core::ValidateSequences(seq_starts, seq_lens, num_seqs, keys.num_keys));
  // One work item per complete block of every sequence.
  struct Item {
    core::SequenceKeys keys;
    int64_t first_pos;
    int64_t slot;
  };
  std::vector<Item> items;
  for (int32_t i = 0; i < num_seqs; ++i) {
    core::SequenceKeys seq{keys.k, keys.kscale, nullptr, seq_starts[i], 0};
    const int64_t base_slot = (int64_t{seq_starts[i]} + cfg.block_size - 1) / cfg.block_size;
    for (int64_t j = 0; j < seq_lens[i] / cfg.block_size; ++j) {
      items.push_back({seq, j * cfg.block_size, base_slot + j});
    }
  }
  const int64_t row_bytes = int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype);
  const int threads = core::ThreadCount(opts);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch(static_cast<size_t>(cfg.head_dim));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < static_cast<int64_t>(items.size()); ++i) {
      const Item& item = items[static_cast<size_t>(i)];
      core::PoolBlock(cfg, item.keys, item.first_pos,
                      static_cast<uint8_t*>(pooled.k) + item.slot * row_bytes,
                      pooled.kscale + item.slot, scratch.data());
    }
  }
  return {};
}

Status UpdatePooledKeysPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                             const PagedSequences& seqs, const int32_t* old_lens,
                             const PooledKeys& pooled, const RunOptions& opts) {
  HISA_RETURN_IF_ERROR(core::ValidateConfig(cfg, Method::kHisa));
  HISA_RETURN_IF_ERROR(core::ValidateOptions(opts));
  HISA_RETURN_IF_ERROR(core::ValidatePagedBlocks(cfg, cache.page_size));
  const bool host = opts.backend != Backend::kCuda;
  HISA_RETURN_IF_ERROR(core::ValidatePaged(cfg, cache, seqs, 0, host));
  HISA_RETURN_IF_ERROR(
      core::ValidatePooled(cfg, pooled.k, pooled.kscale, pooled.num_slots,
                           PooledSlotsForPages(cfg, cache.num_pages, cache.page_size)));
  if (seqs.num_seqs > 0 && old_lens == nullptr) return core::Invalid("old_lens is null");
  if (!host) {
    std::string why;
    if (!cuda::Available(&why)) return core::Unsupported("backend = cuda: {}", why);
    return cuda::UpdatePooledKeysPaged(cfg, cache, seqs, old_lens, pooled, opts);
  }
  for (int32_t b = 0; b < seqs.num_seqs; ++b) {
    if (old_lens[b] < 0 || old_lens[b] > seqs.context_lens[b]) {
      return core::Invalid("old_lens[{}] = {} is outside [0, context_lens[{}] = {}]", b,
                           old_lens[b], b, seqs.context_lens[b]);
    }
  }
  struct Item {
    core::SequenceKeys keys;
    core::SequencePooled slots;
    int64_t block;
  };
  std::vector<Item> items;
  const int32_t page = cache.page_size;
  for (int32_t b = 0; b < seqs.num_seqs; ++b) {
    const int32_t* pages = seqs.block_table + int64_t{b} * seqs.max_pages_per_seq;
    core::SequenceKeys keys{cache.k, cache.kscale, pages, 0, page};
    core::SequencePooled slots{pooled.k, pooled.kscale, pages, 0,
                               std::max(1, cfg.block_size / page),
                               std::max(1, page / cfg.block_size)};
    for (int64_t j = old_lens[b] / cfg.block_size; j < seqs.context_lens[b] / cfg.block_size; ++j) {
      items.push_back({keys, slots, j});
    }
  }
  const int64_t row_bytes = int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype);
  const int threads = core::ThreadCount(opts);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch(static_cast<size_t>(cfg.head_dim));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < static_cast<int64_t>(items.size()); ++i) {
      const Item& item = items[static_cast<size_t>(i)];
      const int64_t slot = item.slots.Slot(item.block);
      core::PoolBlock(cfg, item.keys, item.block * cfg.block_size,
                      static_cast<uint8_t*>(pooled.k) + slot * row_bytes, pooled.kscale + slot,
                      scratch.data());
    }
  }
  return {};
}

Status BuildPooledKeysPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                            const PagedSequences& seqs, const PooledKeys& pooled,
                            const RunOptions& opts) {
  if (seqs.num_seqs < 0) return core::Invalid("num_seqs = {} is negative", seqs.num_seqs);
  if (opts.backend == Backend::kCuda) {
    // Zero old lengths live on the device for the CUDA backend; it handles a null old_lens.
    std::string why;
    if (!cuda::Available(&why)) return core::Unsupported("backend = cuda: {}", why);
    HISA_RETURN_IF_ERROR(core::ValidateConfig(cfg, Method::kHisa));
    HISA_RETURN_IF_ERROR(core::ValidatePagedBlocks(cfg, cache.page_size));
    HISA_RETURN_IF_ERROR(core::ValidatePaged(cfg, cache, seqs, 0, false));
    HISA_RETURN_IF_ERROR(
        core::ValidatePooled(cfg, pooled.k, pooled.kscale, pooled.num_slots,
                             PooledSlotsForPages(cfg, cache.num_pages, cache.page_size)));
    return cuda::UpdatePooledKeysPaged(cfg, cache, seqs, nullptr, pooled, opts);
  }
  std::vector<int32_t> zeros(static_cast<size_t>(seqs.num_seqs), 0);
  return UpdatePooledKeysPaged(cfg, cache, seqs, zeros.data(), pooled, opts);
}

bool BackendAvailable(Backend backend, std::string* why) {
  switch (backend) {
    case Backend::kReference:
    case Backend::kCpu: return true;
    case Backend::kCuda: return cuda::Available(why);
  }
  if (why) *why = "not a backend";
  return false;
}

const char* CpuKernelName() { return cpu::KernelName(); }

}  // namespace hisa
