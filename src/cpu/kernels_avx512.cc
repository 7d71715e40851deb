// AVX-512F kernel: float32 FMA on the float layout (kernels.h), 16 keys per register.
//
// FP8 and BF16 products are exact in float32, so only the sums round. (vdpbf16ps would take
// bfloat16 pairs directly, but on Sapphire Rapids it issues at half the rate of two float32
// FMAs per cycle, so it does half the work per cycle.)
#include <algorithm>
#include <cstdint>

#include "cpu/avx512_common.h"
#include "cpu/kernels.h"

namespace hisa::cpu {
namespace {

// Heads per register block: 8 heads x 32 keys = 16 accumulators.
constexpr int kHeadBlock = 8;

bool Avx512Supported() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

KernelLayout Avx512Layout(const IndexerConfig& cfg) {
  return FloatLayout(cfg, kHeadBlock);
}

// bfloat16 (16-bit lanes of a 256-bit half) -> float32: the bits move to the upper half.
HISA_AVX512_INLINE __m512i Bf16ToFloat(__m256i bf16) {
  return _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16);
}

HISA_AVX512 void Avx512PackTile(const KernelLayout& layout, DType k_dtype, const void* const* rows,
                                void* out) {
  float* tile = static_cast<float*>(out);  // [D][kTileKeys]
  const Fp8Bf16Table table = LoadFp8Bf16Table();
  // 32 elements of every key per step: convert, then transpose each half to element-major.
  for (int32_t d0 = 0; d0 < layout.dim; d0 += 32) {
    const int32_t count = std::min(32, layout.dim - d0);
    __m512i low[kTileKeys], high[kTileKeys];
    for (int s = 0; s < kTileKeys; ++s) {
      const __m512i bf16 = LoadBf16x32(rows[s], k_dtype, d0, count, table);
      low[s] = Bf16ToFloat(_mm512_castsi512_si256(bf16));
      high[s] = Bf16ToFloat(_mm512_extracti64x4_epi64(bf16, 1));
    }
    Transpose16x16(low);
    for (int32_t d = 0; d < std::min(16, count); ++d) {
      _mm512_store_si512(tile + int64_t{d0 + d} * kTileKeys, low[d]);
    }
    if (count <= 16) continue;
    Transpose16x16(high);
    for (int32_t d = 16; d < count; ++d) {
      _mm512_store_si512(tile + int64_t{d0 + d} * kTileKeys, high[d - 16]);
    }
  }
}

// kTiles tiles of 16 keys at once: 8 heads x kTiles accumulators per pass over D.
template <int kTiles>
HISA_AVX512_INLINE void ScoreTilesT(const KernelLayout& layout, const float* q, const float* w,
                                    const float* tiles, const float* kscale, float* scores) {
  const int32_t dim = layout.dim, stride = layout.padded_heads;
  const int64_t tile_stride = int64_t{dim} * kTileKeys;
  const __m512 zero = _mm512_setzero_ps();
  __m512 sum[kTiles];
  for (int t = 0; t < kTiles; ++t) sum[t] = zero;
  for (int32_t h = 0; h < stride; h += kHeadBlock) {
    __m512 acc[kHeadBlock][kTiles];
    for (int i = 0; i < kHeadBlock; ++i) {
      for (int t = 0; t < kTiles; ++t) acc[i][t] = zero;
    }
    const float* qh = q + h;
    for (int32_t d = 0; d < dim; ++d) {
      __m512 keys[kTiles];
      for (int t = 0; t < kTiles; ++t)
        keys[t] = _mm512_load_ps(tiles + t * tile_stride + d * kTileKeys);
      const float* qd = qh + int64_t{d} * stride;
      for (int i = 0; i < kHeadBlock; ++i) {
        const __m512 qi = _mm512_set1_ps(qd[i]);
        for (int t = 0; t < kTiles; ++t) acc[i][t] = _mm512_fmadd_ps(qi, keys[t], acc[i][t]);
      }
    }
    // max(acc, 0) returns its second operand, 0, when acc is NaN: ReLU(NaN) = 0.
    for (int i = 0; i < kHeadBlock; ++i) {
      const __m512 wh = _mm512_set1_ps(w[h + i]);
      for (int t = 0; t < kTiles; ++t) {
        sum[t] = _mm512_fmadd_ps(wh, _mm512_max_ps(acc[i][t], zero), sum[t]);
      }
    }
  }
  for (int t = 0; t < kTiles; ++t) {
    const __m512 scaled = _mm512_mul_ps(sum[t], _mm512_loadu_ps(kscale + t * kTileKeys));
    _mm512_storeu_ps(scores + t * kTileKeys, _mm512_add_ps(scaled, zero));  // -0 -> +0
  }
}

HISA_AVX512 void Avx512ScoreTiles(const KernelLayout& layout, const void* query, const void* tiles,
                                  int num_tiles, const float* kscale, float* scores) {
  const float* q = static_cast<const float*>(query);  // [D][padded_heads]
  const float* w = q + int64_t{layout.dim} * layout.padded_heads;
  const float* packed = static_cast<const float*>(tiles);
  if (num_tiles == 2) {
    ScoreTilesT<2>(layout, q, w, packed, kscale, scores);
  } else {
    ScoreTilesT<1>(layout, q, w, packed, kscale, scores);
  }
}

}  // namespace

const Kernel kAvx512Kernel = {
    .name = "avx512",
    .supported = &Avx512Supported,
    .layout = &Avx512Layout,
    .prepare_query = &PrepareFloatQuery,
    .pack_tile = &Avx512PackTile,
    .score_tiles = &Avx512ScoreTiles,
    .append_keys = &Avx512AppendKeys,
    .keep_in_range = &Avx512KeepInRange,
    .begin_scores = nullptr,
    .end_scores = nullptr,
};

}  // namespace hisa::cpu
