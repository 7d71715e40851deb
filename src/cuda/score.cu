// The scoring kernel (score.h): FP8 tensor cores through wgmma, keys streamed by TMA, warp
// specialized, persistent.
//
// A CTA holds the q rows of a group of queries (at most 128 / H queries x H heads) and streams
// tiles of 192 keys (128 for the pooled keys of a paged cache: two math warpgroups, Shape).
// Keys are the M side of the matrix product (3 math warpgroups x 64 keys) and
// (query, head) pairs the N side, one bank of H columns per query (one wgmma chain of N =
// banks x H): so a thread's accumulators hold 2 keys x H/4 heads of each query, and the
// ReLU-weighted head sum is mostly thread-local (shuffles within the lane quad finish it)
// instead of a cross-warp reduction.
//
//   warpgroups 0-2 (0-1): math (wgmma, ReLU-weighted head sum, kscale, masked store)
//   the last warpgroup:   warp 0 issues the bulk tensor copies (q, keys), copies the group's
//                         gates with the q rows, and finds the key rows
//
// With ScoreParams::topk_out (kSelect instances, HISA prefill stage 2) the math warps store a
// query's scores to shared memory instead and select its top-k there (SelectOnChip).
#include <cute/arch/copy_sm90_tma.hpp>
#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/arch/mma_sm90_gmma.hpp>
#include <cutlass/arch/barrier.h>

#include <cute/arch/copy_sm90_desc.hpp>

#include <climits>
#include <cstdio>
#include <utility>

#include "cuda/common.h"
#include "cuda/divmod.cuh"
#include "cuda/launch.cuh"
#include "cuda/score.h"
#include "cuda/select.cuh"

namespace hisa::cuda {
namespace {

constexpr int kHeadDim = 128;
// Three math warpgroups of 64 keys each: 512 threads a CTA, so that every thread may have 128
// registers (the 64 accumulators of two banks, 32 gates, addresses) with no setmaxnreg. Four
// (640 threads: 96 registers at launch) with setmaxnreg to 112 for math and 32 for the producer,
// or 104 and 64 (the CTA's pool is 640 x 96), spill in the math loop and measured slower: flat
// scoring at 128K 2.64 and 2.79 ms against 2.25 for three (before the single wgmma chain).
// The pooled keys of a paged cache (one-row copies, HISA decode stage 1) take two when the group
// fills at most 64 columns (ScoreTileKeys): a query's few tiles spread over more CTAs, and the
// producer copies 128 rows a tile instead of 192 (stage 1 of batch-1 decode at 128K 11.6 ->
// 7.4 us, batch 64 13.0 -> 11.1 us). For the other layouts two were slower
// (bench/results/2026-11-22-h100-experiments-r9/two_warpgroups_two_ctas/).
template <int kMathWarpgroups>
struct Shape {
  static constexpr int kTileKeys = 64 * kMathWarpgroups;
  static constexpr int kThreads = (kMathWarpgroups + 1) * 128;
  static constexpr int kKeyTileBytes = kTileKeys * kHeadDim;  // 24 KB for three
};
static_assert(Shape<3>::kTileKeys == kScoreTileKeys && Shape<2>::kTileKeys == kScoreTileKeysSmall);
constexpr int kQBytes = kQueryRowsPerCta * kHeadDim;      // 16 KB

using Barrier = cutlass::arch::ClusterTransactionBarrier;
constexpr uint64_t kEvictNormal = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_NORMAL);
constexpr uint64_t kEvictFirst = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_FIRST);

// Waits for a barrier phase. With HISA_KERNEL_WATCHDOG, a wait that lasts about two seconds traps
// (the launch then fails with an error instead of hanging); HISA_KERNEL_WATCHDOG_PRINT also says
// which barrier stalled (a printf call serializes the matrix pipeline: debugging only).
__device__ __forceinline__ void Wait(const Barrier& barrier, uint32_t phase, int tag, int item,
                                     int tile, int tiles, uint32_t iter) {
#if defined(HISA_KERNEL_WATCHDOG)
  if (barrier.try_wait(phase)) return;
  const long long start = clock64();
  while (!barrier.try_wait(phase)) {
    if (clock64() - start > 4'000'000'000LL) {
#if defined(HISA_KERNEL_WATCHDOG_PRINT)
      if (threadIdx.x % 32 == 0) {
        printf("hisa score kernel: stalled on barrier %d (phase %u), block %d warp %d, item %d "
               "tile %d of %d, iter %u\n",
               tag, phase, blockIdx.x, threadIdx.x / 32, item, tile, tiles, iter);
      }
#endif
      __trap();
    }
  }
#else
  barrier.wait(phase);
#endif
  (void)tag, (void)item, (void)tile, (void)tiles, (void)iter;
}

// Shared memory, offsets from a 1024-byte aligned base (swizzled tiles need that alignment).
// An instance whose group fills at most 64 columns (N = banks x H) has at most 64 accumulators a
// thread: it runs two CTAs per SM, with 3 pipeline stages each, so that one CTA's barrier waits
// and epilogues overlap the other's tensor work (one query per CTA in HISA stage 2 and decode is
// latency-bound with one CTA per SM). Wider groups run one CTA per SM with 5 stages.
// Two math warpgroups (tiles of 16 KB) keep 4 stages at two CTAs per SM.
// Selecting on chip (kSelect) adds the query's candidate scores (33 KB) and keeps two CTAs per
// SM with one q slot (the math warps release it before they select, so the next q loads during
// the selection) and 2 stages.
template <int kColumns, int kMathWarpgroups, bool kSelect = false>
struct Config {
  static constexpr int kTileKeys = Shape<kMathWarpgroups>::kTileKeys;
  static constexpr int kKeyTileBytes = Shape<kMathWarpgroups>::kKeyTileBytes;
  static constexpr int kCtasPerSm = ScoreCtasPerSm(kColumns, 1);
  static constexpr int kStages =
      kSelect ? 2 : (kCtasPerSm == 2 ? (kMathWarpgroups == 2 ? 4 : 3) : 5);
  static constexpr int kQSlots = kSelect ? 1 : 2;
  static constexpr int kQOffset = 0;                               // [kQSlots][128 rows][128 B]
  static constexpr int kKeyOffset = kQOffset + kQSlots * kQBytes;  // [kStages][kTileKeys][128 B]
  static constexpr int kBoxRowOffset = kKeyOffset + kStages * kKeyTileBytes;  // [kStages][kTileKeys]
  static constexpr int kWeightOffset = kBoxRowOffset + kStages * kTileKeys * 4;  // [kQSlots][128]
  static constexpr int kBarrierOffset = kWeightOffset + kQSlots * kQueryRowsPerCta * 4;
  static constexpr int kNumBarriers = 2 * kQSlots + 2 * kStages;  // q full/empty, kv full/empty
  static constexpr int kRowOffset = kBarrierOffset + kNumBarriers * 8;  // kSelect: the scores
  static constexpr int kSmemBytes =
      kRowOffset + (kSelect ? kFusedSelectMaxCandidates * 4 : 0) + 1024;  // + alignment slack
  static_assert(kRowOffset % 16 == 0, "the selection's histogram is read 16 bytes at a time");
};

template <int kN>
struct MmaFor;
template <>
struct MmaFor<32> {
  using Atom = cute::SM90::GMMA::MMA_64x32x32_F32E4M3E4M3_SS_TN<>;
};
template <>
struct MmaFor<64> {
  using Atom = cute::SM90::GMMA::MMA_64x64x32_F32E4M3E4M3_SS_TN<>;
};
template <>
struct MmaFor<128> {
  using Atom = cute::SM90::GMMA::MMA_64x128x32_F32E4M3E4M3_SS_TN<>;
};

template <class Atom, size_t... I>
__device__ __forceinline__ void Wgmma(uint64_t desc_a, uint64_t desc_b, float* acc,
                                      cute::SM90::GMMA::ScaleOut scale,
                                      std::index_sequence<I...>) {
  Atom::fma(desc_a, desc_b, acc[I]..., scale);
}

// Descriptor of a K-major tile of 128-byte rows with the 128-byte swizzle (8-row atoms of 1 KB):
// start address >> 4 in bits 0-13, leading byte offset 1 (unused with swizzling) at bit 16,
// stride byte offset 1024 >> 4 at bit 32, layout SWIZZLE_128B (1) at bit 62. Built from 32-bit
// halves so that advancing the start address stays a 32-bit add.
__device__ __forceinline__ uint64_t SmemDescriptor(uint32_t smem_address) {
  const uint32_t lo = (smem_address >> 4) | (1u << 16);
  const uint32_t hi = (1024u >> 4) | (1u << 30);
  return (uint64_t{hi} << 32) | lo;
}

// One (group, key segment) work item, computed identically by every thread.
struct Item {
  int32_t t0 = 0;         // first query of the group
  int32_t count = 0;      // queries in the group
  int32_t c_begin = 0;    // first coordinate of the first tile
  int32_t c_end = 0;      // one past the group's last coordinate (union of ranges)
  int32_t num_tiles = 0;  // tiles of kTileKeys coordinates (the instance's tile)
};

template <int kTileKeys>
__device__ __forceinline__ Item GetItem(const ScoreParams& p, int item, int num_groups) {
  Item it;
  const int group = num_groups - 1 - item / p.segments;  // later (longer, causal) groups first
  const int segment = item % p.segments;
  it.t0 = group * p.group_size;
  it.count = min(p.group_size, p.num_queries - it.t0);
  int lo = INT_MAX, hi = INT_MIN;
  for (int i = 0; i < it.count; ++i) {
    const int l = __ldg(p.lo + it.t0 + i), h = __ldg(p.hi + it.t0 + i);
    if (l < h) {
      lo = min(lo, l);
      hi = max(hi, h);
    }
  }
  if (lo >= hi) return it;  // every row empty: no tiles
  const int tiles = (hi - lo + kTileKeys - 1) / kTileKeys;
  const int per_segment = (tiles + p.segments - 1) / p.segments;
  const int first = segment * per_segment;
  it.num_tiles = max(0, min(per_segment, tiles - first));
  it.c_begin = lo + first * kTileKeys;
  it.c_end = hi;
  return it;
}

// What the key rows of a group depend on, looked up once per work item.
struct GroupKeys {
  const int32_t* pages = nullptr;   // the sequence's block table row (paged layouts)
  const int32_t* blocks = nullptr;  // kBlocks: the query's selected blocks
  int64_t row_base = 0;             // kBlocks prefill: first key row of the sequence
};

__device__ __forceinline__ GroupKeys GetGroupKeys(const ScoreParams& p, int t0) {
  GroupKeys g;
  if (p.block_table) g.pages = p.block_table + int64_t{t0 / p.next_n} * p.bt_stride;
  if (p.layout == KeyLayout::kBlocks) {
    g.blocks = p.blocks + int64_t{t0} * p.blocks_stride;
    if (!p.blocks_paged) g.row_base = __ldg(p.row_base + t0);
  }
  return g;
}

// Key row of coordinate c of a group (positions and rows fit 32 bits: they are bulk-copy
// coordinates).
__device__ __forceinline__ int64_t KeyRow(const ScoreParams& p, const GroupKeys& g, int c) {
  int r;
  switch (p.layout) {
    case KeyLayout::kRows:
      return c;
    case KeyLayout::kPaged: {
      const int page = DivMod(c, p.page_size, &r);
      return int64_t{__ldg(g.pages + page)} * p.page_size + r;
    }
    case KeyLayout::kPooledPaged: {
      if (p.slots_per_page > 1) {
        const int page = DivMod(c, p.slots_per_page, &r);
        return int64_t{__ldg(g.pages + page)} * p.slots_per_page + r;
      }
      return __ldg(g.pages + int64_t{c} * p.pages_per_block);
    }
    case KeyLayout::kBlocks: {
      const int i = DivMod(c, p.block_size, &r);
      const int pos = __ldg(g.blocks + i) * p.block_size + r;
      if (!p.blocks_paged) return g.row_base + pos;
      const int page = DivMod(pos, p.page_size, &r);
      return int64_t{__ldg(g.pages + page)} * p.page_size + r;
    }
  }
  return -1;
}

// One-row copies (the pooled keys of a paged cache, one slot per page; only the non-row layouts'
// instances): a bulk copy of 128 bytes costs about as much as one of 8 KB, so the producer's
// four warps copy 16-byte pieces instead, into the same 128-byte swizzle, warp w rows
// [w, w + 1) x kTileKeys / 4 of every tile, and each stage's full barrier counts the four warps.
// A lane copies piece lane % 8 of rows lane / 8, + 4, + 8, ... (four rows a warp instruction).
// A warp's rows are looked up before the wait, all index loads in flight together. Four warps
// instead of one: stage 1 of HISA decode at batch 64 x 128K 11.1 -> 9.4 us (its tiles are
// latency-bound on the copying warp's instructions, experiments-r21/fused_stage1/).
// Returns kv_iter advanced past the item's tiles.
constexpr int kRowCopyWarps = 4;

template <int kTileKeys, int kStages, class Barrier>
__device__ __forceinline__ uint32_t CopyRowQuarters(const ScoreParams& p, const Item& it,
                                                    const GroupKeys& keys_of, int w, int lane,
                                                    uint32_t kv_iter, Barrier* kv_full,
                                                    Barrier* kv_empty, uint8_t* smem_keys,
                                                    int32_t* smem_box_rows, int item) {
  constexpr int kRows = kTileKeys / kRowCopyWarps;  // rows of a tile this warp copies
  constexpr int kPerLane = (kRows + 31) / 32;
  constexpr int kKeyTileBytes = kTileKeys * kHeadDim;
  for (int j = 0; j < it.num_tiles; ++j, ++kv_iter) {
    const int s = kv_iter % kStages;
    const int c0 = it.c_begin + j * kTileKeys + w * kRows;  // this warp's first coordinate
    int32_t rows[kPerLane];
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      const int i = lane + 32 * u;
      rows[u] = i < kRows && c0 + i < it.c_end ? static_cast<int32_t>(KeyRow(p, keys_of, c0 + i))
                                               : -1;
    }
    Wait(kv_empty[s], ((kv_iter / kStages) & 1) ^ 1, 1, item, j, it.num_tiles, kv_iter);
    int32_t* box_row = smem_box_rows + s * kTileKeys + w * kRows;
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      if (lane + 32 * u < kRows) box_row[lane + 32 * u] = rows[u];
    }
    __syncwarp();
    const int valid = min(kRows, it.c_end - c0);  // this warp's rows in range
    const int chunk = lane % 8;
    const uint32_t keys_address =
        static_cast<uint32_t>(__cvta_generic_to_shared(smem_keys + s * kKeyTileBytes));
    const uint8_t* src = p.key_rows + chunk * 16;
#pragma unroll 4
    for (int i = lane / 8; i < valid; i += 4) {
      const int r = w * kRows + i;  // row of the tile
      const uint32_t dst = keys_address + r * kHeadDim + ((chunk ^ (r & 7)) << 4);
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst),
                   "l"(src + int64_t{box_row[i]} * kHeadDim)
                   : "memory");
    }
    const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&kv_full[s]));
    asm volatile("cp.async.mbarrier.arrive.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
    __syncwarp();
    if (lane == 0) kv_full[s].arrive();
  }
  return kv_iter;
}

// Selection on chip (ScoreParams::topk_out): the top topk_k of query t's len candidate scores,
// which the math threads (warps 0 .. kThreads / 32 - 1, named barrier 1) stored in `row`; the
// selection's shared memory then takes the row's place. Every math thread calls it (an empty
// row writes the padding). A call, not inlined: inlined, the kernel kept 112 bytes of spilled
// registers, some reloaded in the tile loop (64 registers a thread at two CTAs per SM).
template <int kThreads>
__device__ __noinline__ void SelectOnChip(const ScoreParams& p, int t, int len, float* row) {
  constexpr int kPer = kFusedSelectPerThread;
  using Select = RegisterSelect<kThreads, kPer, 11, 1>;
  static_assert(sizeof(typename Select::Shared) <= kFusedSelectMaxCandidates * 4, "fits the row");
  static_assert(kThreads * kPer == kFusedSelectMaxCandidates && kPer % 2 == 0, "8-byte reads");
  const int tid = threadIdx.x;
  const int first = tid * kPer;
  const int B = p.block_size;
  // The blocks of this thread's first and last candidates (B >= kPer: at most two) and the
  // output offset, loaded while the row completes: an output is then CandidateValue's position
  // plus add with no dependent global load.
  const int32_t* blocks = p.blocks + int64_t{t} * p.blocks_stride;
  const int last = min(first + kPer, len) - 1;
  const int block0 = first < len ? __ldg(blocks + first / B) : 0;
  const int block1 = first < len ? __ldg(blocks + last / B) : 0;
  const int32_t add = p.topk_add ? __ldg(p.topk_add + t) : 0;
  Select::Sync();  // every score of the row is stored
  uint32_t key[kPer];
  const float2* row2 = reinterpret_cast<const float2*>(row + first);
#pragma unroll
  for (int j = 0; j < kPer; j += 2) {
    const float2 v = row2[j / 2];  // within the row's room; past len masked below
    key[j] = first + j < len ? ScoreKey(v.x) : 0u;
    key[j + 1] = first + j + 1 < len ? ScoreKey(v.y) : 0u;
  }
  Select::Sync();  // the row is read
  auto& s = *reinterpret_cast<typename Select::Shared*>(row);
  uint32_t threshold = 0;
  int take_equal = 0, slot = 0;
  Select::Threshold(s, tid, key, len, p.topk_k, &threshold, &take_equal);
  const uint32_t taken = Select::Taken(s, tid, key, len, threshold, take_equal, &slot);
  int32_t* out = p.topk_out + int64_t{t} * p.topk_stride;
  float* out_scores = p.topk_scores ? p.topk_scores + int64_t{t} * p.topk_stride : nullptr;
  const int first_block = first / B;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {  // in index order; static indices keep key[] in registers
    if (!((taken >> j) & 1u)) continue;
    int r;
    const int i = DivMod(first + j, B, &r);
    const int position = (i == first_block ? block0 : block1) * B + r;
    out[slot] = position + add;
    if (out_scores) out_scores[slot] = KeyScore(key[j]);
    ++slot;
  }
  for (int i = min(p.topk_k, len) + tid; i < p.topk_stride; i += kThreads) {
    out[i] = -1;
    if (out_scores) out_scores[i] = __int_as_float(0x7fc00000);
  }
}

template <int kHeads, int kBanks, bool kNonRowLayout, int kMathWarpgroups, bool kSelect>
__global__ void __launch_bounds__(Shape<kMathWarpgroups>::kThreads,
                                  Config<kHeads * kBanks, kMathWarpgroups>::kCtasPerSm)
    ScoreKernel(const __grid_constant__ ScoreParams p, const __grid_constant__ CUtensorMap q_map,
                const __grid_constant__ CUtensorMap k_map,
                int num_groups, int num_items) {
  static_assert(kBanks * kHeads <= kQueryRowsPerCta, "one q tile holds the group");
  constexpr int kAcc = kHeads / 2;                    // accumulators per thread per bank
  using C = Config<kHeads * kBanks, kMathWarpgroups, kSelect>;
  static_assert(!kSelect || (kBanks == 1 && kNonRowLayout && C::kCtasPerSm == 2),
                "selection on chip: one query a CTA, candidate keys");
  constexpr int kQSlots = C::kQSlots;
  constexpr int kTileKeys = C::kTileKeys;
  constexpr int kKeyTileBytes = C::kKeyTileBytes;
  constexpr int kStages = C::kStages;
  constexpr bool kGatesInRegisters = C::kCtasPerSm == 1 && kBanks <= 2;
  // One wgmma chain of N = banks x H: its accumulators are the banks' in bank order, and it reads
  // each key slice once instead of once per bank (flat scoring at 128K 2.25 -> 2.16 ms). One
  // commit group per bank bought no overlap: ptxas hoists the wait for a later group above the
  // epilogue of an earlier one.
  using Atom = typename MmaFor<kBanks * kHeads>::Atom;

  // Align by offsetting smem_raw itself, so the compiler still knows every pointer below is
  // shared memory (a pointer rebuilt from an integer turns ld.shared into generic loads).
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (__cvta_generic_to_shared(smem_raw) & 1023)) & 1023);
  uint8_t* smem_q = smem + C::kQOffset;
  uint8_t* smem_keys = smem + C::kKeyOffset;
  int32_t* smem_box_rows = reinterpret_cast<int32_t*>(smem + C::kBoxRowOffset);
  float* smem_weights = reinterpret_cast<float*>(smem + C::kWeightOffset);
  Barrier* barriers = reinterpret_cast<Barrier*>(smem + C::kBarrierOffset);
  Barrier* q_full = barriers;
  Barrier* q_empty = barriers + kQSlots;
  Barrier* kv_full = barriers + 2 * kQSlots;
  Barrier* kv_empty = barriers + 2 * kQSlots + kStages;
  float* smem_row = reinterpret_cast<float*>(smem + C::kRowOffset);  // kSelect

  const int warp = __shfl_sync(0xffffffffu, threadIdx.x / 32, 0);  // uniform: warp-level values
  const int lane = threadIdx.x % 32;
  if (threadIdx.x == kMathWarpgroups * 128) {
    for (int i = 0; i < kQSlots; ++i) {
      q_full[i].init(1);
      q_empty[i].init(kMathWarpgroups * 4);
    }
    for (int i = 0; i < kStages; ++i) {
      kv_full[i].init(kNonRowLayout && p.row_copies ? kRowCopyWarps : 1);
      kv_empty[i].init(kMathWarpgroups * 128);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
  // Everything above touched shared memory only: it overlaps the previous kernel's tail (PDL).
  // No LetDependentsStart here: top-k CTAs scheduled while the scoring CTAs still run made HISA
  // decode at batch 64 slower (60 -> 63-64 us on the H100), and nothing else gained from it.
  WaitForPrecedingGrids();

  if (warp >= kMathWarpgroups * 4) {
    // ---- Producer warpgroup: warp 0 loads; with one-row copies all four warps copy a quarter
    //      of each tile's rows (CopyRowQuarters), otherwise the rest exit. -----------------
    const int producer_warp = warp - kMathWarpgroups * 4;
    if (producer_warp != 0 && !(kNonRowLayout && p.row_copies)) return;
    if (lane == 0) {
      cute::prefetch_tma_descriptor(&q_map);
      cute::prefetch_tma_descriptor(&k_map);
    }
    // Flat decode reads each key once (a group never spans sequences): its keys go first when
    // L2 needs room (flat decode at batch 64 480 -> 475 us). The row layout's instance keeps its
    // constant hint (a run-time choice there made flat scoring slower).
    const uint64_t key_hint =
        kNonRowLayout && p.layout == KeyLayout::kPaged ? kEvictFirst : kEvictNormal;
    uint32_t q_iter = 0, kv_iter = 0;
    for (int item = blockIdx.x; item < num_items; item += gridDim.x) {
      const Item it = GetItem<kTileKeys>(p, item, num_groups);
      if (it.num_tiles == 0) continue;
      const GroupKeys keys_of = GetGroupKeys(p, it.t0);
      if (producer_warp != 0) {  // one-row copies: this warp's quarter of every tile
        kv_iter = CopyRowQuarters<kTileKeys, kStages>(p, it, keys_of, producer_warp, lane, kv_iter,
                                                      kv_full, kv_empty, smem_keys,
                                                      smem_box_rows, item);
        continue;
      }
      // 1. The group's q rows.
      // The group's gates go with them, into the q buffer's slot: 4-byte copies by the lanes (w
      // need not be 16-byte aligned), tracked by the same barrier, so that the math warps never
      // wait on a global load of them. Banks past the group's last query keep whatever the slot
      // held: their scores are never stored (lo == hi).
      const int qs = q_iter % kQSlots;
      if (lane == 0) {
        Wait(q_empty[qs], ((q_iter / kQSlots) & 1) ^ 1, 0, item, -1, it.num_tiles, q_iter);
      }
      __syncwarp();
      {
        float* gates = smem_weights + qs * kQueryRowsPerCta;
        for (int i = lane; i < it.count * kHeads; i += 32) {
          const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(gates + i));
          asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst),
                       "l"(p.w + int64_t{it.t0} * kHeads + i)
                       : "memory");
        }
        const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&q_full[qs]));
        asm volatile("cp.async.mbarrier.arrive.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
      }
      __syncwarp();
      if (lane == 0) {
        q_full[qs].arrive_and_expect_tx(kQBytes);
        cute::SM90_TMA_LOAD_2D::copy(&q_map, reinterpret_cast<uint64_t*>(&q_full[qs]), kEvictNormal,
                                     smem_q + qs * kQBytes, 0, it.t0 * kHeads);
      }
      ++q_iter;
      // 2. Key tiles: bulk copies of box_rows rows; the first row of each box goes to shared
      //    memory for the math warps, which read the key scales themselves. (One-row copies:
      //    this warp's quarter, as the other three producer warps do theirs.)
      if (kNonRowLayout && p.row_copies) {
        kv_iter = CopyRowQuarters<kTileKeys, kStages>(p, it, keys_of, 0, lane, kv_iter, kv_full,
                                                      kv_empty, smem_keys, smem_box_rows, item);
        continue;
      }
      for (int j = 0; j < it.num_tiles; ++j, ++kv_iter) {
        const int s = kv_iter % kStages;
        const int c0 = it.c_begin + j * kTileKeys;
        const int boxes = kTileKeys / p.box_rows;
        const int valid_boxes = min(boxes, (it.c_end - c0 + p.box_rows - 1) / p.box_rows);
        uint8_t* keys = smem_keys + s * kKeyTileBytes;
        int32_t* box_row = smem_box_rows + s * kTileKeys;
        if (!kNonRowLayout && p.row_copies) {
          // Never taken (one-row copies are the non-row layouts', CopyRowQuarters above), but
          // kept: the row layout's instance compiled without this one-warp copy of a tile took
          // flat scoring at 128K from 2.10-2.11 to 2.16-2.18 ms (Nsight Compute,
          // experiments-r21/row_copy_warps/), with its math loop the same but for register names.
          int32_t rows[kTileKeys / 32];
#pragma unroll
          for (int u = 0; u < kTileKeys / 32; ++u) {
            const int b = lane + 32 * u;
            rows[u] = b < valid_boxes ? static_cast<int32_t>(KeyRow(p, keys_of, c0 + b)) : -1;
          }
          Wait(kv_empty[s], ((kv_iter / kStages) & 1) ^ 1, 1, item, j, it.num_tiles, kv_iter);
#pragma unroll
          for (int u = 0; u < kTileKeys / 32; ++u) box_row[lane + 32 * u] = rows[u];
          __syncwarp();
          const uint32_t keys_address = static_cast<uint32_t>(__cvta_generic_to_shared(keys));
          for (int i = lane; i < valid_boxes * 8; i += 32) {
            const int r = i / 8, chunk = i % 8;
            const uint8_t* src = p.key_rows + int64_t{box_row[r]} * kHeadDim + chunk * 16;
            const uint32_t dst = keys_address + r * kHeadDim + ((chunk ^ (r & 7)) << 4);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src)
                         : "memory");
          }
          const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&kv_full[s]));
          asm volatile("cp.async.mbarrier.arrive.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
          __syncwarp();
          if (lane == 0) kv_full[s].arrive();
          continue;
        }
        Wait(kv_empty[s], ((kv_iter / kStages) & 1) ^ 1, 1, item, j, it.num_tiles, kv_iter);
        if (lane == 0) kv_full[s].expect_transaction(valid_boxes * p.box_rows * kHeadDim);
        __syncwarp();
        for (int b = lane; b < boxes; b += 32) {
          int32_t row = -1;
          if (b < valid_boxes) {
            row = static_cast<int32_t>(KeyRow(p, keys_of, c0 + b * p.box_rows));
            cute::SM90_TMA_LOAD_2D::copy(&k_map, reinterpret_cast<uint64_t*>(&kv_full[s]),
                                         key_hint, keys + b * p.box_rows * kHeadDim, 0, row);
          }
          box_row[b] = row;
        }
        __syncwarp();
        if (lane == 0) kv_full[s].arrive();
      }
    }
    return;
  }

  // ---- Math warpgroups. -------------------------------------------------------------------------
  const int wg = warp / 4;
  const int row0 = wg * 64 + (warp % 4) * 16 + lane / 4;  // this thread's keys: row0, row0 + 8
  const int quad = lane % 4;
  const uint32_t key_base_address = static_cast<uint32_t>(__cvta_generic_to_shared(smem_keys));
  const int box_shift = __ffs(p.box_rows) - 1;  // box_rows is a power of two
  const int box_mask = p.box_rows - 1;
  // Instances for the non-row layouts (paged keys, pooled slots, candidates) know it at compile
  // time and carry no per-tile branches for the row layout's key-scale path (HISA stage 2 at
  // 128K 212 -> 205 us, flat decode batch 64 424 -> 417 us). Compiling the row layout's own
  // instance the same way made flat scoring slower (2.13 -> 2.36 ms), so it keeps the run-time
  // test.
  const bool rows_are_coordinates = !kNonRowLayout && p.layout == KeyLayout::kRows;
  // Key rows are bulk-copy coordinates (32 bits): one unsigned compare bounds a row, negative
  // ones included (64-bit compares cost about 20 instructions a tile).
  const uint32_t row_limit = static_cast<uint32_t>(min(p.num_rows, int64_t{INT_MAX}));
  float acc[kBanks * kAcc];  // bank b: acc[b * kAcc, (b + 1) * kAcc), the wgmma's columns of b
  int32_t lo[kBanks], hi[kBanks];
  uint32_t q_iter = 0, kv_iter = 0;
  for (int item = blockIdx.x; item < num_items; item += gridDim.x) {
    const Item it = GetItem<kTileKeys>(p, item, num_groups);
    if (it.num_tiles == 0) {
      if constexpr (kSelect) SelectOnChip<kMathWarpgroups * 128>(p, it.t0, 0, smem_row);
      continue;
    }
    float* out_row[kBanks];  // indexed by coordinate: scores of query t0 + b
#pragma unroll
    for (int b = 0; b < kBanks; ++b) {
      const bool live = b < it.count;
      lo[b] = live ? __ldg(p.lo + it.t0 + b) : 0;
      hi[b] = live ? __ldg(p.hi + it.t0 + b) : 0;  // lo == hi: nothing stored for this bank
      out_row[b] = p.scores + int64_t{it.t0 + b} * p.score_stride -
                   (p.absolute_columns ? 0 : lo[b]);
    }
    const int qs = q_iter % kQSlots;
    Wait(q_full[qs], (q_iter / kQSlots) & 1, 2, item, -1, it.num_tiles, q_iter);
    const uint32_t q_tile_address = static_cast<uint32_t>(__cvta_generic_to_shared(smem_q)) +
                                    qs * kQBytes;
    const float* weights = smem_weights + qs * kQueryRowsPerCta;  // the group's gates, [kBanks][H]
    // One-CTA instances of one or two banks hold this thread's gates (heads 8 jj + 2 quad + {0, 1}
    // of every bank) in registers for the whole item, instead of H / 8 shared-memory loads per
    // bank and tile; the others (64 registers a thread, or four banks) would spill them.
    float gate[kBanks][kHeads / 4];
    if constexpr (kGatesInRegisters) {
#pragma unroll
      for (int b = 0; b < kBanks; ++b) {
        const float2* w2 = reinterpret_cast<const float2*>(weights + b * kHeads + 2 * quad);
#pragma unroll
        for (int jj = 0; jj < kHeads / 8; ++jj) {
          const float2 w = w2[4 * jj];
          gate[b][2 * jj] = w.x;
          gate[b][2 * jj + 1] = w.y;
        }
      }
    }

    for (int j = 0; j < it.num_tiles; ++j, ++kv_iter) {
      const int s = kv_iter % kStages;
      const int c_row0 = it.c_begin + j * kTileKeys + row0;
      float scale0 = 0.0f, scale1 = 0.0f;
      if (rows_are_coordinates) {  // issued before the wait: the latency hides behind it
        const uint32_t r0 = static_cast<uint32_t>(c_row0), r1 = r0 + 8;
        if (r0 < row_limit) scale0 = __ldg(p.kscale + r0);
        if (r1 < row_limit) scale1 = __ldg(p.kscale + r1);
      }
      Wait(kv_full[s], (kv_iter / kStages) & 1, 3, item, j, it.num_tiles, kv_iter);
      // Keys written by plain asynchronous copies are read by the tensor cores' proxy.
      if (p.row_copies) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
      // 1. Scores of this warpgroup's 64 keys against every (query, head) of the group.
      const uint32_t key_tile_address =
          key_base_address + s * kKeyTileBytes + wg * 64 * kHeadDim;
#pragma unroll
      for (int i = 0; i < kBanks * kAcc; ++i) cute::warpgroup_fence_operand(acc[i]);
      cute::warpgroup_arrive();
      {
        // Every bank, also past the group's last query (its q rows are zeros or another
        // group's): a uniform instruction stream keeps the accumulators in place.
        const uint64_t desc_a = SmemDescriptor(key_tile_address);
        const uint64_t desc_b = SmemDescriptor(q_tile_address);
#pragma unroll
        for (int k = 0; k < kHeadDim / 32; ++k) {
          // 32 FP8 = 32 bytes of K per instruction: advance the start address by 2 x 16 B.
          Wgmma<Atom>(desc_a + 2 * k, desc_b + 2 * k, acc,
                      k == 0 ? cute::SM90::GMMA::ScaleOut::Zero : cute::SM90::GMMA::ScaleOut::One,
                      std::make_index_sequence<kBanks * kAcc>{});
        }
        cute::warpgroup_commit_batch();
      }
      // Key scales of this thread's two keys, loaded while the tensor cores work (rows known
      // up front for row layouts; otherwise from the producer's per-box first rows).
      if (!rows_are_coordinates) {
        const int32_t* box_row = smem_box_rows + s * kTileKeys;
        const int32_t first0 = box_row[row0 >> box_shift], first1 = box_row[(row0 + 8) >> box_shift];
        const uint32_t row_a = static_cast<uint32_t>(first0) + (row0 & box_mask);
        const uint32_t row_b = static_cast<uint32_t>(first1) + ((row0 + 8) & box_mask);
        scale0 = first0 >= 0 && row_a < row_limit ? __ldg(p.kscale + row_a) : 0.0f;
        scale1 = first1 >= 0 && row_b < row_limit ? __ldg(p.kscale + row_b) : 0.0f;
      }

      // 2. ReLU-weighted head sum, bank by bank: 2 keys x H/4 heads here, the other 3/4 in the
      //    quad.
      cute::warpgroup_wait<0>();
#pragma unroll
      for (int i = 0; i < kBanks * kAcc; ++i) cute::warpgroup_fence_operand(acc[i]);
      // Every product of the tile is done: each thread releases the stage (its reads of the
      // stage's box rows happened before its own arrival).
      kv_empty[s].arrive();
      float value[2 * kBanks];
#pragma unroll
      for (int b = 0; b < kBanks; ++b) {
        const float* bank = acc + b * kAcc;
        float sum0[2] = {0.0f, 0.0f}, sum1[2] = {0.0f, 0.0f};
        const float2* w2 = reinterpret_cast<const float2*>(weights + b * kHeads + 2 * quad);
#pragma unroll
        for (int jj = 0; jj < kHeads / 8; ++jj) {
          // heads 8 jj + 2 quad + {0, 1}
          const float2 w = kGatesInRegisters ? make_float2(gate[b][2 * jj], gate[b][2 * jj + 1])
                                             : w2[4 * jj];
          sum0[0] = fmaf(w.x, fmaxf(bank[4 * jj + 0], 0.0f), sum0[0]);  // ReLU(NaN) = 0
          sum0[1] = fmaf(w.y, fmaxf(bank[4 * jj + 1], 0.0f), sum0[1]);
          sum1[0] = fmaf(w.x, fmaxf(bank[4 * jj + 2], 0.0f), sum1[0]);
          sum1[1] = fmaf(w.y, fmaxf(bank[4 * jj + 3], 0.0f), sum1[1]);
        }
        value[2 * b] = sum0[0] + sum0[1];
        value[2 * b + 1] = sum1[0] + sum1[1];
      }
      // 3. Quad sums, then scale and store.
      if constexpr (kBanks == 1) {
        // A butterfly; lanes quad 0 and 1 store keys row0 and row0 + 8. (The exchange below
        // adapted to one bank, and other forms of this store, compiled differently and took HISA
        // stage 2 at 64K from 221 to 228-231 us.)
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          value[v] += __shfl_xor_sync(0xffffffffu, value[v], 1);
          value[v] += __shfl_xor_sync(0xffffffffu, value[v], 2);
        }
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          if (v != quad) continue;
          const int c = c_row0 + v * 8;
          if (c >= lo[0] && c < hi[0]) {
            if constexpr (kSelect) {
              smem_row[c - lo[0]] = value[v] * (v ? scale1 : scale0);
            } else {
              out_row[0][c] = value[v] * (v ? scale1 : scale0);
            }
          }
        }
      } else {
        // Of each two banks' four values (bank 2g + f, key e: value 4g + 2f + e), lane
        // quad = 2f + e ends with the quad's total of value 4g + quad: three shuffles instead of
        // a butterfly's eight.
        const int e = quad & 1, f = quad >> 1;
        const float scale = e ? scale1 : scale0;
        const int c = c_row0 + e * 8;
#pragma unroll
        for (int g = 0; g < kBanks / 2; ++g) {
          const float* v = value + 4 * g;
          float pair0 = e ? v[1] : v[0];
          float pair1 = e ? v[3] : v[2];
          pair0 += __shfl_xor_sync(0xffffffffu, e ? v[0] : v[1], 1);
          pair1 += __shfl_xor_sync(0xffffffffu, e ? v[2] : v[3], 1);
          const float total =
              (f ? pair1 : pair0) + __shfl_xor_sync(0xffffffffu, f ? pair0 : pair1, 2);
          const int32_t l = f ? lo[2 * g + 1] : lo[2 * g], h = f ? hi[2 * g + 1] : hi[2 * g];
          float* out = f ? out_row[2 * g + 1] : out_row[2 * g];
          if (c >= l && c < h) out[c] = total * scale;
        }
      }
    }
    __syncwarp();
    if (lane == 0) q_empty[qs].arrive();
    ++q_iter;
    if constexpr (kSelect) SelectOnChip<kMathWarpgroups * 128>(p, it.t0, hi[0] - lo[0], smem_row);
  }
}

template <int kHeads, int kBanks, bool kNonRowLayout, int kMathWarpgroups = 3, bool kSelect = false>
Status LaunchInstance(const ScoreParams& params, const CUtensorMap& q_map, const CUtensorMap& k_map,
                      cudaStream_t stream) {
  DeviceInfo device;
  HISA_RETURN_IF_ERROR(CurrentDevice(&device));
  const int num_groups = (params.num_queries + params.group_size - 1) / params.group_size;
  const int num_items = num_groups * params.segments;
  if (num_items == 0) return {};
  static std::atomic<uint64_t> configured{0};
  using C = Config<kHeads * kBanks, kMathWarpgroups, kSelect>;
  constexpr int kSmemBytes = C::kSmemBytes;
  const auto kernel = ScoreKernel<kHeads, kBanks, kNonRowLayout, kMathWarpgroups, kSelect>;
  HISA_RETURN_IF_ERROR(
      AllowSharedMemory(reinterpret_cast<const void*>(kernel), kSmemBytes, &configured));
  const int grid = std::min(num_items, device.sm_count * C::kCtasPerSm);
  return LaunchKernel("score kernel launch", kernel,
                      {dim3(grid), dim3(Shape<kMathWarpgroups>::kThreads), kSmemBytes}, stream,
                      params, q_map, k_map, num_groups, num_items);
}

template <int kHeads, int kBanks>
Status Launch(const ScoreParams& params, const CUtensorMap& q_map, const CUtensorMap& k_map,
              cudaStream_t stream) {
  if (params.layout == KeyLayout::kRows) {
    return LaunchInstance<kHeads, kBanks, false>(params, q_map, k_map, stream);
  }
  if constexpr (kBanks == 1 && ScoreCtasPerSm(kHeads, 1) == 2) {
    if (params.topk_out != nullptr) {
      return LaunchInstance<kHeads, 1, true, 3, true>(params, q_map, k_map, stream);
    }
  }
  if constexpr (ScoreCtasPerSm(kHeads, kBanks) == 2) {  // instantiated where ScoreTileKeys may pick it
    if (ScoreTileKeys(kHeads, kBanks, params) == kScoreTileKeysSmall) {
      return LaunchInstance<kHeads, kBanks, true, 2>(params, q_map, k_map, stream);
    }
  }
  return LaunchInstance<kHeads, kBanks, true>(params, q_map, k_map, stream);
}

}  // namespace

Status LaunchScore(int heads, const ScoreParams& params, const CUtensorMap& q_map,
                   const CUtensorMap& k_map, cudaStream_t stream) {
  if (params.group_size < 1 || params.group_size * heads > kQueryRowsPerCta) {
    return {StatusCode::kInternal, "score kernel: bad group size"};
  }
  // (blocks_stride is the block budget m: a stage-2 row's blocks.)
  if (params.topk_out != nullptr &&
      (params.layout != KeyLayout::kBlocks || params.blocks_paged || params.group_size != 1 ||
       params.segments != 1 ||
       !FusedSelectionFits(heads, params.blocks_stride, params.block_size) ||
       params.topk_k < 1 || params.topk_stride < params.topk_k)) {
    return {StatusCode::kInternal, "score kernel: selection on chip asked where it does not fit"};
  }
  // One instance per (heads, queries per CTA), each for the row layout and for the others, and
  // one of two math warpgroups for the pooled keys of a paged cache (Launch): a CTA never
  // computes a bank it does not use.
  const int g = params.group_size;
  switch (heads) {
    case 32:
      if (g == 1) return Launch<32, 1>(params, q_map, k_map, stream);
      if (g == 2) return Launch<32, 2>(params, q_map, k_map, stream);
      if (g == 4) return Launch<32, 4>(params, q_map, k_map, stream);
      break;
    case 64:
      if (g == 1) return Launch<64, 1>(params, q_map, k_map, stream);
      if (g == 2) return Launch<64, 2>(params, q_map, k_map, stream);
      break;
    case 128:
      if (g == 1) return Launch<128, 1>(params, q_map, k_map, stream);
      break;
    default: return core::Unsupported("num_heads = {}: the CUDA backend supports 32, 64, 128", heads);
  }
  return {StatusCode::kInternal, "score kernel: no instance for this group size"};
}

}  // namespace hisa::cuda
