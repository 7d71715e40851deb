// Random problems for `hisa check`: packed multi-sequence prefill with ragged lengths and paged
// decode with random block tables, over random shapes, dtypes and options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "hisa/workload.h"

namespace hisa::tools {

struct CheckCase {
  enum class Kind { kPrefill, kDecode };

  uint64_t seed = 0;  // `hisa check --seed=<seed> --cases=1` makes this case again
  Kind kind = Kind::kPrefill;
  IndexerConfig cfg;
  PositionBase positions = PositionBase::kRelative;
  bool sorted = false;
  bool with_scores = false;
  bool duplicated_keys = false;  // some key rows copied onto others: exact ties

  /// q [T, H, D], w [T, H], k and kscale: prefill key rows [N, D], or the paged cache
  /// [num_pages * page_size, D]. Prefill also fills ks, ke, seq_starts and seq_lens.
  Workload data;

  // Decode only.
  int32_t page_size = 0;
  int32_t next_n = 0;
  int64_t num_pages = 0;
  int32_t max_pages_per_seq = 0;
  std::vector<int32_t> block_table;   // [num_seqs, max_pages_per_seq], -1 past each sequence
  std::vector<int32_t> context_lens;  // [num_seqs]
  std::vector<int32_t> old_lens;      // [num_seqs] <= context_lens, for UpdatePooledKeysPaged

  PrefillInputs Prefill() const { return data.Inputs(); }
  PagedKeys Cache() const;
  PagedSequences Sequences(const std::vector<int32_t>& lens) const;
  DecodeInputs Decode() const;

  /// "prefill H=16 D=64 k=200 B=32 m=4 q=fp8 k=bf16 ue8m0 abs sorted seqs=3 T=11 N=2345".
  std::string Describe() const;
};

/// The case made from `seed`.
CheckCase MakeCheckCase(uint64_t seed);

}  // namespace hisa::tools
