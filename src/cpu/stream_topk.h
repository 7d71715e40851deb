// Internal: exact streaming top-k over core::OrderKey values with radix passes.
//
// Same result as core::TopkSelector (the top min(k, pushed) keys, best first), for keys pushed in
// ascending position order (a scan pushes them that way): the buffer stays in push order, so
// compaction is a radix select of the threshold plus a stable filter, and the result is sorted by
// a stable radix sort on the 32 score bits alone (equal scores keep the lower position first). At
// k = 2048, std::nth_element and std::sort cost more than scoring the keys with AMX.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hisa::cpu {

/// Copies the keys of keys[0, n) that lie in [lo, hi] to out, in order, and returns how many.
/// out may be keys (the write index never passes the read index); it must hold n elements.
using KeepInRangeFn = int64_t (*)(const uint64_t* keys, int64_t n, uint64_t lo, uint64_t hi,
                                  uint64_t* out);

/// Portable KeepInRangeFn.
int64_t KeepInRange(const uint64_t* keys, int64_t n, uint64_t lo, uint64_t hi, uint64_t* out);

class StreamTopk {
 public:
  /// keep: the filter the radix passes use (a kernel's vector version, or KeepInRange).
  explicit StreamTopk(KeepInRangeFn keep = &KeepInRange) : keep_(keep) {}

  /// Starts a new selection of the k largest keys.
  void Reset(int64_t k);

  /// Score bits (the upper half) of the current threshold; 0 until the buffer first fills.
  /// Keys whose score bits are below it can never enter the result.
  uint32_t ScoreFloor() const { return static_cast<uint32_t>(threshold_ >> 32); }

  void Push(uint64_t key) {
    if (key <= threshold_) return;
    *Reserve(1) = key;
    ++size_;
  }

  /// Room for n <= 256 more keys: write them there, then Commit how many were written. Keys at
  /// or below the threshold may be committed (they are dropped later).
  uint64_t* Reserve(int64_t n) {
    if (size_ + static_cast<size_t>(n) > keys_.size()) Grow(static_cast<size_t>(n));
    return keys_.data() + size_;
  }
  void Commit(int64_t n) { size_ += static_cast<size_t>(n); }

  /// The top min(k, pushed) keys, largest first. Valid until the next Reset, Push or Reserve.
  const std::vector<uint64_t>& Finish();

  /// The same keys in push order (for pushing into another StreamTopk, which keeps the order).
  const std::vector<uint64_t>& FinishInPushOrder();

 private:
  // Makes room for n more keys: the buffer grows with use up to its capacity, then compacts.
  void Grow(size_t n);
  // Keeps the k largest keys, in push order, and raises the threshold below the smallest.
  void Compact();

  KeepInRangeFn keep_;
  int64_t k_ = 0;
  uint64_t threshold_ = 0;      // keys at or below it cannot enter
  size_t capacity_ = 0;         // 2k + 256: compaction keeps k, so at least half is free
  std::vector<uint64_t> keys_;  // buffer in push order, first size_ used
  size_t size_ = 0;
  std::vector<uint64_t> scratch_;
  std::vector<uint64_t> result_;
};

/// The k-th largest (1 <= k <= n) of the distinct keys[0, n). scratch: at least n elements.
uint64_t KthLargest(const uint64_t* keys, int64_t n, int64_t k, uint64_t* scratch,
                    KeepInRangeFn keep = &KeepInRange);

/// Stable sort of keys[0, n) by their upper 32 bits, descending. scratch: at least n elements.
void StableSortByScore(uint64_t* keys, int64_t n, uint64_t* scratch);

}  // namespace hisa::cpu
