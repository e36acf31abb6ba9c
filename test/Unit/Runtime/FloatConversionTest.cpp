//===- FloatConversionTest.cpp - Tests of the f16/bf16 conversions --------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The conversions between double and binary16 / bfloat16
// (moma/Format/FloatConversion.h): rounding, specials, exhaustive round trips.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/FloatConversion.h"

#include <cmath>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

TEST(FloatConversion, HalfAndBFloat16) {
  EXPECT_EQ(doubleToHalf(1.0), 0x3c00);
  EXPECT_EQ(doubleToHalf(-2.0), 0xc000);
  EXPECT_EQ(doubleToHalf(65504.0), 0x7bff);
  EXPECT_EQ(doubleToHalf(65520.0), 0x7c00); // rounds up to infinity
  EXPECT_EQ(doubleToHalf(65519.99), 0x7bff);
  EXPECT_EQ(doubleToHalf(std::ldexp(1.0, -24)), 0x0001);
  EXPECT_EQ(doubleToHalf(std::ldexp(1.0, -25)), 0x0000); // tie to even
  EXPECT_EQ(doubleToHalf(std::ldexp(1.5, -25)), 0x0001);
  EXPECT_EQ(doubleToHalf(std::ldexp(1023.5, -24)), 0x0400); // to min normal
  EXPECT_EQ(doubleToHalf(1e-300), 0x0000);
  EXPECT_EQ(doubleToHalf(-0.0), 0x8000);
  EXPECT_EQ(doubleToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(doubleToHalf(NAN) & 0x7e00, 0x7e00);
  EXPECT_EQ(doubleToBFloat16(1.0), 0x3f80);
  EXPECT_EQ(doubleToBFloat16(1.0 + std::ldexp(1.0, -8)), 0x3f80);
  EXPECT_EQ(doubleToBFloat16(1.0 + 3 * std::ldexp(1.0, -8)), 0x3f82);
  EXPECT_EQ(doubleToBFloat16(3.0e38), 0x7f62);
  EXPECT_EQ(doubleToBFloat16(1e39), 0x7f80);
  EXPECT_EQ(halfToDouble(0x3555), 0.333251953125);
  EXPECT_EQ(bfloat16ToDouble(0xc0a0), -5.0);
  EXPECT_TRUE(std::isnan(halfToDouble(0x7e00)));
  // Every finite pattern round-trips.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    uint16_t h = static_cast<uint16_t>(bits);
    if ((h & 0x7c00) != 0x7c00)
      EXPECT_EQ(doubleToHalf(halfToDouble(h)), h) << bits;
    if ((h & 0x7f80) != 0x7f80)
      EXPECT_EQ(doubleToBFloat16(bfloat16ToDouble(h)), h) << bits;
  }
}

} // namespace
