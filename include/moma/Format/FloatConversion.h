//===- FloatConversion.h - f16/bf16 conversions -----------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Conversions between double and the 16-bit float formats (IEEE binary16
/// and bfloat16), rounding to nearest even: the one implementation that the
/// weight loader, the front end's weight initialisation and moma-run use.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_FLOATCONVERSION_H
#define MOMA_FORMAT_FLOATCONVERSION_H

#include <cstdint>

namespace moma::runtime {

/// Returns the value of the IEEE binary16 number with bit pattern \p bits.
double halfToDouble(uint16_t bits);
/// Returns the value of the bfloat16 number with bit pattern \p bits.
double bfloat16ToDouble(uint16_t bits);
/// Rounds \p value to the nearest binary16 (ties to even; overflow gives
/// infinity, NaN stays a quiet NaN).
uint16_t doubleToHalf(double value);
/// Rounds \p value to the nearest bfloat16 (ties to even; overflow gives
/// infinity, NaN stays a quiet NaN).
uint16_t doubleToBFloat16(double value);

} // namespace moma::runtime

#endif // MOMA_FORMAT_FLOATCONVERSION_H
