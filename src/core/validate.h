// Internal: argument validation shared by every backend (SPEC.md section 4).
//
// Checks that need to read index arrays (ks/ke, block tables, context lengths) run only when the
// arrays are host-readable; the CUDA backend copies them to the host first.
#pragma once

#include <cstdint>

#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::core {

enum class Method { kFlat, kHisa };

/// Largest sequence length / key count hisa accepts: positions are int32.
inline constexpr int64_t kMaxPositions = int64_t{1} << 31;

Status ValidateConfig(const IndexerConfig& cfg, Method method);
Status ValidateOptions(const RunOptions& opts);
Status ValidateOutputs(const IndexerConfig& cfg, const TopkOutputs& out, Method method);

/// Shapes and pointers of a prefill batch; ks/ke contents when host_readable.
Status ValidatePrefill(const IndexerConfig& cfg, const PrefillInputs& in, bool host_readable);

/// Shapes and pointers of a paged cache and its sequences; block table and context lengths when
/// host_readable. min_len is the smallest acceptable context length (next_n for decode).
Status ValidatePaged(const IndexerConfig& cfg, const PagedKeys& cache, const PagedSequences& seqs,
                     int32_t min_len, bool host_readable);

Status ValidateDecode(const IndexerConfig& cfg, const DecodeInputs& in, bool host_readable);

/// Pooled keys with at least `required_slots` slots.
Status ValidatePooled(const IndexerConfig& cfg, const void* k, const float* kscale,
                      int64_t num_slots, int64_t required_slots);

/// Page size and block size that can share a pooled cache without a second block table.
Status ValidatePagedBlocks(const IndexerConfig& cfg, int32_t page_size);

/// Sequences for BuildPooledKeysPrefill: in range, not overlapping.
Status ValidateSequences(const int32_t* seq_starts, const int32_t* seq_lens, int32_t num_seqs,
                         int64_t num_keys);

}  // namespace hisa::core
