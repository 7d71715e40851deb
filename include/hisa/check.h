// hisa: checking a backend's selection against the reference, as sets, tie-aware.
//
// A row passes when it holds exactly min(k, |candidates|) distinct candidates followed by -1
// padding, every selected key scores at least theta - tol and every candidate left out scores at
// most theta + tol, where theta is the reference's k-th best score and tol a rounding allowance
// (0 demands exact ties). For HISA the selected blocks are checked the same way against the
// reference block scores, and the tokens against the reference scores of the candidates of the
// blocks the backend selected. Part of the evaluation library (hisa_eval).
#pragma once

#include <cstdint>
#include <string>

#include "hisa/types.h"

namespace hisa {

struct CheckOptions {
  /// Rounding allowance relative to the row's largest score magnitude
  /// kscale * sum_h |w_h| * sum_d |q_hd k_d|. 0: exact ties only.
  double rel_tol = 0.0;
  PositionBase positions = PositionBase::kRelative;  ///< how the indices were written
  int64_t max_rows = -1;  ///< check at most this many rows, spread evenly (-1: all)
};

struct CheckResult {
  int64_t rows_checked = 0;
  int64_t rows_failed = 0;
  std::string first_failure;  ///< "row 3: ..." for the first failing row
  bool ok() const { return rows_failed == 0; }
};

/// indices: [T, top_k] host memory.
CheckResult CheckFlatPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                             const int32_t* indices, const CheckOptions& opts);
/// blocks: [T, block_budget] host memory (required).
CheckResult CheckHisaPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                             const ConstPooledKeys& pooled, const int32_t* indices,
                             const int32_t* blocks, const CheckOptions& opts);
CheckResult CheckFlatDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                            const int32_t* indices, const CheckOptions& opts);
CheckResult CheckHisaDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                            const ConstPooledKeys& pooled, const int32_t* indices,
                            const int32_t* blocks, const CheckOptions& opts);

/// Rounding allowance for float32 accumulation of D products and H heads:
/// (D + H + 4) * 2^-24, doubled. The CPU backend's arithmetic is inside it.
double Float32RelTol(const IndexerConfig& cfg);

}  // namespace hisa
