// A workload copied to where a backend runs, with its pooled keys and outputs beside it: the
// calls eval and bench make, one method each.
#pragma once

#include <cstdint>
#include <vector>

#include "hisa/hisa.h"
#include "hisa/workload.h"
#include "memory.h"

namespace hisa::tools {

class StagedWorkload {
 public:
  /// Copies `workload` to where opts.backend runs and allocates pooled keys and outputs.
  static Status Create(const Workload& workload, const RunOptions& opts, StagedWorkload* out);

  /// Each call returns when the backend has finished (CUDA: synchronized).
  Status BuildPooledKeys() const;
  Status RunFlat() const;
  /// write_blocks: also write the selected blocks (HisaBlocks).
  Status RunHisa(bool write_blocks) const;

  /// Outputs of the last runs, copied to the host: [T, k], [T, k], [T, m].
  Status FlatIndices(std::vector<int32_t>* out) const { return Download(flat_indices_, out); }
  Status HisaIndices(std::vector<int32_t>* out) const { return Download(hisa_indices_, out); }
  Status HisaBlocks(std::vector<int32_t>* out) const { return Download(hisa_blocks_, out); }

  const IndexerConfig& cfg() const { return cfg_; }

 private:
  PrefillInputs Inputs() const;
  PooledKeys Pooled() const;

  IndexerConfig cfg_;
  RunOptions opts_;
  int64_t num_queries_ = 0;
  int64_t num_keys_ = 0;
  int64_t pooled_slots_ = 0;
  int32_t num_seqs_ = 0;
  BackendBuffer q_, w_, k_, kscale_, ks_, ke_, seq_starts_, seq_lens_;
  BackendBuffer pooled_k_, pooled_scale_;
  BackendBuffer flat_indices_, hisa_indices_, hisa_blocks_;
};

}  // namespace hisa::tools
