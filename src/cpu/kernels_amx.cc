// AMX kernel: tdpbf16ps tile products, AVX-512 epilogue. FP8 E4M3 and BF16 values are exact
// bfloat16 values and their products exact in float32, so only the float32 sums round.
//
// The query is the A operand (16 heads x 32 elements per step, row-major bfloat16) and a key
// tile the B operand (16 element pairs x 16 keys, pairs interleaved), so a product tile holds
// C[head][key]. Two head tiles x two key tiles are accumulated per sweep over D (tiles 0-3; the
// query rows are tiles 4-5, the keys 6-7), then each head row is folded into the keys' sums with
// w and ReLU in head order.
//
// Layouts (Dp = D rounded up to 32, Hp = H rounded up to 16, or to 32 above 16 heads):
//   prepared query: q [Hp][Dp] bfloat16, then w [Hp] float
//   tile:           key pairs [Dp / 2][kTileKeys] uint32 (pair p of key s at p * 16 + s)
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/avx512_common.h"
#include "cpu/kernels.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define HISA_AMX __attribute__((target(HISA_AVX512_TARGET ",amx-tile,amx-bf16")))
#define HISA_AMX_INLINE HISA_AMX __attribute__((always_inline)) inline

namespace hisa::cpu {
namespace {

constexpr int kHeadTile = 16;      // heads per product tile (its rows)
constexpr int kStepElements = 32;  // elements of D per tdpbf16ps (64 bytes of bfloat16)
constexpr int kStepBytes = kStepElements * 2;

int64_t RoundUp(int64_t x, int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

// Linux hands out AMX state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM).
bool RequestAmxPermission() {
#if defined(__linux__)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  static const bool granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
#else
  return false;
#endif
}

bool AmxSupported() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16") &&
         RequestAmxPermission();
}

KernelLayout AmxLayout(const IndexerConfig& cfg) {
  KernelLayout layout;
  layout.heads = cfg.num_heads;
  layout.padded_heads =
      static_cast<int32_t>(RoundUp(cfg.num_heads, cfg.num_heads <= kHeadTile ? 16 : 32));
  layout.dim = cfg.head_dim;
  layout.padded_dim = static_cast<int32_t>(RoundUp(cfg.head_dim, kStepElements));
  layout.query_bytes =
      RoundUp(int64_t{layout.padded_heads} * (int64_t{layout.padded_dim} * 2 + 4), 64);
  layout.tile_bytes = int64_t{layout.padded_dim} / 2 * kTileKeys * 4;
  return layout;
}

HISA_AVX512 void AmxPrepareQuery(const KernelLayout& layout, DType q_dtype, const void* q,
                                 const float* w, void* out) {
  const int32_t dp = layout.padded_dim;
  uint16_t* q_out = static_cast<uint16_t*>(out);  // [Hp][Dp]
  float* w_out = reinterpret_cast<float*>(q_out + int64_t{layout.padded_heads} * dp);
  std::memset(w_out, 0, static_cast<size_t>(layout.padded_heads) * sizeof(float));
  std::memcpy(w_out, w, static_cast<size_t>(layout.heads) * sizeof(float));
  const Fp8Bf16Table table = LoadFp8Bf16Table();
  const int64_t row_bytes = int64_t{layout.dim} * DTypeSize(q_dtype);
  for (int32_t h = 0; h < layout.padded_heads; ++h) {
    const void* row = h < layout.heads ? static_cast<const uint8_t*>(q) + h * row_bytes : nullptr;
    for (int32_t d0 = 0; d0 < dp; d0 += kStepElements) {
      const int32_t count = std::clamp(layout.dim - d0, 0, kStepElements);
      _mm512_store_si512(q_out + int64_t{h} * dp + d0, LoadBf16x32(row, q_dtype, d0, count, table));
    }
  }
}

// 16 pairs (32 elements) of every key per step: convert, then transpose to pair-major.
HISA_AVX512 void AmxPackTile(const KernelLayout& layout, DType k_dtype, const void* const* rows,
                             void* out) {
  uint32_t* tile = static_cast<uint32_t*>(out);  // [Dp / 2][kTileKeys]
  const Fp8Bf16Table table = LoadFp8Bf16Table();
  for (int32_t d0 = 0; d0 < layout.padded_dim; d0 += kStepElements) {
    const int32_t count = std::clamp(layout.dim - d0, 0, kStepElements);
    __m512i block[kTileKeys];
    for (int s = 0; s < kTileKeys; ++s) block[s] = LoadBf16x32(rows[s], k_dtype, d0, count, table);
    Transpose16x16(block);
    for (int p = 0; p < 16; ++p) {
      _mm512_store_si512(tile + int64_t{d0 / 2 + p} * kTileKeys, block[p]);
    }
  }
}

// Every tile 16 rows of 64 bytes: 0-3 products (fp32), 4-5 query rows (A), 6-7 keys (B).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(TileConfig) == 64);

HISA_AMX void AmxBeginScores() {
  static const TileConfig config;
  _tile_loadconfig(&config);
}

HISA_AMX void AmxEndScores() {
  _tile_release();
}

// Adds w[h] * max(c[h][key], 0) over the 16 head rows of a product tile, in head order.
// max(c, 0) returns its second operand, 0, when c is NaN: ReLU(NaN) = 0.
HISA_AVX512_INLINE __m512 FoldHeads(const float* products, const float* w, __m512 sum) {
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < kHeadTile; ++r) {
    const __m512 relu = _mm512_max_ps(_mm512_load_ps(products + r * kTileKeys), zero);
    sum = _mm512_fmadd_ps(_mm512_set1_ps(w[r]), relu, sum);
  }
  return sum;
}

// kHeadTiles (1 or 2) head tiles x kKeyTiles (1 or 2) key tiles per sweep over D; product tile
// (i, j) is tile 2 i + j.
template <int kHeadTiles, int kKeyTiles>
HISA_AMX_INLINE void ScoreTilesT(const KernelLayout& layout, const uint8_t* query,
                                 const uint8_t* tiles, const float* kscale, float* scores) {
  const int64_t q_stride = int64_t{layout.padded_dim} * 2;  // bytes per head row
  const float* w = reinterpret_cast<const float*>(query + layout.padded_heads * q_stride);
  alignas(64) float products[4][kHeadTile * kTileKeys];
  __m512 sums[kKeyTiles];
  for (int j = 0; j < kKeyTiles; ++j) sums[j] = _mm512_setzero_ps();
  for (int32_t h0 = 0; h0 < layout.padded_heads; h0 += kHeadTiles * kHeadTile) {
    const uint8_t* a = query + h0 * q_stride;
    _tile_zero(0);
    if constexpr (kKeyTiles == 2) _tile_zero(1);
    if constexpr (kHeadTiles == 2) _tile_zero(2);
    if constexpr (kHeadTiles == 2 && kKeyTiles == 2) _tile_zero(3);
    for (int32_t d0 = 0; d0 < layout.padded_dim; d0 += kStepElements) {
      const uint8_t* b = tiles + int64_t{d0 / 2} * kTileKeys * 4;  // pairs d0 / 2 ..
      _tile_loadd(4, a + d0 * 2, q_stride);
      _tile_loadd(6, b, kTileKeys * 4);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (kKeyTiles == 2) {
        _tile_loadd(7, b + layout.tile_bytes, kTileKeys * 4);
        _tile_dpbf16ps(1, 4, 7);
      }
      if constexpr (kHeadTiles == 2) {
        _tile_loadd(5, a + kHeadTile * q_stride + d0 * 2, q_stride);
        _tile_dpbf16ps(2, 5, 6);
        if constexpr (kKeyTiles == 2) _tile_dpbf16ps(3, 5, 7);
      }
    }
    constexpr int kRowBytes = kTileKeys * 4;
    _tile_stored(0, products[0], kRowBytes);
    if constexpr (kKeyTiles == 2) _tile_stored(1, products[1], kRowBytes);
    if constexpr (kHeadTiles == 2) _tile_stored(2, products[2], kRowBytes);
    if constexpr (kHeadTiles == 2 && kKeyTiles == 2) _tile_stored(3, products[3], kRowBytes);
    for (int i = 0; i < kHeadTiles; ++i) {
      for (int j = 0; j < kKeyTiles; ++j) {
        sums[j] = FoldHeads(products[2 * i + j], w + h0 + i * kHeadTile, sums[j]);
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int j = 0; j < kKeyTiles; ++j) {
    const __m512 scaled = _mm512_mul_ps(sums[j], _mm512_loadu_ps(kscale + j * kTileKeys));
    _mm512_storeu_ps(scores + j * kTileKeys, _mm512_add_ps(scaled, zero));  // -0 -> +0
  }
}

HISA_AMX void AmxScoreTiles(const KernelLayout& layout, const void* query, const void* tiles,
                            int num_tiles, const float* kscale, float* scores) {
  const uint8_t* q = static_cast<const uint8_t*>(query);
  const uint8_t* packed = static_cast<const uint8_t*>(tiles);
  const bool two_head_tiles = layout.padded_heads > kHeadTile;
  if (num_tiles == 2) {
    if (two_head_tiles) {
      ScoreTilesT<2, 2>(layout, q, packed, kscale, scores);
    } else {
      ScoreTilesT<1, 2>(layout, q, packed, kscale, scores);
    }
  } else if (two_head_tiles) {
    ScoreTilesT<2, 1>(layout, q, packed, kscale, scores);
  } else {
    ScoreTilesT<1, 1>(layout, q, packed, kscale, scores);
  }
}

}  // namespace

const Kernel kAmxKernel = {
    .name = "amx_bf16",
    .supported = &AmxSupported,
    .layout = &AmxLayout,
    .prepare_query = &AmxPrepareQuery,
    .pack_tile = &AmxPackTile,
    .score_tiles = &AmxScoreTiles,
    .append_keys = &Avx512AppendKeys,
    .keep_in_range = &Avx512KeepInRange,
    .begin_scores = &AmxBeginScores,
    .end_scores = &AmxEndScores,
};

}  // namespace hisa::cpu
