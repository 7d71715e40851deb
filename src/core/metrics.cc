#include "hisa/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace hisa {

RowFidelity CompareRow(const int32_t* flat, const int32_t* hisa, int32_t top_k,
                       const int32_t* blocks, int32_t block_budget, int32_t block_size) {
  std::vector<int32_t> f, a;
  for (int32_t i = 0; i < top_k; ++i) {
    if (flat[i] >= 0) f.push_back(flat[i]);
    if (hisa[i] >= 0) a.push_back(hisa[i]);
  }
  RowFidelity row;
  if (f.empty() && a.empty()) return row;
  std::sort(f.begin(), f.end());
  std::sort(a.begin(), a.end());
  std::vector<int32_t> both;
  std::set_intersection(f.begin(), f.end(), a.begin(), a.end(), std::back_inserter(both));
  const double inter = static_cast<double>(both.size());
  const double uni = static_cast<double>(f.size() + a.size()) - inter;
  row.iou = inter / uni;
  row.recall = f.empty() ? 1.0 : inter / static_cast<double>(f.size());
  if (blocks != nullptr && !f.empty()) {
    std::unordered_set<int32_t> selected;
    for (int32_t i = 0; i < block_budget; ++i) {
      if (blocks[i] >= 0) selected.insert(blocks[i]);
    }
    int64_t covered = 0;
    for (int32_t pos : f) covered += selected.count(pos / block_size) ? 1 : 0;
    row.coverage = static_cast<double>(covered) / static_cast<double>(f.size());
  }
  return row;
}

Summary Summarize(std::vector<double> values) {
  Summary s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.min = values.front();
  // Nearest-rank 1st percentile: the ceil(0.01 n)-th smallest value.
  const size_t rank = static_cast<size_t>(std::ceil(0.01 * static_cast<double>(values.size())));
  s.p1 = values[std::max<size_t>(rank, 1) - 1];
  return s;
}

FidelityReport CompareSelections(int64_t num_queries, const int32_t* flat, const int32_t* hisa,
                                 int32_t top_k, const int32_t* blocks, int32_t block_budget,
                                 int32_t block_size) {
  std::vector<double> iou, recall, coverage;
  for (int64_t t = 0; t < num_queries; ++t) {
    const RowFidelity row =
        CompareRow(flat + t * top_k, hisa + t * top_k, top_k,
                   blocks ? blocks + t * block_budget : nullptr, block_budget, block_size);
    iou.push_back(row.iou);
    recall.push_back(row.recall);
    coverage.push_back(row.coverage);
  }
  return {Summarize(std::move(iou)), Summarize(std::move(recall)), Summarize(std::move(coverage))};
}

}  // namespace hisa
