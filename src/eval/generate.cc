// TEMPORARY stub, replaced by the workload generator.
#include "hisa/workload.h"
namespace hisa {
PrefillInputs Workload::Inputs() const {
  PrefillInputs in;
  in.q = q.data(); in.w = w.data(); in.keys = Keys(); in.ks = ks.data(); in.ke = ke.data();
  in.num_queries = num_queries;
  return in;
}
KeyRows Workload::Keys() const { return {k.data(), kscale.data(), num_keys}; }
}  // namespace hisa
