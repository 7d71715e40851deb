// The fast CPU backend: same sets as the reference, multithreaded and vectorized.
#pragma once

#include <vector>

#include "core/query.h"
#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::cpu {

Status FlatTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts);
Status HisaTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts);
Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts);

/// The vector path picked at run time from the CPU's features.
const char* KernelName();

}  // namespace hisa::cpu
