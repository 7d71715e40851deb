// The fast CPU backend's vector kernels, one family per instruction set, picked at run time.
//
// A kernel scores one query against tiles of 16 keys:
//
//   score[s] = kscale[s] * sum_h w[h] * max(dot(q[h], k[s]), 0) + 0
//
// FP8 and BF16 values are exact in bfloat16 and their products exact in float32, so every family
// differs from the exact score by float32 sums only: the dot product over D, then the head sum in
// head order. A NaN dot product counts as 0 (ReLU(NaN) = 0) and -0 comes out as +0.
//
//   amx_bf16  AMX tdpbf16ps on bfloat16 tiles, AVX-512 epilogue (Sapphire Rapids and later)
//   avx512    AVX-512F float32 FMA, 16 keys per register
//   avx2      AVX2 float32 FMA, 8 keys per register
//   scalar    portable C++
//
// Queries and keys are first rewritten into the kernel's layout: prepare_query once per query,
// pack_tile once per tile of keys (then reused by every query that reads the tile).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "cpu/stream_topk.h"
#include "hisa/types.h"

namespace hisa::cpu {

/// Keys per packed tile. Pages (a multiple of 16 tokens) and blocks never split a tile.
inline constexpr int kTileKeys = 16;

/// Sizes of a kernel's layouts for one indexer shape.
struct KernelLayout {
  int32_t heads = 0;         // H
  int32_t padded_heads = 0;  // H rounded up to the kernel's head block (zero q rows, zero w)
  int32_t dim = 0;           // D
  int32_t padded_dim = 0;    // D rounded up to the kernel's step (zero elements)
  int64_t query_bytes = 0;   // one prepared query (q and w), a multiple of 64
  int64_t tile_bytes = 0;    // one packed tile of kTileKeys keys, a multiple of 64
};

/// One instruction-set family. Buffers are 64-byte aligned.
struct Kernel {
  const char* name;  // "amx_bf16", "avx512", "avx2", "scalar"
  bool (*supported)();
  KernelLayout (*layout)(const IndexerConfig& cfg);
  /// q: [H, D] q_dtype, w: [H] -> out: [query_bytes].
  void (*prepare_query)(const KernelLayout& layout, DType q_dtype, const void* q, const float* w,
                        void* out);
  /// rows[i]: key i's D elements of k_dtype, or null for a zero key -> out: [tile_bytes].
  void (*pack_tile)(const KernelLayout& layout, DType k_dtype, const void* const* rows, void* out);
  /// Scores num_tiles (1 or 2) consecutive packed tiles: kscale and scores are
  /// [num_tiles * kTileKeys]. Call between begin_scores and end_scores.
  void (*score_tiles)(const KernelLayout& layout, const void* query, const void* tiles,
                      int num_tiles, const float* kscale, float* scores);
  /// For i < count <= 32 in order: writes core::OrderKey(scores[i], first_pos + i) to out when
  /// core::ScoreBits(scores[i]) >= floor (the keys that may enter a top-k whose threshold has
  /// score bits `floor`). Returns how many; may write garbage up to out[32).
  int (*append_keys)(const float* scores, int count, int64_t first_pos, uint32_t floor,
                     uint64_t* out);
  /// The selection's filter (stream_topk.h); KeepInRange where there is no vector version.
  KeepInRangeFn keep_in_range;
  /// May be null. Called on a thread before and after a run of score_tiles calls (AMX loads
  /// and releases its tile configuration).
  void (*begin_scores)();
  void (*end_scores)();
};

/// The kernel the CPU backend uses: the best one this CPU supports, unless the environment
/// variable HISA_CPU_KERNEL names another supported one, or ForceKernel chose one.
const Kernel& ActiveKernel();

/// Every kernel this CPU can run, best first.
std::vector<const Kernel*> SupportedKernels();

/// Makes the named kernel active for the rest of the process (tests and benchmarks). Returns
/// false, changing nothing, when the name is unknown or the CPU cannot run it.
bool ForceKernel(std::string_view name);

// Families, each defined in its own file (compiled for its instruction set by function
// attributes, so the library stays runnable on any x86-64).
extern const Kernel kAmxKernel;
extern const Kernel kAvx512Kernel;
extern const Kernel kAvx2Kernel;
extern const Kernel kScalarKernel;

// Float layout shared by the AVX-512, AVX2 and scalar kernels: prepared query = q [D][padded_heads]
// float then w [padded_heads]; tile = [D][kTileKeys] float.
KernelLayout FloatLayout(const IndexerConfig& cfg, int32_t head_block);
void PrepareFloatQuery(const KernelLayout& layout, DType q_dtype, const void* q, const float* w,
                       void* out);
void PackFloatTile(const KernelLayout& layout, DType k_dtype, const void* const* rows, void* out);

/// Portable Kernel::append_keys.
int ScalarAppendKeys(const float* scores, int count, int64_t first_pos, uint32_t floor,
                     uint64_t* out);

/// bfloat16 bits of every FP8 E4M3 code (exact: FP8 values are bfloat16 values).
const uint16_t* Fp8ToBf16Table();
/// float32 value of every FP8 E4M3 code.
const float* Fp8ToFloatTable();

}  // namespace hisa::cpu
