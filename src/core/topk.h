// Internal: the one ordering every selection uses, and an exact streaming top-k for the CPU.
//
// Order: higher score first; a NaN score below every other (including -inf); equal scores
// (+0 == -0) by lower position. For float scores that order is the order of a 64-bit key
// (OrderKey), so a selection is a plain top-k over unique integers: exact and independent of the
// order in which keys arrive.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace hisa::core {

/// Monotone map of a float score to 32 bits: larger score, larger key; NaN -> 0 (lowest);
/// -0 and +0 map to the same key.
inline uint32_t ScoreBits(float score) {
  if (std::isnan(score)) return 0;
  const uint32_t bits = std::bit_cast<uint32_t>(score + 0.0f);  // -0 + 0 = +0
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

/// Inverse of ScoreBits for non-NaN keys.
inline float ScoreFromBits(uint32_t key) {
  if (key == 0) return NAN;
  return std::bit_cast<float>((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
}

/// 64-bit selection key: score first, then lower position. Unique per position.
inline uint64_t OrderKey(float score, int64_t pos) {
  return (uint64_t{ScoreBits(score)} << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(pos));
}

inline int64_t PositionOfKey(uint64_t key) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu);
}
inline float ScoreOfKey(uint64_t key) { return ScoreFromBits(static_cast<uint32_t>(key >> 32)); }

/// True if (a, pos_a) ranks ahead of (b, pos_b) in the reference's float64 order.
inline bool RanksAhead(double a, int64_t pos_a, double b, int64_t pos_b) {
  const bool nan_a = std::isnan(a), nan_b = std::isnan(b);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a && a != b) return a > b;
  return pos_a < pos_b;
}

/// Exact streaming top-k over OrderKeys: Push any number of keys in any order, then Finish.
/// Keeps at most 2k keys; keys at or below the running threshold are dropped on arrival.
class TopkSelector {
 public:
  explicit TopkSelector(int64_t k = 0) { Reset(k); }

  void Reset(int64_t k) {
    k_ = k;
    threshold_ = 0;
    have_threshold_ = false;
    keys_.clear();
    keys_.reserve(static_cast<size_t>(2 * k + 64));
  }

  /// Keys at or below this can never enter the result (valid once Full()).
  uint64_t threshold() const { return threshold_; }
  bool has_threshold() const { return have_threshold_; }

  void Push(uint64_t key) {
    if (have_threshold_ && key <= threshold_) return;
    keys_.push_back(key);
    if (static_cast<int64_t>(keys_.size()) >= 2 * k_ + 64) Compact();
  }

  /// The top min(k, pushed) keys, highest first.
  const std::vector<uint64_t>& Finish() {
    if (static_cast<int64_t>(keys_.size()) > k_) Compact();
    std::sort(keys_.begin(), keys_.end(), std::greater<uint64_t>());
    return keys_;
  }

 private:
  void Compact() {
    if (k_ == 0) {
      keys_.clear();
      return;
    }
    std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.end(),
                     std::greater<uint64_t>());
    keys_.resize(static_cast<size_t>(k_));
    threshold_ = keys_[static_cast<size_t>(k_ - 1)];  // the smallest kept key
    have_threshold_ = true;
  }

  int64_t k_ = 0;
  uint64_t threshold_ = 0;
  bool have_threshold_ = false;
  std::vector<uint64_t> keys_;
};

}  // namespace hisa::core
