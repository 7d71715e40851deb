// hisa: the number formats of the contract (FP8 E4M3 "fn", bfloat16) and their scale rules.
#pragma once

#include <cstdint>

#include "hisa/types.h"

namespace hisa {

/// Largest finite FP8 E4M3 value.
inline constexpr float kFp8Max = 448.0f;

/// Exact value of an FP8 E4M3 "fn" code (0x7F and 0xFF are NaN).
float Fp8ToFloat(uint8_t code);

/// Nearest FP8 E4M3 code, ties to even; values beyond +-448 (and +-inf) saturate to +-448;
/// NaN maps to 0x7F (0xFF if the sign bit is set).
uint8_t FloatToFp8(float x);

/// Exact value of a bfloat16.
float Bf16ToFloat(uint16_t bits);

/// Nearest bfloat16, ties to even; NaN stays a (quiet) NaN.
uint16_t FloatToBf16(float x);

/// Dequant scale for a row whose largest magnitude is amax: amax / 448, or that rounded up to a
/// power of two (kUe8m0). amax == 0 (or not finite) gives 1.
float Fp8Scale(float amax, ScaleRule rule);

/// Decodes one element of a q/k buffer of the given dtype.
inline float DecodeElement(const void* data, DType t, int64_t i) {
  return t == DType::kFp8E4M3 ? Fp8ToFloat(static_cast<const uint8_t*>(data)[i])
                              : Bf16ToFloat(static_cast<const uint16_t*>(data)[i]);
}

/// Quantizes a float row to FP8 with a per-row scale (rule above): codes[i] = FloatToFp8(x[i] /
/// scale). Returns the scale.
float QuantizeRowFp8(const float* x, int64_t n, ScaleRule rule, uint8_t* codes);

}  // namespace hisa
