// Argument validation (SPEC.md section 4): every bad argument gives kInvalidArgument with a
// message naming the argument and its value, and nothing is written.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "test_util.h"

namespace hisa {
namespace {

using testutil::Batch;
using testutil::DecodeView;
using testutil::Guarded;
using testutil::IsInvalid;
using testutil::MakeBatch;
using testutil::MakePagedCache;
using testutil::Outputs;
using testutil::PagedCache;
using testutil::PooledBuffer;
using testutil::Ref;
using testutil::SmallConfig;

// Outputs large enough for any configuration used below, so that a call that wrongly runs
// anyway still stays inside them and is caught by the "nothing written" check.
IndexerConfig RoomyConfig() {
  IndexerConfig cfg = SmallConfig(512);
  cfg.block_budget = 64;
  return cfg;
}

class Validation : public ::testing::Test {
 protected:
  Validation()
      : cfg_(SmallConfig(16)),
        batch_(MakeBatch(cfg_, {40, 30}, {{40, 20}, {30, 1}}, 301)),
        cache_(MakePagedCache(batch_, 16, 302)),
        out_(RoomyConfig(), batch_.num_queries),
        logits_(static_cast<size_t>(batch_.num_queries * batch_.num_keys)),
        pooled_rows_(cfg_, PooledSlotsForRows(cfg_, batch_.num_keys)),
        pooled_pages_(cfg_, PooledSlotsForPages(cfg_, cache_.num_pages, 16)),
        in_(batch_.Inputs()),
        decode_(DecodeView(batch_, cache_, 1)),
        old_lens_(cache_.context_lens) {}

  // The call failed with kInvalidArgument naming every part, and wrote nothing anywhere.
  void ExpectRejected(const Status& status, const std::vector<std::string>& parts) {
    EXPECT_TRUE(IsInvalid(status, parts));
    EXPECT_TRUE(out_.Untouched());
    EXPECT_TRUE(logits_.Untouched());
    EXPECT_TRUE(pooled_rows_.k.Untouched());
    EXPECT_TRUE(pooled_rows_.kscale.Untouched());
    EXPECT_TRUE(pooled_pages_.k.Untouched());
    EXPECT_TRUE(pooled_pages_.kscale.Untouched());
  }

  int32_t NumSeqs() const { return static_cast<int32_t>(batch_.seq_lens.size()); }

  Status Flat(const IndexerConfig& cfg, const PrefillInputs& in, const RunOptions& opts = Ref()) {
    return FlatTopkPrefill(cfg, in, out_.FlatView(), opts);
  }
  Status Hisa(const IndexerConfig& cfg, const PrefillInputs& in, const RunOptions& opts = Ref()) {
    return HisaTopkPrefill(cfg, in, pooled_rows_.ConstView(), out_.View(), opts);
  }
  Status FlatDec(const IndexerConfig& cfg, const DecodeInputs& in, const RunOptions& opts = Ref()) {
    return FlatTopkDecode(cfg, in, out_.FlatView(), opts);
  }
  Status HisaDec(const IndexerConfig& cfg, const DecodeInputs& in, const RunOptions& opts = Ref()) {
    return HisaTopkDecode(cfg, in, pooled_pages_.ConstView(), out_.View(), opts);
  }
  Status Logits(const IndexerConfig& cfg, const PrefillInputs& in, const RunOptions& opts = Ref()) {
    return FlatLogitsPrefill(cfg, in, logits_.data(), batch_.num_keys, opts);
  }
  Status PoolRows(const IndexerConfig& cfg, const KeyRows& keys, const int32_t* starts,
                  const int32_t* lens, int32_t num_seqs, const RunOptions& opts = Ref()) {
    return BuildPooledKeysPrefill(cfg, keys, starts, lens, num_seqs, pooled_rows_.View(), opts);
  }
  Status PoolRows(const IndexerConfig& cfg, const RunOptions& opts = Ref()) {
    return PoolRows(cfg, batch_.Keys(), batch_.seq_starts.data(), batch_.seq_lens.data(), NumSeqs(),
                    opts);
  }
  Status PoolPages(const IndexerConfig& cfg, const PagedKeys& cache, const PagedSequences& seqs,
                   const RunOptions& opts = Ref()) {
    return BuildPooledKeysPaged(cfg, cache, seqs, pooled_pages_.View(), opts);
  }
  Status Update(const IndexerConfig& cfg, const PagedKeys& cache, const PagedSequences& seqs,
                const int32_t* old_lens, const RunOptions& opts = Ref()) {
    return UpdatePooledKeysPaged(cfg, cache, seqs, old_lens, pooled_pages_.View(), opts);
  }

  IndexerConfig cfg_;
  Batch batch_;
  PagedCache cache_;
  Outputs out_;
  Guarded<float> logits_;
  PooledBuffer pooled_rows_;
  PooledBuffer pooled_pages_;
  PrefillInputs in_;
  DecodeInputs decode_;
  std::vector<int32_t> old_lens_;
};

#define EXPECT_REJECTED(call, ...)         \
  do {                                     \
    SCOPED_TRACE(#call);                   \
    ExpectRejected((call), {__VA_ARGS__}); \
  } while (0)

TEST_F(Validation, TheFixtureIsValid) {
  // Every call below differs from these in one argument.
  EXPECT_TRUE(Flat(cfg_, in_).ok());
  EXPECT_TRUE(PoolRows(cfg_).ok());
  EXPECT_TRUE(Hisa(cfg_, in_).ok());
  EXPECT_TRUE(FlatDec(cfg_, decode_).ok());
  EXPECT_TRUE(PoolPages(cfg_, cache_.Keys(), cache_.Seqs()).ok());
  EXPECT_TRUE(Update(cfg_, cache_.Keys(), cache_.Seqs(), old_lens_.data()).ok());
  EXPECT_TRUE(HisaDec(cfg_, decode_).ok());
  EXPECT_TRUE(Logits(cfg_, in_).ok());
}

// ---------------------------------------------------------------------------------------------
// Configuration and options
// ---------------------------------------------------------------------------------------------

TEST_F(Validation, RejectsHeadCountAndHeadDimOutOfRange) {
  IndexerConfig cfg = cfg_;
  cfg.num_heads = 0;
  EXPECT_REJECTED(Flat(cfg, in_), "num_heads = 0");
  cfg.num_heads = 1025;
  EXPECT_REJECTED(Hisa(cfg, in_), "num_heads = 1025");
  cfg = cfg_;
  cfg.head_dim = 0;
  EXPECT_REJECTED(FlatDec(cfg, decode_), "head_dim = 0");
  cfg.head_dim = 4097;
  EXPECT_REJECTED(Logits(cfg, in_), "head_dim = 4097");
}

TEST_F(Validation, RejectsTopKOutOfRange) {
  IndexerConfig cfg = cfg_;
  cfg.top_k = 0;
  EXPECT_REJECTED(Flat(cfg, in_), "top_k = 0");
  cfg.top_k = -3;
  EXPECT_REJECTED(HisaDec(cfg, decode_), "top_k = -3");
  cfg.top_k = (1 << 20) + 1;
  EXPECT_REJECTED(FlatDec(cfg, decode_), "top_k = 1048577");
}

TEST_F(Validation, RejectsUnknownDTypesAndScaleRule) {
  IndexerConfig cfg = cfg_;
  cfg.q_dtype = static_cast<DType>(7);
  EXPECT_REJECTED(Flat(cfg, in_), "q_dtype = 7");
  cfg = cfg_;
  cfg.k_dtype = static_cast<DType>(9);
  EXPECT_REJECTED(PoolRows(cfg), "k_dtype = 9");
  cfg = cfg_;
  cfg.pooled_scale_rule = static_cast<ScaleRule>(5);
  EXPECT_REJECTED(Hisa(cfg, in_), "pooled_scale_rule = 5");
}

TEST_F(Validation, RejectsBlockSizeNotAMultipleOf16) {
  IndexerConfig cfg = cfg_;
  for (int32_t block : {24, 8, 0, -16}) {
    cfg.block_size = block;
    const std::string part = fmt::format("block_size = {}", block);
    EXPECT_REJECTED(Hisa(cfg, in_), part);
    EXPECT_REJECTED(HisaDec(cfg, decode_), part);
    EXPECT_REJECTED(PoolRows(cfg), part);
    EXPECT_REJECTED(PoolPages(cfg, cache_.Keys(), cache_.Seqs()), part);
    EXPECT_REJECTED(Update(cfg, cache_.Keys(), cache_.Seqs(), old_lens_.data()), part);
  }
}

TEST_F(Validation, RejectsBlockBudgetBelowTwo) {
  IndexerConfig cfg = cfg_;
  cfg.block_budget = 1;
  EXPECT_REJECTED(Hisa(cfg, in_), "block_budget = 1");
  cfg.block_budget = 0;
  EXPECT_REJECTED(HisaDec(cfg, decode_), "block_budget = 0");
}

TEST_F(Validation, RejectsBudgetTimesBlockSizeBelowK) {
  IndexerConfig cfg = cfg_;
  cfg.top_k = 100;  // m * B = 4 * 16 = 64
  EXPECT_REJECTED(Hisa(cfg, in_), "4 * 16 = 64", "top_k = 100");
  EXPECT_REJECTED(HisaDec(cfg, decode_), "4 * 16 = 64", "top_k = 100");
  cfg.top_k = 64;
  EXPECT_TRUE(Hisa(cfg, in_).ok()) << "m * B == k is allowed";
}

TEST_F(Validation, FlatCallsIgnoreTheHisaParameters) {
  IndexerConfig cfg = cfg_;
  cfg.block_size = 24;
  cfg.block_budget = 1;
  cfg.top_k = 100;
  EXPECT_TRUE(Flat(cfg, in_).ok());
  EXPECT_TRUE(FlatDec(cfg, decode_).ok());
  EXPECT_TRUE(Logits(cfg, in_).ok());
}

TEST_F(Validation, RejectsUnknownBackendPositionBaseAndNegativeThreads) {
  RunOptions opts = Ref();
  opts.backend = static_cast<Backend>(7);
  EXPECT_REJECTED(Flat(cfg_, in_, opts), "backend = 7");
  EXPECT_REJECTED(PoolRows(cfg_, opts), "backend = 7");
  opts = Ref();
  opts.positions = static_cast<PositionBase>(3);
  EXPECT_REJECTED(HisaDec(cfg_, decode_, opts), "positions = 3");
  opts = Ref();
  opts.num_threads = -1;
  EXPECT_REJECTED(Hisa(cfg_, in_, opts), "num_threads = -1");
  EXPECT_REJECTED(Logits(cfg_, in_, opts), "num_threads = -1");
  EXPECT_REJECTED(Update(cfg_, cache_.Keys(), cache_.Seqs(), old_lens_.data(), opts),
                  "num_threads = -1");
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

TEST_F(Validation, RejectsNullIndices) {
  TopkOutputs out = out_.View();
  out.indices = nullptr;
  EXPECT_REJECTED(HisaTopkPrefill(cfg_, in_, pooled_rows_.ConstView(), out, Ref()),
                  "indices is null");
  EXPECT_REJECTED(HisaTopkDecode(cfg_, decode_, pooled_pages_.ConstView(), out, Ref()),
                  "indices is null");
  out.blocks = nullptr;
  EXPECT_REJECTED(FlatTopkPrefill(cfg_, in_, out, Ref()), "indices is null");
  EXPECT_REJECTED(FlatTopkDecode(cfg_, decode_, out, Ref()), "indices is null");
}

TEST_F(Validation, RejectsABlocksOutputOnAFlatCall) {
  EXPECT_REJECTED(FlatTopkPrefill(cfg_, in_, out_.View(), Ref()), "blocks");
  EXPECT_REJECTED(FlatTopkDecode(cfg_, decode_, out_.View(), Ref()), "blocks");
}

// ---------------------------------------------------------------------------------------------
// Prefill inputs
// ---------------------------------------------------------------------------------------------

TEST_F(Validation, RejectsNegativeCountsAndKeyCountsBeyondInt32) {
  PrefillInputs in = in_;
  in.num_queries = -1;
  EXPECT_REJECTED(Flat(cfg_, in), "num_queries = -1");
  in = in_;
  in.keys.num_keys = -2;
  EXPECT_REJECTED(Hisa(cfg_, in), "num_keys = -2");
  EXPECT_REJECTED(Logits(cfg_, in), "num_keys = -2");
  in.keys.num_keys = int64_t{1} << 31;
  EXPECT_REJECTED(Flat(cfg_, in), "num_keys = 2147483648");
  KeyRows keys = batch_.Keys();
  keys.num_keys = -1;
  EXPECT_REJECTED(PoolRows(cfg_, keys, batch_.seq_starts.data(), batch_.seq_lens.data(), 2),
                  "num_keys = -1");
  keys.num_keys = int64_t{1} << 31;
  EXPECT_REJECTED(PoolRows(cfg_, keys, batch_.seq_starts.data(), batch_.seq_lens.data(), 2),
                  "num_keys = 2147483648");
}

TEST_F(Validation, RejectsNullPrefillPointers) {
  PrefillInputs in = in_;
  in.q = nullptr;
  EXPECT_REJECTED(Flat(cfg_, in), "q is null");
  in = in_;
  in.w = nullptr;
  EXPECT_REJECTED(Hisa(cfg_, in), "w is null");
  in = in_;
  in.ks = nullptr;
  EXPECT_REJECTED(Flat(cfg_, in), "ks is null");
  in = in_;
  in.ke = nullptr;
  EXPECT_REJECTED(Logits(cfg_, in), "ke is null");
  in = in_;
  in.keys.k = nullptr;
  EXPECT_REJECTED(Flat(cfg_, in), "k is null");
  in = in_;
  in.keys.kscale = nullptr;
  EXPECT_REJECTED(Hisa(cfg_, in), "kscale is null");
  KeyRows keys = batch_.Keys();
  keys.k = nullptr;
  EXPECT_REJECTED(PoolRows(cfg_, keys, batch_.seq_starts.data(), batch_.seq_lens.data(), 2),
                  "k is null");
  keys = batch_.Keys();
  keys.kscale = nullptr;
  EXPECT_REJECTED(PoolRows(cfg_, keys, batch_.seq_starts.data(), batch_.seq_lens.data(), 2),
                  "kscale is null");
}

TEST_F(Validation, AcceptsNullKeyScalesForBf16KeysAndNullPointersForEmptyBatches) {
  IndexerConfig cfg = cfg_;
  cfg.k_dtype = DType::kBf16;
  const Batch bf16 = MakeBatch(cfg, {40}, {{40}}, 303, {.null_kscale = true});
  Outputs out(cfg, 1, false);
  EXPECT_TRUE(FlatTopkPrefill(cfg, bf16.Inputs(), out.FlatView(), Ref()).ok());
  PrefillInputs empty;  // no queries, no keys, every pointer null
  EXPECT_TRUE(Flat(cfg_, empty).ok());
  EXPECT_TRUE(out_.Untouched());
}

TEST_F(Validation, RejectsNegativeKs) {
  std::vector<int32_t> ks = batch_.ks;
  ks[3] = -1;
  PrefillInputs in = in_;
  in.ks = ks.data();
  EXPECT_REJECTED(Flat(cfg_, in), "ks[3] = -1");
  EXPECT_REJECTED(Hisa(cfg_, in), "ks[3] = -1");
  EXPECT_REJECTED(Logits(cfg_, in), "ks[3] = -1");
}

TEST_F(Validation, RejectsKeBeyondTheKeyCount) {
  std::vector<int32_t> ke = batch_.ke;
  ke[2] = static_cast<int32_t>(batch_.num_keys + 1);
  PrefillInputs in = in_;
  in.ke = ke.data();
  const std::string bad = fmt::format("ke[2] = {}", batch_.num_keys + 1);
  const std::string n = fmt::format("num_keys = {}", batch_.num_keys);
  EXPECT_REJECTED(Flat(cfg_, in), bad, n);
  EXPECT_REJECTED(Hisa(cfg_, in), bad, n);
  EXPECT_REJECTED(Logits(cfg_, in), bad, n);
}

TEST_F(Validation, RejectsKsGreaterThanKe) {
  std::vector<int32_t> ks = batch_.ks;
  ASSERT_EQ(batch_.ke[1], 20);
  ks[1] = 25;
  PrefillInputs in = in_;
  in.ks = ks.data();
  EXPECT_REJECTED(Flat(cfg_, in), "ks[1] = 25", "ke[1] = 20");
  EXPECT_REJECTED(Hisa(cfg_, in), "ks[1] = 25", "ke[1] = 20");
  EXPECT_REJECTED(Logits(cfg_, in), "ks[1] = 25", "ke[1] = 20");
}

TEST_F(Validation, RejectsNullLogitsAndAShortLogitsStride) {
  EXPECT_REJECTED(FlatLogitsPrefill(cfg_, in_, nullptr, batch_.num_keys, Ref()), "logits is null");
  const int64_t short_stride = batch_.num_keys - 1;
  EXPECT_REJECTED(FlatLogitsPrefill(cfg_, in_, logits_.data(), short_stride, Ref()),
                  fmt::format("logits_stride = {}", short_stride),
                  fmt::format("num_keys = {}", batch_.num_keys));
}

// ---------------------------------------------------------------------------------------------
// Paged cache and decode inputs
// ---------------------------------------------------------------------------------------------

TEST_F(Validation, RejectsPageSizeNotAMultipleOf16) {
  for (int32_t page : {24, 0, 8, -16}) {
    PagedKeys cache = cache_.Keys();
    cache.page_size = page;
    DecodeInputs in = decode_;
    in.cache = cache;
    const std::string part = fmt::format("page_size = {}", page);
    EXPECT_REJECTED(FlatDec(cfg_, in), part);
    EXPECT_REJECTED(HisaDec(cfg_, in), part);
    EXPECT_REJECTED(PoolPages(cfg_, cache, cache_.Seqs()), part);
    EXPECT_REJECTED(Update(cfg_, cache, cache_.Seqs(), old_lens_.data()), part);
  }
}

TEST_F(Validation, RejectsBlockAndPageSizesThatDoNotDivideEachOther) {
  IndexerConfig cfg = cfg_;
  cfg.block_size = 48;
  PagedKeys cache = cache_.Keys();
  cache.page_size = 32;
  DecodeInputs in = decode_;
  in.cache = cache;
  EXPECT_REJECTED(HisaDec(cfg, in), "block_size = 48", "page_size = 32");
  EXPECT_REJECTED(PoolPages(cfg, cache, cache_.Seqs()), "block_size = 48", "page_size = 32");
  EXPECT_REJECTED(Update(cfg, cache, cache_.Seqs(), old_lens_.data()), "block_size = 48",
                  "page_size = 32");
  cfg.block_size = 32;
  cache.page_size = 48;
  in.cache = cache;
  EXPECT_REJECTED(HisaDec(cfg, in), "block_size = 32", "page_size = 48");
}

TEST_F(Validation, RejectsNegativePagedCountsAndPageCountsBeyondInt32) {
  PagedKeys cache = cache_.Keys();
  cache.num_pages = -1;
  EXPECT_REJECTED(PoolPages(cfg_, cache, cache_.Seqs()), "num_pages = -1");
  cache.num_pages = (int64_t{1} << 31) / 16 + 1;
  DecodeInputs in = decode_;
  in.cache = cache;
  EXPECT_REJECTED(FlatDec(cfg_, in), "num_pages * page_size");
  PagedSequences seqs = cache_.Seqs();
  seqs.num_seqs = -1;
  in = decode_;
  in.seqs = seqs;
  EXPECT_REJECTED(FlatDec(cfg_, in), "num_seqs = -1");
  EXPECT_REJECTED(PoolPages(cfg_, cache_.Keys(), seqs), "num_seqs = -1");
  EXPECT_REJECTED(Update(cfg_, cache_.Keys(), seqs, old_lens_.data()), "num_seqs = -1");
  seqs = cache_.Seqs();
  seqs.max_pages_per_seq = -1;
  in.seqs = seqs;
  EXPECT_REJECTED(HisaDec(cfg_, in), "max_pages_per_seq = -1");
}

TEST_F(Validation, RejectsNullPagedPointers) {
  DecodeInputs in = decode_;
  in.cache.k = nullptr;
  EXPECT_REJECTED(FlatDec(cfg_, in), "cache.k is null");
  in = decode_;
  in.cache.kscale = nullptr;
  EXPECT_REJECTED(HisaDec(cfg_, in), "cache.kscale is null");
  in = decode_;
  in.seqs.context_lens = nullptr;
  EXPECT_REJECTED(FlatDec(cfg_, in), "context_lens is null");
  EXPECT_REJECTED(PoolPages(cfg_, in.cache, in.seqs), "context_lens is null");
  in = decode_;
  in.seqs.block_table = nullptr;
  EXPECT_REJECTED(HisaDec(cfg_, in), "block_table is null");
  in = decode_;
  in.q = nullptr;
  EXPECT_REJECTED(FlatDec(cfg_, in), "q is null");
  in = decode_;
  in.w = nullptr;
  EXPECT_REJECTED(HisaDec(cfg_, in), "w is null");
}

TEST_F(Validation, RejectsNextNOutOfRange) {
  DecodeInputs in = decode_;
  in.next_n = 0;
  EXPECT_REJECTED(FlatDec(cfg_, in), "next_n = 0");
  in.next_n = 1025;
  EXPECT_REJECTED(HisaDec(cfg_, in), "next_n = 1025");
}

TEST_F(Validation, RejectsContextShorterThanNextN) {
  std::vector<int32_t> lens = cache_.context_lens;
  lens[1] = 1;
  DecodeInputs in = decode_;
  in.seqs.context_lens = lens.data();
  in.next_n = 2;
  EXPECT_REJECTED(FlatDec(cfg_, in), "context_lens[1] = 1", "next_n = 2");
  EXPECT_REJECTED(HisaDec(cfg_, in), "context_lens[1] = 1", "next_n = 2");
  lens[1] = -1;
  EXPECT_REJECTED(PoolPages(cfg_, in.cache, in.seqs), "context_lens[1] = -1");
}

TEST_F(Validation, RejectsContextBeyondTheBlockTableCapacity) {
  std::vector<int32_t> lens = cache_.context_lens;
  const int32_t capacity = cache_.max_pages_per_seq * 16;
  lens[0] = capacity + 1;
  DecodeInputs in = decode_;
  in.seqs.context_lens = lens.data();
  const std::string part = fmt::format("context_lens[0] = {}", capacity + 1);
  EXPECT_REJECTED(FlatDec(cfg_, in), part);
  EXPECT_REJECTED(HisaDec(cfg_, in), part);
  EXPECT_REJECTED(PoolPages(cfg_, in.cache, in.seqs), part);
  EXPECT_REJECTED(Update(cfg_, in.cache, in.seqs, old_lens_.data()), part);
}

TEST_F(Validation, RejectsBlockTableEntriesOutsideTheCache) {
  std::vector<int32_t> table = cache_.block_table;
  const int32_t stride = cache_.max_pages_per_seq;
  table[static_cast<size_t>(stride) + 0] = -1;
  DecodeInputs in = decode_;
  in.seqs.block_table = table.data();
  EXPECT_REJECTED(FlatDec(cfg_, in), "block_table[1][0] = -1");
  table = cache_.block_table;
  table[static_cast<size_t>(stride) + 1] = static_cast<int32_t>(cache_.num_pages);
  in.seqs.block_table = table.data();
  const std::string part = fmt::format("block_table[1][1] = {}", cache_.num_pages);
  EXPECT_REJECTED(HisaDec(cfg_, in), part);
  EXPECT_REJECTED(PoolPages(cfg_, in.cache, in.seqs), part);
  EXPECT_REJECTED(Update(cfg_, in.cache, in.seqs, old_lens_.data()), part);
}

TEST_F(Validation, IgnoresBlockTableEntriesPastTheContext) {
  // Sequence 0 has 40 tokens: 3 pages of 16; the table rows have room for more.
  std::vector<int32_t> table = cache_.block_table;
  ASSERT_GT(cache_.max_pages_per_seq, 3);
  table[3] = -7;
  DecodeInputs in = decode_;
  in.seqs.block_table = table.data();
  EXPECT_TRUE(FlatDec(cfg_, in).ok());
}

// ---------------------------------------------------------------------------------------------
// Pooled keys
// ---------------------------------------------------------------------------------------------

TEST_F(Validation, RejectsTooFewPooledSlots) {
  const int64_t rows_needed = pooled_rows_.num_slots, pages_needed = pooled_pages_.num_slots;
  ConstPooledKeys rows = pooled_rows_.ConstView();
  rows.num_slots = rows_needed - 1;
  EXPECT_REJECTED(HisaTopkPrefill(cfg_, in_, rows, out_.View(), Ref()),
                  fmt::format("num_slots = {}", rows_needed - 1), std::to_string(rows_needed));
  ConstPooledKeys pages = pooled_pages_.ConstView();
  pages.num_slots = pages_needed - 1;
  EXPECT_REJECTED(HisaTopkDecode(cfg_, decode_, pages, out_.View(), Ref()),
                  fmt::format("num_slots = {}", pages_needed - 1), std::to_string(pages_needed));
  PooledKeys mut = pooled_rows_.View();
  mut.num_slots = rows_needed - 1;
  EXPECT_REJECTED(BuildPooledKeysPrefill(cfg_, batch_.Keys(), batch_.seq_starts.data(),
                                         batch_.seq_lens.data(), NumSeqs(), mut, Ref()),
                  fmt::format("num_slots = {}", rows_needed - 1));
  mut = pooled_pages_.View();
  mut.num_slots = pages_needed - 1;
  EXPECT_REJECTED(BuildPooledKeysPaged(cfg_, cache_.Keys(), cache_.Seqs(), mut, Ref()),
                  fmt::format("num_slots = {}", pages_needed - 1));
  EXPECT_REJECTED(
      UpdatePooledKeysPaged(cfg_, cache_.Keys(), cache_.Seqs(), old_lens_.data(), mut, Ref()),
      fmt::format("num_slots = {}", pages_needed - 1));
}

TEST_F(Validation, RejectsNullPooledPointers) {
  ConstPooledKeys rows = pooled_rows_.ConstView();
  rows.k = nullptr;
  EXPECT_REJECTED(HisaTopkPrefill(cfg_, in_, rows, out_.View(), Ref()), "pooled k is null");
  ConstPooledKeys pages = pooled_pages_.ConstView();
  pages.kscale = nullptr;
  EXPECT_REJECTED(HisaTopkDecode(cfg_, decode_, pages, out_.View(), Ref()),
                  "pooled kscale is null");
  PooledKeys mut = pooled_rows_.View();
  mut.kscale = nullptr;
  EXPECT_REJECTED(BuildPooledKeysPrefill(cfg_, batch_.Keys(), batch_.seq_starts.data(),
                                         batch_.seq_lens.data(), NumSeqs(), mut, Ref()),
                  "pooled kscale is null");
}

TEST_F(Validation, RejectsBadPrefillSequences) {
  EXPECT_REJECTED(
      PoolRows(cfg_, batch_.Keys(), batch_.seq_starts.data(), batch_.seq_lens.data(), -1),
      "num_seqs = -1");
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), nullptr, batch_.seq_lens.data(), 2),
                  "seq_starts is null");
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), batch_.seq_starts.data(), nullptr, 2),
                  "seq_lens is null");
  std::vector<int32_t> starts = batch_.seq_starts, lens = batch_.seq_lens;
  starts[1] = -4;
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), starts.data(), lens.data(), 2),
                  "seq_starts[1] = -4");
  starts = batch_.seq_starts;
  lens[0] = -1;
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), starts.data(), lens.data(), 2), "seq_lens[0] = -1");
  lens = batch_.seq_lens;
  lens[1] += 1;  // one row past the key array
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), starts.data(), lens.data(), 2),
                  fmt::format("seq_starts[1] + seq_lens[1] = {} + {}", starts[1], lens[1]),
                  fmt::format("num_keys = {}", batch_.num_keys));
}

TEST_F(Validation, RejectsOverlappingPrefillSequences) {
  const std::vector<int32_t> starts = {30, 0}, lens = {30, 40};  // [30, 60) and [0, 40)
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), starts.data(), lens.data(), 2), "rows [0, 40)",
                  "rows [30, 60)", "overlap");
  // Touching sequences and empty sequences inside another are fine.
  const std::vector<int32_t> ok_starts = {0, 40, 10}, ok_lens = {40, 30, 0};
  EXPECT_TRUE(PoolRows(cfg_, batch_.Keys(), ok_starts.data(), ok_lens.data(), 3).ok());
}

TEST_F(Validation, RejectsAnOverlapHiddenBehindAnEmptySequence) {
  // Sorted by start, the empty sequence sits between the two that overlap.
  const std::vector<int32_t> starts = {0, 10, 20}, lens = {40, 0, 30};
  EXPECT_REJECTED(PoolRows(cfg_, batch_.Keys(), starts.data(), lens.data(), 3), "rows [0, 40)",
                  "rows [20, 50)", "overlap");
}

TEST_F(Validation, RejectsBadOldLens) {
  EXPECT_REJECTED(Update(cfg_, cache_.Keys(), cache_.Seqs(), nullptr), "old_lens is null");
  std::vector<int32_t> old_lens = cache_.context_lens;
  old_lens[1] = cache_.context_lens[1] + 1;
  EXPECT_REJECTED(Update(cfg_, cache_.Keys(), cache_.Seqs(), old_lens.data()),
                  fmt::format("old_lens[1] = {}", old_lens[1]),
                  fmt::format("context_lens[1] = {}", cache_.context_lens[1]));
  old_lens = cache_.context_lens;
  old_lens[0] = -1;
  EXPECT_REJECTED(Update(cfg_, cache_.Keys(), cache_.Seqs(), old_lens.data()), "old_lens[0] = -1");
}

// ---------------------------------------------------------------------------------------------
// Backend availability
// ---------------------------------------------------------------------------------------------

TEST_F(Validation, CudaBackendIsUnsupportedWhenUnavailable) {
  std::string why;
  if (BackendAvailable(Backend::kCuda, &why)) GTEST_SKIP() << "CUDA is available here";
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(BackendAvailable(Backend::kReference));
  EXPECT_TRUE(BackendAvailable(Backend::kCpu));
  RunOptions opts = Ref();
  opts.backend = Backend::kCuda;
  const std::vector<Status> results = {
      Flat(cfg_, in_, opts),
      Hisa(cfg_, in_, opts),
      FlatDec(cfg_, decode_, opts),
      HisaDec(cfg_, decode_, opts),
      Logits(cfg_, in_, opts),
      PoolRows(cfg_, opts),
      PoolPages(cfg_, cache_.Keys(), cache_.Seqs(), opts),
      Update(cfg_, cache_.Keys(), cache_.Seqs(), old_lens_.data(), opts),
  };
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].code(), StatusCode::kUnsupported) << i << ": " << results[i].ToString();
    EXPECT_NE(results[i].message().find("cuda"), std::string::npos) << results[i].message();
  }
  EXPECT_TRUE(out_.Untouched());
  EXPECT_TRUE(logits_.Untouched());
  EXPECT_TRUE(pooled_rows_.k.Untouched());
  EXPECT_TRUE(pooled_pages_.k.Untouched());
}

TEST(StatusNames, CodesAndBackendsHaveNames) {
  EXPECT_EQ(Status().ToString(), "ok");
  EXPECT_EQ(Status(StatusCode::kInvalidArgument, "x = 1").ToString(), "invalid argument: x = 1");
  EXPECT_STREQ(BackendName(Backend::kReference), "reference");
  EXPECT_STREQ(DTypeName(DType::kFp8E4M3), "fp8_e4m3");
}

}  // namespace
}  // namespace hisa
