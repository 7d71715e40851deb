// HISA (SPEC.md section 2) on the reference backend: block selection recomputed in the test from
// the pooled keys, and consequences (a)-(e) of the spec.
#include "hisa/hisa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::BatchOptions;
using testutil::BruteScores;
using testutil::BruteTopk;
using testutil::ExpectRow;
using testutil::MakeBatch;
using testutil::Outputs;
using testutil::PooledBuffer;
using testutil::Ref;
using testutil::Rng;
using testutil::RowOf;
using testutil::Scorer;
using testutil::SmallConfig;
using testutil::SortedEntries;

int64_t OwnBlock(int64_t length, int32_t block_size) {
  return length <= 0 ? -1 : (length - 1) / block_size;
}

// Pools the batch's sequences into a fresh prefill cache.
std::unique_ptr<PooledBuffer> BuildPooled(const Batch& batch) {
  auto pooled =
      std::make_unique<PooledBuffer>(batch.cfg, PooledSlotsForRows(batch.cfg, batch.num_keys));
  const Status status = BuildPooledKeysPrefill(
      batch.cfg, batch.Keys(), batch.seq_starts.data(), batch.seq_lens.data(),
      static_cast<int32_t>(batch.seq_lens.size()), pooled->View(), Ref());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return pooled;
}

// The selected blocks of query t, ascending: every eligible block when o + 1 <= m, else 0, o and
// the m - 2 blocks of 1 .. o - 1 with the largest J (NaN last, ties to the lower index), J
// computed here from the pooled keys in slot ceil(ks / B) + j.
std::vector<int64_t> ExpectedBlocks(const Batch& batch, const PooledBuffer& pooled, int64_t t) {
  const IndexerConfig& cfg = batch.cfg;
  const int64_t own = OwnBlock(batch.Length(t), cfg.block_size);
  std::vector<int64_t> blocks;
  if (own < 0) return blocks;
  if (own + 1 <= cfg.block_budget) {
    for (int64_t j = 0; j <= own; ++j) blocks.push_back(j);
    return blocks;
  }
  const Scorer scorer(batch, t);
  const int64_t base = (int64_t{batch.ks[t]} + cfg.block_size - 1) / cfg.block_size;
  std::vector<double> j_scores;
  std::vector<int64_t> ids;
  for (int64_t j = 1; j < own; ++j) {
    const int64_t slot = base + j;
    j_scores.push_back(scorer.Score(pooled.k.data(), slot, pooled.kscale[slot]));
    ids.push_back(j);
  }
  blocks = BruteTopk(j_scores, ids, cfg.block_budget - 2);
  blocks.push_back(0);
  blocks.push_back(own);
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}

// Positions of the given blocks that query t may see.
std::vector<int64_t> CandidatesOf(const Batch& batch, int64_t t,
                                  const std::vector<int64_t>& blocks) {
  std::vector<int64_t> positions;
  const int32_t block = batch.cfg.block_size;
  for (int64_t j : blocks) {
    for (int64_t pos = j * block; pos < std::min<int64_t>((j + 1) * block, batch.Length(t));
         ++pos) {
      positions.push_back(pos);
    }
  }
  return positions;
}

// Checks row t: blocks exactly as recomputed, indices = brute-force top-k over the candidates of
// the returned blocks, scores = I of each index.
void ExpectHisaRowMatchesOracle(const Batch& batch, const PooledBuffer& pooled, const Outputs& out,
                                int64_t t) {
  const IndexerConfig& cfg = batch.cfg;
  const std::string what =
      "query " + std::to_string(t) + " (length " + std::to_string(batch.Length(t)) + ")";
  const std::vector<int32_t> blocks_row = RowOf(out.blocks.data(), t, cfg.block_budget);
  const std::vector<int64_t> expected_blocks = ExpectedBlocks(batch, pooled, t);
  std::vector<int32_t> expected_row(static_cast<size_t>(cfg.block_budget), -1);
  std::copy(expected_blocks.begin(), expected_blocks.end(), expected_row.begin());
  EXPECT_EQ(blocks_row, expected_row) << what;
  const std::vector<int64_t> got_blocks = SortedEntries(blocks_row);
  const std::vector<int64_t> candidates = CandidatesOf(batch, t, got_blocks);
  const std::vector<double> brute = BruteScores(batch, t);
  std::vector<double> candidate_scores;
  for (int64_t pos : candidates) candidate_scores.push_back(brute[pos]);
  const std::vector<float> scores = RowOf(out.scores.data(), t, cfg.top_k);
  ExpectRow(RowOf(out.indices.data(), t, cfg.top_k), &scores,
            BruteTopk(candidate_scores, candidates, cfg.top_k), brute, what);
}

void RunHisa(const Batch& batch, const PooledBuffer& pooled, Outputs* out,
             const RunOptions& opts = Ref()) {
  const Status status =
      HisaTopkPrefill(batch.cfg, batch.Inputs(), pooled.ConstView(), out->View(), opts);
  ASSERT_TRUE(status.ok()) << status.ToString();
}

void RunFlat(const Batch& batch, Outputs* out) {
  const Status status = FlatTopkPrefill(batch.cfg, batch.Inputs(), out->FlatView(), Ref());
  ASSERT_TRUE(status.ok()) << status.ToString();
}

// ---------------------------------------------------------------------------------------------
// One packed batch, B = 16, m = 4, k = 32: rows with o + 1 <= m (length <= 64) and without.
// ---------------------------------------------------------------------------------------------

class HisaPrefill : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const IndexerConfig cfg = SmallConfig(32);
    const std::vector<int32_t> lens = {700, 45, 300, 160, 64, 0};
    Rng rng(21);
    std::vector<std::vector<int32_t>> queries;
    for (int32_t len : lens) {
      std::vector<int32_t> q = testutil::SpreadLengths(len, 8, rng);
      for (int32_t edge : {0, 16, 17, 32, 33, 48, 64, 65, 80, 81}) {
        if (edge <= len) q.push_back(edge);
      }
      queries.push_back(q);
    }
    BatchOptions opts;
    opts.mixed_weights = true;
    opts.max_gap = 9;
    batch_ = new Batch(MakeBatch(cfg, lens, queries, 201, opts));
    pooled_ = BuildPooled(*batch_).release();
    hisa_ = new Outputs(cfg, batch_->num_queries);
    flat_ = new Outputs(cfg, batch_->num_queries, false);
    RunHisa(*batch_, *pooled_, hisa_);
    RunFlat(*batch_, flat_);
  }
  static void TearDownTestSuite() {
    delete batch_;
    delete pooled_;
    delete hisa_;
    delete flat_;
  }
  static const IndexerConfig& cfg() { return batch_->cfg; }
  static bool Hierarchical(int64_t t) {
    return OwnBlock(batch_->Length(t), cfg().block_size) + 1 > cfg().block_budget;
  }

  static Batch* batch_;
  static PooledBuffer* pooled_;
  static Outputs* hisa_;
  static Outputs* flat_;
};

Batch* HisaPrefill::batch_ = nullptr;
PooledBuffer* HisaPrefill::pooled_ = nullptr;
Outputs* HisaPrefill::hisa_ = nullptr;
Outputs* HisaPrefill::flat_ = nullptr;

TEST_F(HisaPrefill, OutputIsTheFlatTopkRestrictedToTheCandidateBlocks) {
  int64_t hierarchical = 0;
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    ExpectHisaRowMatchesOracle(*batch_, *pooled_, *hisa_, t);
    hierarchical += Hierarchical(t) ? 1 : 0;
  }
  EXPECT_GE(hierarchical, 10) << "too few rows exercise the block selection";
  EXPECT_TRUE(hisa_->GuardsIntact());
}

TEST_F(HisaPrefill, SelectedBlocksAreBlockZeroTheOwnBlockAndTheBestByPooledScore) {
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    const std::vector<int32_t> row = RowOf(hisa_->blocks.data(), t, cfg().block_budget);
    std::vector<int64_t> expected = ExpectedBlocks(*batch_, *pooled_, t);
    expected.resize(static_cast<size_t>(cfg().block_budget), -1);
    EXPECT_EQ(std::vector<int64_t>(row.begin(), row.end()), expected) << "query " << t;
  }
}

TEST_F(HisaPrefill, BlocksRowHoldsMinOPlusOneAndMAscendingThenPadding) {
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    const std::vector<int32_t> row = RowOf(hisa_->blocks.data(), t, cfg().block_budget);
    const int64_t own = OwnBlock(batch_->Length(t), cfg().block_size);
    const int64_t count = own < 0 ? 0 : std::min<int64_t>(own + 1, cfg().block_budget);
    for (int64_t i = 0; i < cfg().block_budget; ++i) {
      if (i < count) {
        EXPECT_GE(row[i], 0) << "query " << t;
        EXPECT_LE(row[i], own) << "query " << t;
        if (i > 0) {
          EXPECT_LT(row[i - 1], row[i]) << "query " << t << ": not ascending";
        }
      } else {
        EXPECT_EQ(row[i], -1) << "query " << t << " slot " << i;
      }
    }
    if (own >= 0) {
      EXPECT_EQ(row[0], 0) << "query " << t << ": block 0 is forced";
      EXPECT_EQ(row[count - 1], own) << "query " << t << ": the own block is forced";
    }
  }
}

TEST_F(HisaPrefill, RowsShorterThanKReturnEveryVisibleKey) {
  int64_t short_rows = 0;
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    const int64_t len = batch_->Length(t);
    if (len > cfg().top_k) continue;
    ++short_rows;
    std::vector<int64_t> all(static_cast<size_t>(len));
    std::iota(all.begin(), all.end(), int64_t{0});
    EXPECT_EQ(SortedEntries(RowOf(hisa_->indices.data(), t, cfg().top_k)), all) << "query " << t;
  }
  EXPECT_GE(short_rows, 5);
}

TEST_F(HisaPrefill, EqualsFlatWhenEveryEligibleBlockFitsTheBudget) {
  int64_t fitting = 0;
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    if (Hierarchical(t)) continue;
    ++fitting;
    EXPECT_EQ(RowOf(hisa_->indices.data(), t, cfg().top_k),
              RowOf(flat_->indices.data(), t, cfg().top_k))
        << "query " << t;
    EXPECT_TRUE(testutil::BitwiseEqual(RowOf(hisa_->scores.data(), t, cfg().top_k),
                                       RowOf(flat_->scores.data(), t, cfg().top_k)));
  }
  EXPECT_GE(fitting, 10);
}

TEST_F(HisaPrefill, EmptyRowsAreAllPadding) {
  int64_t empty = 0;
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    if (batch_->Length(t) != 0) continue;
    ++empty;
    for (int32_t v : RowOf(hisa_->indices.data(), t, cfg().top_k)) EXPECT_EQ(v, -1);
    for (int32_t v : RowOf(hisa_->blocks.data(), t, cfg().block_budget)) EXPECT_EQ(v, -1);
    for (float s : RowOf(hisa_->scores.data(), t, cfg().top_k)) EXPECT_TRUE(std::isnan(s));
  }
  EXPECT_GE(empty, 5);
}

TEST_F(HisaPrefill, BlocksAndScoresOutputsAreOptional) {
  Outputs bare(cfg(), batch_->num_queries, /*with_blocks=*/false, /*with_scores=*/false);
  RunHisa(*batch_, *pooled_, &bare);
  EXPECT_EQ(bare.indices.Interior(), hisa_->indices.Interior());
  EXPECT_TRUE(bare.GuardsIntact());
}

TEST_F(HisaPrefill, AbsolutePositionsAreKsPlusRelative) {
  Outputs abs(cfg(), batch_->num_queries);
  RunHisa(*batch_, *pooled_, &abs, Ref(PositionBase::kAbsolute));
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    for (int64_t i = 0; i < cfg().top_k; ++i) {
      const int32_t r = hisa_->indices[t * cfg().top_k + i];
      EXPECT_EQ(abs.indices[t * cfg().top_k + i], r < 0 ? -1 : r + batch_->ks[t]);
    }
  }
  EXPECT_EQ(abs.blocks.Interior(), hisa_->blocks.Interior()) << "blocks stay sequence blocks";
}

TEST_F(HisaPrefill, NoQuerySeesAnotherSequenceOrAFutureKey) {
  Rng rng(22);
  int64_t checked = 0;
  for (int64_t t = 0; t < batch_->num_queries; t += 3) {
    // Every key query t may not see becomes a strong one; the pooled keys are rebuilt.
    Batch changed = *batch_;
    for (int64_t s = 0; s < changed.num_keys; ++s) {
      if (s < changed.ks[t] || s >= changed.ke[t]) changed.RandomizeKey(s, rng, 1000.0f);
    }
    const auto pooled = BuildPooled(changed);
    Outputs out(cfg(), changed.num_queries);
    RunHisa(changed, *pooled, &out);
    EXPECT_EQ(RowOf(out.indices.data(), t, cfg().top_k),
              RowOf(hisa_->indices.data(), t, cfg().top_k))
        << "query " << t;
    EXPECT_EQ(RowOf(out.blocks.data(), t, cfg().block_budget),
              RowOf(hisa_->blocks.data(), t, cfg().block_budget))
        << "query " << t;
    EXPECT_TRUE(testutil::BitwiseEqual(RowOf(out.scores.data(), t, cfg().top_k),
                                       RowOf(hisa_->scores.data(), t, cfg().top_k)))
        << "query " << t;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

TEST_F(HisaPrefill, ChangingTheKeysOfUnselectedBlocksChangesNothing) {
  Rng rng(23);
  int64_t checked = 0;
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    if (!Hierarchical(t) || batch_->Length(t) < 150) continue;
    const std::vector<int64_t> selected =
        SortedEntries(RowOf(hisa_->blocks.data(), t, cfg().block_budget));
    const int64_t own = OwnBlock(batch_->Length(t), cfg().block_size);
    // Unselected blocks get strong keys; the pooled cache is left as it was, so the block
    // selection cannot see the change and the candidate keys must not either.
    Batch changed = *batch_;
    for (int64_t j = 1; j < own; ++j) {
      if (std::binary_search(selected.begin(), selected.end(), j)) continue;
      for (int64_t pos = j * cfg().block_size; pos < (j + 1) * cfg().block_size; ++pos) {
        changed.RandomizeKey(changed.ks[t] + pos, rng, 1000.0f);
      }
    }
    Outputs out(cfg(), changed.num_queries);
    RunHisa(changed, *pooled_, &out);
    EXPECT_EQ(RowOf(out.indices.data(), t, cfg().top_k),
              RowOf(hisa_->indices.data(), t, cfg().top_k))
        << "query " << t;
    EXPECT_TRUE(testutil::BitwiseEqual(RowOf(out.scores.data(), t, cfg().top_k),
                                       RowOf(hisa_->scores.data(), t, cfg().top_k)));
    // The change is real: the flat indexer picks the new keys up.
    Outputs flat(cfg(), changed.num_queries, false);
    RunFlat(changed, &flat);
    EXPECT_NE(RowOf(flat.indices.data(), t, cfg().top_k),
              RowOf(flat_->indices.data(), t, cfg().top_k))
        << "query " << t;
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST_F(HisaPrefill, ChangingTheKeysOfASelectedBlockChangesTheRow) {
  Rng rng(24);
  int64_t checked = 0;
  for (int64_t t = 0; t < batch_->num_queries; ++t) {
    if (!Hierarchical(t)) continue;
    const std::vector<int32_t> blocks = RowOf(hisa_->blocks.data(), t, cfg().block_budget);
    const int64_t j = blocks[1];  // neither block 0 nor the own block (m = 4)
    Batch changed = *batch_;
    for (int64_t pos = j * cfg().block_size; pos < (j + 1) * cfg().block_size; ++pos) {
      changed.RandomizeKey(changed.ks[t] + pos, rng, 1000.0f);
    }
    Outputs out(cfg(), changed.num_queries);
    RunHisa(changed, *pooled_, &out);
    const bool same_indices =
        RowOf(out.indices.data(), t, cfg().top_k) == RowOf(hisa_->indices.data(), t, cfg().top_k);
    const bool same_scores = testutil::BitwiseEqual(RowOf(out.scores.data(), t, cfg().top_k),
                                                    RowOf(hisa_->scores.data(), t, cfg().top_k));
    EXPECT_FALSE(same_indices && same_scores) << "query " << t << ", block " << j;
    if (++checked == 4) break;
  }
  EXPECT_EQ(checked, 4);
}

// ---------------------------------------------------------------------------------------------
// Constructed selections
// ---------------------------------------------------------------------------------------------

TEST(HisaPrefillSelection, ForcedBlocksAreKeptEvenWhenTheyScoreLowest) {
  const IndexerConfig cfg = SmallConfig(32);
  Batch batch = MakeBatch(cfg, {400}, {{400, 390, 385}}, 202);
  // Block 0 and the last blocks get keys with tiny scales: their keys and pooled keys score
  // lowest of all (weights are positive, so every score is >= 0).
  for (int64_t pos = 0; pos < 16; ++pos) batch.kscale[pos] *= 1e-6f;
  for (int64_t pos = 368; pos < 400; ++pos) batch.kscale[pos] *= 1e-6f;
  const auto pooled = BuildPooled(batch);
  Outputs out(cfg, batch.num_queries);
  RunHisa(batch, *pooled, &out);
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    const int64_t own = OwnBlock(batch.Length(t), cfg.block_size);
    const std::vector<int32_t> row = RowOf(out.blocks.data(), t, cfg.block_budget);
    EXPECT_EQ(row.front(), 0) << "query " << t;
    EXPECT_EQ(row.back(), own) << "query " << t;
    ExpectHisaRowMatchesOracle(batch, *pooled, out, t);
  }
}

TEST(HisaPrefillSelection, TiedBlockScoresGoToTheLowerBlockIndex) {
  const IndexerConfig cfg = SmallConfig(32);
  Batch batch = MakeBatch(cfg, {320}, {{320, 300}}, 203);
  // Blocks 1 .. 18 hold the same 16 keys: identical pooled keys, identical J.
  for (int64_t j = 2; j < 19; ++j) {
    for (int64_t i = 0; i < 16; ++i) batch.CopyKey(16 + i, j * 16 + i);
  }
  const auto pooled = BuildPooled(batch);
  Outputs out(cfg, batch.num_queries);
  RunHisa(batch, *pooled, &out);
  EXPECT_EQ(RowOf(out.blocks.data(), 0, cfg.block_budget), (std::vector<int32_t>{0, 1, 2, 19}));
  EXPECT_EQ(RowOf(out.blocks.data(), 1, cfg.block_budget), (std::vector<int32_t>{0, 1, 2, 18}));
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    ExpectHisaRowMatchesOracle(batch, *pooled, out, t);
  }
}

TEST(HisaPrefillSelection, NaNBlockScoreRanksBelowEveryFiniteBlockScore) {
  const IndexerConfig cfg = SmallConfig(32);
  const Batch batch = MakeBatch(cfg, {320}, {{320}}, 204);
  const auto pooled = BuildPooled(batch);
  // Every competing block but block 7 gets a NaN pooled scale, so a NaN J.
  for (int64_t j = 1; j < 19; ++j) {
    if (j != 7) pooled->kscale[static_cast<size_t>(j)] = std::numeric_limits<float>::quiet_NaN();
  }
  Outputs out(cfg, 1);
  RunHisa(batch, *pooled, &out);
  const std::vector<int32_t> row = RowOf(out.blocks.data(), 0, cfg.block_budget);
  EXPECT_EQ(std::count(row.begin(), row.end(), 7), 1) << "the only finite block score lost";
  ExpectHisaRowMatchesOracle(batch, *pooled, out, 0);
}

TEST(HisaPrefillSelection, MatchesOracleWithBf16KeysAndNoKeyScales) {
  IndexerConfig cfg = SmallConfig(24);
  cfg.q_dtype = DType::kBf16;
  cfg.k_dtype = DType::kBf16;
  cfg.block_size = 32;
  cfg.block_budget = 3;
  BatchOptions opts;
  opts.mixed_weights = true;
  opts.null_kscale = true;
  opts.max_gap = 5;
  const Batch batch = MakeBatch(cfg, {400, 90}, {{400, 200, 97, 96, 3}, {90, 64, 65}}, 205, opts);
  const auto pooled = BuildPooled(batch);
  Outputs out(cfg, batch.num_queries);
  RunHisa(batch, *pooled, &out);
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    ExpectHisaRowMatchesOracle(batch, *pooled, out, t);
  }
  EXPECT_TRUE(out.GuardsIntact());
}

TEST(HisaPrefillSelection, MatchesOracleWithUe8m0KeysAndPooledScales) {
  IndexerConfig cfg = SmallConfig(32);
  cfg.pooled_scale_rule = ScaleRule::kUe8m0;
  cfg.block_budget = 5;
  BatchOptions opts;
  opts.key_scale_rule = ScaleRule::kUe8m0;
  opts.max_gap = 11;
  const Batch batch = MakeBatch(cfg, {33, 500}, {{33}, {500, 499, 250, 81, 80}}, 206, opts);
  const auto pooled = BuildPooled(batch);
  Outputs out(cfg, batch.num_queries);
  RunHisa(batch, *pooled, &out);
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    ExpectHisaRowMatchesOracle(batch, *pooled, out, t);
  }
}

TEST(HisaPrefillSelection, MatchesOracleOnMillionTokenRows) {
  IndexerConfig cfg = SmallConfig(64);
  cfg.num_heads = 2;
  cfg.head_dim = 16;
  cfg.block_budget = 8;
  const int32_t n = (1 << 20) + 21;
  const Batch batch = MakeBatch(cfg, {37, n}, {{}, {n, n - 16}}, 208, {.mixed_weights = true});
  const auto pooled = BuildPooled(batch);
  Outputs out(cfg, batch.num_queries);
  RunHisa(batch, *pooled, &out);
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    ExpectHisaRowMatchesOracle(batch, *pooled, out, t);
  }
  EXPECT_EQ(out.blocks[cfg.block_budget - 1], (n - 1) / 16);
}

TEST(HisaPrefillSelection, MatchesOracleAtTheDefaultShape) {
  IndexerConfig cfg;  // H = 64, D = 128, B = 128
  cfg.top_k = 256;
  cfg.block_budget = 4;
  const Batch batch =
      MakeBatch(cfg, {2048}, {{100, 256, 512, 513, 1000, 2048}}, 207, {.mixed_weights = true});
  const auto pooled = BuildPooled(batch);
  Outputs out(cfg, batch.num_queries);
  RunHisa(batch, *pooled, &out);
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    ExpectHisaRowMatchesOracle(batch, *pooled, out, t);
  }
}

}  // namespace
}  // namespace hisa
