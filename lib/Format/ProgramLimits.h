//===- ProgramLimits.h - Limits of the program format -----------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The bounds the manifest reader and the validator share (ProgramFormat.md).
/// Internal to lib/Format.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_FORMAT_PROGRAMLIMITS_H
#define MOMA_LIB_FORMAT_PROGRAMLIMITS_H

#include <cstddef>
#include <cstdint>

namespace moma::runtime {

/// Longest name (buffer, module, kernel) accepted.
inline constexpr size_t kMaxNameLength = 1024;
/// Highest rank accepted.
inline constexpr size_t kMaxRank = 16;
/// Largest arena alignment accepted.
inline constexpr uint64_t kMaxArenaAlignment = 65536;

} // namespace moma::runtime

#endif // MOMA_LIB_FORMAT_PROGRAMLIMITS_H
