// The fast CPU backend against the reference (hisa/check.h), on every kernel this CPU runs
// (cpu::ForceKernel). Every selection run also checks: sentinels around indices, blocks and
// scores untouched; results bitwise identical with another thread count; rows sorted best first
// with -1 / NaN padding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/topk.h"
#include "cpu/kernels.h"
#include "cpu/stream_topk.h"
#include "hisa/check.h"
#include "hisa/hisa.h"
#include "hisa/numeric.h"

namespace hisa {
namespace {

constexpr int32_t kSentinel = 0x5EAD5EAD;
constexpr int64_t kGuard = 64;  // sentinel elements on each side of an output

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

// count random elements of dtype, roughly N(0, scale^2), quantized.
std::vector<uint8_t> RandomElements(int64_t count, DType dtype, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<uint8_t> data(static_cast<size_t>(count * DTypeSize(dtype)));
  for (int64_t i = 0; i < count; ++i) {
    const float x = normal(rng);
    if (dtype == DType::kFp8E4M3) {
      data[i] = FloatToFp8(x);
    } else {
      const uint16_t bits = FloatToBf16(x);
      std::memcpy(data.data() + 2 * i, &bits, 2);
    }
  }
  return data;
}

std::vector<float> RandomFloats(int64_t count, float lo, float hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(lo, hi);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = uniform(rng);
  return values;
}

// A packed prefill batch: sequences at unaligned rows with gaps between them, queries at assorted
// positions of each (first, last, random), plus empty rows.
struct PrefillCase {
  IndexerConfig cfg;
  std::vector<uint8_t> q, k, pooled_k;
  std::vector<float> w, kscale, pooled_scale;
  std::vector<int32_t> ks, ke, seq_starts, seq_lens;

  PrefillInputs Inputs() const {
    PrefillInputs in;
    in.q = q.data();
    in.w = w.data();
    const int64_t num_keys = static_cast<int64_t>(k.size()) / cfg.head_dim / DTypeSize(cfg.k_dtype);
    in.keys = {k.data(), kscale.empty() ? nullptr : kscale.data(), num_keys};
    in.ks = ks.data();
    in.ke = ke.data();
    in.num_queries = static_cast<int64_t>(ks.size());
    return in;
  }
  ConstPooledKeys Pooled() const {
    return {pooled_k.data(), pooled_scale.data(), static_cast<int64_t>(pooled_scale.size())};
  }
};

PrefillCase MakePrefill(const IndexerConfig& cfg, const std::vector<int32_t>& lens,
                        int32_t queries_per_seq, uint64_t seed) {
  std::mt19937_64 rng(seed);
  PrefillCase c;
  c.cfg = cfg;
  int32_t row = 0;
  for (int32_t len : lens) {
    row += static_cast<int32_t>(rng() % 21);  // unaligned starts
    c.seq_starts.push_back(row);
    c.seq_lens.push_back(len);
    for (int32_t i = 0; i < queries_per_seq && len > 0; ++i) {
      int32_t pos = static_cast<int32_t>(rng() % len);
      if (i == 0) pos = len - 1;
      if (i == 1) pos = 0;  // a one-token row
      c.ks.push_back(row);
      c.ke.push_back(row + pos + 1);
    }
    row += len;
  }
  const int32_t num_keys = row + 5;
  for (int32_t i = 0; i < 3; ++i) {  // empty rows
    const int32_t at = static_cast<int32_t>(rng() % (num_keys + 1));
    c.ks.push_back(at);
    c.ke.push_back(at);
  }
  const int64_t num_queries = static_cast<int64_t>(c.ks.size());
  c.q = RandomElements(num_queries * cfg.num_heads * cfg.head_dim, cfg.q_dtype, 24.0f, rng);
  c.w = RandomFloats(num_queries * cfg.num_heads, -0.5f, 1.0f, rng);
  c.k = RandomElements(int64_t{num_keys} * cfg.head_dim, cfg.k_dtype, 24.0f, rng);
  // BF16 keys go without scales (kscale null means 1), FP8 keys with.
  if (cfg.k_dtype == DType::kFp8E4M3) c.kscale = RandomFloats(num_keys, 0.25f, 2.0f, rng);
  const int64_t slots = PooledSlotsForRows(cfg, num_keys);
  c.pooled_k.assign(static_cast<size_t>(slots * cfg.head_dim * DTypeSize(cfg.k_dtype)), 0);
  c.pooled_scale.assign(static_cast<size_t>(slots), 1.0f);
  const Status status = BuildPooledKeysPrefill(cfg, c.Inputs().keys, c.seq_starts.data(),
                                               c.seq_lens.data(), static_cast<int32_t>(lens.size()),
                                               {c.pooled_k.data(), c.pooled_scale.data(), slots});
  EXPECT_TRUE(status.ok()) << status.ToString();
  return c;
}

// A decode step over a paged cache with a shuffled block table.
struct DecodeCase {
  IndexerConfig cfg;
  std::vector<uint8_t> q, k, pooled_k;
  std::vector<float> w, kscale, pooled_scale;
  std::vector<int32_t> block_table, context_lens;
  int32_t page_size = 0, max_pages = 0, next_n = 1;

  DecodeInputs Inputs() const {
    DecodeInputs in;
    in.q = q.data();
    in.w = w.data();
    in.cache = {k.data(), kscale.data(), static_cast<int64_t>(kscale.size()) / page_size,
                page_size};
    in.seqs = {block_table.data(), max_pages, context_lens.data(),
               static_cast<int32_t>(context_lens.size())};
    in.next_n = next_n;
    return in;
  }
  ConstPooledKeys Pooled() const {
    return {pooled_k.data(), pooled_scale.data(), static_cast<int64_t>(pooled_scale.size())};
  }
};

DecodeCase MakeDecode(const IndexerConfig& cfg, const std::vector<int32_t>& lens, int32_t page_size,
                      int32_t next_n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  DecodeCase c;
  c.cfg = cfg;
  c.page_size = page_size;
  c.next_n = next_n;
  c.context_lens = lens;
  int32_t pages = 3;  // a few pages nobody uses
  for (int32_t len : lens) {
    const int32_t need = (len + page_size - 1) / page_size;
    pages += need;
    c.max_pages = std::max(c.max_pages, need + 1);
  }
  std::vector<int32_t> order(static_cast<size_t>(pages));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  c.block_table.assign(lens.size() * static_cast<size_t>(c.max_pages), 0);
  size_t next = 0;
  for (size_t b = 0; b < lens.size(); ++b) {
    for (int32_t i = 0; i < (lens[b] + page_size - 1) / page_size; ++i) {
      c.block_table[b * c.max_pages + i] = order[next++];
    }
  }
  const int64_t num_queries = static_cast<int64_t>(lens.size()) * next_n;
  const int64_t num_keys = int64_t{pages} * page_size;
  c.q = RandomElements(num_queries * cfg.num_heads * cfg.head_dim, cfg.q_dtype, 24.0f, rng);
  c.w = RandomFloats(num_queries * cfg.num_heads, -0.5f, 1.0f, rng);
  c.k = RandomElements(num_keys * cfg.head_dim, cfg.k_dtype, 24.0f, rng);
  c.kscale = RandomFloats(num_keys, 0.25f, 2.0f, rng);
  const int64_t slots = PooledSlotsForPages(cfg, pages, page_size);
  c.pooled_k.assign(static_cast<size_t>(slots * cfg.head_dim * DTypeSize(cfg.k_dtype)), 0);
  c.pooled_scale.assign(static_cast<size_t>(slots), 1.0f);
  const DecodeInputs in = c.Inputs();
  const Status status = BuildPooledKeysPaged(cfg, in.cache, in.seqs,
                                             {c.pooled_k.data(), c.pooled_scale.data(), slots});
  EXPECT_TRUE(status.ok()) << status.ToString();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Outputs with sentinels
// ---------------------------------------------------------------------------------------------

template <typename T>
class Guarded {
 public:
  Guarded(int64_t count, T fill) : data_(static_cast<size_t>(count + 2 * kGuard), fill) {
    std::fill(data_.begin(), data_.begin() + kGuard, Sentinel());
    std::fill(data_.end() - kGuard, data_.end(), Sentinel());
  }
  T* get() { return data_.data() + kGuard; }
  const T* get() const { return data_.data() + kGuard; }
  bool GuardsIntact() const {
    for (int64_t i = 0; i < kGuard; ++i) {
      if (std::memcmp(&data_[i], &kSentinel, sizeof(T)) != 0) return false;
      if (std::memcmp(&data_[data_.size() - 1 - i], &kSentinel, sizeof(T)) != 0) return false;
    }
    return true;
  }
  bool BitwiseEqual(const Guarded& other) const {
    return data_.size() == other.data_.size() &&
           std::memcmp(data_.data(), other.data_.data(), data_.size() * sizeof(T)) == 0;
  }

 private:
  static T Sentinel() {
    T value;
    std::memcpy(&value, &kSentinel, sizeof(T));
    return value;
  }
  std::vector<T> data_;
};

struct Outputs {
  Outputs(const IndexerConfig& cfg, int64_t rows, bool with_blocks)
      : indices(rows * cfg.top_k, kSentinel),
        blocks(with_blocks ? rows * cfg.block_budget : 0, kSentinel),
        scores(rows * cfg.top_k, 0.0f),
        with_blocks(with_blocks) {}
  TopkOutputs View() { return {indices.get(), with_blocks ? blocks.get() : nullptr, scores.get()}; }
  bool GuardsIntact() const {
    return indices.GuardsIntact() && blocks.GuardsIntact() && scores.GuardsIntact();
  }
  bool BitwiseEqual(const Outputs& other) const {
    return indices.BitwiseEqual(other.indices) && blocks.BitwiseEqual(other.blocks) &&
           scores.BitwiseEqual(other.scores);
  }

  Guarded<int32_t> indices, blocks;
  Guarded<float> scores;
  bool with_blocks;
};

// Rows are sorted best first: scores never increase, NaN only after every number, and padding
// slots hold NaN.
void ExpectSortedRows(const IndexerConfig& cfg, int64_t rows, const Outputs& out) {
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t* idx = out.indices.get() + t * cfg.top_k;
    const float* s = out.scores.get() + t * cfg.top_k;
    for (int32_t i = 0; i < cfg.top_k; ++i) {
      if (idx[i] < 0) {
        ASSERT_TRUE(std::isnan(s[i])) << "row " << t << " padding slot " << i;
        continue;
      }
      if (i > 0 && idx[i - 1] >= 0) {
        ASSERT_FALSE(std::isnan(s[i - 1]) && !std::isnan(s[i])) << "row " << t << " slot " << i;
        ASSERT_FALSE(s[i - 1] < s[i]) << "row " << t << " slot " << i;
      }
    }
  }
}

// Runs the whole test body once per kernel this CPU supports, then restores the default.
class CpuFastTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(cpu::ForceKernel(default_kernel_)); }

  template <class Body>
  void ForEachKernel(Body body) {
    for (const cpu::Kernel* kernel : cpu::SupportedKernels()) {
      ASSERT_TRUE(cpu::ForceKernel(kernel->name));
      ASSERT_STREQ(CpuKernelName(), kernel->name);
      SCOPED_TRACE(std::string("kernel ") + kernel->name);
      body();
      if (HasFatalFailure()) return;
    }
  }

  std::string default_kernel_ = cpu::ActiveKernel().name;
};

enum class Method { kFlat, kHisa };

IndexerConfig Config(int32_t heads, int32_t dim, DType q_dtype, DType k_dtype) {
  IndexerConfig cfg;
  cfg.num_heads = heads;
  cfg.head_dim = dim;
  cfg.q_dtype = q_dtype;
  cfg.k_dtype = k_dtype;
  cfg.top_k = 64;
  cfg.block_size = 16;
  cfg.block_budget = 8;
  return cfg;
}

CheckOptions Tolerance(const IndexerConfig& cfg, PositionBase base) {
  CheckOptions check;
  check.rel_tol = Float32RelTol(cfg);
  check.positions = base;
  return check;
}

// Runs a prefill case on the fast backend twice (all threads, then 3 threads) and checks it.
void RunPrefill(const PrefillCase& c, Method method, PositionBase base) {
  const IndexerConfig& cfg = c.cfg;
  const PrefillInputs in = c.Inputs();
  const bool hisa = method == Method::kHisa;
  Outputs first(cfg, in.num_queries, hisa), second(cfg, in.num_queries, hisa);
  for (Outputs* out : {&first, &second}) {
    RunOptions opts;
    opts.positions = base;
    opts.num_threads = out == &first ? 0 : 3;
    const Status status = hisa ? HisaTopkPrefill(cfg, in, c.Pooled(), out->View(), opts)
                               : FlatTopkPrefill(cfg, in, out->View(), opts);
    ASSERT_TRUE(status.ok()) << status.ToString();
    ASSERT_TRUE(out->GuardsIntact());
  }
  EXPECT_TRUE(first.BitwiseEqual(second));
  ExpectSortedRows(cfg, in.num_queries, first);
  const CheckOptions check = Tolerance(cfg, base);
  const CheckResult result =
      hisa ? CheckHisaPrefill(cfg, in, c.Pooled(), first.indices.get(), first.blocks.get(), check)
           : CheckFlatPrefill(cfg, in, first.indices.get(), check);
  EXPECT_TRUE(result.ok()) << result.rows_failed << " rows failed, " << result.first_failure;
}

void RunDecode(const DecodeCase& c, Method method, PositionBase base) {
  const IndexerConfig& cfg = c.cfg;
  const DecodeInputs in = c.Inputs();
  const int64_t rows = int64_t{in.seqs.num_seqs} * in.next_n;
  const bool hisa = method == Method::kHisa;
  Outputs first(cfg, rows, hisa), second(cfg, rows, hisa);
  for (Outputs* out : {&first, &second}) {
    RunOptions opts;
    opts.positions = base;
    opts.num_threads = out == &first ? 0 : 3;
    const Status status = hisa ? HisaTopkDecode(cfg, in, c.Pooled(), out->View(), opts)
                               : FlatTopkDecode(cfg, in, out->View(), opts);
    ASSERT_TRUE(status.ok()) << status.ToString();
    ASSERT_TRUE(out->GuardsIntact());
  }
  EXPECT_TRUE(first.BitwiseEqual(second));
  ExpectSortedRows(cfg, rows, first);
  const CheckOptions check = Tolerance(cfg, base);
  const CheckResult result =
      hisa ? CheckHisaDecode(cfg, in, c.Pooled(), first.indices.get(), first.blocks.get(), check)
           : CheckFlatDecode(cfg, in, first.indices.get(), check);
  EXPECT_TRUE(result.ok()) << result.rows_failed << " rows failed, " << result.first_failure;
}

// Shapes: H in {1, 8, 64}, D in {16, 100, 128}, both dtypes; sequence lengths scaled so that
// the reference check stays fast at H x D = 64 x 128.
struct Shape {
  int32_t heads, dim;
  DType q_dtype, k_dtype;
  std::vector<int32_t> lens;
};

std::vector<Shape> Shapes() {
  constexpr DType kFp8 = DType::kFp8E4M3, kBf16 = DType::kBf16;
  return {
      {1, 16, kFp8, kFp8, {700, 37, 64, 2100}}, {8, 100, kBf16, kBf16, {400, 1, 1300}},
      {64, 128, kFp8, kFp8, {90, 520, 17}},     {8, 128, kFp8, kBf16, {777, 250}},
      {64, 16, kBf16, kFp8, {300, 610}},        {1, 128, kBf16, kBf16, {1000, 333}},
      {64, 100, kFp8, kFp8, {260, 45}},
  };
}

std::string Describe(const Shape& shape, PositionBase base) {
  return "H=" + std::to_string(shape.heads) + " D=" + std::to_string(shape.dim) + " q " +
         DTypeName(shape.q_dtype) + " k " + DTypeName(shape.k_dtype) +
         (base == PositionBase::kRelative ? " relative" : " absolute");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

TEST_F(CpuFastTest, FlatAndHisaPrefillMatchReference) {
  ForEachKernel([&] {
    uint64_t seed = 1;
    for (const Shape& shape : Shapes()) {
      const IndexerConfig cfg = Config(shape.heads, shape.dim, shape.q_dtype, shape.k_dtype);
      const PositionBase base = seed % 2 ? PositionBase::kRelative : PositionBase::kAbsolute;
      SCOPED_TRACE(Describe(shape, base));
      const PrefillCase c = MakePrefill(cfg, shape.lens, 6, seed++);
      RunPrefill(c, Method::kFlat, base);
      RunPrefill(c, Method::kHisa, base);
    }
  });
}

TEST_F(CpuFastTest, FlatAndHisaDecodeMatchReference) {
  ForEachKernel([&] {
    uint64_t seed = 100;
    const int32_t next_ns[] = {1, 2, 4};
    for (const Shape& shape : Shapes()) {
      IndexerConfig cfg = Config(shape.heads, shape.dim, shape.q_dtype, shape.k_dtype);
      const int32_t page_size = seed % 2 ? 64 : 16;
      cfg.block_size = seed % 3 ? 16 : 32;  // B < P, B = P and B > P
      const int32_t next_n = next_ns[seed % 3];
      const PositionBase base = seed % 2 ? PositionBase::kAbsolute : PositionBase::kRelative;
      SCOPED_TRACE(Describe(shape, base) + " P=" + std::to_string(page_size) +
                   " B=" + std::to_string(cfg.block_size) + " next_n=" + std::to_string(next_n));
      std::vector<int32_t> lens = shape.lens;
      for (int32_t& len : lens) len = std::max(len, next_n);
      const DecodeCase c = MakeDecode(cfg, lens, page_size, next_n, seed++);
      RunDecode(c, Method::kFlat, base);
      RunDecode(c, Method::kHisa, base);
    }
  });
}

// Many queries per sequence: several groups share a sequence, so keys are packed once per call
// and each group scans its own chunks (for HISA, the blocks its queries selected).
TEST_F(CpuFastTest, ManyQueriesPerSequenceMatchReference) {
  ForEachKernel([&] {
    const IndexerConfig cfg = Config(8, 64, DType::kFp8E4M3, DType::kFp8E4M3);
    const PrefillCase c = MakePrefill(cfg, {1500, 600}, 40, 21);
    RunPrefill(c, Method::kFlat, PositionBase::kAbsolute);
    RunPrefill(c, Method::kHisa, PositionBase::kRelative);
  });
}

// One long sequence and more threads than queries: the key range is split across threads and
// the partial top-k lists merged; the result must not depend on the thread count.
TEST_F(CpuFastTest, SplitKeyRangeMatchesReference) {
  ForEachKernel([&] {
    IndexerConfig cfg = Config(8, 64, DType::kFp8E4M3, DType::kFp8E4M3);
    cfg.top_k = 300;
    cfg.block_size = 64;
    const DecodeCase c = MakeDecode(cfg, {4096}, 64, 2, 7);
    RunDecode(c, Method::kFlat, PositionBase::kRelative);
    RunDecode(c, Method::kHisa, PositionBase::kAbsolute);
  });
}

// NaN scores (NaN kscale, NaN FP8 codes in keys) rank below every number; a row where every
// score is NaN still selects k keys.
TEST_F(CpuFastTest, NanScoresRankLast) {
  ForEachKernel([&] {
    const IndexerConfig cfg = Config(8, 32, DType::kFp8E4M3, DType::kFp8E4M3);
    PrefillCase c = MakePrefill(cfg, {500, 300}, 3, 11);
    for (size_t s = 0; s < c.kscale.size(); s += 3) c.kscale[s] = std::nanf("");
    for (size_t s = 1; s < c.kscale.size(); s += 7) c.k[s * cfg.head_dim + 5] = 0x7F;  // NaN code
    for (int32_t s = c.seq_starts[1]; s < c.seq_starts[1] + c.seq_lens[1]; ++s) {
      c.kscale[s] = std::nanf("");  // every score of the second sequence is NaN
    }
    RunPrefill(c, Method::kFlat, PositionBase::kRelative);
    RunPrefill(c, Method::kHisa, PositionBase::kRelative);

    // Rows of the first sequence with k finite candidates select no NaN score.
    const PrefillInputs in = c.Inputs();
    Outputs out(cfg, in.num_queries, false);
    ASSERT_TRUE(FlatTopkPrefill(cfg, in, out.View()).ok());
    for (int64_t t = 0; t < in.num_queries; ++t) {
      if (in.ks[t] != c.seq_starts[0] || in.ke[t] - in.ks[t] < 2 * cfg.top_k) continue;
      for (int32_t i = 0; i < cfg.top_k; ++i) {
        EXPECT_FALSE(std::isnan(out.scores.get()[t * cfg.top_k + i])) << "row " << t;
      }
    }
  });
}

TEST_F(CpuFastTest, LogitsMatchReference) {
  ForEachKernel([&] {
    for (const Shape& shape : {Shapes()[1], Shapes()[2]}) {
      const IndexerConfig cfg = Config(shape.heads, shape.dim, shape.q_dtype, shape.k_dtype);
      const PrefillCase c = MakePrefill(cfg, {200, 90}, 3, 5);
      const PrefillInputs in = c.Inputs();
      const int64_t stride = in.keys.num_keys + 3;
      std::vector<float> fast(static_cast<size_t>(in.num_queries * stride), 7.0f);
      std::vector<float> ref = fast;
      RunOptions ref_opts;
      ref_opts.backend = Backend::kReference;
      ASSERT_TRUE(FlatLogitsPrefill(cfg, in, fast.data(), stride).ok());
      ASSERT_TRUE(FlatLogitsPrefill(cfg, in, ref.data(), stride, ref_opts).ok());
      for (int64_t t = 0; t < in.num_queries; ++t) {
        float row_max = 0.0f;
        for (int64_t s = 0; s < stride; ++s) {
          if (std::isfinite(ref[t * stride + s])) {
            row_max = std::max(row_max, std::fabs(ref[t * stride + s]));
          }
        }
        for (int64_t s = 0; s < stride; ++s) {
          const float a = fast[t * stride + s], b = ref[t * stride + s];
          if (!std::isfinite(b)) {
            ASSERT_EQ(std::memcmp(&a, &b, sizeof(float)), 0) << "row " << t << " key " << s;
          } else {
            ASSERT_NEAR(a, b, 1e-3f * row_max) << "row " << t << " key " << s;
          }
        }
      }
    }
  });
}

TEST_F(CpuFastTest, EmptyBatch) {
  ForEachKernel([&] {
    const IndexerConfig cfg = Config(8, 16, DType::kFp8E4M3, DType::kFp8E4M3);
    PrefillInputs in;
    int32_t index = kSentinel;
    EXPECT_TRUE(FlatTopkPrefill(cfg, in, {&index, nullptr, nullptr}).ok());
    EXPECT_EQ(index, kSentinel);
  });
}

// StreamTopk against core::TopkSelector, with every kernel's filter: scores with many exact ties
// (and NaN, -0), keys pushed in ascending position order one by one and in batches, k below, at
// and above the count.
TEST(StreamTopk, MatchesTopkSelector) {
  for (const cpu::Kernel* kernel : cpu::SupportedKernels()) {
    SCOPED_TRACE(kernel->name);
    std::mt19937_64 rng(3);
    for (int64_t n : {0, 1, 7, 300, 5000, 20000}) {
      for (int64_t k : {1, 2, 64, 2048, 30000}) {
        std::vector<float> scores(static_cast<size_t>(n));
        for (float& score : scores) {
          const uint64_t r = rng();
          score = r % 11 == 0 ? std::nanf("") : static_cast<float>(r % 500) - 100.0f;
          if (r % 13 == 0) score = -0.0f;
        }
        core::TopkSelector expected(k);
        cpu::StreamTopk got(kernel->keep_in_range);
        got.Reset(k);
        for (int64_t i = 0; i < n;) {
          if (i % 3 == 0) {  // a batch through Reserve / Commit
            const int64_t batch = std::min<int64_t>(32, n - i);
            uint64_t* out = got.Reserve(batch);
            for (int64_t j = 0; j < batch; ++j) out[j] = core::OrderKey(scores[i + j], i + j);
            got.Commit(batch);
            for (int64_t j = 0; j < batch; ++j) expected.Push(core::OrderKey(scores[i + j], i + j));
            i += batch;
          } else {
            got.Push(core::OrderKey(scores[i], i));
            expected.Push(core::OrderKey(scores[i], i));
            ++i;
          }
        }
        ASSERT_EQ(got.Finish(), expected.Finish()) << "n " << n << " k " << k;
      }
    }
  }
}

TEST(CpuKernels, ForceKernel) {
  const std::string active = cpu::ActiveKernel().name;
  EXPECT_FALSE(cpu::ForceKernel("no_such_kernel"));
  EXPECT_EQ(active, cpu::ActiveKernel().name);
  ASSERT_FALSE(cpu::SupportedKernels().empty());
  EXPECT_STREQ(cpu::SupportedKernels().back()->name, "scalar");
}

}  // namespace
}  // namespace hisa
