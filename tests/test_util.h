// Shared helpers for the hisa test suite: random FP8/BF16 problems with a fixed seed, packed
// prefill batches, paged caches with random block tables, outputs with sentinel guard zones, and
// an independent float64 oracle of the contract (SPEC.md) that does not call into the library's
// arithmetic.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "hisa/hisa.h"
#include "hisa/types.h"

namespace hisa::testutil {

using Rng = std::mt19937_64;

// ---------------------------------------------------------------------------------------------
// Number formats, computed independently of src/core/numeric.cc
// ---------------------------------------------------------------------------------------------

/// Value of an FP8 E4M3 "fn" code from its bit fields (NaN for 0x7F and 0xFF).
double Fp8Value(uint8_t code);

/// Value of a bfloat16 bit pattern.
double Bf16Value(uint16_t bits);

/// Value of element i of a q/k buffer.
double ElementValue(const void* data, DType dtype, int64_t i);

/// The FP8 code nearest to x by exhaustive search over the finite codes, ties to the even code;
/// |x| >= 448 (and infinities) saturate; NaN gives 0x7F / 0xFF by sign.
uint8_t NearestFp8(double x);

/// The bfloat16 nearest to a float by comparing the two neighbours, ties to even; NaN stays NaN.
uint16_t NearestBf16(float x);

/// Smallest power of two >= amax / 448 computed in float64 (1 for amax == 0).
double Ue8m0Scale(double amax);

// ---------------------------------------------------------------------------------------------
// Run options
// ---------------------------------------------------------------------------------------------

/// The reference backend with the given position base and thread count (0: all threads).
RunOptions Ref(PositionBase positions = PositionBase::kRelative, int32_t threads = 0);

/// A small, fast shape: H = 4, D = 32, B = 16, m = 4.
inline IndexerConfig SmallConfig(int32_t top_k = 32) {
  IndexerConfig cfg;
  cfg.num_heads = 4;
  cfg.head_dim = 32;
  cfg.top_k = top_k;
  cfg.block_size = 16;
  cfg.block_budget = 4;
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// A packed prefill batch with owned storage
// ---------------------------------------------------------------------------------------------

struct BatchOptions {
  bool mixed_weights = false;                   ///< w of both signs (else w > 0)
  int32_t max_gap = 0;                          ///< rows of no sequence before each sequence
  ScaleRule key_scale_rule = ScaleRule::kAmax;  ///< FP8 key scales
  bool null_kscale = false;                     ///< BF16 keys only: pass kscale = null
};

struct Batch {
  IndexerConfig cfg;
  std::vector<uint8_t> q;                     // [T, H, D] q_dtype
  std::vector<float> w;                       // [T, H]
  std::vector<uint8_t> k;                     // [N, D] k_dtype
  std::vector<float> kscale;                  // [N]
  std::vector<int32_t> ks, ke;                // [T]
  std::vector<int32_t> seq_starts, seq_lens;  // [S]
  std::vector<int32_t> query_seq;             // [T] sequence of each query
  int64_t num_queries = 0;
  int64_t num_keys = 0;
  bool null_kscale = false;

  PrefillInputs Inputs() const;
  KeyRows Keys() const;
  int64_t Length(int64_t t) const { return int64_t{ke[t]} - ks[t]; }
  int64_t KeyRowBytes() const { return int64_t{cfg.head_dim} * DTypeSize(cfg.k_dtype); }
  int64_t QueryRowBytes() const {
    return int64_t{cfg.num_heads} * cfg.head_dim * DTypeSize(cfg.q_dtype);
  }
  float Scale(int64_t row) const { return null_kscale ? 1.0f : kscale[row]; }

  /// Overwrites key row `row` with fresh random values (and scale times `gain`).
  void RandomizeKey(int64_t row, Rng& rng, float gain = 1.0f);
  /// Copies key row `from` (values and scale) onto row `to`.
  void CopyKey(int64_t from, int64_t to);
};

/// Sequences of seq_lens keys packed into one key array (with random gaps when opts.max_gap > 0);
/// sequence b gets one query for each entry of query_lens[b], seeing that many keys (0: empty
/// row). Queries are numbered sequence-major.
Batch MakeBatch(const IndexerConfig& cfg, const std::vector<int32_t>& seq_lens,
                const std::vector<std::vector<int32_t>>& query_lens, uint64_t seed,
                const BatchOptions& opts = {});

/// `count` visible lengths in [1, seq_len], always including 1 and seq_len, ascending.
std::vector<int32_t> SpreadLengths(int32_t seq_len, int32_t count, Rng& rng);

// ---------------------------------------------------------------------------------------------
// The oracle: float64 scores and brute-force top-k
// ---------------------------------------------------------------------------------------------

/// One query decoded to float64: I(t, s) = kscale * sum_h w_h ReLU(q_h . k_s), heads in order.
class Scorer {
 public:
  Scorer(const IndexerConfig& cfg, const void* q /* [H, D] */, const float* w /* [H] */);
  Scorer(const Batch& batch, int64_t t);
  double Score(const void* k_rows, int64_t row, double kscale) const;

 private:
  IndexerConfig cfg_;
  std::vector<double> q_;            // [H, D]
  std::vector<double> w_;            // [H]
  mutable std::vector<double> key_;  // [D] scratch
};

/// I(t, ks[t] + pos) for pos in [0, Length(t)).
std::vector<double> BruteScores(const Batch& batch, int64_t t);

/// True if (a, pos_a) ranks ahead of (b, pos_b): higher score, NaN last, then lower position.
bool Ahead(double a, int64_t pos_a, double b, int64_t pos_b);

/// The k best of the candidate positions (scores[i] belongs to positions[i]), best first.
std::vector<int64_t> BruteTopk(const std::vector<double>& scores,
                               const std::vector<int64_t>& positions, int64_t k);

/// Flat brute force for query t: the top_k relative positions, best first.
std::vector<int64_t> BruteFlat(const Batch& batch, int64_t t);
/// The same from query t's BruteScores.
std::vector<int64_t> BruteFlat(const Batch& batch, const std::vector<double>& scores);

// ---------------------------------------------------------------------------------------------
// Output rows
// ---------------------------------------------------------------------------------------------

/// Row t of a [T, width] array.
std::vector<int32_t> RowOf(const int32_t* data, int64_t t, int64_t width);
std::vector<float> RowOf(const float* data, int64_t t, int64_t width);

/// The non-negative entries of a row, sorted; fails the test if a -1 precedes a valid entry.
std::vector<int64_t> SortedEntries(const std::vector<int32_t>& row);

/// Sorted copy.
std::vector<int64_t> Sorted(std::vector<int64_t> v);

/// Bitwise equality of two float vectors (NaN == NaN of the same bits).
bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b);

/// A row of relative indices holds exactly the positions `expected` (as a set) followed by -1
/// padding, and its scores (when not null) are float(brute[pos]) for each entry and NaN in the
/// unused slots.
void ExpectRow(const std::vector<int32_t>& row, const std::vector<float>* scores,
               const std::vector<int64_t>& expected, const std::vector<double>& brute,
               const std::string& what);

// ---------------------------------------------------------------------------------------------
// Buffers with sentinel guard zones
// ---------------------------------------------------------------------------------------------

inline constexpr uint8_t kSentinelByte = 0xCD;

/// n elements with kGuard elements of sentinel bytes on each side; the interior starts as
/// sentinel bytes too, so "nothing written" and "nothing written outside" are both checkable.
template <typename T>
class Guarded {
 public:
  static constexpr size_t kGuard = 64;
  explicit Guarded(size_t n = 0) : n_(n), storage_(n + 2 * kGuard) { Reset(); }

  void Reset() { std::memset(storage_.data(), kSentinelByte, storage_.size() * sizeof(T)); }
  T* data() { return storage_.data() + kGuard; }
  const T* data() const { return storage_.data() + kGuard; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  std::vector<T> Interior() const { return std::vector<T>(data(), data() + n_); }

  /// Both guard zones still hold sentinel bytes.
  ::testing::AssertionResult GuardsIntact() const {
    const auto* bytes = reinterpret_cast<const uint8_t*>(storage_.data());
    const size_t guard_bytes = kGuard * sizeof(T);
    const size_t tail = (kGuard + n_) * sizeof(T);
    for (size_t i = 0; i < guard_bytes; ++i) {
      if (bytes[i] != kSentinelByte) {
        return ::testing::AssertionFailure() << "byte " << i << " of the front guard written";
      }
      if (bytes[tail + i] != kSentinelByte) {
        return ::testing::AssertionFailure() << "byte " << i << " of the back guard written";
      }
    }
    return ::testing::AssertionSuccess();
  }

  /// Nothing at all was written (interior and guards).
  ::testing::AssertionResult Untouched() const {
    const auto* bytes = reinterpret_cast<const uint8_t*>(storage_.data());
    for (size_t i = 0; i < storage_.size() * sizeof(T); ++i) {
      if (bytes[i] != kSentinelByte) {
        return ::testing::AssertionFailure()
               << "byte " << i << " of " << storage_.size() * sizeof(T) << " written";
      }
    }
    return ::testing::AssertionSuccess();
  }

  /// Element i still holds sentinel bytes.
  bool IsSentinel(size_t i) const {
    const auto* bytes = reinterpret_cast<const uint8_t*>(data() + i);
    for (size_t b = 0; b < sizeof(T); ++b) {
      if (bytes[b] != kSentinelByte) return false;
    }
    return true;
  }

 private:
  size_t n_;
  std::vector<T> storage_;
};

/// Top-k outputs of a [T] batch, all guarded.
struct Outputs {
  Outputs(const IndexerConfig& cfg, int64_t num_queries, bool with_blocks = true,
          bool with_scores = true);
  Guarded<int32_t> indices;
  Guarded<int32_t> blocks;
  Guarded<float> scores;
  bool with_blocks, with_scores;
  TopkOutputs View();      // blocks (if any) included
  TopkOutputs FlatView();  // blocks left null
  ::testing::AssertionResult GuardsIntact() const;
  ::testing::AssertionResult Untouched() const;
};

/// A pooled-key cache with guarded storage, every slot starting as sentinel bytes.
struct PooledBuffer {
  PooledBuffer(const IndexerConfig& cfg, int64_t num_slots);
  int64_t num_slots;
  int64_t row_bytes;
  Guarded<uint8_t> k;
  Guarded<float> kscale;
  PooledKeys View();
  ConstPooledKeys ConstView() const;
  bool SlotIsSentinel(int64_t slot) const;
  std::vector<uint8_t> SlotBytes(int64_t slot) const;
};

// ---------------------------------------------------------------------------------------------
// Pooled keys, computed independently
// ---------------------------------------------------------------------------------------------

struct PooledKey {
  std::vector<uint8_t> k;  // [D] k_dtype bytes
  float scale = 1.0f;
};

/// kbar = (float32 sum in order of float(k) * kscale, each step rounded) / B, re-quantized: FP8
/// with scale amax / 448 (or the ue8m0 power of two), or BF16 with scale 1.
PooledKey ExpectedPooledKey(const IndexerConfig& cfg, const void* k_rows,
                            const float* kscale /* null: 1 */, const std::vector<int64_t>& rows);

// ---------------------------------------------------------------------------------------------
// A paged cache holding the sequences of a batch
// ---------------------------------------------------------------------------------------------

struct PagedCache {
  IndexerConfig cfg;
  int32_t page_size = 0;
  int32_t max_pages_per_seq = 0;
  int64_t num_pages = 0;
  std::vector<uint8_t> k;             // [num_pages, P, D]
  std::vector<float> kscale;          // [num_pages, P]
  std::vector<int32_t> block_table;   // [num_seqs, max_pages_per_seq]
  std::vector<int32_t> context_lens;  // [num_seqs]

  PagedKeys Keys() const;
  PagedSequences Seqs() const;
  int32_t num_seqs() const { return static_cast<int32_t>(context_lens.size()); }
  int32_t Page(int32_t b, int64_t pos) const {
    return block_table[static_cast<size_t>(b) * max_pages_per_seq + pos / page_size];
  }
  /// Physical slot page * P + offset of position pos of sequence b.
  int64_t PhysicalRow(int32_t b, int64_t pos) const {
    return int64_t{Page(b, pos)} * page_size + pos % page_size;
  }
  /// Pooled slot of block j of sequence b, from the layout in types.h.
  int64_t PooledSlot(int32_t b, int64_t j) const;
  /// Overwrites token slot `row` with random garbage (keys and a large scale).
  void Garbage(int64_t row, Rng& rng);
};

/// Copies each sequence of the batch into pages of page_size tokens, pages taken in random order
/// from a pool with `spare_pages` extra pages of garbage; unused token slots hold garbage and
/// unused block-table entries name a garbage page.
PagedCache MakePagedCache(const Batch& batch, int32_t page_size, uint64_t seed,
                          int32_t spare_pages = 3);

/// Decode inputs over a paged cache whose next_n * num_seqs query rows are the batch's queries.
DecodeInputs DecodeView(const Batch& batch, const PagedCache& cache, int32_t next_n);

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

/// status is kInvalidArgument and its message contains every one of `parts`.
::testing::AssertionResult IsInvalid(const Status& status, const std::vector<std::string>& parts);

}  // namespace hisa::testutil
