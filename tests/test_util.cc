#include "test_util.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "hisa/numeric.h"

namespace hisa::testutil {
namespace {

std::array<double, 256> MakeFp8Values() {
  std::array<double, 256> values{};
  for (int code = 0; code < 256; ++code) {
    const bool negative = (code & 0x80) != 0;
    const int exponent_field = (code >> 3) & 0xF;
    const int mantissa_field = code & 0x7;
    double magnitude;
    if (exponent_field == 15 && mantissa_field == 7) {
      magnitude = std::numeric_limits<double>::quiet_NaN();
    } else if (exponent_field == 0) {
      magnitude = mantissa_field / 512.0;  // 0.m * 2^(1 - 7)
    } else {
      magnitude = (8.0 + mantissa_field) / 8.0 * std::pow(2.0, exponent_field - 7);
    }
    values[code] = negative ? -magnitude : magnitude;
  }
  return values;
}

const std::array<double, 256> kFp8Values = MakeFp8Values();

}  // namespace

double Fp8Value(uint8_t code) {
  return kFp8Values[code];
}

double Bf16Value(uint16_t bits) {
  return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(bits) << 16));
}

double ElementValue(const void* data, DType dtype, int64_t i) {
  if (dtype == DType::kFp8E4M3) return Fp8Value(static_cast<const uint8_t*>(data)[i]);
  return Bf16Value(static_cast<const uint16_t*>(data)[i]);
}

uint8_t NearestFp8(double x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return sign | 0x7F;
  const double a = std::fabs(x);
  if (a >= 448.0) return sign | 0x7E;
  int best = 0;
  double best_distance = a;
  for (int code = 1; code <= 0x7E; ++code) {
    const double distance = std::fabs(Fp8Value(static_cast<uint8_t>(code)) - a);
    if (distance < best_distance || (distance == best_distance && (code % 2 == 0))) {
      best = code;
      best_distance = distance;
    }
  }
  return sign | static_cast<uint8_t>(best);
}

uint16_t NearestBf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x0040);
  if (std::isinf(x)) return static_cast<uint16_t>(bits >> 16);
  const uint16_t lo = static_cast<uint16_t>(bits >> 16);  // toward zero
  const uint16_t hi = static_cast<uint16_t>(lo + 1);      // away from zero (may be inf)
  const double v = std::fabs(static_cast<double>(x));
  const double v_lo = std::fabs(Bf16Value(lo));
  const double v_hi = std::fabs(Bf16Value(hi));  // inf for the step past the largest finite
  double d_hi = v_hi - v;
  if (std::isinf(v_hi)) {
    // Round to nearest with an unbounded exponent: the "next" value would be 2^128.
    d_hi = std::ldexp(1.0, 128) - v;
  }
  const double d_lo = v - v_lo;
  if (d_lo < d_hi) return lo;
  if (d_hi < d_lo) return hi;
  return (lo % 2 == 0) ? lo : hi;
}

double Ue8m0Scale(double amax) {
  if (amax == 0.0) return 1.0;
  const double target = amax / 448.0;
  double scale = std::ldexp(1.0, static_cast<int>(std::floor(std::log2(target))) - 2);
  while (scale < target) scale *= 2.0;
  return scale;
}

RunOptions Ref(PositionBase positions, int32_t threads) {
  RunOptions opts;
  opts.backend = Backend::kReference;
  opts.positions = positions;
  opts.num_threads = threads;
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------------------------

PrefillInputs Batch::Inputs() const {
  PrefillInputs in;
  in.q = q.data();
  in.w = w.data();
  in.keys = Keys();
  in.ks = ks.data();
  in.ke = ke.data();
  in.num_queries = num_queries;
  return in;
}

KeyRows Batch::Keys() const {
  KeyRows keys;
  keys.k = k.data();
  keys.kscale = null_kscale ? nullptr : kscale.data();
  keys.num_keys = num_keys;
  return keys;
}

namespace {

// Random key row: Gaussian values times a random gain, quantized per row.
void FillKeyRow(const IndexerConfig& cfg, ScaleRule rule, Rng& rng, float gain, uint8_t* out,
                float* scale) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> gain_dist(0.5f, 2.0f);
  const float row_gain = gain_dist(rng) * gain;
  std::vector<float> x(static_cast<size_t>(cfg.head_dim));
  for (float& v : x) v = normal(rng) * row_gain;
  if (cfg.k_dtype == DType::kFp8E4M3) {
    *scale = QuantizeRowFp8(x.data(), cfg.head_dim, rule, out);
  } else {
    auto* bf = reinterpret_cast<uint16_t*>(out);
    for (int32_t d = 0; d < cfg.head_dim; ++d) bf[d] = FloatToBf16(x[d]);
    *scale = 1.0f;
  }
}

}  // namespace

void Batch::RandomizeKey(int64_t row, Rng& rng, float gain) {
  float scale = 1.0f;
  FillKeyRow(cfg, ScaleRule::kAmax, rng, 1.0f, k.data() + row * KeyRowBytes(), &scale);
  kscale[row] = scale * gain;
}

void Batch::CopyKey(int64_t from, int64_t to) {
  std::memcpy(k.data() + to * KeyRowBytes(), k.data() + from * KeyRowBytes(),
              static_cast<size_t>(KeyRowBytes()));
  kscale[to] = kscale[from];
}

Batch MakeBatch(const IndexerConfig& cfg, const std::vector<int32_t>& seq_lens,
                const std::vector<std::vector<int32_t>>& query_lens, uint64_t seed,
                const BatchOptions& opts) {
  Rng rng(seed);
  Batch b;
  b.cfg = cfg;
  b.null_kscale = opts.null_kscale;
  std::uniform_int_distribution<int32_t> gap(0, std::max(0, opts.max_gap));
  int64_t row = 0;
  for (int32_t len : seq_lens) {
    row += opts.max_gap > 0 ? gap(rng) : 0;
    b.seq_starts.push_back(static_cast<int32_t>(row));
    b.seq_lens.push_back(len);
    row += len;
  }
  row += opts.max_gap > 0 ? gap(rng) : 0;
  b.num_keys = row;
  b.k.resize(static_cast<size_t>(b.num_keys * b.KeyRowBytes()));
  b.kscale.resize(static_cast<size_t>(b.num_keys));
  for (int64_t r = 0; r < b.num_keys; ++r) {
    FillKeyRow(cfg, opts.key_scale_rule, rng, 1.0f, b.k.data() + r * b.KeyRowBytes(), &b.kscale[r]);
  }
  for (size_t s = 0; s < query_lens.size(); ++s) {
    for (int32_t len : query_lens[s]) {
      b.ks.push_back(b.seq_starts[s]);
      b.ke.push_back(b.seq_starts[s] + len);
      b.query_seq.push_back(static_cast<int32_t>(s));
    }
  }
  b.num_queries = static_cast<int64_t>(b.ks.size());
  const int32_t heads = cfg.num_heads, dim = cfg.head_dim;
  b.q.resize(static_cast<size_t>(b.num_queries * b.QueryRowBytes()));
  b.w.resize(static_cast<size_t>(b.num_queries * heads));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(dim));
  for (int64_t t = 0; t < b.num_queries; ++t) {
    for (int32_t h = 0; h < heads; ++h) {
      for (float& v : x) v = normal(rng);
      const int64_t offset = (t * heads + h) * dim;
      float q_scale = 1.0f;
      if (cfg.q_dtype == DType::kFp8E4M3) {
        q_scale = QuantizeRowFp8(x.data(), dim, ScaleRule::kAmax, b.q.data() + offset);
      } else {
        auto* bf = reinterpret_cast<uint16_t*>(b.q.data()) + offset;
        for (int32_t d = 0; d < dim; ++d) bf[d] = FloatToBf16(x[d]);
      }
      const float gate = opts.mixed_weights ? normal(rng) : std::fabs(normal(rng)) + 0.05f;
      b.w[static_cast<size_t>(t * heads + h)] = gate * q_scale;
    }
  }
  return b;
}

std::vector<int32_t> SpreadLengths(int32_t seq_len, int32_t count, Rng& rng) {
  std::vector<int32_t> lens;
  if (seq_len <= 0) return lens;
  lens.push_back(1);
  if (seq_len > 1) lens.push_back(seq_len);
  std::uniform_int_distribution<int32_t> dist(1, seq_len);
  while (static_cast<int32_t>(lens.size()) < count) lens.push_back(dist(rng));
  std::sort(lens.begin(), lens.end());
  return lens;
}

// ---------------------------------------------------------------------------------------------
// Oracle
// ---------------------------------------------------------------------------------------------

Scorer::Scorer(const IndexerConfig& cfg, const void* q, const float* w) : cfg_(cfg) {
  const int64_t n = int64_t{cfg.num_heads} * cfg.head_dim;
  q_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) q_[i] = ElementValue(q, cfg.q_dtype, i);
  w_.assign(w, w + cfg.num_heads);
}

Scorer::Scorer(const Batch& batch, int64_t t)
    : Scorer(batch.cfg, batch.q.data() + t * batch.QueryRowBytes(),
             batch.w.data() + t * batch.cfg.num_heads) {}

double Scorer::Score(const void* k_rows, int64_t row, double kscale) const {
  const int32_t dim = cfg_.head_dim;
  std::vector<double>& key = key_;
  key.resize(static_cast<size_t>(dim));
  for (int32_t d = 0; d < dim; ++d) key[d] = ElementValue(k_rows, cfg_.k_dtype, row * dim + d);
  double sum = 0.0;
  for (int32_t h = 0; h < cfg_.num_heads; ++h) {
    double dot = 0.0;
    for (int32_t d = 0; d < dim; ++d) dot += q_[static_cast<size_t>(h) * dim + d] * key[d];
    const double relu = dot > 0.0 ? dot : 0.0;  // NaN > 0 is false: ReLU(NaN) = 0
    sum += w_[h] * relu;
  }
  return kscale * sum;
}

std::vector<double> BruteScores(const Batch& batch, int64_t t) {
  const Scorer scorer(batch, t);
  std::vector<double> scores(static_cast<size_t>(batch.Length(t)));
  for (int64_t pos = 0; pos < batch.Length(t); ++pos) {
    const int64_t row = batch.ks[t] + pos;
    scores[pos] = scorer.Score(batch.k.data(), row, batch.Scale(row));
  }
  return scores;
}

bool Ahead(double a, int64_t pos_a, double b, int64_t pos_b) {
  if (std::isnan(a) != std::isnan(b)) return std::isnan(b);
  if (!std::isnan(a) && a != b) return a > b;
  return pos_a < pos_b;
}

std::vector<int64_t> BruteTopk(const std::vector<double>& scores,
                               const std::vector<int64_t>& positions, int64_t k) {
  std::vector<size_t> order(positions.size());
  std::iota(order.begin(), order.end(), size_t{0});
  const size_t keep = std::min(order.size(), static_cast<size_t>(std::max<int64_t>(k, 0)));
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](size_t a, size_t b) {
    return Ahead(scores[a], positions[a], scores[b], positions[b]);
  });
  std::vector<int64_t> out;
  for (size_t i = 0; i < keep; ++i) out.push_back(positions[order[i]]);
  return out;
}

std::vector<int64_t> BruteFlat(const Batch& batch, int64_t t) {
  return BruteFlat(batch, BruteScores(batch, t));
}

std::vector<int64_t> BruteFlat(const Batch& batch, const std::vector<double>& scores) {
  std::vector<int64_t> positions(scores.size());
  std::iota(positions.begin(), positions.end(), int64_t{0});
  return BruteTopk(scores, positions, batch.cfg.top_k);
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

std::vector<int32_t> RowOf(const int32_t* data, int64_t t, int64_t width) {
  return std::vector<int32_t>(data + t * width, data + (t + 1) * width);
}

std::vector<float> RowOf(const float* data, int64_t t, int64_t width) {
  return std::vector<float>(data + t * width, data + (t + 1) * width);
}

std::vector<int64_t> SortedEntries(const std::vector<int32_t>& row) {
  std::vector<int64_t> out;
  bool padding = false;
  for (int32_t v : row) {
    if (v == -1) {
      padding = true;
      continue;
    }
    EXPECT_FALSE(padding) << "entry " << v << " after -1 padding";
    EXPECT_GE(v, 0) << "negative entry other than -1";
    out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> Sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void ExpectRow(const std::vector<int32_t>& row, const std::vector<float>* scores,
               const std::vector<int64_t>& expected, const std::vector<double>& brute,
               const std::string& what) {
  EXPECT_EQ(SortedEntries(row), Sorted(expected)) << what;
  int64_t valid = 0;
  for (int32_t v : row) valid += v >= 0 ? 1 : 0;
  EXPECT_EQ(valid, static_cast<int64_t>(expected.size())) << what;
  if (scores == nullptr) return;
  ASSERT_EQ(scores->size(), row.size());
  for (size_t i = 0; i < row.size(); ++i) {
    const float got = (*scores)[i];
    if (row[i] < 0 || row[i] >= static_cast<int32_t>(brute.size())) {
      EXPECT_TRUE(std::isnan(got)) << what << ": slot " << i << " unused but scored " << got;
      continue;
    }
    const float want = static_cast<float>(brute[static_cast<size_t>(row[i])]);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << what << ": slot " << i;
    } else {
      EXPECT_EQ(got, want) << what << ": score of position " << row[i];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs and pooled buffers
// ---------------------------------------------------------------------------------------------

Outputs::Outputs(const IndexerConfig& cfg, int64_t num_queries, bool blocks_, bool scores_)
    : indices(static_cast<size_t>(num_queries * cfg.top_k)),
      blocks(static_cast<size_t>(blocks_ ? num_queries * cfg.block_budget : 0)),
      scores(static_cast<size_t>(scores_ ? num_queries * cfg.top_k : 0)),
      with_blocks(blocks_),
      with_scores(scores_) {}

TopkOutputs Outputs::View() {
  TopkOutputs out;
  out.indices = indices.data();
  out.blocks = with_blocks ? blocks.data() : nullptr;
  out.scores = with_scores ? scores.data() : nullptr;
  return out;
}

TopkOutputs Outputs::FlatView() {
  TopkOutputs out = View();
  out.blocks = nullptr;
  return out;
}

::testing::AssertionResult Outputs::GuardsIntact() const {
  if (auto r = indices.GuardsIntact(); !r) return r << " (indices)";
  if (auto r = blocks.GuardsIntact(); !r) return r << " (blocks)";
  if (auto r = scores.GuardsIntact(); !r) return r << " (scores)";
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Outputs::Untouched() const {
  if (auto r = indices.Untouched(); !r) return r << " (indices)";
  if (auto r = blocks.Untouched(); !r) return r << " (blocks)";
  if (auto r = scores.Untouched(); !r) return r << " (scores)";
  return ::testing::AssertionSuccess();
}

PooledBuffer::PooledBuffer(const IndexerConfig& cfg, int64_t slots)
    : num_slots(slots),
      row_bytes(int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype)),
      k(static_cast<size_t>(slots * row_bytes)),
      kscale(static_cast<size_t>(slots)) {}

PooledKeys PooledBuffer::View() {
  PooledKeys p;
  p.k = k.data();
  p.kscale = kscale.data();
  p.num_slots = num_slots;
  return p;
}

ConstPooledKeys PooledBuffer::ConstView() const {
  return ConstPooledKeys(k.data(), kscale.data(), num_slots);
}

bool PooledBuffer::SlotIsSentinel(int64_t slot) const {
  if (!kscale.IsSentinel(static_cast<size_t>(slot))) return false;
  for (int64_t i = 0; i < row_bytes; ++i) {
    if (!k.IsSentinel(static_cast<size_t>(slot * row_bytes + i))) return false;
  }
  return true;
}

std::vector<uint8_t> PooledBuffer::SlotBytes(int64_t slot) const {
  return std::vector<uint8_t>(k.data() + slot * row_bytes, k.data() + (slot + 1) * row_bytes);
}

// ---------------------------------------------------------------------------------------------
// Pooled keys
// ---------------------------------------------------------------------------------------------

PooledKey ExpectedPooledKey(const IndexerConfig& cfg, const void* k_rows, const float* kscale,
                            const std::vector<int64_t>& rows) {
  const int32_t dim = cfg.head_dim;
  std::vector<float> sum(static_cast<size_t>(dim), 0.0f);
  for (int64_t row : rows) {
    const float scale = kscale ? kscale[row] : 1.0f;
    for (int32_t d = 0; d < dim; ++d) {
      const float value = static_cast<float>(ElementValue(k_rows, cfg.k_dtype, row * dim + d));
      const float product = value * scale;  // rounded to float32
      sum[d] = sum[d] + product;            // rounded to float32
    }
  }
  std::vector<float> mean(static_cast<size_t>(dim));
  for (int32_t d = 0; d < dim; ++d) mean[d] = sum[d] / static_cast<float>(rows.size());
  PooledKey out;
  out.k.resize(static_cast<size_t>(dim * DTypeSize(cfg.k_dtype)));
  if (cfg.k_dtype == DType::kBf16) {
    auto* bf = reinterpret_cast<uint16_t*>(out.k.data());
    for (int32_t d = 0; d < dim; ++d) bf[d] = NearestBf16(mean[d]);
    out.scale = 1.0f;
    return out;
  }
  float amax = 0.0f;
  for (float v : mean) amax = std::max(amax, std::fabs(v));
  float scale = 1.0f;
  if (amax > 0.0f) {
    scale = cfg.pooled_scale_rule == ScaleRule::kAmax ? amax / 448.0f
                                                      : static_cast<float>(Ue8m0Scale(amax));
  }
  for (int32_t d = 0; d < dim; ++d) out.k[d] = NearestFp8(static_cast<double>(mean[d] / scale));
  out.scale = scale;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Paged cache
// ---------------------------------------------------------------------------------------------

PagedKeys PagedCache::Keys() const {
  PagedKeys keys;
  keys.k = k.data();
  keys.kscale = kscale.data();
  keys.num_pages = num_pages;
  keys.page_size = page_size;
  return keys;
}

PagedSequences PagedCache::Seqs() const {
  PagedSequences seqs;
  seqs.block_table = block_table.data();
  seqs.max_pages_per_seq = max_pages_per_seq;
  seqs.context_lens = context_lens.data();
  seqs.num_seqs = num_seqs();
  return seqs;
}

int64_t PagedCache::PooledSlot(int32_t b, int64_t j) const {
  const int32_t block = cfg.block_size;
  const int64_t first_pos = j * block;
  if (block >= page_size) return Page(b, first_pos);  // one slot per page, the block's first
  const int32_t per_page = page_size / block;
  return int64_t{Page(b, first_pos)} * per_page + j % per_page;
}

void PagedCache::Garbage(int64_t row, Rng& rng) {
  const int64_t row_bytes = int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int64_t i = 0; i < row_bytes; ++i) {
    uint8_t v = static_cast<uint8_t>(byte(rng));
    if (cfg.k_dtype == DType::kFp8E4M3 && (v & 0x7F) == 0x7F) v = 0x7E;  // keep it finite
    if (cfg.k_dtype == DType::kBf16 && (i % 2 == 1)) v = static_cast<uint8_t>(v & 0x43);  // tame
    k[static_cast<size_t>(row * row_bytes + i)] = v;
  }
  kscale[static_cast<size_t>(row)] = 1000.0f;
}

PagedCache MakePagedCache(const Batch& batch, int32_t page_size, uint64_t seed,
                          int32_t spare_pages) {
  Rng rng(seed);
  PagedCache c;
  c.cfg = batch.cfg;
  c.page_size = page_size;
  const int32_t num_seqs = static_cast<int32_t>(batch.seq_lens.size());
  int64_t needed = 0;
  for (int32_t len : batch.seq_lens) {
    const int32_t pages = (len + page_size - 1) / page_size;
    needed += pages;
    c.max_pages_per_seq = std::max(c.max_pages_per_seq, pages);
  }
  c.max_pages_per_seq += 1;  // an unused entry in every row
  c.num_pages = needed + spare_pages;
  const int64_t row_bytes = batch.KeyRowBytes();
  c.k.resize(static_cast<size_t>(c.num_pages * page_size * row_bytes));
  c.kscale.resize(static_cast<size_t>(c.num_pages * page_size));
  for (int64_t row = 0; row < c.num_pages * page_size; ++row) c.Garbage(row, rng);
  std::vector<int32_t> pages(static_cast<size_t>(c.num_pages));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  const int32_t garbage_page = pages.back();  // never assigned when spare_pages > 0
  c.block_table.assign(static_cast<size_t>(num_seqs) * c.max_pages_per_seq,
                       spare_pages > 0 ? garbage_page : 0);
  size_t next = 0;
  for (int32_t b = 0; b < num_seqs; ++b) {
    const int32_t len = batch.seq_lens[b];
    const int32_t count = (len + page_size - 1) / page_size;
    for (int32_t i = 0; i < count; ++i) {
      c.block_table[static_cast<size_t>(b) * c.max_pages_per_seq + i] = pages[next++];
    }
    for (int64_t pos = 0; pos < len; ++pos) {
      const int64_t src = batch.seq_starts[b] + pos;
      const int64_t dst = c.PhysicalRow(b, pos);
      std::memcpy(c.k.data() + dst * row_bytes, batch.k.data() + src * row_bytes,
                  static_cast<size_t>(row_bytes));
      c.kscale[static_cast<size_t>(dst)] = batch.Scale(src);
    }
    c.context_lens.push_back(len);
  }
  return c;
}

DecodeInputs DecodeView(const Batch& batch, const PagedCache& cache, int32_t next_n) {
  DecodeInputs in;
  in.q = batch.q.data();
  in.w = batch.w.data();
  in.cache = cache.Keys();
  in.seqs = cache.Seqs();
  in.next_n = next_n;
  return in;
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

::testing::AssertionResult IsInvalid(const Status& status, const std::vector<std::string>& parts) {
  if (status.code() != StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "expected invalid argument, got " << status.ToString();
  }
  for (const std::string& part : parts) {
    if (status.message().find(part) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message \"" << status.message() << "\" does not contain \"" << part << "\"";
    }
  }
  return ::testing::AssertionSuccess() << status.message();
}

}  // namespace hisa::testutil
