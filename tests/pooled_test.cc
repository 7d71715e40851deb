// Pooled keys (SPEC.md section 2, step 2): the mean of each complete block computed here
// independently, the prefill and paged slot layouts, and incremental updates.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::BatchOptions;
using testutil::ExpectedPooledKey;
using testutil::MakeBatch;
using testutil::MakePagedCache;
using testutil::PagedCache;
using testutil::PooledBuffer;
using testutil::PooledKey;
using testutil::Ref;
using testutil::Rng;
using testutil::SmallConfig;

// Rows of block j of sequence i of the batch.
std::vector<int64_t> BlockRows(const Batch& batch, int32_t i, int64_t j) {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < batch.cfg.block_size; ++r) {
    rows.push_back(batch.seq_starts[i] + j * batch.cfg.block_size + r);
  }
  return rows;
}

void ExpectSlotHolds(const PooledBuffer& pooled, int64_t slot, const PooledKey& expected,
                     const std::string& what) {
  EXPECT_EQ(pooled.SlotBytes(slot), expected.k) << what << " (slot " << slot << ")";
  EXPECT_EQ(pooled.kscale[static_cast<size_t>(slot)], expected.scale)
      << what << " (slot " << slot << ")";
}

// Builds the prefill pooled cache of the batch and checks every slot: complete blocks in slot
// ceil(start / B) + j hold the independent mean; every other slot is untouched.
void ExpectPrefillPooledMatches(const Batch& batch) {
  const IndexerConfig& cfg = batch.cfg;
  const int64_t slots = PooledSlotsForRows(cfg, batch.num_keys);
  EXPECT_EQ(slots, (batch.num_keys + cfg.block_size - 1) / cfg.block_size);
  PooledBuffer pooled(cfg, slots);
  const Status status =
      BuildPooledKeysPrefill(cfg, batch.Keys(), batch.seq_starts.data(), batch.seq_lens.data(),
                             static_cast<int32_t>(batch.seq_lens.size()), pooled.View(), Ref());
  ASSERT_TRUE(status.ok()) << status.ToString();
  std::set<int64_t> written;
  int64_t blocks = 0;
  for (int32_t i = 0; i < static_cast<int32_t>(batch.seq_lens.size()); ++i) {
    const int64_t base = (int64_t{batch.seq_starts[i]} + cfg.block_size - 1) / cfg.block_size;
    for (int64_t j = 0; j < batch.seq_lens[i] / cfg.block_size; ++j) {
      const PooledKey expected =
          ExpectedPooledKey(cfg, batch.k.data(), batch.null_kscale ? nullptr : batch.kscale.data(),
                            BlockRows(batch, i, j));
      ExpectSlotHolds(pooled, base + j, expected, fmt::format("sequence {} block {}", i, j));
      EXPECT_TRUE(written.insert(base + j).second) << "two blocks share slot " << base + j;
      ++blocks;
    }
  }
  EXPECT_GE(blocks, 4);
  for (int64_t slot = 0; slot < slots; ++slot) {
    if (!written.count(slot)) {
      EXPECT_TRUE(pooled.SlotIsSentinel(slot)) << "slot " << slot;
    }
  }
  EXPECT_TRUE(pooled.k.GuardsIntact());
  EXPECT_TRUE(pooled.kscale.GuardsIntact());
}

// Packed sequences with unaligned starts, partial blocks, an empty and a one-block sequence.
const std::vector<int32_t> kPackedLens = {50, 16, 15, 100, 0, 33, 64};

TEST(PooledKeysPrefill, Fp8AmaxMeanMatchesIndependentComputation) {
  for (int32_t block : {16, 32}) {
    IndexerConfig cfg = SmallConfig(16);
    cfg.block_size = block;
    SCOPED_TRACE(fmt::format("B = {}", block));
    ExpectPrefillPooledMatches(MakeBatch(cfg, kPackedLens, {}, 401, {.max_gap = 9}));
  }
}

TEST(PooledKeysPrefill, Fp8Ue8m0MeanMatchesIndependentComputation) {
  IndexerConfig cfg = SmallConfig(16);
  cfg.pooled_scale_rule = ScaleRule::kUe8m0;
  BatchOptions opts;
  opts.key_scale_rule = ScaleRule::kUe8m0;
  opts.max_gap = 9;
  const Batch batch = MakeBatch(cfg, kPackedLens, {}, 402, opts);
  ExpectPrefillPooledMatches(batch);
  // The ue8m0 scales are powers of two.
  PooledBuffer pooled(cfg, PooledSlotsForRows(cfg, batch.num_keys));
  ASSERT_TRUE(BuildPooledKeysPrefill(cfg, batch.Keys(), batch.seq_starts.data(),
                                     batch.seq_lens.data(), 7, pooled.View(), Ref())
                  .ok());
  const int64_t slot = (int64_t{batch.seq_starts[3]} + 15) / 16;
  int e = 0;
  EXPECT_EQ(std::frexp(pooled.kscale[static_cast<size_t>(slot)], &e), 0.5f);
}

TEST(PooledKeysPrefill, Bf16MeanMatchesIndependentComputation) {
  IndexerConfig cfg = SmallConfig(16);
  cfg.k_dtype = DType::kBf16;
  // With scales (each product rounded to float32), and without (null kscale means 1).
  Batch batch = MakeBatch(cfg, kPackedLens, {}, 403, {.max_gap = 9});
  Rng rng(4);
  std::uniform_real_distribution<float> scale(0.25f, 3.0f);
  for (float& s : batch.kscale) s = scale(rng);
  ExpectPrefillPooledMatches(batch);
  batch.null_kscale = true;
  ExpectPrefillPooledMatches(batch);
}

TEST(PooledKeysPrefill, MeanIsOfScaledKeysNotOfCodes) {
  // Two keys with the same codes and different scales: the pooled key is the mean of the
  // dequantized values, so doubling one half's scales changes it.
  const IndexerConfig cfg = SmallConfig(16);
  Batch batch = MakeBatch(cfg, {16}, {}, 404);
  PooledBuffer a(cfg, 1), b(cfg, 1);
  const int32_t start = 0, len = 16;
  ASSERT_TRUE(BuildPooledKeysPrefill(cfg, batch.Keys(), &start, &len, 1, a.View(), Ref()).ok());
  for (int64_t r = 0; r < 8; ++r) batch.kscale[r] *= 4.0f;
  ASSERT_TRUE(BuildPooledKeysPrefill(cfg, batch.Keys(), &start, &len, 1, b.View(), Ref()).ok());
  EXPECT_NE(a.SlotBytes(0), b.SlotBytes(0));
  ExpectSlotHolds(
      b, 0, ExpectedPooledKey(cfg, batch.k.data(), batch.kscale.data(), BlockRows(batch, 0, 0)),
      "rescaled block");
}

TEST(PooledKeysPrefill, SlotCountsFollowTheLayout) {
  IndexerConfig cfg = SmallConfig(16);
  EXPECT_EQ(PooledSlotsForRows(cfg, 0), 0);
  EXPECT_EQ(PooledSlotsForRows(cfg, 1), 1);
  EXPECT_EQ(PooledSlotsForRows(cfg, 16), 1);
  EXPECT_EQ(PooledSlotsForRows(cfg, 17), 2);
  EXPECT_EQ(PooledSlotsForRows(cfg, 1000), 63);
  EXPECT_EQ(PooledSlotsForPages(cfg, 10, 64), 40);  // B < P: P / B slots per page
  EXPECT_EQ(PooledSlotsForPages(cfg, 10, 16), 10);  // B == P
  cfg.block_size = 128;
  EXPECT_EQ(PooledSlotsForPages(cfg, 10, 64), 10);  // B > P: one slot per page
  EXPECT_EQ(PooledSlotsForRows(cfg, 129), 2);
}

// ---------------------------------------------------------------------------------------------
// Paged
// ---------------------------------------------------------------------------------------------

struct PagedLayout {
  int32_t page_size;
  int32_t block_size;
};

std::string LayoutName(const ::testing::TestParamInfo<PagedLayout>& info) {
  return fmt::format("P{}_B{}", info.param.page_size, info.param.block_size);
}

class PooledKeysPaged : public ::testing::TestWithParam<PagedLayout> {
 protected:
  IndexerConfig Config() const {
    IndexerConfig cfg = SmallConfig(16);
    cfg.block_size = GetParam().block_size;
    return cfg;
  }
};

TEST_P(PooledKeysPaged, BuildWritesTheIndependentMeanIntoTheDocumentedSlots) {
  const IndexerConfig cfg = Config();
  const int32_t page = GetParam().page_size;
  const Batch batch = MakeBatch(cfg, {130, 257, 64, 5, 0, 128}, {}, 405);
  const PagedCache cache = MakePagedCache(batch, page, 406);
  const int64_t slots = PooledSlotsForPages(cfg, cache.num_pages, page);
  EXPECT_EQ(slots, cache.num_pages * std::max(1, page / cfg.block_size));
  PooledBuffer pooled(cfg, slots);
  const Status status = BuildPooledKeysPaged(cfg, cache.Keys(), cache.Seqs(), pooled.View(), Ref());
  ASSERT_TRUE(status.ok()) << status.ToString();
  std::set<int64_t> written;
  for (int32_t b = 0; b < cache.num_seqs(); ++b) {
    for (int64_t j = 0; j < batch.seq_lens[b] / cfg.block_size; ++j) {
      const int64_t slot = cache.PooledSlot(b, j);
      ASSERT_LT(slot, slots);
      ExpectSlotHolds(
          pooled, slot,
          ExpectedPooledKey(cfg, batch.k.data(), batch.kscale.data(), BlockRows(batch, b, j)),
          fmt::format("sequence {} block {}", b, j));
      EXPECT_TRUE(written.insert(slot).second) << "two blocks share slot " << slot;
    }
  }
  for (int64_t slot = 0; slot < slots; ++slot) {
    if (!written.count(slot)) {
      EXPECT_TRUE(pooled.SlotIsSentinel(slot)) << "slot " << slot;
    }
  }
  EXPECT_TRUE(pooled.k.GuardsIntact());
  EXPECT_TRUE(pooled.kscale.GuardsIntact());
}

TEST_P(PooledKeysPaged, IncrementalUpdatesEqualAFullRebuildByteForByte) {
  const IndexerConfig cfg = Config();
  const int32_t page = GetParam().page_size;
  const Batch batch = MakeBatch(cfg, {150, 300, 64, 7}, {}, 407);
  PagedCache cache = MakePagedCache(batch, page, 408);
  const int64_t slots = PooledSlotsForPages(cfg, cache.num_pages, page);
  const int64_t row_bytes = batch.KeyRowBytes();
  Rng rng(409);
  // Token slots past a sequence's current length hold fresh garbage at every step: a block pooled
  // before it completes would not match the rebuild.
  auto set_lengths = [&](const std::vector<int32_t>& lens) {
    for (int32_t b = 0; b < cache.num_seqs(); ++b) {
      for (int64_t pos = 0; pos < batch.seq_lens[b]; ++pos) {
        const int64_t dst = cache.PhysicalRow(b, pos);
        if (pos < lens[b]) {
          const int64_t src = batch.seq_starts[b] + pos;
          std::memcpy(cache.k.data() + dst * row_bytes, batch.k.data() + src * row_bytes,
                      static_cast<size_t>(row_bytes));
          cache.kscale[static_cast<size_t>(dst)] = batch.kscale[src];
        } else {
          cache.Garbage(dst, rng);
        }
      }
      cache.context_lens[b] = lens[b];
    }
  };
  std::vector<int32_t> lens(batch.seq_lens.size(), 0);
  set_lengths(lens);
  PooledBuffer incremental(cfg, slots);
  // One thread: many small calls, where a busy machine makes thread start-up dominate (thread
  // counts are covered by determinism_test.cc).
  const RunOptions opts = Ref(PositionBase::kRelative, 1);
  int steps = 0;
  while (lens != batch.seq_lens) {
    std::vector<int32_t> old_lens = lens;
    std::uniform_int_distribution<int32_t> step(0, 40);
    for (size_t b = 0; b < lens.size(); ++b) {
      const int32_t grow = steps < 40 ? 1 : step(rng);  // token by token, then random runs
      lens[b] = std::min(batch.seq_lens[b], lens[b] + grow);
    }
    set_lengths(lens);
    Status status = UpdatePooledKeysPaged(cfg, cache.Keys(), cache.Seqs(), old_lens.data(),
                                          incremental.View(), opts);
    ASSERT_TRUE(status.ok()) << status.ToString();
    PooledBuffer rebuilt(cfg, slots);
    status = BuildPooledKeysPaged(cfg, cache.Keys(), cache.Seqs(), rebuilt.View(), opts);
    ASSERT_TRUE(status.ok()) << status.ToString();
    ASSERT_EQ(incremental.k.Interior(), rebuilt.k.Interior()) << "step " << steps;
    ASSERT_EQ(std::memcmp(incremental.kscale.data(), rebuilt.kscale.data(),
                          static_cast<size_t>(slots) * sizeof(float)),
              0)
        << "step " << steps;
    ++steps;
  }
  EXPECT_GT(steps, 40);
  EXPECT_TRUE(incremental.k.GuardsIntact());
  EXPECT_TRUE(incremental.kscale.GuardsIntact());
}

INSTANTIATE_TEST_SUITE_P(Layouts, PooledKeysPaged,
                         ::testing::Values(PagedLayout{16, 16}, PagedLayout{16, 32},
                                           PagedLayout{16, 64}, PagedLayout{64, 16},
                                           PagedLayout{64, 32}, PagedLayout{64, 64},
                                           PagedLayout{64, 128}),
                         LayoutName);

}  // namespace
}  // namespace hisa
