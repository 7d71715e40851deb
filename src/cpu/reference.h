// The reference backend: the executable spec (SPEC.md sections 1 and 2), plain and obvious.
//
// Scores are float64: every FP8 product is exact and so is their float64 sum over D <= 128 (the
// products span fewer than 53 bits), so the only rounding is in the weighted head sum, done in a
// fixed order. Selection uses core::RanksAhead (higher score, NaN last, then lower position).
#pragma once

#include <cstdint>
#include <vector>

#include "core/query.h"
#include "hisa/status.h"
#include "hisa/types.h"

namespace hisa::ref {

/// A query's q and w decoded to float64, reused across its keys.
struct DecodedQuery {
  std::vector<double> q;  // [H, D]
  std::vector<double> w;  // [H]
};
DecodedQuery DecodeQuery(const IndexerConfig& cfg, const void* q, const float* w);

/// I(t, s) (or J for a pooled key) in float64 for one key row.
double ScoreRow(const IndexerConfig& cfg, const DecodedQuery& query, const void* k, int64_t row,
                float kscale);

/// Score of sequence position pos for a task.
double ScorePosition(const IndexerConfig& cfg, const DecodedQuery& query,
                     const core::QueryTask& task, int64_t pos);

/// Score J of block j for a task (pooled keys).
double ScoreBlock(const IndexerConfig& cfg, const DecodedQuery& query,
                  const core::QueryTask& task, int64_t block);

/// The HISA selected blocks of a task, ascending (all eligible blocks when o + 1 <= m).
std::vector<int64_t> SelectBlocks(const IndexerConfig& cfg, const DecodedQuery& query,
                                  const core::QueryTask& task);

/// Candidates -> the top_k positions, best first.
std::vector<int64_t> TopkPositions(const IndexerConfig& cfg, const DecodedQuery& query,
                                   const core::QueryTask& task,
                                   const std::vector<int64_t>& candidates,
                                   std::vector<double>* scores);

/// Whole-batch selection over tasks (outputs row t = task t).
Status FlatTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts);
Status HisaTopk(const IndexerConfig& cfg, const std::vector<core::QueryTask>& tasks,
                const TopkOutputs& out, const RunOptions& opts);
Status FlatLogitsPrefill(const IndexerConfig& cfg, const PrefillInputs& in, float* logits,
                         int64_t logits_stride, const RunOptions& opts);

}  // namespace hisa::ref
