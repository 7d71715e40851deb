// Repeated runs are bitwise identical and independent of the thread count; every output is fully
// written and nothing outside it is.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::DecodeView;
using testutil::Guarded;
using testutil::MakeBatch;
using testutil::MakePagedCache;
using testutil::Outputs;
using testutil::PagedCache;
using testutil::PooledBuffer;
using testutil::Ref;
using testutil::SmallConfig;

constexpr int32_t kNextN = 2;

template <typename T>
std::vector<uint8_t> Bytes(const Guarded<T>& g) {
  std::vector<uint8_t> bytes(g.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), g.data(), bytes.size());
  return bytes;
}

// Every output of every entry point on one problem, as bytes, with guard and coverage checks.
std::vector<std::vector<uint8_t>> RunEverything(const Batch& batch, const PagedCache& cache,
                                                int32_t threads) {
  const IndexerConfig& cfg = batch.cfg;
  const RunOptions opts = Ref(PositionBase::kRelative, threads);
  const auto num_seqs = static_cast<int32_t>(batch.seq_lens.size());
  std::vector<std::vector<uint8_t>> all;
  auto keep = [&](Outputs& out, const char* what) {
    EXPECT_TRUE(out.GuardsIntact()) << what;
    for (size_t i = 0; i < out.indices.size(); ++i) {
      EXPECT_FALSE(out.indices.IsSentinel(i)) << what << ": index slot " << i << " not written";
    }
    for (size_t i = 0; i < out.blocks.size(); ++i) {
      EXPECT_FALSE(out.blocks.IsSentinel(i)) << what << ": block slot " << i << " not written";
    }
    for (size_t i = 0; i < out.scores.size(); ++i) {
      EXPECT_FALSE(out.scores.IsSentinel(i)) << what << ": score slot " << i << " not written";
    }
    all.push_back(Bytes(out.indices));
    all.push_back(Bytes(out.blocks));
    all.push_back(Bytes(out.scores));
  };

  Outputs flat(cfg, batch.num_queries, false);
  EXPECT_TRUE(FlatTopkPrefill(cfg, batch.Inputs(), flat.FlatView(), opts).ok());
  keep(flat, "flat prefill");

  PooledBuffer pooled_rows(cfg, PooledSlotsForRows(cfg, batch.num_keys));
  EXPECT_TRUE(BuildPooledKeysPrefill(cfg, batch.Keys(), batch.seq_starts.data(),
                                     batch.seq_lens.data(), num_seqs, pooled_rows.View(), opts)
                  .ok());
  EXPECT_TRUE(pooled_rows.k.GuardsIntact());
  EXPECT_TRUE(pooled_rows.kscale.GuardsIntact());
  all.push_back(Bytes(pooled_rows.k));
  all.push_back(Bytes(pooled_rows.kscale));

  Outputs hisa(cfg, batch.num_queries);
  EXPECT_TRUE(
      HisaTopkPrefill(cfg, batch.Inputs(), pooled_rows.ConstView(), hisa.View(), opts).ok());
  keep(hisa, "hisa prefill");

  Guarded<float> logits(static_cast<size_t>(batch.num_queries * batch.num_keys));
  EXPECT_TRUE(FlatLogitsPrefill(cfg, batch.Inputs(), logits.data(), batch.num_keys, opts).ok());
  EXPECT_TRUE(logits.GuardsIntact());
  for (size_t i = 0; i < logits.size(); ++i) EXPECT_FALSE(logits.IsSentinel(i)) << i;
  all.push_back(Bytes(logits));

  PooledBuffer pooled_pages(cfg, PooledSlotsForPages(cfg, cache.num_pages, cache.page_size));
  EXPECT_TRUE(
      BuildPooledKeysPaged(cfg, cache.Keys(), cache.Seqs(), pooled_pages.View(), opts).ok());
  EXPECT_TRUE(pooled_pages.k.GuardsIntact());
  EXPECT_TRUE(pooled_pages.kscale.GuardsIntact());
  all.push_back(Bytes(pooled_pages.k));
  all.push_back(Bytes(pooled_pages.kscale));

  PooledBuffer updated(cfg, pooled_pages.num_slots);
  std::vector<int32_t> half;
  for (int32_t len : cache.context_lens) half.push_back(len / 2);
  PagedCache shorter = cache;
  shorter.context_lens = half;
  const std::vector<int32_t> zeros(half.size(), 0);
  EXPECT_TRUE(
      UpdatePooledKeysPaged(cfg, shorter.Keys(), shorter.Seqs(), zeros.data(), updated.View(), opts)
          .ok());
  EXPECT_TRUE(
      UpdatePooledKeysPaged(cfg, cache.Keys(), cache.Seqs(), half.data(), updated.View(), opts)
          .ok());
  EXPECT_EQ(Bytes(updated.k), Bytes(pooled_pages.k));
  EXPECT_TRUE(updated.k.GuardsIntact());

  const DecodeInputs in = DecodeView(batch, cache, kNextN);
  Outputs flat_decode(cfg, batch.num_queries, false);
  EXPECT_TRUE(FlatTopkDecode(cfg, in, flat_decode.FlatView(), opts).ok());
  keep(flat_decode, "flat decode");
  Outputs hisa_decode(cfg, batch.num_queries);
  EXPECT_TRUE(HisaTopkDecode(cfg, in, pooled_pages.ConstView(), hisa_decode.View(), opts).ok());
  keep(hisa_decode, "hisa decode");
  return all;
}

class Determinism : public ::testing::Test {
 protected:
  Determinism()
      : batch_(MakeBatch(SmallConfig(32), {333, 70, 512, 2},
                         {{332, 333}, {69, 70}, {511, 512}, {1, 2}}, 701,
                         {.mixed_weights = true, .max_gap = 3})),
        cache_(MakePagedCache(batch_, 64, 702)) {}

  Batch batch_;
  PagedCache cache_;
};

TEST_F(Determinism, RepeatedRunsAreBitwiseIdentical) {
  const auto first = RunEverything(batch_, cache_, 0);
  const auto second = RunEverything(batch_, cache_, 0);
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i], second[i]) << "output " << i;
}

TEST_F(Determinism, ResultsDoNotDependOnTheThreadCount) {
  const auto one = RunEverything(batch_, cache_, 1);
  for (int32_t threads : {2, 3}) {
    const auto many = RunEverything(batch_, cache_, threads);
    ASSERT_EQ(one.size(), many.size());
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(one[i], many[i]) << "output " << i << " with " << threads << " threads";
    }
  }
}

TEST(Sentinels, EmptyBatchesWriteNothing) {
  const IndexerConfig cfg = SmallConfig(16);
  const Batch batch = MakeBatch(cfg, {40}, {{40}}, 703);
  Outputs out(cfg, 4);
  PrefillInputs in = batch.Inputs();
  in.num_queries = 0;
  EXPECT_TRUE(FlatTopkPrefill(cfg, in, out.FlatView(), Ref()).ok());
  PooledBuffer pooled(cfg, PooledSlotsForRows(cfg, batch.num_keys));
  EXPECT_TRUE(HisaTopkPrefill(cfg, in, pooled.ConstView(), out.View(), Ref()).ok());
  Guarded<float> logits(16);
  EXPECT_TRUE(FlatLogitsPrefill(cfg, in, logits.data(), batch.num_keys, Ref()).ok());
  EXPECT_TRUE(
      BuildPooledKeysPrefill(cfg, batch.Keys(), nullptr, nullptr, 0, pooled.View(), Ref()).ok());
  const PagedCache cache = MakePagedCache(batch, 16, 704);
  DecodeInputs dec = DecodeView(batch, cache, 1);
  dec.seqs.num_seqs = 0;
  EXPECT_TRUE(FlatTopkDecode(cfg, dec, out.FlatView(), Ref()).ok());
  PooledBuffer pages(cfg, PooledSlotsForPages(cfg, cache.num_pages, 16));
  EXPECT_TRUE(HisaTopkDecode(cfg, dec, pages.ConstView(), out.View(), Ref()).ok());
  EXPECT_TRUE(BuildPooledKeysPaged(cfg, cache.Keys(), dec.seqs, pages.View(), Ref()).ok());
  EXPECT_TRUE(out.Untouched());
  EXPECT_TRUE(logits.Untouched());
  EXPECT_TRUE(pooled.k.Untouched());
  EXPECT_TRUE(pooled.kscale.Untouched());
  EXPECT_TRUE(pages.k.Untouched());
  EXPECT_TRUE(pages.kscale.Untouched());
}

}  // namespace
}  // namespace hisa
