// hisa: the public entry points. See SPEC.md for the exact contract.
//
//   I(t, s) = kscale[s] * sum_h w[t, h] * ReLU(dot(q[t, h, :], k[s, :]))
//
// Flat: the top_k keys with the largest I over the visible range. HISA: score the pooled keys of
// the query's complete blocks, keep block 0, the query's own block and the m - 2 best others, then
// the top_k of I over the keys of those blocks. ReLU(x) = x > 0 ? x : 0 (so ReLU(NaN) = 0); a NaN
// score ranks below every other score. Ties go to the lower position.
//
// Every entry point validates its arguments and returns a Status naming the bad argument and
// value; nothing is written when validation fails.
#pragma once

#include <cstdint>

#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa {

// ---------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------

/// Flat (DSA) top-k over a packed prefill batch.
Status FlatTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in, const TopkOutputs& out,
                       const RunOptions& opts = {});

/// HISA top-k over a packed prefill batch. `pooled` must hold the pooled keys of every sequence
/// the queries read (BuildPooledKeysPrefill).
Status HisaTopkPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                       const ConstPooledKeys& pooled, const TopkOutputs& out,
                       const RunOptions& opts = {});

/// Flat top-k for next_n query tokens at the end of each sequence of a paged cache.
Status FlatTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in, const TopkOutputs& out,
                      const RunOptions& opts = {});

/// HISA top-k for a decode step. `pooled` must hold every complete block of every sequence
/// (BuildPooledKeysPaged, then UpdatePooledKeysPaged as sequences grow).
Status HisaTopkDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                      const ConstPooledKeys& pooled, const TopkOutputs& out,
                      const RunOptions& opts = {});

// ---------------------------------------------------------------------------------------------
// Scores (the flat indexer's logits, for callers that select themselves and for checking)
// ---------------------------------------------------------------------------------------------

/// logits[t, s] = I(t, s) for s in [ks[t], ke[t]), -inf elsewhere. logits is [T, N] with row
/// stride logits_stride >= N (elements). This materializes T * N floats: use it for small
/// problems; the selection entry points never do.
Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts = {});

// ---------------------------------------------------------------------------------------------
// Pooled keys (HISA)
// ---------------------------------------------------------------------------------------------

/// Slots a prefill pooled-key cache needs for N key rows: ceil(N / B).
int64_t PooledSlotsForRows(const IndexerConfig& cfg, int64_t num_keys);

/// Slots a paged pooled-key cache needs: num_pages * max(1, P / B).
int64_t PooledSlotsForPages(const IndexerConfig& cfg, int64_t num_pages, int32_t page_size);

/// Pools every complete block of each sequence. Sequence i occupies key rows
/// [seq_starts[i], seq_starts[i] + seq_lens[i]); sequences must not overlap. Slots of partial
/// blocks and of rows outside every sequence are left untouched.
Status BuildPooledKeysPrefill(const IndexerConfig& cfg, const KeyRows& keys,
                              const int32_t* seq_starts, const int32_t* seq_lens,
                              int32_t num_seqs, const PooledKeys& pooled,
                              const RunOptions& opts = {});

/// Pools every complete block of every sequence of a paged cache.
Status BuildPooledKeysPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                            const PagedSequences& seqs, const PooledKeys& pooled,
                            const RunOptions& opts = {});

/// Pools the blocks that became complete as sequence b grew from old_lens[b] to
/// seqs.context_lens[b] tokens (old_lens[b] <= context_lens[b]). Equal to a full rebuild.
Status UpdatePooledKeysPaged(const IndexerConfig& cfg, const PagedKeys& cache,
                             const PagedSequences& seqs, const int32_t* old_lens,
                             const PooledKeys& pooled, const RunOptions& opts = {});

// ---------------------------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------------------------

/// Whether a backend can run here (CUDA: built in, a device present, compute capability 9.0).
/// When not, `why` (if not null) says why.
bool BackendAvailable(Backend backend, std::string* why = nullptr);

/// The CPU backend's kernel chosen at run time ("amx_bf16", "avx512", "avx2", "scalar").
const char* CpuKernelName();

}  // namespace hisa
