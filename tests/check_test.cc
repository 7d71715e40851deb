// The tie-aware checker (hisa/check.h): it accepts exactly the selections the contract allows.
#include "hisa/check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::BruteFlat;
using testutil::BruteScores;
using testutil::DecodeView;
using testutil::MakeBatch;
using testutil::MakePagedCache;
using testutil::Outputs;
using testutil::PagedCache;
using testutil::PooledBuffer;
using testutil::Ref;
using testutil::RowOf;
using testutil::SmallConfig;

class Checker : public ::testing::Test {
 protected:
  Checker()
      : cfg_(SmallConfig(16)),
        batch_(MakeBatch(cfg_, {200, 50}, {{200, 150, 10}, {50}}, 601, {.mixed_weights = true})) {}

  // Reference flat indices of the current batch.
  std::vector<int32_t> FlatIndices(PositionBase base = PositionBase::kRelative) {
    Outputs out(cfg_, batch_.num_queries, false, false);
    const Status status = FlatTopkPrefill(cfg_, batch_.Inputs(), out.FlatView(), Ref(base));
    EXPECT_TRUE(status.ok()) << status.ToString();
    return out.indices.Interior();
  }

  CheckResult Check(const std::vector<int32_t>& indices, double rel_tol = 0.0) {
    CheckOptions opts;
    opts.rel_tol = rel_tol;
    return CheckFlatPrefill(cfg_, batch_.Inputs(), indices.data(), opts);
  }

  // Slot of query t's row holding position pos (-1 if absent).
  int SlotOf(const std::vector<int32_t>& indices, int64_t t, int32_t pos) const {
    for (int i = 0; i < cfg_.top_k; ++i) {
      if (indices[t * cfg_.top_k + i] == pos) return i;
    }
    return -1;
  }

  IndexerConfig cfg_;
  Batch batch_;
};

TEST_F(Checker, AcceptsTheReferenceOutput) {
  const CheckResult result = Check(FlatIndices());
  EXPECT_TRUE(result.ok()) << result.first_failure;
  EXPECT_EQ(result.rows_checked, batch_.num_queries);
  CheckOptions abs;
  abs.positions = PositionBase::kAbsolute;
  const std::vector<int32_t> absolute = FlatIndices(PositionBase::kAbsolute);
  EXPECT_TRUE(CheckFlatPrefill(cfg_, batch_.Inputs(), absolute.data(), abs).ok());
  // ... and relative indices read as absolute ones fail for the second sequence.
  const std::vector<int32_t> relative = FlatIndices();
  EXPECT_FALSE(CheckFlatPrefill(cfg_, batch_.Inputs(), relative.data(), abs).ok());
}

TEST_F(Checker, AcceptsAnyOrderInsideARow) {
  std::vector<int32_t> indices = FlatIndices();
  std::reverse(indices.begin(), indices.begin() + cfg_.top_k);
  EXPECT_TRUE(Check(indices).ok());
}

TEST_F(Checker, AcceptsADifferentChoiceAmongExactlyTiedKeys) {
  // Give the k-th key of query 0 an exact twin at a higher position that was not selected.
  const std::vector<int64_t> best = BruteFlat(batch_, 0);
  const int64_t kth = best.back();
  int64_t twin = -1;
  for (int64_t s = 199; s > kth; --s) {
    if (std::find(best.begin(), best.end(), s) == best.end()) {
      twin = s;
      break;
    }
  }
  ASSERT_GE(twin, 0);
  batch_.CopyKey(kth, twin);
  std::vector<int32_t> indices = FlatIndices();
  const int slot = SlotOf(indices, 0, static_cast<int32_t>(kth));
  ASSERT_GE(slot, 0) << "the lower position wins the tie";
  ASSERT_EQ(SlotOf(indices, 0, static_cast<int32_t>(twin)), -1);
  indices[slot] = static_cast<int32_t>(twin);
  const CheckResult result = Check(indices);
  EXPECT_TRUE(result.ok()) << result.first_failure;
}

TEST_F(Checker, RejectsAWrongKey) {
  std::vector<int32_t> indices = FlatIndices();
  // Swap query 0's k-th best for its (k+1)-th best: a strictly lower score.
  const std::vector<double> scores = BruteScores(batch_, 0);
  IndexerConfig wide = cfg_;
  wide.top_k = cfg_.top_k + 1;
  Batch wide_batch = batch_;
  wide_batch.cfg = wide;
  const std::vector<int64_t> order = BruteFlat(wide_batch, 0);
  ASSERT_LT(scores[order[cfg_.top_k]], scores[order[cfg_.top_k - 1]]);
  const int slot = SlotOf(indices, 0, static_cast<int32_t>(order[cfg_.top_k - 1]));
  ASSERT_GE(slot, 0);
  indices[slot] = static_cast<int32_t>(order[cfg_.top_k]);
  const CheckResult result = Check(indices);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.rows_failed, 1);
  EXPECT_NE(result.first_failure.find("row 0"), std::string::npos) << result.first_failure;
  // Even a generous tolerance does not excuse a clear loss.
  EXPECT_FALSE(Check(indices, Float32RelTol(cfg_)).ok());
}

TEST_F(Checker, RejectsAKeyOutsideTheVisibleRange) {
  std::vector<int32_t> indices = FlatIndices();
  const int64_t t = 1;  // sees 150 keys
  indices[t * cfg_.top_k] = 150;
  EXPECT_FALSE(Check(indices).ok());
  indices[t * cfg_.top_k] = -5;
  EXPECT_FALSE(Check(indices).ok());
}

TEST_F(Checker, RejectsARepeatedKey) {
  std::vector<int32_t> indices = FlatIndices();
  indices[1] = indices[0];
  const CheckResult result = Check(indices);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.first_failure.find("repeated"), std::string::npos) << result.first_failure;
}

TEST_F(Checker, RejectsMissingPaddingAndMissingEntries) {
  std::vector<int32_t> indices = FlatIndices();
  const int64_t t = 2;  // sees 10 keys: slots 10 .. 15 must be -1
  ASSERT_EQ(indices[t * cfg_.top_k + 12], -1);
  std::vector<int32_t> extra = indices;
  extra[t * cfg_.top_k + 12] = 3;
  CheckResult result = Check(extra);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.first_failure.find("padding"), std::string::npos) << result.first_failure;
  // A -1 where a key belongs (fewer than min(k, visible) entries).
  std::vector<int32_t> missing = indices;
  missing[t * cfg_.top_k + 4] = -1;
  EXPECT_FALSE(Check(missing).ok());
  missing = indices;
  missing[cfg_.top_k - 1] = -1;  // query 0 sees 200 keys: all 16 slots are used
  EXPECT_FALSE(Check(missing).ok());
}

TEST_F(Checker, NearTieSwapFailsWithoutToleranceAndPassesWithIt) {
  // A near-twin of the k-th key: same codes, scale off by 2^-20 relative, so it scores just below.
  const std::vector<int64_t> best = BruteFlat(batch_, 0);
  const int64_t kth = best.back();
  const double kth_score = BruteScores(batch_, 0)[kth];
  ASSERT_NE(kth_score, 0.0);
  int64_t twin = -1;
  for (int64_t s = 0; s < 200; ++s) {
    if (std::find(best.begin(), best.end(), s) == best.end()) {
      twin = s;
      break;
    }
  }
  batch_.CopyKey(kth, twin);
  batch_.kscale[twin] *=
      kth_score > 0 ? 1.0f - std::ldexp(1.0f, -20) : 1.0f + std::ldexp(1.0f, -20);
  const std::vector<double> scores = BruteScores(batch_, 0);
  ASSERT_LT(scores[twin], scores[kth]);
  std::vector<int32_t> indices = FlatIndices();
  const int slot = SlotOf(indices, 0, static_cast<int32_t>(kth));
  ASSERT_GE(slot, 0);
  ASSERT_EQ(SlotOf(indices, 0, static_cast<int32_t>(twin)), -1);
  indices[slot] = static_cast<int32_t>(twin);
  EXPECT_FALSE(Check(indices, 0.0).ok());
  const CheckResult result = Check(indices, Float32RelTol(cfg_));
  EXPECT_TRUE(result.ok()) << result.first_failure;
}

// ---------------------------------------------------------------------------------------------
// HISA and decode
// ---------------------------------------------------------------------------------------------

class HisaChecker : public ::testing::Test {
 protected:
  HisaChecker()
      : cfg_(SmallConfig(32)),
        batch_(MakeBatch(cfg_, {400}, {{400, 330, 64, 20}}, 602)),
        pooled_(cfg_, PooledSlotsForRows(cfg_, batch_.num_keys)),
        out_(cfg_, batch_.num_queries) {}

  void Run() {
    pooled_.k.Reset();
    pooled_.kscale.Reset();
    const int32_t start = 0, len = 400;
    ASSERT_TRUE(
        BuildPooledKeysPrefill(cfg_, batch_.Keys(), &start, &len, 1, pooled_.View(), Ref()).ok());
    ASSERT_TRUE(
        HisaTopkPrefill(cfg_, batch_.Inputs(), pooled_.ConstView(), out_.View(), Ref()).ok());
  }

  CheckResult Check(const std::vector<int32_t>& indices, const std::vector<int32_t>& blocks) {
    return CheckHisaPrefill(cfg_, batch_.Inputs(), pooled_.ConstView(), indices.data(),
                            blocks.data(), CheckOptions{});
  }

  IndexerConfig cfg_;
  Batch batch_;
  PooledBuffer pooled_;
  Outputs out_;
};

TEST_F(HisaChecker, AcceptsTheReferenceOutput) {
  Run();
  const CheckResult result = Check(out_.indices.Interior(), out_.blocks.Interior());
  EXPECT_TRUE(result.ok()) << result.first_failure;
  EXPECT_EQ(result.rows_checked, 4);
}

TEST_F(HisaChecker, RejectsAMissingForcedBlock) {
  Run();
  std::vector<int32_t> blocks = out_.blocks.Interior();
  // Query 0 (o = 24): replace the own block by an unselected one.
  ASSERT_EQ(blocks[3], 24);
  for (int32_t j = 1; j < 24; ++j) {
    if (std::find(blocks.begin(), blocks.begin() + 4, j) == blocks.begin() + 4) {
      blocks[3] = j;
      break;
    }
  }
  CheckResult result = Check(out_.indices.Interior(), blocks);
  EXPECT_FALSE(result.ok());
  blocks = out_.blocks.Interior();
  blocks[0] = blocks[1] == 1 ? 2 : 1;  // block 0 dropped
  EXPECT_FALSE(Check(out_.indices.Interior(), blocks).ok());
}

TEST_F(HisaChecker, RejectsALowerScoringBlock) {
  Run();
  std::vector<int32_t> blocks = out_.blocks.Interior();
  // Query 0: swap a competing selected block for an unselected one (random data: no ties).
  const int32_t keep = blocks[1];
  for (int32_t j = 1; j < 24; ++j) {
    if (j != blocks[1] && j != blocks[2]) {
      blocks[1] = j;
      break;
    }
  }
  ASSERT_NE(blocks[1], keep);
  std::sort(blocks.begin(), blocks.begin() + 4);
  EXPECT_FALSE(Check(out_.indices.Interior(), blocks).ok());
}

TEST_F(HisaChecker, AcceptsADifferentChoiceAmongTiedBlocks) {
  // Blocks 1 .. 23 are identical: the reference keeps 1 and 2; keeping 1 and 5 instead, with the
  // matching keys of block 5, is as good.
  for (int64_t j = 2; j < 24; ++j) {
    for (int64_t i = 0; i < 16; ++i) batch_.CopyKey(16 + i, j * 16 + i);
  }
  Run();
  std::vector<int32_t> blocks = out_.blocks.Interior();
  std::vector<int32_t> indices = out_.indices.Interior();
  ASSERT_EQ(std::vector<int32_t>(blocks.begin(), blocks.begin() + 4),
            (std::vector<int32_t>{0, 1, 2, 24}));
  blocks[2] = 5;
  for (int i = 0; i < cfg_.top_k; ++i) {
    if (indices[i] >= 32 && indices[i] < 48) indices[i] += 48;  // block 2 -> block 5
  }
  const CheckResult result = Check(indices, blocks);
  EXPECT_TRUE(result.ok()) << result.first_failure;
}

TEST_F(HisaChecker, NearTieBlockSwapFailsWithoutToleranceAndPassesWithIt) {
  Run();
  const std::vector<int32_t> blocks = out_.blocks.Interior();
  // Query 0 keeps blocks 0, a, b, 24. Find which of a, b has the lower J: that is the (m-2)-th.
  const testutil::Scorer scorer(batch_, 0);
  auto j_score = [&](int32_t j) {
    return scorer.Score(pooled_.k.data(), j, pooled_.kscale[static_cast<size_t>(j)]);
  };
  const int32_t weaker = j_score(blocks[1]) < j_score(blocks[2]) ? blocks[1] : blocks[2];
  int32_t other = -1;  // an unselected block
  for (int32_t j = 1; j < 24 && other < 0; ++j) {
    if (j != blocks[1] && j != blocks[2]) other = j;
  }
  // Give `other` the pooled key of `weaker` with its scale a hair larger: the reference now picks
  // `other`. Checked against the cache where it is a hair smaller instead, that choice is a
  // near-tie swap.
  const int64_t row = pooled_.row_bytes;
  std::memcpy(pooled_.k.data() + other * row, pooled_.k.data() + weaker * row,
              static_cast<size_t>(row));
  const float scale = pooled_.kscale[static_cast<size_t>(weaker)];
  pooled_.kscale[static_cast<size_t>(other)] = scale * (1.0f + std::ldexp(1.0f, -20));
  ASSERT_TRUE(HisaTopkPrefill(cfg_, batch_.Inputs(), pooled_.ConstView(), out_.View(), Ref()).ok());
  const std::vector<int32_t> swapped = out_.blocks.Interior();
  ASSERT_EQ(std::count(swapped.begin(), swapped.begin() + 4, other), 1);
  ASSERT_EQ(std::count(swapped.begin(), swapped.begin() + 4, weaker), 0);
  pooled_.kscale[static_cast<size_t>(other)] = scale * (1.0f - std::ldexp(1.0f, -20));
  EXPECT_FALSE(Check(out_.indices.Interior(), swapped).ok());
  CheckOptions tolerant;
  tolerant.rel_tol = Float32RelTol(cfg_);
  const CheckResult result = CheckHisaPrefill(cfg_, batch_.Inputs(), pooled_.ConstView(),
                                              out_.indices.data(), swapped.data(), tolerant);
  EXPECT_TRUE(result.ok()) << result.first_failure;
}

TEST(DecodeChecker, AcceptsTheReferenceAndRejectsASwap) {
  IndexerConfig cfg = SmallConfig(16);
  cfg.block_size = 32;
  const Batch batch = MakeBatch(cfg, {300, 90}, {{299, 300}, {89, 90}}, 603);
  const PagedCache cache = MakePagedCache(batch, 16, 604);
  const DecodeInputs in = DecodeView(batch, cache, 2);
  Outputs flat(cfg, 4, false), hisa(cfg, 4);
  ASSERT_TRUE(FlatTopkDecode(cfg, in, flat.FlatView(), Ref()).ok());
  PooledBuffer pooled(cfg, PooledSlotsForPages(cfg, cache.num_pages, 16));
  ASSERT_TRUE(BuildPooledKeysPaged(cfg, cache.Keys(), cache.Seqs(), pooled.View(), Ref()).ok());
  ASSERT_TRUE(HisaTopkDecode(cfg, in, pooled.ConstView(), hisa.View(), Ref()).ok());
  EXPECT_TRUE(CheckFlatDecode(cfg, in, flat.indices.data(), {}).ok());
  CheckResult result =
      CheckHisaDecode(cfg, in, pooled.ConstView(), hisa.indices.data(), hisa.blocks.data(), {});
  EXPECT_TRUE(result.ok()) << result.first_failure;
  // Query 0 (position 298) may not see position 299.
  std::vector<int32_t> bad = flat.indices.Interior();
  bad[0] = 299;
  EXPECT_FALSE(CheckFlatDecode(cfg, in, bad.data(), {}).ok());
}

}  // namespace
}  // namespace hisa
