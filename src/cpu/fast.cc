// TEMPORARY: forwards to the reference until the vectorized backend lands.
#include "cpu/fast.h"

#include "cpu/reference.h"

namespace hisa::cpu {
Status FlatTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts) {
  return ref::FlatTopk(cfg, tasks, out, opts);
}
Status HisaTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts) {
  return ref::HisaTopk(cfg, tasks, out, opts);
}
Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts) {
  return ref::FlatLogitsPrefill(cfg, in, logits, logits_stride, opts);
}
const char* KernelName() { return "reference"; }
}  // namespace hisa::cpu
