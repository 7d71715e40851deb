// Decode over a paged cache (SPEC.md section 1, "Paged decode") equals prefill on the same keys,
// for the flat indexer and HISA, over page sizes, block sizes and next_n.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::BatchOptions;
using testutil::DecodeView;
using testutil::MakeBatch;
using testutil::MakePagedCache;
using testutil::Outputs;
using testutil::PagedCache;
using testutil::PooledBuffer;
using testutil::Ref;
using testutil::RowOf;
using testutil::SmallConfig;

struct DecodeCase {
  int32_t page_size;
  int32_t block_size;
  int32_t next_n;
};

std::string CaseName(const ::testing::TestParamInfo<DecodeCase>& info) {
  return fmt::format("P{}_B{}_next{}", info.param.page_size, info.param.block_size,
                     info.param.next_n);
}

class DecodeMatchesPrefill : public ::testing::TestWithParam<DecodeCase> {
 protected:
  void SetUp() override {
    const DecodeCase c = GetParam();
    cfg_ = SmallConfig(32);
    cfg_.block_size = c.block_size;
    // Sequences: as short as next_n, shorter than k, page-aligned, and long enough that HISA
    // selects blocks (o + 1 > m) for every block size.
    const std::vector<int32_t> lens = {c.next_n, 37, 256, 700, 913};
    std::vector<std::vector<int32_t>> queries;
    for (int32_t len : lens) {
      std::vector<int32_t> q;
      for (int32_t i = 0; i < c.next_n; ++i) q.push_back(len - c.next_n + i + 1);
      queries.push_back(q);
    }
    const uint64_t seed = 500 + c.page_size * 7 + c.block_size * 3 + c.next_n;
    BatchOptions opts;
    opts.mixed_weights = true;
    opts.max_gap = 5;
    batch_ = MakeBatch(cfg_, lens, queries, seed, opts);
    cache_ = MakePagedCache(batch_, c.page_size, seed + 1);
  }

  IndexerConfig cfg_;
  Batch batch_;
  PagedCache cache_;
};

TEST_P(DecodeMatchesPrefill, FlatIndicesAndScoresEqualPrefill) {
  const int32_t next_n = GetParam().next_n;
  const int64_t rows = batch_.num_queries;
  ASSERT_EQ(rows, int64_t{cache_.num_seqs()} * next_n);
  Outputs prefill(cfg_, rows, false), decode(cfg_, rows, false), absolute(cfg_, rows, false);
  ASSERT_TRUE(FlatTopkPrefill(cfg_, batch_.Inputs(), prefill.FlatView(), Ref()).ok());
  const DecodeInputs in = DecodeView(batch_, cache_, next_n);
  Status status = FlatTopkDecode(cfg_, in, decode.FlatView(), Ref());
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(decode.indices.Interior(), prefill.indices.Interior());
  EXPECT_TRUE(testutil::BitwiseEqual(decode.scores.Interior(), prefill.scores.Interior()));
  status = FlatTopkDecode(cfg_, in, absolute.FlatView(), Ref(PositionBase::kAbsolute));
  ASSERT_TRUE(status.ok()) << status.ToString();
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t b = static_cast<int32_t>(t / next_n);
    for (int64_t i = 0; i < cfg_.top_k; ++i) {
      const int32_t rel = decode.indices[t * cfg_.top_k + i];
      EXPECT_EQ(absolute.indices[t * cfg_.top_k + i], rel < 0 ? -1 : cache_.PhysicalRow(b, rel))
          << "query " << t << " slot " << i;
    }
  }
  EXPECT_TRUE(decode.GuardsIntact());
  EXPECT_TRUE(absolute.GuardsIntact());
}

TEST_P(DecodeMatchesPrefill, HisaIndicesBlocksAndScoresEqualPrefill) {
  const int32_t next_n = GetParam().next_n;
  const int64_t rows = batch_.num_queries;
  const auto num_seqs = static_cast<int32_t>(batch_.seq_lens.size());
  // Pooled keys: prefill layout from the key rows, paged layout from the cache.
  PooledBuffer pooled_rows(cfg_, PooledSlotsForRows(cfg_, batch_.num_keys));
  ASSERT_TRUE(BuildPooledKeysPrefill(cfg_, batch_.Keys(), batch_.seq_starts.data(),
                                     batch_.seq_lens.data(), num_seqs, pooled_rows.View(), Ref())
                  .ok());
  PooledBuffer pooled_pages(cfg_,
                            PooledSlotsForPages(cfg_, cache_.num_pages, GetParam().page_size));
  Status status =
      BuildPooledKeysPaged(cfg_, cache_.Keys(), cache_.Seqs(), pooled_pages.View(), Ref());
  ASSERT_TRUE(status.ok()) << status.ToString();
  // The same blocks pool to the same bytes in both layouts.
  for (int32_t b = 0; b < num_seqs; ++b) {
    const int64_t base = (int64_t{batch_.seq_starts[b]} + cfg_.block_size - 1) / cfg_.block_size;
    for (int64_t j = 0; j < batch_.seq_lens[b] / cfg_.block_size; ++j) {
      const int64_t slot = cache_.PooledSlot(b, j);
      EXPECT_EQ(pooled_pages.SlotBytes(slot), pooled_rows.SlotBytes(base + j));
      EXPECT_EQ(pooled_pages.kscale[slot], pooled_rows.kscale[base + j]);
    }
  }
  Outputs prefill(cfg_, rows), decode(cfg_, rows), absolute(cfg_, rows);
  ASSERT_TRUE(
      HisaTopkPrefill(cfg_, batch_.Inputs(), pooled_rows.ConstView(), prefill.View(), Ref()).ok());
  const DecodeInputs in = DecodeView(batch_, cache_, next_n);
  status = HisaTopkDecode(cfg_, in, pooled_pages.ConstView(), decode.View(), Ref());
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(decode.indices.Interior(), prefill.indices.Interior());
  EXPECT_EQ(decode.blocks.Interior(), prefill.blocks.Interior());
  EXPECT_TRUE(testutil::BitwiseEqual(decode.scores.Interior(), prefill.scores.Interior()));
  // Some rows really select blocks.
  int64_t hierarchical = 0;
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t own = (batch_.Length(t) - 1) / cfg_.block_size;
    hierarchical += own + 1 > cfg_.block_budget ? 1 : 0;
  }
  EXPECT_GE(hierarchical, next_n);
  status = HisaTopkDecode(cfg_, in, pooled_pages.ConstView(), absolute.View(),
                          Ref(PositionBase::kAbsolute));
  ASSERT_TRUE(status.ok()) << status.ToString();
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t b = static_cast<int32_t>(t / next_n);
    for (int64_t i = 0; i < cfg_.top_k; ++i) {
      const int32_t rel = decode.indices[t * cfg_.top_k + i];
      EXPECT_EQ(absolute.indices[t * cfg_.top_k + i], rel < 0 ? -1 : cache_.PhysicalRow(b, rel));
    }
  }
  EXPECT_EQ(absolute.blocks.Interior(), decode.blocks.Interior());
  EXPECT_TRUE(decode.GuardsIntact());
  EXPECT_TRUE(absolute.GuardsIntact());
}

std::vector<DecodeCase> Cases() {
  std::vector<DecodeCase> cases;
  for (const auto& [page, block] : std::vector<std::pair<int32_t, int32_t>>{
           {16, 16}, {16, 64}, {64, 16}, {64, 64}, {64, 128}}) {
    for (int32_t next_n : {1, 2, 4}) cases.push_back({page, block, next_n});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Layouts, DecodeMatchesPrefill, ::testing::ValuesIn(Cases()), CaseName);

TEST(FlatDecode, ContextOfExactlyNextNSeesOnlyItsPrefix) {
  const IndexerConfig cfg = SmallConfig(8);
  const Batch batch = MakeBatch(cfg, {3}, {{1, 2, 3}}, 510);
  const PagedCache cache = MakePagedCache(batch, 16, 511);
  Outputs out(cfg, 3, false);
  ASSERT_TRUE(FlatTopkDecode(cfg, DecodeView(batch, cache, 3), out.FlatView(), Ref()).ok());
  EXPECT_EQ(testutil::SortedEntries(RowOf(out.indices.data(), 0, 8)), (std::vector<int64_t>{0}));
  EXPECT_EQ(testutil::SortedEntries(RowOf(out.indices.data(), 1, 8)), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(testutil::SortedEntries(RowOf(out.indices.data(), 2, 8)),
            (std::vector<int64_t>{0, 1, 2}));
}

}  // namespace
}  // namespace hisa
