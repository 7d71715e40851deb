// Internal, device side: exact top-k of a row that a CTA holds in registers (the register top-k
// kernel, topk.cu), and the key order and candidate mapping every top-k shares.
//
// Order: higher score first, NaN last, +0 == -0, ties by lower index (core::OrderKey's), so the
// selected set is the reference's up to the scores' rounding. The selected keys come out in
// ascending index order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/divmod.cuh"

namespace hisa::cuda {

/// Order-preserving 32-bit key of a score: NaN is 0 (lowest), -0 is +0. A select, not a branch,
/// so that loads before it stay in flight.
__device__ __forceinline__ uint32_t ScoreKey(float score) {
  const uint32_t bits = __float_as_uint(score + 0.0f);  // -0 -> +0
  const uint32_t key = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return isnan(score) ? 0u : key;
}

/// The score of a key: ScoreKey's inverse (a NaN score's key 0 reads as NaN, -0 as +0).
__device__ __forceinline__ float KeyScore(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
}

/// Where candidate idx of a HISA stage-2 row points: position blocks[idx / B] * B + idx % B, then
/// its paged row (pages: the sequence's block-table row) or the position plus add.
struct CandidateMap {
  const int32_t* blocks = nullptr;
  int32_t block_size = 0;
  const int32_t* pages = nullptr;
  int32_t page_size = 0;
  int32_t add = 0;
};

/// The paged-cache row of position pos of a sequence whose block-table row is `pages`
/// (positions and rows fit 32 bits: rows are bulk-copy coordinates).
__device__ __forceinline__ int32_t PagedRowOf(const int32_t* pages, int page_size, int pos) {
  int within;
  const int page = DivMod(pos, page_size, &within);
  return static_cast<int32_t>(int64_t{pages[page]} * page_size + within);
}

__device__ __forceinline__ int32_t CandidateValue(const CandidateMap& c, uint32_t idx) {
  int r;  // candidates of a row number at most m * B < 2^31
  const int i = DivMod(static_cast<int>(idx), c.block_size, &r);
  const int pos = c.blocks[i] * c.block_size + r;  // a position: 32 bits
  if (c.pages != nullptr) return PagedRowOf(c.pages, c.page_size, pos);
  return pos + c.add;
}

/// The keys of row[first, first + kPerThread) (0 past len), every load in flight before the
/// first use (16-byte loads where whole and aligned).
template <int kPerThread>
__device__ __forceinline__ void LoadKeys(const float* row, int first, int len,
                                         uint32_t (&key)[kPerThread]) {
  static_assert(kPerThread % 4 == 0, "16-byte loads");
  if (first + kPerThread <= len && (reinterpret_cast<uintptr_t>(row + first) & 15) == 0) {
#pragma unroll
    for (int j = 0; j < kPerThread; j += 4) {
      const float4 v = *reinterpret_cast<const float4*>(row + first + j);
      key[j] = __float_as_uint(v.x), key[j + 1] = __float_as_uint(v.y);
      key[j + 2] = __float_as_uint(v.z), key[j + 3] = __float_as_uint(v.w);
    }
  } else {
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      key[j] = __float_as_uint(first + j < len ? row[first + j] : 0.0f);
    }
  }
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    key[j] = first + j < len ? ScoreKey(__uint_as_float(key[j])) : 0u;
  }
}

/// Selection over a row of at most kThreads x kPerThread keys by a CTA of kThreads threads:
/// thread tid holds the keys of [tid * kPerThread, (tid + 1) * kPerThread) (0 past the row).
/// kBarrier 0: the threads are the whole CTA (__syncthreads); otherwise they are warps 0 ..
/// kThreads / 32 - 1 of a larger CTA and meet at named barrier kBarrier.
///
/// The k-th key is found by radix steps of kDigitBits bits in a shared histogram, starting below
/// the bits that the row's minimum and maximum share (so the first step's bins split the row's
/// actual range rather than its exponent), and stopping as soon as the bucket of the k-th key is
/// selected whole. One exclusive sum then gives each thread its first output slot.
template <int kThreads, int kPerThread, int kDigitBits, int kBarrier = 0>
struct RegisterSelect {
  static_assert(kThreads % 32 == 0 && kPerThread <= 32, "whole warps, a 32-bit mask a thread");
  static constexpr int kWarps = kThreads / 32;
  static constexpr int kBins = 1 << kDigitBits;
  // Thread t owns bins [kBins - (t + 1) * n, kBins - t * n) (from the top), n = kBinsPerThread:
  // kBins / kThreads rounded up to a power of two (the threads past kBins / n own none).
  static constexpr int BinsPerThread() {
    int n = 1;
    while (n * kThreads < kBins) n *= 2;
    return n;
  }
  static constexpr int kBinsPerThread = BinsPerThread();
  static_assert(kBins % kBinsPerThread == 0, "whole runs of bins");

  struct Shared {
    alignas(16) uint32_t hist[kBins];
    uint32_t warp_sums[kWarps];
    uint32_t extremes[2][kWarps];
    uint32_t boundary[2];  // the bin of the need-th key, the keys in bins above it
  };

  static __device__ __forceinline__ void Sync() {
    if constexpr (kBarrier == 0) {
      __syncthreads();
    } else {
      asm volatile("bar.sync %0, %1;" ::"n"(kBarrier), "n"(kThreads) : "memory");
    }
  }

  /// Exclusive sum of v over the CTA in thread order; *total receives the sum.
  static __device__ __forceinline__ uint32_t ExclusiveSum(Shared& s, int tid, uint32_t v,
                                                          uint32_t* total) {
    const int lane = tid % 32, warp = tid / 32;
    uint32_t x = v;
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const uint32_t y = __shfl_up_sync(0xffffffffu, x, d);
      if (lane >= d) x += y;
    }
    if constexpr (kWarps == 1) {
      *total = __shfl_sync(0xffffffffu, x, 31);
      return x - v;
    } else {
      if (lane == 31) s.warp_sums[warp] = x;
      Sync();
      uint32_t before = 0, sum = 0;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const uint32_t ws = s.warp_sums[w];
        before += w < warp ? ws : 0u;
        sum += ws;
      }
      Sync();  // warp_sums is reused
      *total = sum;
      return before + x - v;
    }
  }

  /// The need-th best key (need = min(k, len)) as *threshold, and *take_equal: how many keys
  /// equal to it are selected, the lowest indices first. Stopped early, *threshold is a bound
  /// that every selected key reaches and *take_equal = len. A row of at most k keys selects all.
  static __device__ __forceinline__ void Threshold(Shared& s, int tid,
                                                   const uint32_t (&key)[kPerThread], int len,
                                                   int k, uint32_t* threshold, int* take_equal) {
    *threshold = 0;
    *take_equal = len;
    if (len <= k) return;
    const int first = tid * kPerThread, lane = tid % 32, warp = tid / 32;
    const int need = k;
    uint32_t lo = ~0u, hi = 0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      if (first + j < len) lo = min(lo, key[j]), hi = max(hi, key[j]);
    }
    lo = __reduce_min_sync(0xffffffffu, lo);
    hi = __reduce_max_sync(0xffffffffu, hi);
    if constexpr (kWarps > 1) {
      if (lane == 0) s.extremes[0][warp] = lo, s.extremes[1][warp] = hi;
      Sync();
#pragma unroll
      for (int w = 0; w < kWarps; ++w) lo = min(lo, s.extremes[0][w]), hi = max(hi, s.extremes[1][w]);
    }
    *threshold = hi;  // every key equal: the first need of them
    *take_equal = need;
    if (lo == hi) return;
    // Every key shares the bits above the highest bit where lo and hi differ.
    int bits_left = 32 - __clz(lo ^ hi);
    uint32_t prefix = bits_left == 32 ? 0u : hi & (~0u << bits_left);
    int need_left = need;
    bool all_taken = false;
    while (bits_left > 0 && !all_taken) {
      const int digit_bits = min(kDigitBits, bits_left);
      const int shift = bits_left - digit_bits;
      const uint32_t fixed = bits_left == 32 ? 0u : ~0u << bits_left;
      for (int i = tid; i < kBins; i += kThreads) s.hist[i] = 0;
      Sync();
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) {
        if (first + j < len && (key[j] & fixed) == prefix) {
          atomicAdd(&s.hist[(key[j] >> shift) & ((1u << digit_bits) - 1)], 1u);
        }
      }
      Sync();
      const int low = kBins - (tid + 1) * kBinsPerThread;  // < 0: this thread owns no bins
      uint32_t mine = 0;
      if (low >= 0) {
        if constexpr (kBinsPerThread % 4 == 0) {
#pragma unroll
          for (int i = 0; i < kBinsPerThread; i += 4) {
            const uint4 v = *reinterpret_cast<const uint4*>(s.hist + low + i);
            mine += v.x + v.y + v.z + v.w;
          }
        } else {
#pragma unroll
          for (int i = 0; i < kBinsPerThread; ++i) mine += s.hist[low + i];
        }
      }
      uint32_t total = 0;
      uint32_t before = ExclusiveSum(s, tid, mine, &total);
      const uint32_t want = static_cast<uint32_t>(need_left);
      if (low >= 0 && before < want && want <= before + mine) {
        for (int i = kBinsPerThread - 1; i >= 0; --i) {
          if (before + s.hist[low + i] >= want) {
            s.boundary[0] = static_cast<uint32_t>(low + i);
            s.boundary[1] = before;
            break;
          }
          before += s.hist[low + i];
        }
      }
      Sync();
      const uint32_t bin = s.boundary[0];
      prefix |= bin << shift;
      need_left -= static_cast<int>(s.boundary[1]);
      all_taken = static_cast<int>(s.hist[bin]) == need_left;  // the whole bin is selected
      bits_left = shift;
      Sync();  // the histogram and the boundary are reused
    }
    *threshold = prefix;  // stopped early: the lower bits are zero
    *take_equal = all_taken ? len : need_left;
  }

  /// This thread's selected keys (bit j: key tid * kPerThread + j) and its first output slot.
  static __device__ __forceinline__ uint32_t Taken(Shared& s, int tid,
                                                   const uint32_t (&key)[kPerThread], int len,
                                                   uint32_t threshold, int take_equal, int* slot) {
    const int first = tid * kPerThread;
    uint32_t above = 0, equal = 0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const bool valid = first + j < len;
      above |= uint32_t{valid && key[j] > threshold} << j;
      equal |= uint32_t{valid && key[j] == threshold} << j;
    }
    uint32_t total = 0;
    const uint32_t offset = ExclusiveSum(
        s, tid, static_cast<uint32_t>(__popc(above)) | (static_cast<uint32_t>(__popc(equal)) << 16),
        &total);
    const int equal_rank = static_cast<int>(offset >> 16);
    *slot = static_cast<int>(offset & 0xFFFFu) + min(equal_rank, take_equal);
    // Of this thread's equal keys, the first take_equal - equal_rank are selected.
    uint32_t taken = above;
    int quota = max(0, take_equal - equal_rank);
    for (uint32_t e = equal; e != 0 && quota > 0; e &= e - 1, --quota) taken |= e & (0u - e);
    return taken;
  }
};

}  // namespace hisa::cuda
