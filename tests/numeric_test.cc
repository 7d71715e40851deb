// The number formats of the contract: FP8 E4M3 "fn" and bfloat16 codecs, and the scale rules.
#include "hisa/numeric.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "test_util.h"

namespace hisa {
namespace {

using testutil::Fp8Value;
using testutil::NearestBf16;
using testutil::NearestFp8;
using testutil::Rng;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool IsNaNCode(int code) {
  return (code & 0x7F) == 0x7F;
}

// ---------------------------------------------------------------------------------------------
// FP8 E4M3 fn
// ---------------------------------------------------------------------------------------------

TEST(Fp8Codec, EveryCodeDecodesToItsBitFieldValue) {
  for (int code = 0; code < 256; ++code) {
    const float got = Fp8ToFloat(static_cast<uint8_t>(code));
    if (IsNaNCode(code)) {
      EXPECT_TRUE(std::isnan(got)) << "code " << code;
      continue;
    }
    EXPECT_EQ(static_cast<double>(got), Fp8Value(static_cast<uint8_t>(code))) << "code " << code;
    EXPECT_EQ(std::signbit(got), code >= 0x80) << "code " << code;
  }
}

TEST(Fp8Codec, LandmarkCodes) {
  EXPECT_EQ(Fp8ToFloat(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(Fp8ToFloat(0x80)));
  EXPECT_EQ(Fp8ToFloat(0x80), 0.0f);
  EXPECT_EQ(Fp8ToFloat(0x01), std::ldexp(1.0f, -9));         // smallest subnormal
  EXPECT_EQ(Fp8ToFloat(0x07), 7.0f * std::ldexp(1.0f, -9));  // largest subnormal
  EXPECT_EQ(Fp8ToFloat(0x08), std::ldexp(1.0f, -6));         // smallest normal
  EXPECT_EQ(Fp8ToFloat(0x38), 1.0f);
  EXPECT_EQ(Fp8ToFloat(0xB8), -1.0f);
  EXPECT_EQ(Fp8ToFloat(0x7E), 448.0f);
  EXPECT_EQ(Fp8ToFloat(0xFE), -448.0f);
  EXPECT_EQ(Fp8ToFloat(0x7D), 416.0f);
  EXPECT_EQ(kFp8Max, 448.0f);
  EXPECT_TRUE(std::isnan(Fp8ToFloat(0x7F)));
  EXPECT_TRUE(std::isnan(Fp8ToFloat(0xFF)));
  // "fn": the exponent-15 codes other than mantissa 7 are ordinary finite values.
  EXPECT_EQ(Fp8ToFloat(0x78), 256.0f);
  EXPECT_EQ(Fp8ToFloat(0x7C), 384.0f);
}

TEST(Fp8Codec, EncodeOfDecodeIsIdentityForEveryNonNaNCode) {
  for (int code = 0; code < 256; ++code) {
    if (IsNaNCode(code)) continue;
    EXPECT_EQ(FloatToFp8(Fp8ToFloat(static_cast<uint8_t>(code))), code) << "code " << code;
  }
}

TEST(Fp8Codec, NaNEncodesToTheNaNCodeOfItsSign) {
  EXPECT_EQ(FloatToFp8(kNaN), 0x7F);
  EXPECT_EQ(FloatToFp8(-kNaN), 0xFF);
  EXPECT_EQ(FloatToFp8(std::bit_cast<float>(0x7F800001u)), 0x7F);  // signalling payload
  EXPECT_EQ(FloatToFp8(std::bit_cast<float>(0xFFC00001u)), 0xFF);
}

TEST(Fp8Codec, MidpointsBetweenConsecutiveCodesRoundToEven) {
  // Every pair of adjacent finite magnitudes, subnormal and normal; exact midpoints are
  // representable in float32.
  for (int code = 0; code < 0x7E; ++code) {
    const float lo = Fp8ToFloat(static_cast<uint8_t>(code));
    const float hi = Fp8ToFloat(static_cast<uint8_t>(code + 1));
    const float mid = (lo + hi) / 2.0f;
    ASSERT_EQ(static_cast<double>(mid), (Fp8Value(code) + Fp8Value(code + 1)) / 2.0);
    const int even = code % 2 == 0 ? code : code + 1;
    EXPECT_EQ(FloatToFp8(mid), even) << "midpoint " << mid << " of codes " << code;
    EXPECT_EQ(FloatToFp8(-mid), 0x80 | even) << "midpoint " << -mid;
    EXPECT_EQ(FloatToFp8(std::nextafter(mid, kInf)), code + 1) << "just above " << mid;
    EXPECT_EQ(FloatToFp8(std::nextafter(mid, 0.0f)), code) << "just below " << mid;
    EXPECT_EQ(FloatToFp8(-std::nextafter(mid, kInf)), 0x80 | (code + 1));
    EXPECT_EQ(FloatToFp8(-std::nextafter(mid, 0.0f)), 0x80 | code);
  }
}

TEST(Fp8Codec, SmallestMidpointRoundsToZeroAndTinyValuesKeepTheirSign) {
  const float half_min = std::ldexp(1.0f, -10);
  EXPECT_EQ(FloatToFp8(half_min), 0x00);
  EXPECT_EQ(FloatToFp8(-half_min), 0x80);
  EXPECT_EQ(FloatToFp8(std::ldexp(1.0f, -40)), 0x00);
  EXPECT_EQ(FloatToFp8(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(FloatToFp8(-std::numeric_limits<float>::denorm_min()), 0x80);
  EXPECT_EQ(FloatToFp8(0.0f), 0x00);
  EXPECT_EQ(FloatToFp8(-0.0f), 0x80);
  // 3/2 * 2^-9 is the tie between codes 1 and 2: even is 2.
  EXPECT_EQ(FloatToFp8(1.5f * std::ldexp(1.0f, -9)), 0x02);
  // Between the largest subnormal (7 * 2^-9) and the smallest normal (8 * 2^-9).
  EXPECT_EQ(FloatToFp8(7.5f * std::ldexp(1.0f, -9)), 0x08);
}

TEST(Fp8Codec, SaturatesAtPlusMinus448AndBeyond) {
  for (float x : {448.0f, 448.5f, 460.0f, 464.0f, 465.0f, 480.0f, 1.0e4f, 3.0e38f, kInf,
                  std::numeric_limits<float>::max()}) {
    EXPECT_EQ(FloatToFp8(x), 0x7E) << x;
    EXPECT_EQ(FloatToFp8(-x), 0xFE) << -x;
  }
  // 432 is the tie between 416 (0x7D, odd) and 448 (0x7E): even wins.
  EXPECT_EQ(FloatToFp8(432.0f), 0x7E);
  EXPECT_EQ(FloatToFp8(std::nextafter(432.0f, 0.0f)), 0x7D);
  EXPECT_EQ(FloatToFp8(447.99f), 0x7E);
}

TEST(Fp8Codec, RandomFloatsEncodeToTheNearestCode) {
  Rng rng(11);
  std::uniform_real_distribution<float> exponent(-14.0f, 10.0f);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int i = 0; i < 20000; ++i) {
    const float x = unit(rng) * std::exp2(exponent(rng));
    ASSERT_EQ(FloatToFp8(x), NearestFp8(x)) << "x = " << x;
  }
}

// ---------------------------------------------------------------------------------------------
// bfloat16
// ---------------------------------------------------------------------------------------------

TEST(Bf16Codec, EveryPatternRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const float value = Bf16ToFloat(static_cast<uint16_t>(bits));
    EXPECT_EQ(std::bit_cast<uint32_t>(value), bits << 16);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(value))));
    } else {
      ASSERT_EQ(FloatToBf16(value), bits) << "bits " << bits;
    }
  }
}

TEST(Bf16Codec, TiesRoundToEven) {
  // 1 + 2^-8 sits halfway between bf16 1.0 (0x3F80, even) and 1.0078125 (0x3F81, odd).
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0xBF818000u)), 0xBF82);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);  // just above
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F817FFFu)), 0x3F81);  // just below
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x00008000u)), 0x0000);  // subnormal tie
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x00018000u)), 0x0002);
  // Past the largest finite bf16 the nearest is infinity; infinities stay.
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(FloatToBf16(kInf), 0x7F80);
  EXPECT_EQ(FloatToBf16(-kInf), 0xFF80);
  EXPECT_EQ(FloatToBf16(-0.0f), 0x8000);
}

TEST(Bf16Codec, NaNStaysNaN) {
  for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0x7F80FFFFu, 0xFF800001u, 0xFFFFFFFFu}) {
    const uint16_t got = FloatToBf16(std::bit_cast<float>(bits));
    EXPECT_TRUE(std::isnan(Bf16ToFloat(got))) << std::hex << bits << " -> " << got;
  }
}

TEST(Bf16Codec, RandomFloatsEncodeToTheNearestBf16) {
  Rng rng(12);
  std::uniform_int_distribution<uint32_t> bits_dist;
  for (int i = 0; i < 200000; ++i) {
    const float x = std::bit_cast<float>(bits_dist(rng));
    if (std::isnan(x)) continue;
    ASSERT_EQ(FloatToBf16(x), NearestBf16(x)) << std::hex << std::bit_cast<uint32_t>(x);
  }
}

// ---------------------------------------------------------------------------------------------
// Scale rules
// ---------------------------------------------------------------------------------------------

TEST(Fp8Scale, AmaxRuleIsAmaxOver448) {
  EXPECT_EQ(Fp8Scale(448.0f, ScaleRule::kAmax), 1.0f);
  EXPECT_EQ(Fp8Scale(896.0f, ScaleRule::kAmax), 2.0f);
  Rng rng(13);
  std::uniform_real_distribution<float> exponent(-30.0f, 30.0f);
  for (int i = 0; i < 1000; ++i) {
    const float amax = std::exp2(exponent(rng));
    EXPECT_EQ(Fp8Scale(amax, ScaleRule::kAmax), amax / 448.0f) << amax;
  }
}

TEST(Fp8Scale, Ue8m0IsTheSmallestPowerOfTwoAtLeastAmaxOver448) {
  EXPECT_EQ(Fp8Scale(448.0f, ScaleRule::kUe8m0), 1.0f);
  EXPECT_EQ(Fp8Scale(447.0f, ScaleRule::kUe8m0), 1.0f);
  EXPECT_EQ(Fp8Scale(449.0f, ScaleRule::kUe8m0), 2.0f);
  EXPECT_EQ(Fp8Scale(224.0f, ScaleRule::kUe8m0), 0.5f);
  EXPECT_EQ(Fp8Scale(std::nextafter(224.0f, kInf), ScaleRule::kUe8m0), 1.0f);
  EXPECT_EQ(Fp8Scale(std::nextafter(448.0f, kInf), ScaleRule::kUe8m0), 2.0f);
  Rng rng(14);
  std::uniform_real_distribution<float> exponent(-30.0f, 30.0f);
  for (int i = 0; i < 2000; ++i) {
    const float amax = std::exp2(exponent(rng));
    const double scale = Fp8Scale(amax, ScaleRule::kUe8m0);
    int e = 0;
    EXPECT_EQ(std::frexp(scale, &e), 0.5) << "not a power of two: " << scale;
    EXPECT_GE(scale, double{amax} / 448.0) << amax;
    EXPECT_LT(scale / 2.0, double{amax} / 448.0) << amax;
    EXPECT_EQ(scale, testutil::Ue8m0Scale(amax)) << amax;
  }
}

TEST(Fp8Scale, ZeroNegativeAndNonFiniteAmaxGiveOne) {
  for (ScaleRule rule : {ScaleRule::kAmax, ScaleRule::kUe8m0}) {
    EXPECT_EQ(Fp8Scale(0.0f, rule), 1.0f);
    EXPECT_EQ(Fp8Scale(-0.0f, rule), 1.0f);
    EXPECT_EQ(Fp8Scale(kInf, rule), 1.0f);
    EXPECT_EQ(Fp8Scale(kNaN, rule), 1.0f);
  }
}

TEST(QuantizeRowFp8, CodesAreTheNearestCodesOfXOverTheScale) {
  Rng rng(15);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (ScaleRule rule : {ScaleRule::kAmax, ScaleRule::kUe8m0}) {
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<float> x(64);
      for (float& v : x) v = normal(rng) * (trial + 1);
      float amax = 0.0f;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      std::vector<uint8_t> codes(x.size());
      const float scale =
          QuantizeRowFp8(x.data(), static_cast<int64_t>(x.size()), rule, codes.data());
      const double expected_scale =
          rule == ScaleRule::kAmax ? double{amax / 448.0f} : testutil::Ue8m0Scale(amax);
      EXPECT_EQ(double{scale}, expected_scale);
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_EQ(codes[i], NearestFp8(x[i] / scale)) << "element " << i;
      }
      // The largest magnitude lands at the top of the range: 448 exactly for the amax rule.
      const size_t top = static_cast<size_t>(
          std::max_element(x.begin(), x.end(),
                           [](float a, float b) { return std::fabs(a) < std::fabs(b); }) -
          x.begin());
      if (rule == ScaleRule::kAmax) {
        EXPECT_EQ(codes[top] & 0x7F, 0x7E);
      } else {
        EXPECT_GE(std::fabs(Fp8ToFloat(codes[top])), 224.0f);  // |x / scale| in (224, 448]
      }
    }
  }
}

TEST(QuantizeRowFp8, ZeroRowGetsScaleOneAndZeroCodes) {
  std::vector<float> x(16, 0.0f);
  std::vector<uint8_t> codes(16, 0x55);
  EXPECT_EQ(QuantizeRowFp8(x.data(), 16, ScaleRule::kAmax, codes.data()), 1.0f);
  for (uint8_t c : codes) EXPECT_EQ(c, 0x00);
  EXPECT_EQ(QuantizeRowFp8(x.data(), 16, ScaleRule::kUe8m0, codes.data()), 1.0f);
}

TEST(QuantizeRowFp8, NaNElementIsIgnoredByAmaxAndEncodedAsNaN) {
  std::vector<float> x = {1.0f, kNaN, -896.0f, 2.0f};
  std::vector<uint8_t> codes(4);
  EXPECT_EQ(QuantizeRowFp8(x.data(), 4, ScaleRule::kAmax, codes.data()), 2.0f);
  EXPECT_EQ(codes[1] & 0x7F, 0x7F);
  EXPECT_EQ(codes[2], 0xFE);
  EXPECT_EQ(codes[0], NearestFp8(0.5));
}

TEST(DTypeSize, Fp8IsOneByteBf16Two) {
  EXPECT_EQ(DTypeSize(DType::kFp8E4M3), 1);
  EXPECT_EQ(DTypeSize(DType::kBf16), 2);
}

}  // namespace
}  // namespace hisa
