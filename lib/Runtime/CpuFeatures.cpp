//===- CpuFeatures.cpp - The host CPU against a program's CPU level -------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The features of each x86-64 psABI level and their detection. Most are
// asked of `__builtin_cpu_supports`, whose names GCC and clang share (and
// which reports AVX and AVX-512 only when the OS saves their registers); the
// three clang does not name (cmpxchg16b, lahf_lm, osxsave) are read from
// `cpuid` directly.
//
//===----------------------------------------------------------------------===//

#include "CpuFeatures.h"

#include "lib/Format/Errors.h"
#include "lib/Format/Strings.h"

#include "absl/status/statusor.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace moma::runtime {
namespace {

/// One feature a CPU level needs.
struct Feature {
  /// The runtime's name: `__builtin_cpu_supports`'s (GCC's) spelling.
  const char *name;
  /// The psABI's name, for messages.
  const char *display;
  /// The lowest level that needs it.
  CpuLevel level;
  /// Whether the host CPU has it.
  bool (*present)();
};

#if defined(__x86_64__)
/// Returns bit \p bit of register \p reg (0 eax, 1 ebx, 2 ecx, 3 edx) of
/// cpuid leaf \p leaf; false when the CPU does not have the leaf.
bool cpuidBit(unsigned leaf, int reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0};
  if (!__get_cpuid(leaf, &r[0], &r[1], &r[2], &r[3]))
    return false;
  return (r[reg] >> bit) & 1;
}
#define MOMA_SUPPORTS(name) [] { return __builtin_cpu_supports(name) != 0; }
#define MOMA_CPUID(leaf, reg, bit) [] { return cpuidBit(leaf, reg, bit); }
#else
// Another architecture has none of the x86-64 features.
#define MOMA_SUPPORTS(name) [] { return false; }
#define MOMA_CPUID(leaf, reg, bit) [] { return false; }
#endif

const Feature kFeatures[] = {
    {"cmpxchg16b", "CMPXCHG16B", CpuLevel::X86_64_V2, MOMA_CPUID(1, 2, 13)},
    {"lahf_lm", "LAHF-SAHF", CpuLevel::X86_64_V2,
     MOMA_CPUID(0x80000001u, 2, 0)},
    {"popcnt", "POPCNT", CpuLevel::X86_64_V2, MOMA_SUPPORTS("popcnt")},
    {"sse3", "SSE3", CpuLevel::X86_64_V2, MOMA_SUPPORTS("sse3")},
    {"ssse3", "SSSE3", CpuLevel::X86_64_V2, MOMA_SUPPORTS("ssse3")},
    {"sse4.1", "SSE4.1", CpuLevel::X86_64_V2, MOMA_SUPPORTS("sse4.1")},
    {"sse4.2", "SSE4.2", CpuLevel::X86_64_V2, MOMA_SUPPORTS("sse4.2")},
    {"avx", "AVX", CpuLevel::X86_64_V3, MOMA_SUPPORTS("avx")},
    {"avx2", "AVX2", CpuLevel::X86_64_V3, MOMA_SUPPORTS("avx2")},
    {"bmi", "BMI1", CpuLevel::X86_64_V3, MOMA_SUPPORTS("bmi")},
    {"bmi2", "BMI2", CpuLevel::X86_64_V3, MOMA_SUPPORTS("bmi2")},
    {"f16c", "F16C", CpuLevel::X86_64_V3, MOMA_SUPPORTS("f16c")},
    {"fma", "FMA", CpuLevel::X86_64_V3, MOMA_SUPPORTS("fma")},
    {"lzcnt", "LZCNT", CpuLevel::X86_64_V3, MOMA_SUPPORTS("lzcnt")},
    {"movbe", "MOVBE", CpuLevel::X86_64_V3, MOMA_SUPPORTS("movbe")},
    {"osxsave", "OSXSAVE", CpuLevel::X86_64_V3, MOMA_CPUID(1, 2, 27)},
    {"avx512f", "AVX-512F", CpuLevel::X86_64_V4, MOMA_SUPPORTS("avx512f")},
    {"avx512bw", "AVX-512BW", CpuLevel::X86_64_V4, MOMA_SUPPORTS("avx512bw")},
    {"avx512cd", "AVX-512CD", CpuLevel::X86_64_V4, MOMA_SUPPORTS("avx512cd")},
    {"avx512dq", "AVX-512DQ", CpuLevel::X86_64_V4, MOMA_SUPPORTS("avx512dq")},
    {"avx512vl", "AVX-512VL", CpuLevel::X86_64_V4, MOMA_SUPPORTS("avx512vl")},
};

#undef MOMA_SUPPORTS
#undef MOMA_CPUID

/// Returns the names MOMA_CPU_HIDE_FEATURES lists, or an error naming one
/// that is not a feature.
absl::StatusOr<std::vector<std::string>> hiddenFeatures() {
  std::vector<std::string> hidden;
  const char *value = std::getenv(kHideCpuFeaturesVariable);
  std::string_view rest = value ? value : "";
  while (!rest.empty()) {
    size_t comma = std::min(rest.find(','), rest.size());
    std::string_view name = rest.substr(0, comma);
    rest.remove_prefix(std::min(comma + 1, rest.size()));
    while (!name.empty() && name.front() == ' ')
      name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ')
      name.remove_suffix(1);
    if (name.empty())
      continue;
    if (std::none_of(std::begin(kFeatures), std::end(kFeatures),
                     [&](const Feature &f) { return f.name == name; })) {
      std::string known;
      for (const Feature &feature : kFeatures)
        known += cat(known.empty() ? "" : ", ", feature.name);
      return makeError(MOMA_STATUS_INVALID_ARGUMENT,
                       cat(kHideCpuFeaturesVariable, ": unknown CPU feature '",
                           name, "' (known: ", known, ")"));
    }
    hidden.emplace_back(name);
  }
  return hidden;
}

} // namespace

std::vector<std::string> cpuLevelFeatures(CpuLevel level) {
  std::vector<std::string> names;
  for (const Feature &feature : kFeatures)
    if (feature.level <= level)
      names.push_back(feature.name);
  return names;
}

absl::Status checkCpuLevel(CpuLevel level) {
  absl::StatusOr<std::vector<std::string>> hidden = hiddenFeatures();
  if (!hidden.ok())
    return hidden.status();
  if (level == CpuLevel::X86_64)
    return absl::OkStatus();
#if defined(__x86_64__)
  __builtin_cpu_init();
#endif
  std::string own, missing;
  for (const Feature &feature : kFeatures) {
    if (feature.level == level)
      own += cat(own.empty() ? "" : ", ", feature.display);
    if (feature.level > level)
      continue;
    bool isHidden = std::find(hidden->begin(), hidden->end(), feature.name) !=
                    hidden->end();
    if (isHidden || !feature.present())
      missing += cat(missing.empty() ? "" : ", ", feature.name);
  }
  if (missing.empty())
    return absl::OkStatus();
  std::string below =
      level == CpuLevel::X86_64_V2
          ? ""
          : cat(cpuLevelName(static_cast<CpuLevel>(int(level) - 1)), " and ");
  std::string hides;
  for (const std::string &name : *hidden)
    hides += cat(hides.empty() ? "" : ", ", name);
  return makeError(MOMA_STATUS_UNSUPPORTED_CPU,
                   cat("this program needs an ", cpuLevelName(level), " CPU (",
                       below, own, "); this CPU lacks ", missing,
                       hides.empty() ? ""
                                     : cat(" (", kHideCpuFeaturesVariable,
                                           " hides ", hides, ")")));
}

} // namespace moma::runtime
