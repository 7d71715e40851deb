#include "cpu/stream_topk.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <vector>

namespace hisa::cpu {
namespace {

constexpr int kSelectBits = 8;   // digit width of the radix select
constexpr int kSortBits = 11;    // widest digit of the radix sort
constexpr int kScoreShift = 32;  // the score bits of a key

uint32_t Digit(uint64_t key, int shift, uint32_t mask) {
  return static_cast<uint32_t>(key >> shift) & mask;
}

// Bits in which some key differs from keys[0].
uint64_t DifferingBits(const uint64_t* keys, int64_t n) {
  uint64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) differ |= keys[i] ^ keys[0];
  return differ;
}

// Histogram of one 8-bit digit. Four interleaved tables for long inputs: runs of one digit would
// otherwise chain every increment through the same counter.
void CountDigit(const uint64_t* keys, int64_t n, int shift, uint32_t count[256]) {
  if (n < 1024) {
    std::fill(count, count + 256, 0);
    for (int64_t i = 0; i < n; ++i) ++count[Digit(keys[i], shift, 0xFF)];
    return;
  }
  uint32_t partial[4][256] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) ++partial[j][Digit(keys[i + j], shift, 0xFF)];
  }
  for (; i < n; ++i) ++partial[0][Digit(keys[i], shift, 0xFF)];
  for (int b = 0; b < 256; ++b) {
    count[b] = partial[0][b] + partial[1][b] + partial[2][b] + partial[3][b];
  }
}

}  // namespace

int64_t KeepInRange(const uint64_t* keys, int64_t n, uint64_t lo, uint64_t hi, uint64_t* out) {
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {  // branch-free: every key is written, the index advances
    const uint64_t key = keys[i];
    out[kept] = key;
    kept += key >= lo && key <= hi;
  }
  return kept;
}

uint64_t KthLargest(const uint64_t* keys, int64_t n, int64_t k, uint64_t* scratch,
                    KeepInRangeFn keep) {
  const uint64_t differ = DifferingBits(keys, n);
  if (differ == 0) return keys[0];
  // The first digit ends at the highest bit where the keys differ; bits above it are shared.
  int shift = std::max(63 - std::countl_zero(differ) - (kSelectBits - 1), 0);
  const uint64_t* candidates = keys;  // the keys that share the bits above the digit
  uint32_t count[256];
  for (;;) {
    CountDigit(candidates, n, shift, count);
    uint32_t boundary = 255;  // the digit of the k-th largest
    while (count[boundary] < k) k -= count[boundary--];
    const int64_t in_bucket = count[boundary];
    // At the last digit, or with the bucket's largest or smallest asked for, scan the bucket.
    if (shift == 0 || k == 1 || k == in_bucket) {
      uint64_t best = k == 1 ? 0 : std::numeric_limits<uint64_t>::max();
      for (int64_t i = 0; i < n; ++i) {
        if (Digit(candidates[i], shift, 0xFF) != boundary) continue;
        best = k == 1 ? std::max(best, candidates[i]) : std::min(best, candidates[i]);
      }
      return best;
    }
    // The bucket's keys move to scratch: the candidates share the bits above the digit, so the
    // bucket is a range of keys.
    const int top = shift + kSelectBits;
    const uint64_t shared = top >= 64 ? 0 : candidates[0] >> top << top;
    const uint64_t lo = shared | uint64_t{boundary} << shift;
    keep(candidates, n, lo, lo | ((uint64_t{1} << shift) - 1), scratch);
    candidates = scratch;
    n = in_bucket;
    shift = std::max(shift - kSelectBits, 0);
  }
}

void StableSortByScore(uint64_t* keys, int64_t n, uint64_t* scratch) {
  if (n < 2) return;
  // Digits of equal width, at most kSortBits, over the score bits up to the highest that differs.
  const uint64_t differ = DifferingBits(keys, n) >> kScoreShift;
  if (differ == 0) return;
  const int bits = 64 - std::countl_zero(differ);
  const int passes = (bits + kSortBits - 1) / kSortBits;
  const int width = (bits + passes - 1) / passes;
  const uint32_t mask = (uint32_t{1} << width) - 1;
  std::vector<uint32_t> count(static_cast<size_t>(passes) << width, 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int p = 0; p < passes; ++p) {
      ++count[(static_cast<size_t>(p) << width) + Digit(keys[i], kScoreShift + p * width, mask)];
    }
  }
  // Stable passes from the least significant digit, buckets from the largest digit down.
  uint64_t* from = keys;
  uint64_t* to = scratch;
  for (int p = 0; p < passes; ++p) {
    uint32_t* offset = count.data() + (static_cast<size_t>(p) << width);
    uint32_t next = 0;
    for (int64_t b = mask; b >= 0; --b) {
      const uint32_t here = offset[b];
      offset[b] = next;
      next += here;
    }
    const int shift = kScoreShift + p * width;
    for (int64_t i = 0; i < n; ++i) to[offset[Digit(from[i], shift, mask)]++] = from[i];
    std::swap(from, to);
  }
  if (from != keys) std::memcpy(keys, from, static_cast<size_t>(n) * sizeof(uint64_t));
}

void StreamTopk::Reset(int64_t k) {
  k_ = k;
  threshold_ = 0;
  size_ = 0;
  capacity_ = static_cast<size_t>(2 * k + 256);
}

void StreamTopk::Grow(size_t n) {
  if (size_ + n > capacity_) Compact();  // leaves at most k keys: room for 256 more
  if (size_ + n > keys_.size()) {
    keys_.resize(std::min(capacity_, std::max(size_ + n, 2 * keys_.size())));
  }
}

void StreamTopk::Compact() {
  if (k_ == 0) {
    size_ = 0;
    threshold_ = std::numeric_limits<uint64_t>::max();
    return;
  }
  const int64_t size = static_cast<int64_t>(size_);
  if (scratch_.size() < size_) scratch_.resize(size_);
  const uint64_t kth = KthLargest(keys_.data(), size, k_, scratch_.data(), keep_);
  size_ = static_cast<size_t>(
      keep_(keys_.data(), size, kth, std::numeric_limits<uint64_t>::max(), keys_.data()));
  threshold_ = kth;  // the k-th largest kept: a new key must beat it
}

const std::vector<uint64_t>& StreamTopk::FinishInPushOrder() {
  if (static_cast<int64_t>(size_) > k_) Compact();
  result_.assign(keys_.begin(), keys_.begin() + static_cast<int64_t>(size_));
  return result_;
}

const std::vector<uint64_t>& StreamTopk::Finish() {
  FinishInPushOrder();
  if (scratch_.size() < result_.size()) scratch_.resize(result_.size());
  StableSortByScore(result_.data(), static_cast<int64_t>(result_.size()), scratch_.data());
  return result_;
}

}  // namespace hisa::cpu
