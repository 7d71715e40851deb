// The CUDA backend's entry points, free of CUDA types. Arguments arrive checked for shape and
// null pointers; each function validates device-resident index arrays itself.
#pragma once

#include <string>

#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::cuda {

/// Built with CUDA, a device present and of compute capability 9.0.
bool Available(std::string* why);

Status FlatTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in, const TopkOutputs& out,
                       const RunOptions& opts);
Status HisaTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                       const ConstPooledKeys& pooled, const TopkOutputs& out,
                       const RunOptions& opts);
Status FlatTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in, const TopkOutputs& out,
                      const RunOptions& opts);
Status HisaTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                      const ConstPooledKeys& pooled, const TopkOutputs& out,
                      const RunOptions& opts);
Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts);
Status BuildPooledKeysPrefill(const IndexerConfig& cfg, const KeyRows& keys,
                              const int32_t* seq_starts, const int32_t* seq_lens,
                              int32_t num_seqs, const PooledKeys& pooled, const RunOptions& opts);
Status UpdatePooledKeysPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                             const PagedSequences& seqs, const int32_t* old_lens,
                             const PooledKeys& pooled, const RunOptions& opts);

}  // namespace hisa::cuda
