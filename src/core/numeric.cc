// FP8 E4M3 "fn" and bfloat16 codecs, bit-exact and independent of the FPU's rounding mode.
#include "hisa/numeric.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace hisa {
namespace {

std::array<float, 256> MakeFp8Table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    const int sign = code >> 7;
    const int exponent = (code >> 3) & 0xF;
    const int mantissa = code & 0x7;
    float value;
    if (exponent == 0xF && mantissa == 0x7) {
      value = std::numeric_limits<float>::quiet_NaN();
    } else if (exponent == 0) {
      value = std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m * 2^-9
    } else {
      value = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
    }
    table[code] = sign ? -value : value;
  }
  return table;
}

const std::array<float, 256> kFp8Table = MakeFp8Table();

}  // namespace

float Fp8ToFloat(uint8_t code) { return kFp8Table[code]; }

uint8_t FloatToFp8(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7F;  // NaN
  if (magnitude >= 0x43E00000u) return sign | 0x7E;  // >= 448 (and inf): saturate
  if (magnitude < 0x3C800000u) {
    // Below 2^-6: subnormal codes m * 2^-9, m in 0..8 (8 is the smallest normal, code 0x08).
    // Scale by 2^9 exactly and round to an integer, ties to even, with integer arithmetic.
    const float scaled = std::bit_cast<float>(magnitude) * 512.0f;  // exact: power of two
    const float floor_value = std::floor(scaled);
    const float fraction = scaled - floor_value;                     // exact
    uint32_t m = static_cast<uint32_t>(floor_value);
    if (fraction > 0.5f || (fraction == 0.5f && (m & 1u))) ++m;
    return sign | static_cast<uint8_t>(m);
  }
  // Normal: keep 3 of the 23 mantissa bits, round to nearest even; a carry moves into the
  // exponent field, which is exactly the next binade.
  const uint32_t exponent = (magnitude >> 23) - 127 + 7;  // 1..15
  const uint32_t mantissa = magnitude & 0x7FFFFFu;
  uint32_t code = (exponent << 3) | (mantissa >> 20);
  const uint32_t rest = mantissa & 0xFFFFFu;
  if (rest > 0x80000u || (rest == 0x80000u && (code & 1u))) ++code;
  if (code > 0x7Eu) code = 0x7Eu;  // only reachable from [448, 464): caught above; kept as guard
  return sign | static_cast<uint8_t>(code);
}

float Bf16ToFloat(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t FloatToBf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float Fp8Scale(float amax, ScaleRule rule) {
  if (!(amax > 0.0f) || !std::isfinite(amax)) return 1.0f;
  const float scale = amax / kFp8Max;
  if (rule == ScaleRule::kAmax) return scale;
  // Smallest power of two >= scale.
  int exponent = 0;
  const float fraction = std::frexp(scale, &exponent);  // scale = fraction * 2^exponent
  return fraction == 0.5f ? scale : std::ldexp(1.0f, exponent);
}

float QuantizeRowFp8(const float* x, int64_t n, ScaleRule rule, uint8_t* codes) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) amax = a;  // NaN never wins a comparison
  }
  const float scale = Fp8Scale(amax, rule);
  for (int64_t i = 0; i < n; ++i) codes[i] = FloatToFp8(x[i] / scale);
  return scale;
}

}  // namespace hisa
