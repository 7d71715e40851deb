// Internal: AVX-512 helpers shared by the AVX-512 and AMX kernel files. Include only from files
// whose callers are compiled for (and dispatched on) AVX-512F + AVX-512BW.
#pragma once

#include <immintrin.h>

#include <bit>
#include <cstdint>

#include "cpu/kernels.h"

// GCC 12's AVX-512 headers build _mm512_undefined_*() from a self-initialized variable, which
// -Wmaybe-uninitialized reports at every inlined use (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define HISA_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq"
#define HISA_AVX512 __attribute__((target(HISA_AVX512_TARGET)))
#define HISA_AVX512_INLINE HISA_AVX512 __attribute__((always_inline)) inline

namespace hisa::cpu {

/// The 128 FP8 magnitude codes' bfloat16 bits, four registers of 32.
struct Fp8Bf16Table {
  __m512i part[4];
};

HISA_AVX512_INLINE Fp8Bf16Table LoadFp8Bf16Table() {
  const uint16_t* bits = Fp8ToBf16Table();
  Fp8Bf16Table table;
  for (int i = 0; i < 4; ++i) table.part[i] = _mm512_loadu_si512(bits + 32 * i);
  return table;
}

/// 32 FP8 codes -> 32 bfloat16 (16-bit lanes), exactly: vpermi2w looks the magnitude up among 64
/// entries per pair of registers, bit 6 picks the pair, then the sign bit is copied.
HISA_AVX512_INLINE __m512i Fp8ToBf16(__m256i codes, const Fp8Bf16Table& table) {
  const __m512i index = _mm512_cvtepu8_epi16(codes);
  const __m512i low = _mm512_permutex2var_epi16(table.part[0], index, table.part[1]);
  const __m512i high = _mm512_permutex2var_epi16(table.part[2], index, table.part[3]);
  const __mmask32 is_high = _mm512_test_epi16_mask(index, _mm512_set1_epi16(0x40));
  const __m512i magnitude = _mm512_mask_blend_epi16(is_high, low, high);
  const __m512i sign = _mm512_slli_epi16(_mm512_and_si512(index, _mm512_set1_epi16(0x80)), 8);
  return _mm512_or_si512(magnitude, sign);
}

/// Loads `count` (<= 32) elements of a key row at element d0 as 32 bfloat16; the rest are +0.
/// row null: all +0.
HISA_AVX512_INLINE __m512i LoadBf16x32(const void* row, DType dtype, int32_t d0, int32_t count,
                                       const Fp8Bf16Table& table) {
  if (row == nullptr) return _mm512_setzero_si512();
  const __mmask32 valid = count >= 32 ? ~__mmask32{0} : (__mmask32{1} << count) - 1;
  if (dtype == DType::kFp8E4M3) {
    return Fp8ToBf16(_mm256_maskz_loadu_epi8(valid, static_cast<const uint8_t*>(row) + d0), table);
  }
  return _mm512_maskz_loadu_epi16(valid, static_cast<const uint16_t*>(row) + d0);
}

/// In-place transpose of a 16 x 16 matrix of 32-bit elements, one row per register.
HISA_AVX512_INLINE void Transpose16x16(__m512i rows[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
  }
  // u[4b + c], 128-bit lane L: column 4L + c of rows 4b .. 4b + 3.
  for (int b = 0; b < 16; b += 4) {
    u[b + 0] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
    u[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
    u[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
    u[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
  }
  // Column 4L + c gathers lane L of u[c], u[4 + c], u[8 + c], u[12 + c].
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    rows[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    rows[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    rows[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    rows[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

/// Kernel::append_keys: core::ScoreBits in lanes (NaN -> 0; negative scores bit-inverted,
/// others with the top bit set), compared unsigned with floor; survivors' keys (score bits over
/// the inverted 32-bit position) compressed into place 8 at a time.
HISA_AVX512 inline int Avx512AppendKeys(const float* scores, int count, int64_t first_pos,
                                        uint32_t floor, uint64_t* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int written = 0;
  for (int i = 0; i < count; i += 16) {
    const __mmask16 valid = count - i >= 16 ? 0xFFFF : (__mmask16{1} << (count - i)) - 1;
    const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(valid, scores + i), _mm512_setzero_ps());
    const __m512i bits = _mm512_castps_si512(s);  // -0 became +0 above
    const __m512i flip = _mm512_or_si512(_mm512_srai_epi32(bits, 31),
                                         _mm512_set1_epi32(static_cast<int>(0x80000000u)));
    const __mmask16 number = _mm512_cmp_ps_mask(s, s, _CMP_ORD_Q);
    const __m512i score_bits = _mm512_maskz_xor_epi32(number, bits, flip);
    const __mmask16 pass =
        _mm512_mask_cmpge_epu32_mask(valid, score_bits, _mm512_set1_epi32(static_cast<int>(floor)));
    // 0xFFFFFFFF - pos: positions fit in 31 bits.
    const __m512i position =
        _mm512_xor_si512(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first_pos + i)), lane),
                         _mm512_set1_epi32(-1));
    for (int half = 0; half < 2; ++half) {
      const __m256i score_half =
          half == 0 ? _mm512_castsi512_si256(score_bits) : _mm512_extracti64x4_epi64(score_bits, 1);
      const __m256i position_half =
          half == 0 ? _mm512_castsi512_si256(position) : _mm512_extracti64x4_epi64(position, 1);
      const __m512i keys = _mm512_or_si512(_mm512_slli_epi64(_mm512_cvtepu32_epi64(score_half), 32),
                                           _mm512_cvtepu32_epi64(position_half));
      const __mmask8 take = static_cast<__mmask8>(pass >> (8 * half));
      _mm512_storeu_si512(out + written, _mm512_maskz_compress_epi64(take, keys));
      written += std::popcount(static_cast<uint32_t>(take));
    }
  }
  return written;
}

/// KeepInRangeFn: 8 keys per compare, survivors compressed into place. A full store at
/// out + kept is safe: kept <= i, and out holds n elements.
HISA_AVX512 inline int64_t Avx512KeepInRange(const uint64_t* keys, int64_t n, uint64_t lo,
                                             uint64_t hi, uint64_t* out) {
  const __m512i low = _mm512_set1_epi64(static_cast<int64_t>(lo));
  const __m512i high = _mm512_set1_epi64(static_cast<int64_t>(hi));
  int64_t kept = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i v = _mm512_loadu_si512(keys + i);
    const __mmask8 in = _mm512_mask_cmple_epu64_mask(_mm512_cmpge_epu64_mask(v, low), v, high);
    _mm512_storeu_si512(out + kept, _mm512_maskz_compress_epi64(in, v));
    kept += std::popcount(static_cast<uint32_t>(in));
  }
  return kept + KeepInRange(keys + i, n - i, lo, hi, out + kept);
}

}  // namespace hisa::cpu
