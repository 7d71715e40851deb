// The flat indexer (SPEC.md section 1) on the reference backend, against a float64 brute force
// computed in the test.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::BatchOptions;
using testutil::BruteFlat;
using testutil::BruteScores;
using testutil::ExpectRow;
using testutil::Guarded;
using testutil::MakeBatch;
using testutil::Outputs;
using testutil::Ref;
using testutil::Rng;
using testutil::RowOf;
using testutil::SmallConfig;
using testutil::SortedEntries;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Runs the flat reference with scores and checks every row against the brute force.
void ExpectFlatMatchesBruteForce(const Batch& batch) {
  const IndexerConfig& cfg = batch.cfg;
  Outputs out(cfg, batch.num_queries, /*with_blocks=*/false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    const std::vector<float> scores = RowOf(out.scores.data(), t, cfg.top_k);
    const std::vector<double> brute = BruteScores(batch, t);
    ExpectRow(RowOf(out.indices.data(), t, cfg.top_k), &scores, BruteFlat(batch, brute), brute,
              "query " + std::to_string(t));
  }
  EXPECT_TRUE(out.GuardsIntact());
}

TEST(FlatPrefill, MatchesBruteForceOnPackedCausalBatch) {
  const IndexerConfig cfg = SmallConfig(32);
  Rng rng(1);
  const std::vector<int32_t> lens = {300, 17, 129, 64, 1};
  std::vector<std::vector<int32_t>> queries;
  for (int32_t len : lens) queries.push_back(testutil::SpreadLengths(len, 8, rng));
  BatchOptions opts;
  opts.mixed_weights = true;
  opts.max_gap = 7;
  ExpectFlatMatchesBruteForce(MakeBatch(cfg, lens, queries, 101, opts));
}

TEST(FlatPrefill, MatchesBruteForceWithPositiveWeights) {
  const IndexerConfig cfg = SmallConfig(16);
  Rng rng(2);
  const std::vector<int32_t> lens = {200, 90};
  std::vector<std::vector<int32_t>> queries;
  for (int32_t len : lens) queries.push_back(testutil::SpreadLengths(len, 10, rng));
  ExpectFlatMatchesBruteForce(MakeBatch(cfg, lens, queries, 102));
}

TEST(FlatPrefill, MatchesBruteForceWithBf16QueriesAndKeys) {
  IndexerConfig cfg = SmallConfig(24);
  cfg.q_dtype = DType::kBf16;
  cfg.k_dtype = DType::kBf16;
  cfg.head_dim = 48;
  BatchOptions opts;
  opts.mixed_weights = true;
  opts.null_kscale = true;
  ExpectFlatMatchesBruteForce(
      MakeBatch(cfg, {150, 40}, {{1, 23, 24, 25, 150}, {40, 7}}, 103, opts));
}

TEST(FlatPrefill, MatchesBruteForceWithUe8m0KeyScalesAndFp8KeysBf16Queries) {
  IndexerConfig cfg = SmallConfig(20);
  cfg.q_dtype = DType::kBf16;
  BatchOptions opts;
  opts.key_scale_rule = ScaleRule::kUe8m0;
  opts.mixed_weights = true;
  ExpectFlatMatchesBruteForce(MakeBatch(cfg, {120}, {{5, 20, 21, 120}}, 104, opts));
}

TEST(FlatPrefill, MatchesBruteForceAtTheDefaultShape) {
  const IndexerConfig cfg;  // H = 64, D = 128, k = 2048
  ASSERT_EQ(cfg.num_heads, 64);
  ASSERT_EQ(cfg.head_dim, 128);
  ExpectFlatMatchesBruteForce(MakeBatch(cfg, {2300}, {{1, 2047, 2048, 2049, 2300}}, 105));
}

TEST(FlatPrefill, MillionTokenRowsMatchBruteForce) {
  IndexerConfig cfg = SmallConfig(64);
  cfg.num_heads = 2;
  cfg.head_dim = 16;
  const int32_t n = (1 << 20) + 37;
  const Batch batch = MakeBatch(cfg, {100, n}, {{}, {n, n - 1000}}, 119);
  ExpectFlatMatchesBruteForce(batch);
  // Absolute rows past 2^20 (the first sequence shifts them by 100).
  Outputs rel(cfg, batch.num_queries, false, false), abs(cfg, batch.num_queries, false, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), rel.FlatView(), Ref()).ok());
  ASSERT_TRUE(
      FlatTopkPrefill(cfg, batch.Inputs(), abs.FlatView(), Ref(PositionBase::kAbsolute)).ok());
  for (size_t i = 0; i < rel.indices.size(); ++i) EXPECT_EQ(abs.indices[i], rel.indices[i] + 100);
}

TEST(FlatPrefill, EdgeRowsEmptyOneTokenExactlyKAndFewerThanK) {
  const IndexerConfig cfg = SmallConfig(16);
  // Lengths: empty, one token, k - 1, exactly k, k + 1, and a long row; plus an empty row at the
  // very end of the key array (ks == ke == N).
  const Batch batch = MakeBatch(cfg, {100, 3, 0}, {{0, 1, 15, 16, 17, 100}, {3, 0}, {0}}, 106);
  ASSERT_EQ(batch.ks.back(), batch.num_keys);
  Outputs out(cfg, batch.num_queries, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    const std::vector<int32_t> row = RowOf(out.indices.data(), t, cfg.top_k);
    const int64_t len = batch.Length(t);
    const int64_t expect_valid = std::min<int64_t>(len, cfg.top_k);
    for (int64_t i = 0; i < cfg.top_k; ++i) {
      if (i < expect_valid) {
        EXPECT_GE(row[i], 0) << "query " << t << " slot " << i;
      } else {
        EXPECT_EQ(row[i], -1) << "query " << t << " slot " << i;
        EXPECT_TRUE(std::isnan(out.scores[t * cfg.top_k + i]));
      }
    }
    if (len <= cfg.top_k) {
      std::vector<int64_t> all(static_cast<size_t>(len));
      std::iota(all.begin(), all.end(), int64_t{0});
      EXPECT_EQ(SortedEntries(row), all) << "query " << t << ": every visible key";
    }
  }
  EXPECT_TRUE(out.GuardsIntact());
}

TEST(FlatPrefill, KLargerThanTheKeyArrayPadsWithMinusOne) {
  const IndexerConfig cfg = SmallConfig(64);
  const Batch batch = MakeBatch(cfg, {10}, {{10, 4}}, 107);
  Outputs out(cfg, batch.num_queries, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  const std::vector<int32_t> row = RowOf(out.indices.data(), 0, cfg.top_k);
  EXPECT_EQ(SortedEntries(row), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(std::count(row.begin(), row.end(), -1), 54);
  EXPECT_EQ(SortedEntries(RowOf(out.indices.data(), 1, cfg.top_k)),
            (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(FlatPrefill, AllZeroScoresSelectTheLowestPositions) {
  const IndexerConfig cfg = SmallConfig(16);
  Batch batch = MakeBatch(cfg, {5, 80}, {{}, {80}}, 108);
  std::fill(batch.w.begin(), batch.w.end(), 0.0f);  // every score is 0
  for (const PositionBase base : {PositionBase::kRelative, PositionBase::kAbsolute}) {
    Outputs out(cfg, 1, false);
    ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref(base)).ok());
    std::vector<int64_t> expected(16);
    std::iota(expected.begin(), expected.end(), base == PositionBase::kRelative ? 0 : 5);
    EXPECT_EQ(SortedEntries(RowOf(out.indices.data(), 0, cfg.top_k)), expected);
    for (int i = 0; i < cfg.top_k; ++i) EXPECT_EQ(out.scores[i], 0.0f);
  }
}

TEST(FlatPrefill, ReluOfNegativeDotsGivesTiedZeroScoresBrokenByLowerPosition) {
  const IndexerConfig cfg = SmallConfig(8);
  Batch batch = MakeBatch(cfg, {60}, {{60}}, 109);
  // Every key is minus the query of every head's sign pattern: all dots <= 0, so all scores 0,
  // except three keys made to match head 0 that must come first.
  for (int64_t s = 0; s < 60; ++s) {
    for (int32_t d = 0; d < cfg.head_dim; ++d) batch.k[s * cfg.head_dim + d] = 0x00;
  }
  for (int32_t h = 0; h < cfg.num_heads; ++h) {
    for (int32_t d = 0; d < cfg.head_dim; ++d) {
      batch.q[(h * cfg.head_dim) + d] = d == 0 ? 0x38 : 0x00;  // q_h = e_0
    }
  }
  for (int64_t s = 0; s < 60; ++s) batch.k[s * cfg.head_dim] = 0xB8;  // k_s = -e_0: dot -1
  for (int64_t s : {40, 50, 55}) batch.k[s * cfg.head_dim] = 0x38;    // dot +1
  Outputs out(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  EXPECT_EQ(SortedEntries(RowOf(out.indices.data(), 0, cfg.top_k)),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 40, 50, 55}));
}

TEST(FlatPrefill, DuplicatedKeysTieAtTheBoundaryAndTheLowerPositionWins) {
  const IndexerConfig cfg = SmallConfig(33);
  // Positions s and s + 100 hold the same key and scale: every score appears twice, and the
  // 33rd place is split between the two copies of the 17th best key.
  Batch batch = MakeBatch(cfg, {200}, {{200}}, 110, {.mixed_weights = true});
  for (int64_t s = 0; s < 100; ++s) batch.CopyKey(s, s + 100);
  const std::vector<double> brute = BruteScores(batch, 0);
  const std::vector<int64_t> expected = BruteFlat(batch, 0);
  // The tie really is at the boundary: the 33rd pick has a twin outside the selection.
  const int64_t last = expected.back();
  const int64_t twin = last < 100 ? last + 100 : last - 100;
  ASSERT_EQ(brute[last], brute[twin]);
  ASSERT_LT(last, twin);
  ASSERT_EQ(std::count(expected.begin(), expected.end(), twin), 0);
  Outputs out(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  const std::vector<float> scores = RowOf(out.scores.data(), 0, cfg.top_k);
  ExpectRow(RowOf(out.indices.data(), 0, cfg.top_k), &scores, expected, brute, "tied row");
}

TEST(FlatPrefill, SortedOutputIsByScoreThenLowerPosition) {
  const IndexerConfig cfg = SmallConfig(40);
  Batch batch = MakeBatch(cfg, {120}, {{120}}, 111, {.mixed_weights = true});
  for (int64_t s = 0; s < 60; s += 3) batch.CopyKey(s, s + 60);  // some exact ties
  RunOptions opts = Ref();
  opts.sorted = true;
  Outputs out(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), opts).ok());
  const std::vector<double> brute = BruteScores(batch, 0);
  const std::vector<int32_t> row = RowOf(out.indices.data(), 0, cfg.top_k);
  const std::vector<int64_t> expected = BruteFlat(batch, 0);  // best first
  for (int i = 0; i < cfg.top_k; ++i) EXPECT_EQ(row[i], expected[i]) << "slot " << i;
  for (int i = 1; i < cfg.top_k; ++i) {
    EXPECT_TRUE(testutil::Ahead(brute[row[i - 1]], row[i - 1], brute[row[i]], row[i]));
  }
}

TEST(FlatPrefill, NaNKeyScaleRanksBelowEveryFiniteScore) {
  const IndexerConfig cfg = SmallConfig(32);
  Batch batch = MakeBatch(cfg, {100}, {{100}}, 112, {.mixed_weights = true});
  // 20 finite keys among 100: all 20 must be selected (even those with negative scores), then
  // 12 NaN-scored keys.
  std::vector<int64_t> finite;
  for (int64_t s = 0; s < 100; ++s) {
    if (s % 5 == 3) {
      finite.push_back(s);
    } else {
      batch.kscale[s] = kNaN;
    }
  }
  Outputs out(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  const std::vector<int32_t> row = RowOf(out.indices.data(), 0, cfg.top_k);
  const std::vector<int64_t> got = SortedEntries(row);
  EXPECT_EQ(got.size(), 32u);
  for (int64_t s : finite) EXPECT_EQ(std::count(got.begin(), got.end(), s), 1) << s;
  const std::vector<float> scores = RowOf(out.scores.data(), 0, cfg.top_k);
  ExpectRow(row, &scores, BruteFlat(batch, 0), BruteScores(batch, 0), "NaN scales");

  // With more finite keys than k, no NaN-scored key is selected.
  for (int64_t s = 0; s < 100; s += 2) batch.kscale[s] = 1.0f / 448.0f;
  Outputs out2(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out2.FlatView(), Ref()).ok());
  for (int64_t s : SortedEntries(RowOf(out2.indices.data(), 0, cfg.top_k))) {
    EXPECT_FALSE(std::isnan(batch.kscale[s])) << "NaN-scored key " << s << " selected";
  }
}

TEST(FlatPrefill, NaNWeightMakesEveryScoreNaNAndTheRowStillFills) {
  const IndexerConfig cfg = SmallConfig(16);
  Batch batch = MakeBatch(cfg, {50}, {{50, 10}}, 113);
  batch.w[1] = kNaN;                  // query 0, head 1
  batch.w[cfg.num_heads + 2] = kNaN;  // query 1, head 2
  Outputs out(cfg, 2, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  std::vector<int64_t> first16(16);
  std::iota(first16.begin(), first16.end(), int64_t{0});
  EXPECT_EQ(SortedEntries(RowOf(out.indices.data(), 0, cfg.top_k)), first16);
  EXPECT_EQ(SortedEntries(RowOf(out.indices.data(), 1, cfg.top_k)),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  for (int i = 0; i < 2 * cfg.top_k; ++i) EXPECT_TRUE(std::isnan(out.scores[i])) << i;
}

TEST(FlatPrefill, NaNCodeInAQueryHeadContributesZero) {
  const IndexerConfig cfg = SmallConfig(24);
  Batch batch = MakeBatch(cfg, {90}, {{90}}, 114, {.mixed_weights = true});
  // Head 2 of the query holds one NaN code: ReLU(NaN) = 0, so the row equals the row with that
  // head's weight set to zero.
  Batch nan_q = batch;
  nan_q.q[2 * cfg.head_dim + 5] = 0x7F;
  Batch zero_w = batch;
  zero_w.w[2] = 0.0f;
  Outputs a(cfg, 1, false), b(cfg, 1, false), c(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, nan_q.Inputs(), a.FlatView(), Ref()).ok());
  ASSERT_TRUE(FlatTopkPrefill(cfg, zero_w.Inputs(), b.FlatView(), Ref()).ok());
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), c.FlatView(), Ref()).ok());
  EXPECT_EQ(a.indices.Interior(), b.indices.Interior());
  EXPECT_TRUE(testutil::BitwiseEqual(a.scores.Interior(), b.scores.Interior()));
  for (float s : a.scores.Interior()) EXPECT_FALSE(std::isnan(s));
  EXPECT_FALSE(testutil::BitwiseEqual(a.scores.Interior(), c.scores.Interior()));
}

TEST(FlatPrefill, NaNCodeInAKeyScoresExactlyZero) {
  const IndexerConfig cfg = SmallConfig(64);
  Batch batch = MakeBatch(cfg, {40}, {{40}}, 115, {.mixed_weights = true});
  batch.k[17 * cfg.head_dim + 3] = 0xFF;  // key 17 holds a NaN code: every head's dot is NaN
  Outputs out(cfg, 1, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), out.FlatView(), Ref()).ok());
  const std::vector<int32_t> row = RowOf(out.indices.data(), 0, cfg.top_k);
  bool found = false;
  for (int i = 0; i < cfg.top_k; ++i) {
    if (row[i] == 17) {
      found = true;
      EXPECT_EQ(out.scores[i], 0.0f);
    }
  }
  EXPECT_TRUE(found);
  const std::vector<float> scores = RowOf(out.scores.data(), 0, cfg.top_k);
  ExpectRow(row, &scores, BruteFlat(batch, 0), BruteScores(batch, 0), "NaN key");

  // And it ranks as a zero: above negative scores, below positive ones.
  IndexerConfig small = cfg;
  small.top_k = 10;
  Outputs out2(small, 1, false);
  Batch b2 = batch;
  b2.cfg = small;
  ASSERT_TRUE(FlatTopkPrefill(small, b2.Inputs(), out2.FlatView(), Ref()).ok());
  const std::vector<double> brute = BruteScores(b2, 0);
  int positive = 0;
  for (double s : brute) positive += s > 0.0 ? 1 : 0;
  const std::vector<int64_t> got = SortedEntries(RowOf(out2.indices.data(), 0, small.top_k));
  EXPECT_EQ(std::count(got.begin(), got.end(), 17), positive < 10 ? 1 : 0);
}

TEST(FlatPrefill, AbsolutePositionsAreKsPlusRelative) {
  const IndexerConfig cfg = SmallConfig(16);
  const Batch batch = MakeBatch(cfg, {40, 70, 9}, {{40, 3}, {70, 0, 16}, {9}}, 116, {.max_gap = 5});
  Outputs rel(cfg, batch.num_queries, false), abs(cfg, batch.num_queries, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), rel.FlatView(), Ref()).ok());
  ASSERT_TRUE(
      FlatTopkPrefill(cfg, batch.Inputs(), abs.FlatView(), Ref(PositionBase::kAbsolute)).ok());
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    for (int i = 0; i < cfg.top_k; ++i) {
      const int32_t r = rel.indices[t * cfg.top_k + i], a = abs.indices[t * cfg.top_k + i];
      EXPECT_EQ(a, r < 0 ? -1 : r + batch.ks[t]) << "query " << t << " slot " << i;
      if (a >= 0) {
        EXPECT_GE(a, batch.ks[t]);
        EXPECT_LT(a, batch.ke[t]);
      }
    }
  }
  EXPECT_TRUE(testutil::BitwiseEqual(rel.scores.Interior(), abs.scores.Interior()));
}

TEST(FlatPrefill, NoQuerySeesAnotherSequenceOrAFutureKey) {
  const IndexerConfig cfg = SmallConfig(16);
  const Batch batch =
      MakeBatch(cfg, {80, 50, 120}, {{30, 80}, {50, 20}, {64, 120}}, 117, {.max_gap = 3});
  Outputs base(cfg, batch.num_queries, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), base.FlatView(), Ref()).ok());
  Rng rng(7);
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    // Replace every key query t may not see with a strongly scoring one.
    Batch changed = batch;
    for (int64_t s = 0; s < batch.num_keys; ++s) {
      if (s < batch.ks[t] || s >= batch.ke[t]) changed.RandomizeKey(s, rng, 1000.0f);
    }
    Outputs out(cfg, batch.num_queries, false);
    ASSERT_TRUE(FlatTopkPrefill(cfg, changed.Inputs(), out.FlatView(), Ref()).ok());
    EXPECT_EQ(RowOf(out.indices.data(), t, cfg.top_k), RowOf(base.indices.data(), t, cfg.top_k))
        << "query " << t;
    EXPECT_TRUE(testutil::BitwiseEqual(RowOf(out.scores.data(), t, cfg.top_k),
                                       RowOf(base.scores.data(), t, cfg.top_k)));
  }
}

TEST(FlatLogitsPrefill, MatchesBruteForceAndIsMinusInfinityOutsideTheRange) {
  const IndexerConfig cfg = SmallConfig(16);
  const Batch batch = MakeBatch(cfg, {60, 45}, {{1, 30, 60, 0}, {45, 12}}, 118,
                                {.mixed_weights = true, .max_gap = 4});
  const int64_t n = batch.num_keys, stride = n + 3;
  Guarded<float> logits(static_cast<size_t>(batch.num_queries * stride));
  ASSERT_TRUE(FlatLogitsPrefill(cfg, batch.Inputs(), logits.data(), stride, Ref()).ok());
  for (int64_t t = 0; t < batch.num_queries; ++t) {
    const std::vector<double> brute = BruteScores(batch, t);
    for (int64_t s = 0; s < n; ++s) {
      const float got = logits[t * stride + s];
      if (s >= batch.ks[t] && s < batch.ke[t]) {
        EXPECT_EQ(got, static_cast<float>(brute[s - batch.ks[t]])) << t << ", " << s;
      } else {
        EXPECT_EQ(got, -std::numeric_limits<float>::infinity()) << t << ", " << s;
      }
    }
    for (int64_t s = n; s < stride; ++s) {
      EXPECT_TRUE(logits.IsSentinel(t * stride + s)) << "row padding written: " << t << ", " << s;
    }
  }
  EXPECT_TRUE(logits.GuardsIntact());
}

}  // namespace
}  // namespace hisa
