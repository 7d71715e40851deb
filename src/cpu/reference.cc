#include "cpu/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/parallel.h"
#include "core/topk.h"
#include "hisa/numeric.h"

namespace hisa::ref {

DecodedQuery DecodeQuery(const IndexerConfig& cfg, const void* q, const float* w) {
  DecodedQuery out;
  const int64_t n = int64_t{cfg.num_heads} * cfg.head_dim;
  out.q.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.q[i] = DecodeElement(q, cfg.q_dtype, i);
  out.w.assign(w, w + cfg.num_heads);
  return out;
}

double ScoreRow(const IndexerConfig& cfg, const DecodedQuery& query, const void* k, int64_t row,
                float kscale) {
  const int32_t dim = cfg.head_dim;  // <= 4096 (validated)
  double key[4096];
  for (int32_t d = 0; d < dim; ++d) key[d] = DecodeElement(k, cfg.k_dtype, row * dim + d);
  double sum = 0.0;
  for (int32_t h = 0; h < cfg.num_heads; ++h) {
    const double* qh = query.q.data() + int64_t{h} * dim;
    double dot = 0.0;
    for (int32_t d = 0; d < dim; ++d) dot += qh[d] * key[d];
    const double relu = dot > 0.0 ? dot : 0.0;  // ReLU(NaN) = 0
    sum += query.w[h] * relu;
  }
  return double{kscale} * sum;
}

double ScorePosition(const IndexerConfig& cfg, const DecodedQuery& query,
                     const core::QueryTask& task, int64_t pos) {
  const int64_t row = task.keys.Row(pos);
  return ScoreRow(cfg, query, task.keys.k, row, task.keys.Scale(row));
}

double ScoreBlock(const IndexerConfig& cfg, const DecodedQuery& query,
                  const core::QueryTask& task, int64_t block) {
  const int64_t slot = task.pooled.Slot(block);
  return ScoreRow(cfg, query, task.pooled.k, slot, task.pooled.kscale[slot]);
}

std::vector<int64_t> SelectBlocks(const IndexerConfig& cfg, const DecodedQuery& query,
                                  const core::QueryTask& task) {
  const int64_t own = core::OwnBlock(task.length, cfg.block_size);
  std::vector<int64_t> blocks;
  if (own < 0) return blocks;
  if (own + 1 <= cfg.block_budget) {
    blocks.resize(static_cast<size_t>(own + 1));
    std::iota(blocks.begin(), blocks.end(), int64_t{0});
    return blocks;
  }
  // Blocks 1 .. own-1 are complete and compete for m - 2 places; 0 and own are forced.
  std::vector<std::pair<double, int64_t>> scored;
  for (int64_t j = 1; j < own; ++j) scored.emplace_back(ScoreBlock(cfg, query, task, j), j);
  const size_t keep = static_cast<size_t>(cfg.block_budget - 2);
  std::partial_sort(scored.begin(), scored.begin() + keep, scored.end(),
                    [](const auto& a, const auto& b) {
                      return core::RanksAhead(a.first, a.second, b.first, b.second);
                    });
  blocks.push_back(0);
  for (size_t i = 0; i < keep; ++i) blocks.push_back(scored[i].second);
  blocks.push_back(own);
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}

std::vector<int64_t> TopkPositions(const IndexerConfig& cfg, const DecodedQuery& query,
                                   const core::QueryTask& task,
                                   const std::vector<int64_t>& candidates,
                                   std::vector<double>* scores) {
  std::vector<std::pair<double, int64_t>> scored;
  scored.reserve(candidates.size());
  for (int64_t pos : candidates) scored.emplace_back(ScorePosition(cfg, query, task, pos), pos);
  const size_t keep = std::min(scored.size(), static_cast<size_t>(cfg.top_k));
  std::partial_sort(scored.begin(), scored.begin() + keep, scored.end(),
                    [](const auto& a, const auto& b) {
                      return core::RanksAhead(a.first, a.second, b.first, b.second);
                    });
  std::vector<int64_t> positions(keep);
  if (scores) scores->resize(keep);
  for (size_t i = 0; i < keep; ++i) {
    positions[i] = scored[i].second;
    if (scores) (*scores)[i] = scored[i].first;
  }
  return positions;
}

namespace {

void WriteRow(const IndexerConfig& cfg, const core::QueryTask& task, int64_t t,
              const std::vector<int64_t>& positions, const std::vector<double>& scores,
              const TopkOutputs& out, const RunOptions& opts) {
  int32_t* indices = out.indices + t * cfg.top_k;
  float* out_scores = out.scores ? out.scores + t * cfg.top_k : nullptr;
  for (int64_t i = 0; i < cfg.top_k; ++i) {
    const bool used = i < static_cast<int64_t>(positions.size());
    indices[i] = used ? core::OutputPosition(task, positions[i], opts.positions) : -1;
    if (out_scores) {
      out_scores[i] = used ? static_cast<float>(scores[i]) : std::numeric_limits<float>::quiet_NaN();
    }
  }
}

std::vector<int64_t> AllPositions(int64_t length) {
  std::vector<int64_t> positions(static_cast<size_t>(std::max<int64_t>(length, 0)));
  std::iota(positions.begin(), positions.end(), int64_t{0});
  return positions;
}

}  // namespace

Status FlatTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts) {
  const int64_t n = static_cast<int64_t>(tasks.size());
  const int threads = core::ThreadCount(opts);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < n; ++t) {
    const core::QueryTask& task = tasks[static_cast<size_t>(t)];
    const DecodedQuery query = DecodeQuery(cfg, task.q, task.w);
    std::vector<double> scores;
    const auto positions = TopkPositions(cfg, query, task, AllPositions(task.length), &scores);
    WriteRow(cfg, task, t, positions, scores, out, opts);
  }
  return {};
}

Status HisaTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts) {
  const int64_t n = static_cast<int64_t>(tasks.size());
  const int threads = core::ThreadCount(opts);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < n; ++t) {
    const core::QueryTask& task = tasks[static_cast<size_t>(t)];
    const DecodedQuery query = DecodeQuery(cfg, task.q, task.w);
    const std::vector<int64_t> blocks = SelectBlocks(cfg, query, task);
    std::vector<int64_t> candidates;
    for (int64_t j : blocks) {
      const int64_t end = std::min<int64_t>((j + 1) * cfg.block_size, task.length);
      for (int64_t pos = j * cfg.block_size; pos < end; ++pos) candidates.push_back(pos);
    }
    std::vector<double> scores;
    const auto positions = TopkPositions(cfg, query, task, candidates, &scores);
    WriteRow(cfg, task, t, positions, scores, out, opts);
    if (out.blocks) {
      int32_t* row = out.blocks + t * cfg.block_budget;
      for (int64_t i = 0; i < cfg.block_budget; ++i) {
        row[i] = i < static_cast<int64_t>(blocks.size()) ? static_cast<int32_t>(blocks[i]) : -1;
      }
    }
  }
  return {};
}

Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts) {
  const int threads = core::ThreadCount(opts);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < in.num_queries; ++t) {
    const int64_t q_row = int64_t{cfg.num_heads} * cfg.head_dim * DTypeSize(cfg.q_dtype);
    const DecodedQuery query =
        DecodeQuery(cfg, static_cast<const uint8_t*>(in.q) + t * q_row, in.w + t * cfg.num_heads);
    float* row = logits + t * logits_stride;
    for (int64_t s = 0; s < in.keys.num_keys; ++s) {
      if (s < in.ks[t] || s >= in.ke[t]) {
        row[s] = -std::numeric_limits<float>::infinity();
      } else {
        const float scale = in.keys.kscale ? in.keys.kscale[s] : 1.0f;
        row[s] = static_cast<float>(ScoreRow(cfg, query, in.keys.k, s, scale));
      }
    }
  }
  return {};
}

}  // namespace hisa::ref
