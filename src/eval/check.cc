#include "hisa/check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "core/query.h"
#include "core/topk.h"
#include "cpu/reference.h"
#include "hisa/numeric.h"

namespace hisa {
namespace {

// Upper bound on |I| before the final rounding: kscale * sum_h |w_h| * sum_d |q_hd k_d|.
double Magnitude(const IndexerConfig& cfg, const ref::DecodedQuery& query, const void* k,
                 int64_t row, float kscale) {
  const int32_t dim = cfg.head_dim;  // <= 4096 (validated)
  double key[4096];
  for (int32_t d = 0; d < dim; ++d) key[d] = std::fabs(DecodeElement(k, cfg.k_dtype, row * dim + d));
  double sum = 0.0;
  for (int32_t h = 0; h < cfg.num_heads; ++h) {
    const double* qh = query.q.data() + int64_t{h} * dim;
    double dot = 0.0;
    for (int32_t d = 0; d < dim; ++d) dot += std::fabs(qh[d]) * key[d];
    sum += std::fabs(query.w[h]) * dot;
  }
  return std::fabs(double{kscale}) * sum;
}

// Checks `got` (k slots of output values, -1 padding) against candidates with reference scores.
// Returns "" when the row passes, else why not.
std::string CheckSelection(const std::vector<int64_t>& values, const std::vector<double>& scores,
                           double tol, const int32_t* got, int64_t k, const char* what) {
  const int64_t count = static_cast<int64_t>(values.size());
  const int64_t n = std::min(k, count);
  std::unordered_map<int64_t, int64_t> index_of;
  index_of.reserve(static_cast<size_t>(count) * 2);
  for (int64_t i = 0; i < count; ++i) index_of[values[i]] = i;
  std::vector<char> selected(static_cast<size_t>(count), 0);
  for (int64_t i = 0; i < k; ++i) {
    if (i >= n) {
      if (got[i] != -1) {
        return fmt::format("{} slot {} = {}: expected -1 padding after {} entries", what, i,
                           got[i], n);
      }
      continue;
    }
    const auto it = index_of.find(got[i]);
    if (it == index_of.end()) {
      return fmt::format("{} slot {} = {} is not a candidate ({} candidates)", what, i, got[i],
                         count);
    }
    if (selected[it->second]) return fmt::format("{} slot {} = {} is repeated", what, i, got[i]);
    selected[it->second] = 1;
  }
  if (n == count || n == 0) return "";  // nothing left out, or nothing to select (k = 0)
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::nth_element(order.begin(), order.begin() + (n - 1), order.end(), [&](int64_t a, int64_t b) {
    return core::RanksAhead(scores[a], values[a], scores[b], values[b]);
  });
  const double theta = scores[order[n - 1]];
  for (int64_t i = 0; i < count; ++i) {
    const double s = scores[i];
    if (selected[i]) {
      const bool ok = std::isnan(theta) || (!std::isnan(s) && s >= theta - tol);
      if (!ok) {
        return fmt::format("{} {} selected with score {:.9g} below the k-th score {:.9g} - tol "
                           "{:.3g}",
                           what, values[i], s, theta, tol);
      }
    } else {
      const bool ok = std::isnan(s) || (!std::isnan(theta) && s <= theta + tol);
      if (!ok) {
        return fmt::format("{} {} left out with score {:.9g} above the k-th score {:.9g} + tol "
                           "{:.3g}",
                           what, values[i], s, theta, tol);
      }
    }
  }
  return "";
}

std::string CheckTask(const IndexerConfig& cfg, const core::QueryTask& task, bool hisa,
                      const int32_t* indices, const int32_t* blocks, const CheckOptions& opts) {
  const ref::DecodedQuery query = ref::DecodeQuery(cfg, task.q, task.w);
  std::vector<int64_t> candidates;
  if (hisa && blocks == nullptr) return "blocks output is required to check a HISA selection";
  if (hisa) {
    const int64_t own = core::OwnBlock(task.length, cfg.block_size);
    std::vector<int64_t> got;
    for (int32_t i = 0; i < cfg.block_budget; ++i) {
      if (blocks[i] >= 0) got.push_back(blocks[i]);
    }
    if (own + 1 <= cfg.block_budget) {
      // Every eligible block, and nothing else.
      std::vector<int64_t> expected(static_cast<size_t>(own + 1));
      std::iota(expected.begin(), expected.end(), int64_t{0});
      std::vector<int64_t> sorted = got;
      std::sort(sorted.begin(), sorted.end());
      if (sorted != expected) {
        return fmt::format("blocks: {} selected, expected all {} eligible blocks", got.size(),
                           own + 1);
      }
    } else {
      // 0 and own forced; m - 2 of 1..own-1 tie-aware against the reference block scores.
      const auto has = [&](int64_t j) { return std::find(got.begin(), got.end(), j) != got.end(); };
      if (!has(0)) return "blocks: block 0 is not selected";
      if (!has(own)) return fmt::format("blocks: the query's own block {} is not selected", own);
      std::vector<int32_t> others;
      for (int32_t i = 0; i < cfg.block_budget; ++i) {
        if (blocks[i] != 0 && blocks[i] != own) others.push_back(blocks[i]);
      }
      if (others.size() > static_cast<size_t>(cfg.block_budget - 2)) {
        return fmt::format("blocks: {} blocks besides 0 and {} selected, at most {} allowed",
                           others.size(), own, cfg.block_budget - 2);
      }
      others.resize(static_cast<size_t>(cfg.block_budget - 2), -2);  // missing: not a candidate
      std::vector<int64_t> values;
      std::vector<double> scores;
      double magnitude = 0.0;
      for (int64_t j = 1; j < own; ++j) {
        values.push_back(j);
        scores.push_back(ref::ScoreBlock(cfg, query, task, j));
        if (opts.rel_tol > 0) {
          const int64_t slot = task.pooled.Slot(j);
          magnitude = std::max(
              magnitude, Magnitude(cfg, query, task.pooled.k, slot, task.pooled.kscale[slot]));
        }
      }
      std::string why = CheckSelection(values, scores, opts.rel_tol * magnitude, others.data(),
                                       cfg.block_budget - 2, "block");
      if (!why.empty()) return why;
    }
    for (int64_t j : got) {
      const int64_t end = std::min<int64_t>((j + 1) * cfg.block_size, task.length);
      for (int64_t pos = j * cfg.block_size; pos < end; ++pos) candidates.push_back(pos);
    }
  } else {
    candidates.resize(static_cast<size_t>(task.length));
    std::iota(candidates.begin(), candidates.end(), int64_t{0});
  }
  std::vector<int64_t> values;
  std::vector<double> scores;
  double magnitude = 0.0;
  values.reserve(candidates.size());
  scores.reserve(candidates.size());
  for (int64_t pos : candidates) {
    values.push_back(core::OutputPosition(task, pos, opts.positions));
    scores.push_back(ref::ScorePosition(cfg, query, task, pos));
    if (opts.rel_tol > 0) {
      const int64_t row = task.keys.Row(pos);
      magnitude =
          std::max(magnitude, Magnitude(cfg, query, task.keys.k, row, task.keys.Scale(row)));
    }
  }
  return CheckSelection(values, scores, opts.rel_tol * magnitude, indices, cfg.top_k, "key");
}

CheckResult CheckTasks(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                       bool hisa, const int32_t* indices, const int32_t* blocks,
                       const CheckOptions& opts) {
  CheckResult result;
  const int64_t n = static_cast<int64_t>(tasks.size());
  const int64_t rows = opts.max_rows < 0 ? n : std::min(n, opts.max_rows);
  std::vector<std::string> failures(static_cast<size_t>(rows));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = rows == n ? r : r * n / rows;
    failures[r] = CheckTask(cfg, tasks[t], hisa, indices + t * cfg.top_k,
                            blocks ? blocks + t * cfg.block_budget : nullptr, opts);
    if (!failures[r].empty()) failures[r] = fmt::format("row {}: {}", t, failures[r]);
  }
  result.rows_checked = rows;
  for (const std::string& f : failures) {
    if (f.empty()) continue;
    if (result.rows_failed++ == 0) result.first_failure = f;
  }
  return result;
}

}  // namespace

CheckResult CheckFlatPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                             const int32_t* indices, const CheckOptions& opts) {
  return CheckTasks(cfg, core::PrefillTasks(cfg, in, nullptr), false, indices, nullptr, opts);
}

CheckResult CheckHisaPrefill(const IndexerConfig& cfg, const PrefillInputs& in,
                             const ConstPooledKeys& pooled, const int32_t* indices,
                             const int32_t* blocks, const CheckOptions& opts) {
  return CheckTasks(cfg, core::PrefillTasks(cfg, in, &pooled), true, indices, blocks, opts);
}

CheckResult CheckFlatDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                            const int32_t* indices, const CheckOptions& opts) {
  return CheckTasks(cfg, core::DecodeTasks(cfg, in, nullptr), false, indices, nullptr, opts);
}

CheckResult CheckHisaDecode(const IndexerConfig& cfg, const DecodeInputs& in,
                            const ConstPooledKeys& pooled, const int32_t* indices,
                            const int32_t* blocks, const CheckOptions& opts) {
  return CheckTasks(cfg, core::DecodeTasks(cfg, in, &pooled), true, indices, blocks, opts);
}

double Float32RelTol(const IndexerConfig& cfg) {
  return 2.0 * (cfg.head_dim + cfg.num_heads + 4) * std::ldexp(1.0, -24);
}

}  // namespace hisa
