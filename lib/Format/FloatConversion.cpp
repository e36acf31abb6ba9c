//===- FloatConversion.cpp - f16/bf16 conversions -------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/FloatConversion.h"

#include <cmath>
#include <cstring>

namespace moma::runtime {
namespace {

/// Decodes a small IEEE-style float with \p expBits exponent bits and
/// \p mantBits mantissa bits.
double decodeSmallFloat(uint32_t bits, int expBits, int mantBits) {
  bool negative = (bits >> (expBits + mantBits)) & 1;
  uint32_t exponent = (bits >> mantBits) & ((1u << expBits) - 1);
  uint32_t mantissa = bits & ((1u << mantBits) - 1);
  int bias = (1 << (expBits - 1)) - 1;
  double value;
  if (exponent == (1u << expBits) - 1)
    value = mantissa ? std::nan("") : INFINITY;
  else if (exponent == 0)
    value = std::ldexp(double(mantissa), 1 - bias - mantBits);
  else
    value = std::ldexp(double(mantissa | (1u << mantBits)),
                       int(exponent) - bias - mantBits);
  return negative ? -value : value;
}

/// Rounds \p sig right by \p shift bits, to nearest, ties to even.
uint64_t roundShift(uint64_t sig, int shift) {
  if (shift <= 0)
    return sig << -shift;
  if (shift > 63)
    return 0;
  uint64_t quotient = sig >> shift;
  uint64_t rest = sig & ((uint64_t(1) << shift) - 1);
  uint64_t half = uint64_t(1) << (shift - 1);
  if (rest > half || (rest == half && (quotient & 1)))
    ++quotient;
  return quotient;
}

/// Encodes \p value in a small IEEE-style float format.
uint32_t encodeSmallFloat(double value, int expBits, int mantBits) {
  uint64_t bits;
  std::memcpy(&bits, &value, 8);
  uint32_t sign = uint32_t(bits >> 63) << (expBits + mantBits);
  int exponent = int((bits >> 52) & 0x7ff);
  uint64_t mantissa = bits & ((uint64_t(1) << 52) - 1);
  uint32_t maxExponent = (1u << expBits) - 1;
  if (exponent == 0x7ff) {
    if (mantissa == 0)
      return sign | (maxExponent << mantBits);
    return sign | (maxExponent << mantBits) | (1u << (mantBits - 1));
  }
  if (exponent == 0)
    return sign; // zero, or a double subnormal: far below any small format.
  int bias = (1 << (expBits - 1)) - 1;
  int target = exponent - 1023 + bias; // biased exponent in the small format
  uint64_t significand = mantissa | (uint64_t(1) << 52);
  if (target >= 1) {
    uint64_t rounded = roundShift(significand, 52 - mantBits);
    if (rounded >> (mantBits + 1)) { // rounding carried into a new bit
      rounded >>= 1;
      ++target;
    }
    if (target >= int(maxExponent))
      return sign | (maxExponent << mantBits);
    return sign | (uint32_t(target) << mantBits) |
           uint32_t(rounded & ((uint64_t(1) << mantBits) - 1));
  }
  // Subnormal (or rounds up to the smallest normal, which the bit pattern
  // then encodes by itself).
  uint64_t rounded = roundShift(significand, 52 - mantBits + (1 - target));
  return sign | uint32_t(rounded);
}

} // namespace

double halfToDouble(uint16_t bits) { return decodeSmallFloat(bits, 5, 10); }

double bfloat16ToDouble(uint16_t bits) { return decodeSmallFloat(bits, 8, 7); }

uint16_t doubleToHalf(double value) {
  return static_cast<uint16_t>(encodeSmallFloat(value, 5, 10));
}

uint16_t doubleToBFloat16(double value) {
  return static_cast<uint16_t>(encodeSmallFloat(value, 8, 7));
}

} // namespace moma::runtime
