//===- CpuFeatures.h - The host CPU against a CPU level ---------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// What the CPU device checks before it loads a program's kernels: that the
/// host CPU has every instruction-set feature of the program's x86-64 level
/// (lib/Format/ProgramFormat.md, "CPU levels"), detected with the compiler's
/// `__builtin_cpu_supports` and `cpuid`, never with LLVM.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_RUNTIME_CPUFEATURES_H
#define MOMA_LIB_RUNTIME_CPUFEATURES_H

#include "moma/Format/Program.h"

#include "absl/status/status.h"

#include <string>
#include <vector>

namespace moma::runtime {

/// The environment variable, for tests only, that names features (by their
/// lower-case names, comma-separated) the check treats as absent.
inline constexpr char kHideCpuFeaturesVariable[] = "MOMA_CPU_HIDE_FEATURES";

/// Returns the names of the features that \p level and the levels below it
/// need, lowest level first ("cmpxchg16b", ..., "avx512vl").
std::vector<std::string> cpuLevelFeatures(CpuLevel level);

/// Checks that the host CPU can run kernels compiled for \p level: that it
/// has every feature of cpuLevelFeatures(level), less those that
/// MOMA_CPU_HIDE_FEATURES hides. Errors: MOMA_STATUS_UNSUPPORTED_CPU naming
/// the level, its features and the missing ones;
/// MOMA_STATUS_INVALID_ARGUMENT for an unknown name in
/// MOMA_CPU_HIDE_FEATURES.
absl::Status checkCpuLevel(CpuLevel level);

} // namespace moma::runtime

#endif // MOMA_LIB_RUNTIME_CPUFEATURES_H
