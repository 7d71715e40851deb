// Exact top-k per row (topk.h): radix select on the order-preserving bits of the scores.
//
// One CTA per row (or, for fewer rows than SMs, a cluster of CTAs per row that split the passes
// below over slices of the row and meet in CTA 0's shared memory). Rows of at least 16384 keys
// (k up to 3072, not on clusters of 16) first try one read: a threshold from a sample, every key
// of the row at or above it kept in shared memory, step 3 among them (Topk::SampledSelect);
// where the sample misjudged the row:
//   1. histogram passes over 11, 11 and 10 bits of the 32-bit score key, each restricted to the
//      bucket that holds the k-th score, until that bucket is small enough for shared memory;
//   2. one pass in index order that moves every key above the bucket into the result and the
//      bucket's keys into shared memory (block scans, so the order is deterministic);
//   3. a radix select on the 64-bit keys (score, then lower index) of the bucket in shared memory.
// A bucket too large for shared memory after all 32 bits are fixed holds one exact score value:
// its lowest indices win, taken in index order in step 2.
//
// Rows of at most 2048 keys (HISA stage 1's block rows), and a few rows of at most 8192 (HISA
// stage 2 in decode, short decode rows), take TopkRegisterKernel instead: the row is read once
// into registers and selected there (select.cuh).
#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "cuda/common.h"
#include "cuda/launch.cuh"
#include "cuda/select.cuh"
#include "cuda/topk.h"

namespace hisa::cuda {
namespace {

constexpr int kMaxBins = 2048;
constexpr int64_t kClusterMinLength = 16384;  // rows at least this long may take the cluster path
constexpr int64_t kNarrowLength = 8192;        // rows at most this long may take narrow CTAs

__device__ __forceinline__ uint64_t OrderKey(uint32_t score_key, uint32_t idx) {
  return (uint64_t{score_key} << 32) | (0xFFFFFFFFu - idx);
}
__device__ __forceinline__ uint32_t IndexOf(uint64_t key) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(key);
}

// Where a key stands against a bucket (the keys whose bits above `shift` equal `prefix`; all
// keys when shift == 32): 1 above it, 2 in it, 0 below it or not a key of the row (!valid).
// The scan counts of the passes that split keys so: above | in << 16.
__device__ __forceinline__ uint32_t BucketKind(bool valid, uint32_t key, uint32_t prefix,
                                               int shift) {
  const uint32_t high = shift == 32 ? 0u : key >> shift;
  return !valid ? 0u : (high > prefix ? 1u : (high == prefix ? 2u : 0u));
}
__device__ __forceinline__ uint32_t BucketCount(uint32_t kind) {
  return kind == 1 ? 1u : (kind == 2 ? 1u << 16 : 0u);
}

// The block-table row of row `row`'s sequence (next_n rows a sequence).
__device__ __forceinline__ const int32_t* SequencePages(const TopkParams& p, int row) {
  return p.block_table + int64_t{row / p.next_n} * p.bt_stride;
}

// add: p.add[row] (or 0); blocks: the row's block list (kCandidate), both loaded once per row.
__device__ __forceinline__ int32_t OutputValue(const TopkParams& p, int row, uint32_t idx,
                                               int32_t add, const int32_t* blocks) {
  switch (p.output) {
    case TopkOutput::kIndex:
      return static_cast<int32_t>(idx) + add;
    case TopkOutput::kPagedRow:
      return PagedRowOf(SequencePages(p, row), p.page_size, static_cast<int>(idx));
    case TopkOutput::kCandidate: {
      CandidateMap c;
      c.blocks = blocks;
      c.block_size = p.block_size;
      c.pages = p.paged ? SequencePages(p, row) : nullptr;
      c.page_size = p.page_size;
      c.add = add;
      return CandidateValue(c, idx);
    }
    case TopkOutput::kBlocks:
      return static_cast<int32_t>(idx) + 1;
  }
  return -1;
}

// The frame of a kBlocks row (HISA stage 1): block 0 first when the row is not empty, the
// selected blocks in ascending order, the own block last when it is not block 0, then -1.
struct BlocksFrame {
  int own = -1, head = 0, tail = 0;
  BlocksFrame() = default;  // not a kBlocks row: no frame
  __device__ BlocksFrame(const TopkParams& p, int row) : BlocksFrame(p.own[row]) {}
  __device__ explicit BlocksFrame(int own_block)
      : own(own_block), head(own >= 0 ? 1 : 0), tail(own > 0 ? 1 : 0) {}
  // Slot i of the row outside the n selected blocks [head, head + n).
  __device__ int32_t Value(int i, int n) const {
    if (i == 0 && head) return 0;
    if (i == head + n && tail) return own;
    return -1;
  }
  // Stage 2's candidate range [0, hi2): every selected block whole, the own block up to the
  // query (optional outputs).
  __device__ void WriteStage2Range(const TopkParams& p, int row, int n) const {
    if (p.hi2 == nullptr) return;
    const int count = head + n + tail;
    p.lo2[row] = 0;
    p.hi2[row] = own < 0 ? 0 : (count - 1) * p.block_size + (p.length[row] - own * p.block_size);
  }
  // The same with the query's length loaded beforehand (the register top-k). Not written as a
  // call from the form above: so written, the other top-k kernels' machine code changed
  // (bench/sass_diff.py: TopkKernel and TopkClusterKernel instances), which no GPU has timed.
  __device__ void WriteStage2Range(const TopkParams& p, int row, int n, int length) const {
    if (p.hi2 == nullptr) return;
    const int count = head + n + tail;
    p.lo2[row] = 0;
    p.hi2[row] = own < 0 ? 0 : (count - 1) * p.block_size + (length - own * p.block_size);
  }
};

// The selection machinery for CTAs of kThreadsT threads that keep up to kSelCap selected and
// kCandCap bucket keys in shared memory.
template <int kThreadsT, int kSelCap, int kCandCap, int kMinBlocksT>
struct Topk {
  static constexpr int kThreads = kThreadsT;
  static constexpr int kItems = 8;                  // elements per thread per chunk (loads in flight)
  static constexpr int kChunk = kThreads * kItems;  // elements per chunk of a pass
  // The histogram pass keeps twice the loads in flight: it holds no per-element state past its
  // atomics (flat top-k at 128K 495 -> 483 us; 32 measured the same; the emit pass at 16 would
  // spill).
  static constexpr int kHistItems = 16;
  static constexpr int kHistChunk = kThreads * kHistItems;
  static constexpr int kMaxK = kSelCap;             // selected keys (a power of two: sorted in place)
  static constexpr int kCandidateCap = kCandCap;    // bucket keys kept in shared memory
  static constexpr int kMinBlocks = kMinBlocksT;    // CTAs per SM the kernel is compiled for

  using Scan = cub::BlockScan<uint32_t, kThreads>;

  struct Shared {
    alignas(16) uint32_t hist[kMaxBins];
    uint64_t candidates[kCandidateCap];
    uint64_t selected[kMaxK];
    typename Scan::TempStorage scan;
    int32_t boundary_bin;
    uint32_t count_above;
    uint32_t my_above, my_bucket;  // cluster path: this slice's keys above / in the bucket
  };

  // The cluster path's shared memory: the one-CTA layout, then the histogram summed over slices.
  struct ClusterShared {
    Shared s;
    alignas(16) uint32_t total[kMaxBins];
  };

  // Given a histogram of `bins` bins, finds the bin holding the need-th largest element: sets
  // s.boundary_bin and s.count_above (elements in higher bins). Every thread must call it.
  static __device__ __forceinline__ void FindBoundary(Shared& s, const uint32_t* hist, int bins, uint32_t need) {
    const int per_thread = (bins + kThreads - 1) / kThreads;
    // Thread i owns bins counted from the top: [bins - (i + 1) * per_thread, bins - i * per_thread).
    const int top = bins - threadIdx.x * per_thread;
    uint32_t mine = 0;
    if (bins % (4 * kThreads) == 0) {  // 16-byte reads: fewer bank conflicts than a stride
      for (int i = top - per_thread; i < top; i += 4) {
        const uint4 v = *reinterpret_cast<const uint4*>(hist + i);
        mine += v.x + v.y + v.z + v.w;
      }
    } else {
      for (int i = 0; i < per_thread; ++i) {
        const int bin = top - 1 - i;
        if (bin >= 0) mine += hist[bin];
      }
    }
    uint32_t above = 0;
    Scan(s.scan).ExclusiveSum(mine, above);
    if (above < need && need <= above + mine) {
      for (int i = 0; i < per_thread; ++i) {
        const int bin = top - 1 - i;
        if (bin < 0) break;
        if (above + hist[bin] >= need) {
          s.boundary_bin = bin;
          s.count_above = above;
          break;
        }
        above += hist[bin];
      }
    }
    __syncthreads();
  }

  // Bitonic sort of n (power of two) keys in shared memory, descending.
  static __device__ void SortDescending(uint64_t* keys, int n) {
    for (int size = 2; size <= n; size <<= 1) {
      for (int stride = size / 2; stride > 0; stride >>= 1) {
        for (int i = threadIdx.x; i < n / 2; i += kThreads) {
          const int lo = 2 * i - (i & (stride - 1));
          const int hi = lo + stride;
          const bool descending = (lo & size) == 0;
          const uint64_t a = keys[lo], b = keys[hi];
          if ((a < b) == descending) {
            keys[lo] = b;
            keys[hi] = a;
          }
        }
        __syncthreads();
      }
    }
  }

  // Histogram of digit (key >> next_shift) & (bins - 1) of the keys in [begin, end) whose bits
  // above `shift` equal `prefix` (all keys when shift == 32). hist must be zeroed.
  static __device__ __forceinline__ void HistogramPass(const float* scores, int64_t begin, int64_t end, uint32_t prefix,
                                int shift, int digit_bits, uint32_t* hist) {
    const int next_shift = shift - digit_bits;
    const uint32_t mask = (1u << digit_bits) - 1;
    // 32-bit offsets from the slice's start; whole aligned chunks by 16-byte loads (kHistItems /
    // 4 a thread, in flight before their atomics), the rest by scalar loads.
    const float* row = scores + begin;
    const int n = static_cast<int>(end - begin);
    const auto count = [&](float value) {
      const uint32_t key = ScoreKey(value);
      if (shift == 32 || (key >> shift) == prefix) atomicAdd(&hist[(key >> next_shift) & mask], 1u);
    };
    int base = 0;
    if ((reinterpret_cast<uintptr_t>(row) & 15) == 0) {
      const float4* row4 = reinterpret_cast<const float4*>(row);
      for (; base + kHistChunk <= n; base += kHistChunk) {
        float4 v[kHistItems / 4];
  #pragma unroll
        for (int u = 0; u < kHistItems / 4; ++u) v[u] = row4[base / 4 + u * kThreads + threadIdx.x];
  #pragma unroll
        for (int u = 0; u < kHistItems / 4; ++u) count(v[u].x), count(v[u].y), count(v[u].z), count(v[u].w);
      }
    }
    for (; base < n; base += kChunk) {
      float value[kItems];
  #pragma unroll
      for (int u = 0; u < kItems; ++u) {
        const int i = base + u * kThreads + threadIdx.x;
        value[u] = i < n ? row[i] : 0.0f;
      }
  #pragma unroll
      for (int u = 0; u < kItems; ++u) {
        if (base + u * kThreads + static_cast<int>(threadIdx.x) < n) count(value[u]);
      }
    }
  }

  // This thread's kItems contiguous keys of the chunk at `chunk` of row[0, n) (0 past n): vector
  // loads where the chunk is whole and aligned (scalar loads at a stride of kItems floats touch
  // kItems times the sectors).
  static __device__ __forceinline__ void LoadChunk(const float* row, int chunk, int n, bool aligned,
                                                   float (&value)[kItems]) {
    const int first = chunk + threadIdx.x * kItems;
    if (chunk + kChunk <= n && aligned) {
#pragma unroll
      for (int i = 0; i < kItems; i += 4) {
        const float4 v = *reinterpret_cast<const float4*>(row + first + i);
        value[i] = v.x, value[i + 1] = v.y, value[i + 2] = v.z, value[i + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < kItems; ++i) value[i] = first + i < n ? row[first + i] : 0.0f;
    }
  }

  // Index-order pass over [begin, end): keys above the bucket (high bits > prefix) go to
  // selected[above_base ...], the bucket's keys to candidates[bucket_base ...] (in_shared), or, for
  // one exact score too frequent for shared memory, the lowest need_left of them to
  // selected[need - need_left + ...]. Positions are block scans: the order is deterministic.
  // selected and candidates may live in another CTA's shared memory (cluster path).
  static __device__ __forceinline__ void EmitPass(Shared& s, const float* scores, int64_t begin, int64_t end,
                           uint32_t prefix, int shift, bool in_shared, uint32_t need,
                           uint32_t need_left, uint64_t* selected, uint64_t* candidates,
                           uint32_t above_base, uint32_t bucket_base) {
    const float* row = scores + begin;  // 32-bit offsets from the slice's start
    const int n = static_cast<int>(end - begin);
    const bool aligned = (reinterpret_cast<uintptr_t>(row) & 15) == 0;
    for (int chunk = 0; chunk < n; chunk += kChunk) {
      const int first = chunk + threadIdx.x * kItems;  // this thread's kItems contiguous keys
      uint32_t key[kItems];
      uint32_t kind[kItems];  // 0 none, 1 above, 2 bucket
      uint32_t packed = 0;    // above count | bucket count << 16
      float value[kItems];
      LoadChunk(row, chunk, n, aligned, value);
  #pragma unroll
      for (int i = 0; i < kItems; ++i) {
        key[i] = ScoreKey(value[i]);
        kind[i] = BucketKind(first + i < n, key[i], prefix, shift);
        packed += BucketCount(kind[i]);
      }
      uint32_t offset = 0, total = 0;
      Scan(s.scan).ExclusiveSum(packed, offset, total);
      uint32_t above_pos = above_base + (offset & 0xFFFFu);
      uint32_t bucket_pos = bucket_base + (offset >> 16);
      const uint32_t idx0 = static_cast<uint32_t>(begin + first);
  #pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const uint32_t idx = idx0 + i;
        if (kind[i] == 1) {
          selected[above_pos++] = OrderKey(key[i], idx);
        } else if (kind[i] == 2) {
          if (in_shared) {
            candidates[bucket_pos] = OrderKey(key[i], idx);
          } else if (bucket_pos < need_left) {
            selected[need - need_left + bucket_pos] = OrderKey(key[i], idx);
          }
          ++bucket_pos;
        }
      }
      above_base += total & 0xFFFFu;
      bucket_base += total >> 16;
      __syncthreads();  // s.scan is reused
    }
  }

  // The need_left best of the bucket's n keys in s.candidates (collected in index order), into
  // s.selected[need - need_left ...]: finish the score bits below the prefix (11 at a time), then
  // take every key above that score and, of the keys equal to it, the first ones in bucket order.
  static __device__ __forceinline__ void FinishBucket(Shared& s, uint32_t need, uint32_t need_left, int n, uint32_t prefix,
                               int shift) {
    uint32_t score_prefix = prefix;
    int score_shift = shift;
    uint32_t need_equal = need_left;
    bool whole_bin = false;  // the bucket's bin is taken whole: its lower bits need not be fixed
    while (score_shift > 0 && !whole_bin) {
      const int digit_bits = min(11, score_shift);
      const int next = score_shift - digit_bits;
      const int bins = 1 << digit_bits;
      for (int i = threadIdx.x; i < bins; i += kThreads) s.hist[i] = 0;
      __syncthreads();
      for (int i = threadIdx.x; i < n; i += kThreads) {
        const uint32_t key = static_cast<uint32_t>(s.candidates[i] >> 32);
        if (score_shift == 32 || (key >> score_shift) == score_prefix) {
          atomicAdd(&s.hist[(key >> next) & (bins - 1)], 1u);
        }
      }
      __syncthreads();
      FindBoundary(s, s.hist, bins, need_equal);
      need_equal -= s.count_above;
      whole_bin = s.hist[s.boundary_bin] == need_equal;
      score_prefix = (score_shift == 32 ? 0u : score_prefix << digit_bits) |
                     static_cast<uint32_t>(s.boundary_bin);
      score_shift = next;
      __syncthreads();
    }
    // Keys whose bits above score_shift equal score_prefix are "equal": the need_left-th best
    // key is one of them, and need_equal of them are in (all of them when whole_bin). Four
    // candidates a thread, in index order.
    constexpr int kPer = 4;
    uint32_t base = need - need_left, equal_seen = 0;
    for (int chunk = 0; chunk < n; chunk += kThreads * kPer) {
      const int first = chunk + threadIdx.x * kPer;
      uint32_t packed = 0;
      uint32_t kind[kPer];  // 0 out, 1 above, 2 equal
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const uint32_t key = first + j < n ? static_cast<uint32_t>(s.candidates[first + j] >> 32) : 0;
        kind[j] = BucketKind(first + j < n, key, score_prefix, score_shift);
        packed += BucketCount(kind[j]);
      }
      uint32_t offset = 0, total = 0;
      Scan(s.scan).ExclusiveSum(packed, offset, total);
      uint32_t above_pos = offset & 0xFFFFu;
      uint32_t equal_rank = equal_seen + (offset >> 16);
      const uint32_t equal_taken = min(equal_seen, need_equal);
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        if (kind[j] == 1) {
          // Equal keys before this one that are in: those ranked below need_equal.
          s.selected[base + above_pos + min(equal_rank, need_equal) - equal_taken] =
              s.candidates[first + j];
          ++above_pos;
        } else if (kind[j] == 2) {
          if (equal_rank < need_equal) {
            s.selected[base + above_pos + equal_rank - equal_taken] = s.candidates[first + j];
          }
          ++equal_rank;
        }
      }
      const uint32_t equal_now = total >> 16;
      base += (total & 0xFFFFu) + (min(equal_seen + equal_now, need_equal) - equal_taken);
      equal_seen += equal_now;
      __syncthreads();  // s.scan is reused
    }
  }

  // Rows of at least kSampleMinLength keys first try a sampled threshold: a sample of the row
  // (every 16th or 32nd run of 32 keys, SampleShift) gives, through two histogram rounds over its
  // keys, a threshold that about 1.5 times the sample's share of need reach; one pass over the row
  // keeps every key at or above it in shared memory (index order), and FinishBucket selects the
  // need best of them there. One read of the row instead of a histogram pass and an emit pass
  // (scores that are not in L2: flat prefill's top-k at 128K 481 -> 243 us on the H100; flat
  // decode). When the sample
  // misjudged the row (fewer than need keys reach the threshold, or more than shared memory
  // holds), nothing is decided and the passes run instead.
  static constexpr int64_t kSampleMinLength = 16384;
  // The kept keys number about 1.5 need + the sample's stride: for need above half the
  // candidates' room the estimate would overflow it most of the time (k = 4096 at 128K: 7168
  // expected for 6144), and the row would be read once more for nothing.
  static constexpr uint32_t kSampleMaxNeed = kCandidateCap / 2;
  static __device__ __forceinline__ bool TrySample(int64_t len, uint32_t need) {
    return len >= kSampleMinLength && need <= kSampleMaxNeed;
  }
  // Runs of 32 keys, every 16th (rows under 64K keys) or every 32nd (longer rows, when `sparse`;
  // a sample of about len / 32 keys, 4096 at 128K, enough for its estimate): the kept keys number
  // about 1.5 need + the stride (32 sampled keys of margin), so the stride stays within the
  // candidates' room. Every 32nd at 128K: flat prefill's top-k 245-246 -> 238 us, flat decode
  // batch 64's (clusters of 4) 41.9-43.4 -> 39.0-41.4 us; at 32K it was slower (97-98 -> 100 us,
  // more keys kept), and every 64th overflowed the room and fell back to the passes
  // (experiments-r18/sample_stride/). Clusters of 2 (about 66-131 rows: decode batch 128, or 64
  // with next_n 2) are not sparse: with every 32nd those decode cases took 907 / 520 us against
  // 848-852 / 463 us with every 16th, in one call (2026-11-23-h100-cluster2-sample/).
  static constexpr int kSampleRun = 32;
  static __device__ __forceinline__ int SampleShift(int64_t len, bool sparse) {
    return sparse && len >= 65536 ? 10 : 9;
  }
  // The row key of sampled key j (stride 1 << shift).
  static __device__ __forceinline__ int SampledKey(int j, int shift) {
    return ((j / kSampleRun) << shift) + j % kSampleRun;
  }

  // Rows whose sample fits (up to 12288 sampled keys: rows of up to 384K keys with the Wide
  // shape) read it once, all loads in flight, into the candidates' shared memory (free until
  // the keeping pass); longer rows read it from global memory in each histogram round.
  static constexpr int kSampleCache = kCandidateCap * 2;  // 32-bit keys in s.candidates

  // Histogram of digit (key >> (shift - 11)) & 2047 of the sampled keys whose bits above shift
  // equal prefix (all when shift == 32), from the cache or from the row.
  static __device__ __forceinline__ void SampleHistogram(Shared& s, const float* scores,
                                                         int sample_shift, int sampled,
                                                         bool cached, uint32_t prefix, int shift) {
    const int next = shift - 11;
    for (int i = threadIdx.x; i < kMaxBins; i += kThreads) s.hist[i] = 0;
    __syncthreads();
    const auto count = [&](uint32_t key) {
      if (shift == 32 || (key >> shift) == prefix) {
        atomicAdd(&s.hist[(key >> next) & (kMaxBins - 1)], 1u);
      }
    };
    if (cached) {
      const uint32_t* cache = reinterpret_cast<const uint32_t*>(s.candidates);
      for (int j = threadIdx.x; j < sampled; j += kThreads) count(cache[j]);
    } else {
      for (int j0 = 0; j0 < sampled; j0 += kThreads * kItems) {
        uint32_t key[kItems];
#pragma unroll
        for (int u = 0; u < kItems; ++u) {
          const int j = j0 + u * kThreads + threadIdx.x;
          key[u] = j < sampled ? ScoreKey(scores[SampledKey(j, sample_shift)]) : 0u;
        }
#pragma unroll
        for (int u = 0; u < kItems; ++u) {
          if (j0 + u * kThreads + static_cast<int>(threadIdx.x) < sampled) count(key[u]);
        }
      }
    }
    __syncthreads();
  }

  // The threshold: the lower edge of the 22-bit bin of the sample's want-th best key. The same
  // for every CTA that samples the same row.
  static __device__ __forceinline__ uint32_t SampleThreshold(Shared& s, const float* scores,
                                                             int64_t len, uint32_t need,
                                                             bool sparse) {
    // The last run may be short: the sampled keys are exactly those below len.
    const int shift = SampleShift(len, sparse);
    const int64_t stride = int64_t{1} << shift;
    const int64_t runs = (len + stride - 1) / stride;
    const int64_t last_run = len - (runs - 1) * stride;
    const int sampled =
        static_cast<int>((runs - 1) * kSampleRun + (last_run < kSampleRun ? last_run : kSampleRun));
    const bool cached = sampled <= kSampleCache;
    if (cached) {
      constexpr int kLoads = 16;
      uint32_t* cache = reinterpret_cast<uint32_t*>(s.candidates);
      for (int j0 = 0; j0 < sampled; j0 += kThreads * kLoads) {
        float value[kLoads];
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
          const int j = j0 + u * kThreads + threadIdx.x;
          value[u] = j < sampled ? scores[SampledKey(j, shift)] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
          const int j = j0 + u * kThreads + threadIdx.x;
          if (j < sampled) cache[j] = ScoreKey(value[u]);
        }
      }
    }
    // The sample's share of need, half more, and 32.
    uint32_t want = static_cast<uint32_t>(min(int64_t{sampled}, need * int64_t{sampled} / len +
                                                                need * int64_t{sampled} / (2 * len) + 32));
    SampleHistogram(s, scores, shift, sampled, cached, 0, 32);
    FindBoundary(s, s.hist, kMaxBins, want);
    const uint32_t high = static_cast<uint32_t>(s.boundary_bin);
    want -= s.count_above;
    __syncthreads();  // s.hist, s.boundary_bin and s.count_above are read
    SampleHistogram(s, scores, shift, sampled, cached, high, 21);
    FindBoundary(s, s.hist, kMaxBins, want);
    const uint32_t threshold = (high << 21) | (static_cast<uint32_t>(s.boundary_bin) << 10);
    __syncthreads();
    return threshold;
  }

  // Every key of [begin, end) at or above threshold, in index order, into out[0, kCandidateCap)
  // (the rest counted only); returns the count.
  static __device__ __forceinline__ uint32_t KeepAtLeast(Shared& s, const float* scores,
                                                         int64_t begin, int64_t end,
                                                         uint32_t threshold, uint64_t* out) {
    const float* row = scores + begin;  // 32-bit offsets from the slice's start
    const int n = static_cast<int>(end - begin);
    const bool aligned = (reinterpret_cast<uintptr_t>(row) & 15) == 0;
    uint32_t kept = 0;
    float next[kItems];
    if (n > 0) LoadChunk(row, 0, n, aligned, next);
    for (int chunk = 0; chunk < n; chunk += kChunk) {
      const int first = chunk + threadIdx.x * kItems;
      float value[kItems];
#pragma unroll
      for (int i = 0; i < kItems; ++i) value[i] = next[i];
      // The next chunk's loads in flight during this chunk's scan and barrier (flat top-k at
      // 128K 285 -> 246 us; the same in EmitPass bought nothing for HISA's stage-2 rows and cost
      // this kernel 5 us).
      if (chunk + kChunk < n) LoadChunk(row, chunk + kChunk, n, aligned, next);
      uint32_t mine = 0;
#pragma unroll
      for (int i = 0; i < kItems; ++i) mine += first + i < n && ScoreKey(value[i]) >= threshold;
      uint32_t offset = 0, total = 0;
      Scan(s.scan).ExclusiveSum(mine, offset, total);
      uint32_t at = kept + offset;
      const uint32_t idx0 = static_cast<uint32_t>(begin + first);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const uint32_t key = ScoreKey(value[i]);
        if (first + i < n && key >= threshold) {
          if (at < kCandidateCap) out[at] = OrderKey(key, idx0 + i);
          ++at;
        }
      }
      kept += total;
      __syncthreads();  // s.scan is reused
    }
    return kept;
  }

  // The one-CTA form: true when the need best are in s.selected.
  static __device__ __forceinline__ bool SampledSelect(Shared& s, const float* scores, int64_t len,
                                                       uint32_t need) {
    const uint32_t threshold = SampleThreshold(s, scores, len, need, true);
    const uint32_t kept = KeepAtLeast(s, scores, 0, len, threshold, s.candidates);
    if (kept < need || kept > kCandidateCap) return false;
    FinishBucket(s, need, need, static_cast<int>(kept), 0, 32);
    return true;
  }

  // Optional ordering of s.selected[0, need), then the output row.
  static __device__ __forceinline__ void WriteRow(Shared& s, const TopkParams& p, int row, uint32_t need,
                           const float* scores) {
    const int n = static_cast<int>(need);
    const bool by_index = p.sort_by_index || p.output == TopkOutput::kBlocks;
    if (by_index || p.sort_by_score) {
      int padded = 1;
      while (padded < n) padded <<= 1;
      for (int i = threadIdx.x; i < padded; i += kThreads) {
        if (i >= n) {
          s.selected[i] = 0;
        } else if (by_index) {
          s.selected[i] = 0xFFFFFFFFull - IndexOf(s.selected[i]) + 1;  // descending = ascending idx
        }
      }
      __syncthreads();
      if (padded > 1) SortDescending(s.selected, padded);
      if (by_index) {
        for (int i = threadIdx.x; i < n; i += kThreads) {
          s.selected[i] = OrderKey(0, static_cast<uint32_t>(0xFFFFFFFFull - (s.selected[i] - 1)));
        }
        __syncthreads();
      }
    }
    int32_t* out = p.out + int64_t{row} * p.out_stride;
    float* out_scores = p.out_scores ? p.out_scores + int64_t{row} * p.out_stride : nullptr;
    if (p.output == TopkOutput::kBlocks) {
      const BlocksFrame frame(p, row);
      for (int i = threadIdx.x; i < p.out_stride; i += kThreads) {
        const bool selected = i >= frame.head && i < frame.head + n;
        out[i] = selected ? OutputValue(p, row, IndexOf(s.selected[i - frame.head]), 0, nullptr)
                          : frame.Value(i, n);
      }
      if (threadIdx.x == 0) frame.WriteStage2Range(p, row, n);
      return;
    }
    // Row constants, loaded once: the output stores might alias them. The block list goes to
    // shared memory (the histogram is free by now) when it fits.
    const int32_t add = p.add ? p.add[row] : 0;
    const int32_t* blocks = nullptr;
    if (p.output == TopkOutput::kCandidate) {
      const int32_t* row_blocks = p.blocks + int64_t{row} * p.blocks_stride;
      blocks = row_blocks;
      if (p.blocks_stride <= kMaxBins) {
        int32_t* cached = reinterpret_cast<int32_t*>(s.hist);
        for (int i = threadIdx.x; i < p.blocks_stride; i += kThreads) cached[i] = row_blocks[i];
        __syncthreads();
        blocks = cached;
      }
    }
    for (int i = threadIdx.x; i < p.out_stride; i += kThreads) {
      if (i < n) {
        const uint32_t idx = IndexOf(s.selected[i]);
        out[i] = OutputValue(p, row, idx, add, blocks);
        if (out_scores) out_scores[i] = scores[idx];
      } else {
        out[i] = -1;
        if (out_scores) out_scores[i] = __int_as_float(0x7fc00000);
      }
    }
  }

  // Every entry of a row of len <= k is selected.
  static __device__ __forceinline__ void SelectAll(Shared& s, const TopkParams& p, const float* scores, int64_t len) {
    for (int i = threadIdx.x; i < len; i += kThreads) {
      s.selected[i] = OrderKey(p.sort_by_score ? ScoreKey(scores[i]) : 0u, i);
    }
    __syncthreads();
  }

};

// Any row, k up to 4096: two CTAs per SM.
using Wide = Topk<512, 4096, 6144, 2>;  // two CTAs per SM: pinned at 64 registers
// Many short rows (HISA prefill's blocks and candidates), k up to 2048: four CTAs of 256 threads
// per SM, so that more rows are in flight while each CTA waits on its passes and barriers (HISA
// stage 1 top-k at 128K: 48 -> 28 us).
using Narrow = Topk<256, 2048, 2048, 4>;

// One CTA per row.
template <class K>
__global__ void __launch_bounds__(K::kThreads, K::kMinBlocks)
    TopkKernel(const __grid_constant__ TopkParams p) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  extern __shared__ uint8_t smem_raw[];
  typename K::Shared& s = *reinterpret_cast<typename K::Shared*>(smem_raw);
  const int row = blockIdx.x;
  const int64_t len = max(0, p.hi[row] - p.lo[row]);
  const float* scores = p.scores + row * p.stride;
  const uint32_t need = static_cast<uint32_t>(min(int64_t{p.k}, len));

  if (len <= p.k) {
    K::SelectAll(s, p, scores, len);
  } else if (K::TrySample(len, need) && K::SampledSelect(s, scores, len, need)) {
    __syncthreads();
  } else {
    // 1. Narrow the bucket of the need-th key through histogram passes.
    uint32_t prefix = 0;  // the fixed high bits
    int shift = 32;       // bits below the prefix
    uint32_t need_left = need;
    uint32_t bucket_count = 0;
    for (int pass = 0; pass < 3; ++pass) {
      const int digit_bits = pass < 2 ? 11 : 10;
      const int bins = 1 << digit_bits;
      for (int i = threadIdx.x; i < bins; i += K::kThreads) s.hist[i] = 0;
      __syncthreads();
      K::HistogramPass(scores, 0, len, prefix, shift, digit_bits, s.hist);
      __syncthreads();
      K::FindBoundary(s, s.hist, bins, need_left);
      const int bin = s.boundary_bin;
      need_left -= s.count_above;
      bucket_count = s.hist[bin];
      prefix = (shift == 32 ? 0u : prefix << digit_bits) | static_cast<uint32_t>(bin);
      shift -= digit_bits;
      __syncthreads();  // everyone has read s.hist / s.boundary_bin
      if (bucket_count <= K::kCandidateCap) break;
    }
    const bool in_shared = bucket_count <= K::kCandidateCap;
    // 2. Keys above the bucket into the result, the bucket's keys into shared memory.
    K::EmitPass(s, scores, 0, len, prefix, shift, in_shared, need, need_left, s.selected,
             s.candidates, 0, 0);
    // 3. The need_left best of the bucket.
    if (in_shared && need_left > 0) {
      K::FinishBucket(s, need, need_left, static_cast<int>(bucket_count), prefix, shift);
    }
    __syncthreads();
  }
  K::WriteRow(s, p, row, need, scores);
}


// A cluster of kCluster CTAs per row, for few long rows (batch-1 decode): each CTA histograms
// and scans a slice of the row; the histograms are summed through distributed shared memory,
// and every CTA writes its slice's selected and bucket keys, in index order, into the shared
// memory of CTA 0, which finishes the row like TopkKernel. Same result, same order.
// Two CTAs per SM where the launch has more CTAs than SMs (pinned: the compiler otherwise may
// take more than 64 registers and leave one); a cluster of 16 serves at most 8 rows.
template <int kCluster>
__global__ void __launch_bounds__(Wide::kThreads, kCluster >= 16 ? 1 : 2) TopkClusterKernel(const __grid_constant__ TopkParams p) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  namespace cg = cooperative_groups;
  using K = Wide;
  extern __shared__ uint8_t smem_raw[];
  K::ClusterShared& cs = *reinterpret_cast<K::ClusterShared*>(smem_raw);
  K::Shared& s = cs.s;
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int row = blockIdx.x / kCluster;
  const int64_t len = max(0, p.hi[row] - p.lo[row]);
  const float* scores = p.scores + row * p.stride;
  const uint32_t need = static_cast<uint32_t>(min(int64_t{p.k}, len));

  if (len <= p.k) {  // the same for every CTA of the cluster
    if (rank != 0) return;
    K::SelectAll(s, p, scores, len);
    K::WriteRow(s, p, row, need, scores);
    return;
  }
  const int64_t per = (len + kCluster - 1) / kCluster;
  const int64_t begin = min(len, rank * per), end = min(len, begin + per);
  K::Shared* rank0 = cluster.map_shared_rank(&s, 0);

  // The sampled threshold (Topk::SampledSelect): every CTA samples the whole row, so all find the
  // same threshold without exchanging histograms; each keeps its slice's keys, then writes them
  // into CTA 0's candidates after the slices before it (CTA 0's own are in place). Batch-64 flat
  // decode (clusters of 4): top-k 57-61 -> 47-50 us. Not for clusters of 16 (a few rows: batch-1
  // decode 22 -> 23 us, and at 1M, where the sample no longer fits shared memory, flat decode
  // 118 -> 170 us).
  if (kCluster <= 8 && K::TrySample(len, need)) {
    const uint32_t threshold = K::SampleThreshold(s, scores, len, need, kCluster != 2);
    const uint32_t kept = K::KeepAtLeast(s, scores, begin, end, threshold, s.candidates);
    if (threadIdx.x == 0) s.my_bucket = kept;
    cluster.sync();  // every slice's count is published
    uint32_t total = 0, before = 0;
    for (int r = 0; r < kCluster; ++r) {
      const uint32_t c = cluster.map_shared_rank(&s, r)->my_bucket;
      before += r < rank ? c : 0u;
      total += c;
    }
    if (total >= need && total <= K::kCandidateCap) {  // the same decision in every CTA
      if (rank != 0) {
        for (uint32_t i = threadIdx.x; i < kept; i += K::kThreads) {
          rank0->candidates[before + i] = s.candidates[i];
        }
      }
      cluster.sync();  // CTA 0 holds every kept key
      if (rank != 0) return;
      K::FinishBucket(s, need, need, static_cast<int>(total), 0, 32);
      __syncthreads();
      K::WriteRow(s, p, row, need, scores);
      return;
    }
    // Misjudged: the passes below (the next cluster barrier comes after every CTA read the
    // counts, before my_bucket is written again).
  }

  uint32_t prefix = 0;
  int shift = 32;
  uint32_t need_left = need;
  uint32_t bucket_count = 0;
  uint32_t my_above = 0;  // this slice's keys above the final bucket
  for (int pass = 0; pass < 3; ++pass) {
    const int digit_bits = pass < 2 ? 11 : 10;
    const int bins = 1 << digit_bits;
    for (int i = threadIdx.x; i < bins; i += K::kThreads) s.hist[i] = 0;
    __syncthreads();
    K::HistogramPass(scores, begin, end, prefix, shift, digit_bits, s.hist);
    cluster.sync();  // every slice's histogram is complete
    for (int i = threadIdx.x; i < bins; i += K::kThreads) {
      uint32_t sum = 0;
#pragma unroll
      for (int r = 0; r < kCluster; ++r) sum += cluster.map_shared_rank(s.hist, r)[i];
      cs.total[i] = sum;
    }
    __syncthreads();
    K::FindBoundary(s, cs.total, bins, need_left);
    const int bin = s.boundary_bin;
    uint32_t mine = 0;
    for (int i = bin + 1 + threadIdx.x; i < bins; i += K::kThreads) mine += s.hist[i];
    uint32_t before = 0, slice_above = 0;
    K::Scan(s.scan).ExclusiveSum(mine, before, slice_above);  // this slice's keys above bin
    my_above += slice_above;
    need_left -= s.count_above;
    bucket_count = cs.total[bin];
    if (threadIdx.x == 0) s.my_bucket = s.hist[bin];
    prefix = (shift == 32 ? 0u : prefix << digit_bits) | static_cast<uint32_t>(bin);
    shift -= digit_bits;
    if (threadIdx.x == 0) s.my_above = my_above;
    cluster.sync();  // every CTA is done reading the others' histograms
    if (bucket_count <= K::kCandidateCap) break;
  }
  const bool in_shared = bucket_count <= K::kCandidateCap;
  // Where this slice's keys go: after the keys of the slices before it.
  uint32_t above_base = 0, bucket_base = 0;
  for (int r = 0; r < rank; ++r) {
    const K::Shared* other = cluster.map_shared_rank(&s, r);
    above_base += other->my_above;
    bucket_base += other->my_bucket;
  }
  K::EmitPass(s, scores, begin, end, prefix, shift, in_shared, need, need_left, rank0->selected,
           rank0->candidates, above_base, bucket_base);
  cluster.sync();  // CTA 0 holds every slice's keys; the others are done reading shared memory
  if (rank != 0) return;
  if (in_shared && need_left > 0) {
    K::FinishBucket(s, need, need_left, static_cast<int>(bucket_count), prefix, shift);
  }
  __syncthreads();
  K::WriteRow(s, p, row, need, scores);
}

// Rows of at most kThreads x kPerThread keys (HISA stage 1's block rows, short flat rows): the
// row is read once and stays in registers, and RegisterSelect (select.cuh) finds the k-th key in
// radix steps of 11 bits (8 for a one-warp CTA) below the bits that the row's minimum and maximum
// share. Same set and tie rule as the kernels above; the output is in ascending index order,
// which is what sort_by_index asks (sort_by_score takes the kernels above).
template <int kThreads, int kPerThread>
__global__ void __launch_bounds__(kThreads) TopkRegisterKernel(const __grid_constant__ TopkParams p) {
  WaitForPrecedingGrids();
  LetDependentsStart();
  using Select = RegisterSelect<kThreads, kPerThread, (kThreads > 32 ? 11 : 8)>;
  __shared__ typename Select::Shared s;
  const int row = blockIdx.x;
  const int len = max(0, p.hi[row] - p.lo[row]);
  const float* scores = p.scores + row * p.stride;
  const int need = min(p.k, len);
  const int first = threadIdx.x * kPerThread;
  const int32_t add = p.add ? p.add[row] : 0;
  const int32_t* blocks =
      p.output == TopkOutput::kCandidate ? p.blocks + int64_t{row} * p.blocks_stride : nullptr;
  // Block rows (HISA stage 1): the own block and the query's length are loaded here, in flight
  // during the selection, rather than after it where the frame and stage 2's range need them.
  const bool blocks_row = p.output == TopkOutput::kBlocks;
  const int own_block = blocks_row ? p.own[row] : -1;
  const int length = blocks_row && p.hi2 != nullptr ? p.length[row] : 0;
  // Candidate rows of up to 8192 keys (HISA stage 2 in decode): the row of the first candidate
  // of every run of `run` keys (a block, or a page of it) into shared memory, one thread a run,
  // its loads in flight during the selection; an output is then a shared-memory read instead of
  // two dependent global ones (stage 2's top-k at batch 64 x 128K,
  // Nsight Compute: 12.0-12.1 -> 11.1-11.4 us, experiments-r18).
  constexpr bool kRunTable = kThreads * kPerThread > 2048;
  __shared__ int32_t run_row[kRunTable ? kThreads : 1];
  int run = 0, runs = 0;
  if (kRunTable && blocks != nullptr) {
    const int b = p.block_size, ps = p.page_size;
    run = !p.paged || ps % b == 0 ? b : (b % ps == 0 ? ps : 0);
    runs = run > 0 ? (len + run - 1) / run : 0;
    if (runs > kThreads) run = 0;
  }
  const bool my_run = run > 0 && static_cast<int>(threadIdx.x) < runs;
  const int per_block = run > 0 ? p.block_size / run : 1;
  int32_t run_value = my_run ? blocks[threadIdx.x / per_block] : 0;  // the block, for now
  uint32_t key[kPerThread];
  LoadKeys(scores, first, len, key);
  if (my_run) {  // CandidateValue of the run's first candidate, its block loaded above
    const int pos = run_value * p.block_size + static_cast<int>(threadIdx.x % per_block) * run;
    run_value = p.paged ? PagedRowOf(SequencePages(p, row), p.page_size, pos) : pos + add;
  }
  uint32_t threshold = 0;
  int take_equal = 0, slot = 0;
  Select::Threshold(s, threadIdx.x, key, len, p.k, &threshold, &take_equal);
  if (my_run) run_row[threadIdx.x] = run_value;
  uint32_t taken = Select::Taken(s, threadIdx.x, key, len, threshold, take_equal, &slot);
  if (run > 0) __syncthreads();  // run_row is complete (uniform: run depends on the row only)
  BlocksFrame frame;
  if (blocks_row) frame = BlocksFrame(own_block);
  int32_t* out = p.out + int64_t{row} * p.out_stride;
  float* out_scores = p.out_scores ? p.out_scores + int64_t{row} * p.out_stride : nullptr;
  if constexpr (kRunTable) {
    // Candidate rows: a thread's 16 keys lie in one block, so one thread may hold 16 selected
    // keys and the next none. Their indices go to shared memory in slot order (the histogram's
    // room) and every thread then writes need / kThreads outputs, instead of each writing its
    // own (stage 2's top-k at batch 64 x 128K, Nsight Compute: 11.1-11.3 -> 10.1-10.5 us,
    // experiments-r21/staged_output/).
    if (run > 0 && need <= Select::kBins && out_scores == nullptr) {  // uniform
      uint32_t* staged = s.hist;  // free since Threshold's last barrier
      for (int pos = slot; taken != 0; taken &= taken - 1, ++pos) {
        staged[pos] = static_cast<uint32_t>(first + __ffs(taken) - 1);
      }
      __syncthreads();
      for (int i = threadIdx.x; i < need; i += kThreads) {
        int within;
        const int r = DivMod(static_cast<int>(staged[i]), run, &within);
        out[i] = run_row[r] + within;
      }
    }
  }
  for (int pos = frame.head + slot; taken != 0; taken &= taken - 1, ++pos) {  // in index order
    const int j = __ffs(taken) - 1;
    const uint32_t idx = static_cast<uint32_t>(first + j);
    if (run > 0) {
      int within;
      const int r = DivMod(static_cast<int>(idx), run, &within);
      out[pos] = run_row[r] + within;
    } else {
      out[pos] = OutputValue(p, row, idx, add, blocks);
    }
    if (out_scores) out_scores[pos] = scores[first + j];
  }
  // Slots [head, head + need) are written above: the frame (kBlocks) or the padding.
  if (blocks_row) {
    for (int i = threadIdx.x; i < p.out_stride; i += kThreads) {
      if (i < frame.head || i >= frame.head + need) out[i] = frame.Value(i, need);
    }
    if (threadIdx.x == 0) frame.WriteStage2Range(p, row, need, length);
    return;
  }
  for (int i = need + threadIdx.x; i < p.out_stride; i += kThreads) {
    out[i] = -1;
    if (out_scores) out_scores[i] = __int_as_float(0x7fc00000);
  }
}

template <int kThreads, int kPerThread>
Status LaunchRegisterRows(const TopkParams& params, cudaStream_t stream) {
  return LaunchKernel("top-k kernel launch", TopkRegisterKernel<kThreads, kPerThread>,
                      {dim3(params.rows), dim3(kThreads)}, stream, params);
}

template <class K>
Status LaunchRows(const TopkParams& params, cudaStream_t stream) {
  const int smem = static_cast<int>(sizeof(typename K::Shared));
  static std::atomic<uint64_t> configured{0};
  HISA_RETURN_IF_ERROR(
      AllowSharedMemory(reinterpret_cast<const void*>(TopkKernel<K>), smem, &configured));
  return LaunchKernel("top-k kernel launch", TopkKernel<K>,
                      {dim3(params.rows), dim3(K::kThreads), static_cast<size_t>(smem)}, stream,
                      params);
}

template <int kCluster>
Status LaunchClusters(const TopkParams& params, cudaStream_t stream) {
  static std::atomic<uint64_t> configured{0};
  const int smem = static_cast<int>(sizeof(Wide::ClusterShared));
  const void* kernel = reinterpret_cast<const void*>(TopkClusterKernel<kCluster>);
  HISA_RETURN_IF_ERROR(AllowSharedMemory(kernel, smem, &configured, kCluster > 8));
  return LaunchKernel("top-k kernel launch", TopkClusterKernel<kCluster>,
                      {dim3(static_cast<unsigned>(params.rows) * kCluster), dim3(Wide::kThreads),
                       static_cast<size_t>(smem), kCluster},
                      stream, params);
}

}  // namespace

Status LaunchTopk(const TopkParams& params, cudaStream_t stream) {
  if (params.rows == 0) return {};
  if (params.k > Wide::kMaxK || params.out_stride > Wide::kMaxK + 2) {
    return core::Unsupported("top_k = {}: the CUDA backend selects at most {} keys", params.k,
                             Wide::kMaxK);
  }
  DeviceInfo device;
  HISA_RETURN_IF_ERROR(CurrentDevice(&device));
  // Rows of at most 2048 keys (HISA stage 1 to 256K context), unless sorted by score: the row in
  // registers. Many rows (prefill): a warp per row where it fits; few rows (decode): a CTA per
  // row, to cut its latency. Rows of 8192 keys (stage 2) were slower this way on the H100
  // (67 us against the narrow kernel's 52 for 1024 rows), so they stay with the kernels below.
  if (params.max_len > 0 && params.max_len <= 2048 && !params.sort_by_score) {
    const bool many = params.rows >= 4 * device.sm_count;
    if (many && params.max_len <= 256) return LaunchRegisterRows<32, 8>(params, stream);
    if (many && params.max_len <= 1024) return LaunchRegisterRows<32, 32>(params, stream);
    if (params.max_len <= 1024) return LaunchRegisterRows<256, 4>(params, stream);
    return LaunchRegisterRows<256, 8>(params, stream);
  }
  // Rows of up to 8192 keys, fewer than two waves of them (HISA stage 2's candidates in decode,
  // short flat decode rows): the row in registers of 512 threads, which cuts the latency of the
  // kernels below (stage 2 of batch-64 decode 13.2 -> 11.9-12.4 us, batch 1 12.3 -> 10.1-10.5
  // us); with many rows (prefill's stage 2) it was slower (51 against 47 us).
  if (params.max_len > 2048 && params.max_len <= 8192 && !params.sort_by_score &&
      params.rows < 2 * device.sm_count) {
    return LaunchRegisterRows<512, 16>(params, stream);
  }
  // Fewer rows than SMs, long enough to split: a cluster of CTAs per row, as many as keep about
  // two CTAs per SM busy (16 for a few rows, 4 at 64 rows on 132 SMs).
  if (params.rows < device.sm_count && params.max_len >= kClusterMinLength) {
    const int64_t per_row = 2 * device.sm_count / params.rows;
    if (per_row >= 16) return LaunchClusters<16>(params, stream);
    if (per_row >= 8) return LaunchClusters<8>(params, stream);
    if (per_row >= 4) return LaunchClusters<4>(params, stream);
    return LaunchClusters<2>(params, stream);
  }
  // Many rows (several waves) of at most kNarrowLength keys (known from max_len), k small
  // enough: narrow CTAs, more rows in flight. A few rows are latency-bound: wide CTAs.
  if (params.rows >= 2 * device.sm_count && params.max_len > 0 &&
      params.max_len <= kNarrowLength && params.k <= Narrow::kMaxK &&
      params.out_stride <= Narrow::kMaxK) {
    return LaunchRows<Narrow>(params, stream);
  }
  return LaunchRows<Wide>(params, stream);
}

}  // namespace hisa::cuda
