// hisa: fidelity of a HISA selection against the flat indexer's (SPEC.md section 3).
#pragma once

#include <cstdint>
#include <vector>

namespace hisa {

/// Per-query fidelity. For an empty flat set (no visible keys) all three are 1.
struct RowFidelity {
  double iou = 1.0;       ///< |A n F| / |A u F|
  double recall = 1.0;    ///< |A n F| / |F|
  double coverage = 1.0;  ///< share of F inside the HISA candidate blocks
};

/// Compares one query's rows: flat and hisa are [top_k] relative positions with -1 padding,
/// blocks [block_budget] the HISA selected blocks with -1 padding (null: coverage not computed,
/// reported as 1).
RowFidelity CompareRow(const int32_t* flat, const int32_t* hisa, int32_t top_k,
                       const int32_t* blocks, int32_t block_budget, int32_t block_size);

/// Mean, 1st percentile (nearest rank) and minimum of a set of values.
struct Summary {
  double mean = 0.0;
  double p1 = 0.0;
  double min = 0.0;
  int64_t count = 0;
};
Summary Summarize(std::vector<double> values);

struct FidelityReport {
  Summary iou, recall, coverage;
};

/// Fidelity over T queries (rows of [T, top_k] and [T, block_budget]).
FidelityReport CompareSelections(int64_t num_queries, const int32_t* flat, const int32_t* hisa,
                                 int32_t top_k, const int32_t* blocks, int32_t block_budget,
                                 int32_t block_size);

}  // namespace hisa
