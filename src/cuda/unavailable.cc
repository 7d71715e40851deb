// The CUDA backend when the library is built without CUDA: every call says so.
#include "core/check.h"
#include "cuda/api.h"

namespace hisa::cuda {
namespace {
Status NotBuilt() {
  return core::Unsupported("backend = cuda: this build of hisa has no CUDA support "
                           "(configure with CUDA available, see README)");
}
}  // namespace

bool Available(std::string* why) {
  if (why) *why = "this build of hisa has no CUDA support";
  return false;
}
Status FlatTopkPrefill(const IndexerConfig&, const PrefillInputs&, const TopkOutputs&,
                       const RunOptions&) { return NotBuilt(); }
Status HisaTopkPrefill(const IndexerConfig&, const PrefillInputs&, const ConstPooledKeys&,
                       const TopkOutputs&, const RunOptions&) { return NotBuilt(); }
Status FlatTopkDecode(const IndexerConfig&, const DecodeInputs&, const TopkOutputs&,
                      const RunOptions&) { return NotBuilt(); }
Status HisaTopkDecode(const IndexerConfig&, const DecodeInputs&, const ConstPooledKeys&,
                      const TopkOutputs&, const RunOptions&) { return NotBuilt(); }
Status FlatLogitsPrefill(const IndexerConfig&, const PrefillInputs&, float*, int64_t,
                         const RunOptions&) { return NotBuilt(); }
Status BuildPooledKeysPrefill(const IndexerConfig&, const KeyRows&, const int32_t*,
                              const int32_t*, int32_t, const PooledKeys&, const RunOptions&) {
  return NotBuilt();
}
Status UpdatePooledKeysPaged(const IndexerConfig&, const PagedKeys&, const PagedSequences&,
                             const int32_t*, const PooledKeys&, const RunOptions&) {
  return NotBuilt();
}

}  // namespace hisa::cuda
