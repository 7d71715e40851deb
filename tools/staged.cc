#include "staged.h"

namespace hisa::tools {

Status StagedWorkload::Create(const Workload& workload, const RunOptions& opts,
                              StagedWorkload* out) {
  StagedWorkload staged;
  staged.cfg_ = workload.cfg;
  staged.opts_ = opts;
  staged.num_queries_ = workload.num_queries;
  staged.num_keys_ = workload.num_keys;
  staged.num_seqs_ = static_cast<int32_t>(workload.seq_starts.size());
  staged.pooled_slots_ = PooledSlotsForRows(workload.cfg, workload.num_keys);
  const Backend backend = opts.backend;
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.q, &staged.q_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.w, &staged.w_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.k, &staged.k_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.kscale, &staged.kscale_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.ks, &staged.ks_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.ke, &staged.ke_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.seq_starts, &staged.seq_starts_));
  HISA_TOOLS_RETURN_IF_ERROR(Upload(backend, workload.seq_lens, &staged.seq_lens_));
  const IndexerConfig& cfg = workload.cfg;
  const size_t slots = static_cast<size_t>(staged.pooled_slots_);
  const size_t queries = static_cast<size_t>(workload.num_queries);
  HISA_TOOLS_RETURN_IF_ERROR(BackendBuffer::Allocate(
      backend, slots * cfg.head_dim * DTypeSize(cfg.k_dtype), &staged.pooled_k_));
  HISA_TOOLS_RETURN_IF_ERROR(
      BackendBuffer::Allocate(backend, slots * sizeof(float), &staged.pooled_scale_));
  const size_t index_bytes = queries * cfg.top_k * sizeof(int32_t);
  HISA_TOOLS_RETURN_IF_ERROR(BackendBuffer::Allocate(backend, index_bytes, &staged.flat_indices_));
  HISA_TOOLS_RETURN_IF_ERROR(BackendBuffer::Allocate(backend, index_bytes, &staged.hisa_indices_));
  HISA_TOOLS_RETURN_IF_ERROR(BackendBuffer::Allocate(
      backend, queries * cfg.block_budget * sizeof(int32_t), &staged.hisa_blocks_));
  *out = std::move(staged);
  return {};
}

PrefillInputs StagedWorkload::Inputs() const {
  PrefillInputs in;
  in.q = q_.data();
  in.w = static_cast<const float*>(w_.data());
  in.keys = {k_.data(), static_cast<const float*>(kscale_.data()), num_keys_};
  in.ks = static_cast<const int32_t*>(ks_.data());
  in.ke = static_cast<const int32_t*>(ke_.data());
  in.num_queries = num_queries_;
  return in;
}

PooledKeys StagedWorkload::Pooled() const {
  return {pooled_k_.data(), static_cast<float*>(pooled_scale_.data()), pooled_slots_};
}

Status StagedWorkload::BuildPooledKeys() const {
  HISA_TOOLS_RETURN_IF_ERROR(BuildPooledKeysPrefill(
      cfg_, Inputs().keys, static_cast<const int32_t*>(seq_starts_.data()),
      static_cast<const int32_t*>(seq_lens_.data()), num_seqs_, Pooled(), opts_));
  return Synchronize(opts_.backend);
}

Status StagedWorkload::RunFlat() const {
  TopkOutputs out;
  out.indices = static_cast<int32_t*>(flat_indices_.data());
  HISA_TOOLS_RETURN_IF_ERROR(FlatTopkPrefill(cfg_, Inputs(), out, opts_));
  return Synchronize(opts_.backend);
}

Status StagedWorkload::RunHisa(bool write_blocks) const {
  TopkOutputs out;
  out.indices = static_cast<int32_t*>(hisa_indices_.data());
  out.blocks = write_blocks ? static_cast<int32_t*>(hisa_blocks_.data()) : nullptr;
  HISA_TOOLS_RETURN_IF_ERROR(HisaTopkPrefill(cfg_, Inputs(), Pooled(), out, opts_));
  return Synchronize(opts_.backend);
}

}  // namespace hisa::tools
