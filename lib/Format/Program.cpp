//===- Program.cpp - The compiled-program data model ----------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// Names of the enumerations and the small methods of the plain data structures
// of a program (moma/Format/Program.h); nothing here parses or validates.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/Program.h"

#include <array>
#include <cstring>
#include <limits>

namespace moma::runtime {

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

namespace {

template <typename Enum, size_t N>
std::optional<Enum>
parseName(std::string_view name,
          const std::array<std::pair<std::string_view, Enum>, N> &table) {
  for (const auto &[spelling, value] : table)
    if (spelling == name)
      return value;
  return std::nullopt;
}

template <typename Enum, size_t N>
std::string_view
nameOf(Enum value,
       const std::array<std::pair<std::string_view, Enum>, N> &table) {
  for (const auto &[spelling, entry] : table)
    if (entry == value)
      return spelling;
  return "<invalid>";
}

constexpr std::array<std::pair<std::string_view, Target>, 4> kTargets = {{
    {"cpu", Target::Cpu},
    {"sm_80", Target::Sm80},
    {"sm_90", Target::Sm90},
    {"sm_90a", Target::Sm90a},
}};
constexpr std::array<std::pair<std::string_view, CpuLevel>, 4> kCpuLevels = {{
    {"x86-64", CpuLevel::X86_64},
    {"x86-64-v2", CpuLevel::X86_64_V2},
    {"x86-64-v3", CpuLevel::X86_64_V3},
    {"x86-64-v4", CpuLevel::X86_64_V4},
}};
constexpr std::array<std::pair<std::string_view, ModuleFormat>, 3> kFormats = {{
    {"ptx", ModuleFormat::Ptx},
    {"cubin", ModuleFormat::Cubin},
    {"cpu-so", ModuleFormat::CpuSo},
}};
constexpr std::array<std::pair<std::string_view, BufferRole>, 5> kRoles = {{
    {"input", BufferRole::Input},
    {"weight", BufferRole::Weight},
    {"output", BufferRole::Output},
    {"scratch", BufferRole::Scratch},
    {"state", BufferRole::State},
}};
constexpr std::array<std::pair<std::string_view, ElementType>, 6> kTypes = {{
    {"f32", ElementType::F32},
    {"f64", ElementType::F64},
    {"bf16", ElementType::BF16},
    {"f16", ElementType::F16},
    {"i32", ElementType::I32},
    {"i64", ElementType::I64},
}};
constexpr std::array<std::pair<std::string_view, ScalarType>, 4> kScalars = {{
    {"i32", ScalarType::I32},
    {"i64", ScalarType::I64},
    {"f32", ScalarType::F32},
    {"f64", ScalarType::F64},
}};

} // namespace

std::string_view targetName(Target target) { return nameOf(target, kTargets); }
std::optional<Target> parseTarget(std::string_view name) {
  return parseName(name, kTargets);
}
std::string_view cpuLevelName(CpuLevel level) {
  return nameOf(level, kCpuLevels);
}
std::optional<CpuLevel> parseCpuLevel(std::string_view name) {
  return parseName(name, kCpuLevels);
}
std::string_view moduleFormatName(ModuleFormat format) {
  return nameOf(format, kFormats);
}
std::optional<ModuleFormat> parseModuleFormat(std::string_view name) {
  return parseName(name, kFormats);
}
std::string_view bufferRoleName(BufferRole role) {
  return nameOf(role, kRoles);
}
std::optional<BufferRole> parseBufferRole(std::string_view name) {
  return parseName(name, kRoles);
}
std::string_view elementTypeName(ElementType type) {
  return nameOf(type, kTypes);
}
std::optional<ElementType> parseElementType(std::string_view name) {
  return parseName(name, kTypes);
}
std::string_view scalarTypeName(ScalarType type) {
  return nameOf(type, kScalars);
}
std::optional<ScalarType> parseScalarType(std::string_view name) {
  return parseName(name, kScalars);
}

uint64_t elementTypeSize(ElementType type) {
  switch (type) {
  case ElementType::F32:
  case ElementType::I32:
    return 4;
  case ElementType::F64:
  case ElementType::I64:
    return 8;
  case ElementType::BF16:
  case ElementType::F16:
    return 2;
  }
  return 0;
}

uint64_t scalarTypeSize(ScalarType type) {
  return type == ScalarType::I32 || type == ScalarType::F32 ? 4 : 8;
}

//===----------------------------------------------------------------------===//
// Data structures
//===----------------------------------------------------------------------===//

uint64_t BufferDesc::numElements() const {
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0)
      return std::numeric_limits<uint64_t>::max();
    uint64_t d = static_cast<uint64_t>(dim);
    if (d != 0 && count > std::numeric_limits<uint64_t>::max() / d)
      return std::numeric_limits<uint64_t>::max();
    count *= d;
  }
  return count;
}

LaunchArg LaunchArg::buffer(uint64_t offset) {
  LaunchArg arg;
  arg.kind = Kind::Buffer;
  arg.offset = offset;
  return arg;
}

LaunchArg LaunchArg::i32(int32_t value) {
  LaunchArg arg;
  arg.kind = Kind::Scalar;
  arg.scalarType = ScalarType::I32;
  arg.bits = static_cast<uint32_t>(value);
  return arg;
}

LaunchArg LaunchArg::i64(int64_t value) {
  LaunchArg arg;
  arg.kind = Kind::Scalar;
  arg.scalarType = ScalarType::I64;
  arg.bits = static_cast<uint64_t>(value);
  return arg;
}

LaunchArg LaunchArg::f32(float value) {
  LaunchArg arg;
  arg.kind = Kind::Scalar;
  arg.scalarType = ScalarType::F32;
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  arg.bits = bits;
  return arg;
}

LaunchArg LaunchArg::f64(double value) {
  LaunchArg arg;
  arg.kind = Kind::Scalar;
  arg.scalarType = ScalarType::F64;
  std::memcpy(&arg.bits, &value, 8);
  return arg;
}

const BufferDesc *Program::findBuffer(std::string_view name) const {
  for (const BufferDesc &buffer : buffers)
    if (buffer.name == name)
      return &buffer;
  return nullptr;
}

std::optional<CpuLevel> Program::requiredCpuLevel() const {
  return cpuLevel.empty() ? CpuLevel::X86_64 : parseCpuLevel(cpuLevel);
}

//===----------------------------------------------------------------------===//
// Module images
//===----------------------------------------------------------------------===//

std::vector<ImageChoice> selectModuleImages(const KernelModule &module,
                                            Target target, int major, int minor,
                                            ImagePreference preference) {
  if (target == Target::Cpu)
    return {};
  int want = target == Target::Sm80 ? 80 : 90;
  int have = major * 10 + minor;
  bool archSpecific = target == Target::Sm90a;
  auto runs = [&](ModuleFormat format) {
    if (archSpecific)
      return have == want;
    if (format == ModuleFormat::Cubin)
      return major == want / 10 && have >= want;
    return have >= want;
  };
  std::vector<ImageChoice> choices;
  for (ModuleFormat format : {ModuleFormat::Cubin, ModuleFormat::Ptx}) {
    if ((preference == ImagePreference::Ptx && format != ModuleFormat::Ptx) ||
        (preference == ImagePreference::Cubin &&
         format != ModuleFormat::Cubin) ||
        !runs(format))
      continue;
    if (module.format == format)
      choices.push_back({format, &module.bytes});
    for (const ModuleImage &image : module.alternatives)
      if (image.format == format)
        choices.push_back({format, &image.bytes});
  }
  return choices;
}

} // namespace moma::runtime
