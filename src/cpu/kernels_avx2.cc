// AVX2 + FMA kernel: float32 products and sums on the float layout (kernels.h).
#include <immintrin.h>

#include <bit>
#include <cstdint>

#include "core/topk.h"
#include "cpu/kernels.h"

#define HISA_AVX2 __attribute__((target("avx2,fma")))

namespace hisa::cpu {
namespace {

// Heads per register block: 4 heads x 16 keys = 8 accumulators.
constexpr int kHeadBlock = 4;

bool Avx2Supported() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

KernelLayout Avx2Layout(const IndexerConfig& cfg) {
  return FloatLayout(cfg, kHeadBlock);
}

HISA_AVX2 void Avx2ScoreTiles(const KernelLayout& layout, const void* query, const void* tiles,
                              int num_tiles, const float* kscale, float* scores) {
  const int32_t dim = layout.dim, stride = layout.padded_heads;
  const float* q = static_cast<const float*>(query);  // [D][padded_heads]
  const float* w = q + int64_t{dim} * stride;
  const __m256 zero = _mm256_setzero_ps();
  for (int t = 0; t < num_tiles; ++t) {
    const float* tile = static_cast<const float*>(tiles) + int64_t{t} * dim * kTileKeys;
    __m256 sum_lo = zero, sum_hi = zero;
    for (int32_t h = 0; h < stride; h += kHeadBlock) {
      __m256 acc_lo[kHeadBlock], acc_hi[kHeadBlock];
      for (int i = 0; i < kHeadBlock; ++i) acc_lo[i] = acc_hi[i] = zero;
      const float* qh = q + h;
      for (int32_t d = 0; d < dim; ++d) {
        const __m256 k_lo = _mm256_load_ps(tile + d * kTileKeys);
        const __m256 k_hi = _mm256_load_ps(tile + d * kTileKeys + 8);
        for (int i = 0; i < kHeadBlock; ++i) {
          const __m256 qd = _mm256_broadcast_ss(qh + int64_t{d} * stride + i);
          acc_lo[i] = _mm256_fmadd_ps(qd, k_lo, acc_lo[i]);
          acc_hi[i] = _mm256_fmadd_ps(qd, k_hi, acc_hi[i]);
        }
      }
      // max(acc, 0) returns its second operand, 0, when acc is NaN: ReLU(NaN) = 0.
      for (int i = 0; i < kHeadBlock; ++i) {
        const __m256 wh = _mm256_broadcast_ss(w + h + i);
        sum_lo = _mm256_fmadd_ps(wh, _mm256_max_ps(acc_lo[i], zero), sum_lo);
        sum_hi = _mm256_fmadd_ps(wh, _mm256_max_ps(acc_hi[i], zero), sum_hi);
      }
    }
    const float* scale = kscale + t * kTileKeys;
    float* out = scores + t * kTileKeys;
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(sum_lo, _mm256_loadu_ps(scale)), zero));
    _mm256_storeu_ps(out + 8,
                     _mm256_add_ps(_mm256_mul_ps(sum_hi, _mm256_loadu_ps(scale + 8)), zero));
  }
}

// Kernel::append_keys: survivors found with signed compares (ScoreBits(x) ^ 0x80000000 is
// bits ^ (bits >> 31), arithmetic shift, for numbers and INT32_MIN for NaN), keys built per
// survivor.
HISA_AVX2 int Avx2AppendKeys(const float* scores, int count, int64_t first_pos, uint32_t floor,
                             uint64_t* out) {
  const __m256i signed_floor = _mm256_set1_epi32(static_cast<int>(floor ^ 0x80000000u));
  const __m256i nan_key = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  int written = 0;
  int i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256 s = _mm256_add_ps(_mm256_loadu_ps(scores + i), _mm256_setzero_ps());
    const __m256i bits = _mm256_castps_si256(s);  // -0 became +0 above
    const __m256i number_key = _mm256_xor_si256(bits, _mm256_srai_epi32(bits, 31));
    const __m256 is_nan = _mm256_cmp_ps(s, s, _CMP_UNORD_Q);
    const __m256i key = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(number_key), _mm256_castsi256_ps(nan_key), is_nan));
    const __m256i below = _mm256_cmpgt_epi32(signed_floor, key);
    for (uint32_t mask = ~_mm256_movemask_ps(_mm256_castsi256_ps(below)) & 0xFFu; mask != 0;
         mask &= mask - 1) {
      const int j = i + std::countr_zero(mask);
      out[written++] = core::OrderKey(scores[j], first_pos + j);
    }
  }
  return written + ScalarAppendKeys(scores + i, count - i, first_pos + i, floor, out + written);
}

}  // namespace

const Kernel kAvx2Kernel = {
    .name = "avx2",
    .supported = &Avx2Supported,
    .layout = &Avx2Layout,
    .prepare_query = &PrepareFloatQuery,
    .pack_tile = &PackFloatTile,
    .score_tiles = &Avx2ScoreTiles,
    .append_keys = &Avx2AppendKeys,
    .keep_in_range = &KeepInRange,
    .begin_scores = nullptr,
    .end_scores = nullptr,
};

}  // namespace hisa::cpu
