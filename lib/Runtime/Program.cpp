//===- Program.cpp - The compiled-program format (.momaprog) --------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The byte layout is documented in ProgramFormat.md beside this file; keep the
// two in sync.
//
//===----------------------------------------------------------------------===//

#include "moma/Runtime/Program.h"
#include "moma/Runtime/Files.h"

#include "Json.h"
#include "Strings.h"

#include "absl/strings/str_format.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>

namespace moma::runtime {

using OrderedJson = nlohmann::ordered_json;

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
constexpr std::array<std::pair<std::string_view, ModuleFormat>, 3> kFormats = {{
    {"ptx", ModuleFormat::Ptx},
    {"cubin", ModuleFormat::Cubin},
    {"cpu-so", ModuleFormat::CpuSo},
}};
constexpr std::array<std::pair<std::string_view, BufferRole>, 4> kRoles = {{
    {"input", BufferRole::Input},
    {"weight", BufferRole::Weight},
    {"output", BufferRole::Output},
    {"scratch", BufferRole::Scratch},
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

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

namespace {

/// Longest name (buffer, module, kernel) accepted.
constexpr size_t kMaxNameLength = 1024;
/// Highest rank accepted.
constexpr size_t kMaxRank = 16;
/// Largest arena alignment accepted.
constexpr uint64_t kMaxArenaAlignment = 65536;

/// Returns an error message if \p name is not 1..kMaxNameLength printable
/// ASCII characters.
std::optional<std::string> checkName(std::string_view name, bool allowEmpty) {
  if (name.empty())
    return allowEmpty ? std::nullopt
                      : std::optional<std::string>("the name is empty");
  if (name.size() > kMaxNameLength)
    return cat("the name is longer than ", kMaxNameLength, " characters");
  for (char c : name)
    if (c < 0x20 || c > 0x7e)
      return absl::StrFormat(
          "the name contains the byte 0x%02x (names are printable ASCII)",
          static_cast<unsigned char>(c));
  return std::nullopt;
}

std::string quote(std::string_view name) { return cat("'", name, "'"); }

bool isGpu(Target target) { return target != Target::Cpu; }

/// Largest dynamic shared memory per block (opt-in) of a target.
uint64_t maxSharedMemory(Target target) {
  switch (target) {
  case Target::Cpu:
    return std::numeric_limits<uint32_t>::max();
  case Target::Sm80:
    return 163 * 1024;
  case Target::Sm90:
  case Target::Sm90a:
    return 227 * 1024;
  }
  return 0;
}

/// Largest total size of a kernel's parameters on the GPU (CUDA 12.1+).
constexpr uint64_t kMaxParamBytes = 32764;

absl::Status invalid(std::string message) {
  return absl::InvalidArgumentError(std::move(message));
}

} // namespace

std::vector<ImageChoice> selectModuleImages(const KernelModule &module,
                                            Target target, int major, int minor,
                                            ImagePreference preference) {
  if (!isGpu(target))
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

absl::Status validateProgram(const Program &program) {
  // The arena.
  uint64_t align = program.arenaAlignment;
  if (align == 0 || (align & (align - 1)) != 0 || align > kMaxArenaAlignment)
    return invalid(cat("arena alignment ", align,
                       " is not a power of two in [1, ", kMaxArenaAlignment,
                       "]"));

  // Modules.
  for (size_t i = 0; i < program.modules.size(); ++i) {
    const KernelModule &module = program.modules[i];
    std::string what = cat("module ", i);
    if (!module.name.empty())
      what += cat(" (", quote(module.name), ")");
    if (auto error = checkName(module.name, /*allowEmpty=*/true))
      return invalid(cat(what, ": ", *error));
    bool gpuFormat = module.format != ModuleFormat::CpuSo;
    if (gpuFormat != isGpu(program.target))
      return invalid(
          cat(what, ": format '", moduleFormatName(module.format),
              "' cannot run on target '", targetName(program.target),
              "' (expected ",
              isGpu(program.target) ? "'ptx' or 'cubin'" : "'cpu-so'", ")"));
    if (module.bytes.empty())
      return invalid(cat(what, ": the module is empty"));
    if (!module.alternatives.empty() && !isGpu(program.target))
      return invalid(cat(what, ": only GPU modules carry alternative images"));
    std::set<ModuleFormat> formats = {module.format};
    for (size_t j = 0; j < module.alternatives.size(); ++j) {
      const ModuleImage &image = module.alternatives[j];
      std::string alternative = cat(what, ": alternative ", j);
      if (image.format == ModuleFormat::CpuSo)
        return invalid(cat(alternative,
                           ": format 'cpu-so' cannot run on "
                           "target '",
                           targetName(program.target),
                           "' (expected 'ptx' or 'cubin')"));
      if (!formats.insert(image.format).second)
        return invalid(cat(alternative, ": a second '",
                           moduleFormatName(image.format),
                           "' image (each format at most once per module)"));
      if (image.bytes.empty())
        return invalid(cat(alternative, ": the image is empty"));
    }
    if (module.functions.empty())
      return invalid(cat(what, ": the module declares no kernels"));
    std::set<std::string_view> seen;
    for (const std::string &function : module.functions) {
      if (auto error = checkName(function, /*allowEmpty=*/false))
        return invalid(cat(what, ": kernel ", quote(function), ": ", *error));
      if (!seen.insert(function).second)
        return invalid(
            cat(what, ": kernel ", quote(function), " is declared twice"));
    }
  }

  // Buffers.
  std::set<std::string_view> names;
  for (size_t i = 0; i < program.buffers.size(); ++i) {
    const BufferDesc &buffer = program.buffers[i];
    std::string what = cat("buffer ", i, " (", quote(buffer.name), ")");
    if (auto error = checkName(buffer.name, /*allowEmpty=*/false))
      return invalid(cat(what, ": ", *error));
    if (!names.insert(buffer.name).second)
      return invalid(cat(what, ": another buffer has the same name"));
    if (buffer.shape.size() > kMaxRank)
      return invalid(
          cat(what, ": rank ", buffer.shape.size(), " exceeds ", kMaxRank));
    for (int64_t dim : buffer.shape)
      if (dim < 0)
        return invalid(cat(what, ": negative dimension ", dim));
    uint64_t elementSize = elementTypeSize(buffer.type);
    uint64_t count = buffer.numElements();
    if (count > std::numeric_limits<uint64_t>::max() / elementSize)
      return invalid(cat(what, ": the shape is too large"));
    if (buffer.byteSize != count * elementSize)
      return invalid(cat(what, ": size ", buffer.byteSize,
                         " bytes does not match ", count, " x ",
                         elementTypeName(buffer.type), " (",
                         count * elementSize, " bytes)"));
    if (buffer.offset % elementSize != 0)
      return invalid(cat(what, ": offset ", buffer.offset,
                         " is not a multiple of the element size ",
                         elementSize));
    if (buffer.byteSize > program.arenaSize ||
        buffer.offset > program.arenaSize - buffer.byteSize)
      return invalid(cat(what, ": bytes [", buffer.offset, ", ",
                         buffer.offset + buffer.byteSize,
                         ") lie outside the arena of ", program.arenaSize,
                         " bytes"));
  }

  // Overlaps: only scratch buffers may share bytes, with each other (the
  // memory planner reuses scratch space between disjoint lifetimes).
  std::vector<size_t> order;
  for (size_t i = 0; i < program.buffers.size(); ++i)
    if (program.buffers[i].byteSize != 0)
      order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return program.buffers[a].offset < program.buffers[b].offset;
  });
  std::optional<size_t> maxEndAny, maxEndFixed;
  auto end = [&](size_t i) {
    return program.buffers[i].offset + program.buffers[i].byteSize;
  };
  for (size_t i : order) {
    const BufferDesc &buffer = program.buffers[i];
    bool scratch = buffer.role == BufferRole::Scratch;
    std::optional<size_t> clash = scratch ? maxEndFixed : maxEndAny;
    if (clash && end(*clash) > buffer.offset) {
      const BufferDesc &other = program.buffers[*clash];
      return invalid(cat("buffer ", quote(buffer.name), " (",
                         bufferRoleName(buffer.role), ", bytes [",
                         buffer.offset, ", ", end(i), ")) overlaps buffer ",
                         quote(other.name), " (", bufferRoleName(other.role),
                         ", bytes [", other.offset, ", ", end(*clash),
                         ")); only scratch buffers may share bytes"));
    }
    if (!maxEndAny || end(i) > end(*maxEndAny))
      maxEndAny = i;
    if (!scratch && (!maxEndFixed || end(i) > end(*maxEndFixed)))
      maxEndFixed = i;
  }

  // Buffer argument targets: an offset must lie inside a buffer, or be the
  // start of one (a zero-sized buffer has no inside).
  std::vector<std::pair<uint64_t, uint64_t>> spans; // (offset, prefix max end)
  {
    std::vector<size_t> all(program.buffers.size());
    for (size_t i = 0; i < all.size(); ++i)
      all[i] = i;
    std::sort(all.begin(), all.end(), [&](size_t a, size_t b) {
      return program.buffers[a].offset < program.buffers[b].offset;
    });
    uint64_t maxEnd = 0;
    for (size_t i : all) {
      maxEnd = std::max(maxEnd, end(i));
      spans.emplace_back(program.buffers[i].offset, maxEnd);
    }
  }
  auto pointsIntoBuffer = [&](uint64_t offset) {
    auto it = std::upper_bound(
        spans.begin(), spans.end(), offset,
        [](uint64_t x, const auto &span) { return x < span.first; });
    if (it == spans.begin())
      return false;
    --it;
    return it->first == offset || it->second > offset;
  };

  // Launches.
  for (size_t i = 0; i < program.launches.size(); ++i) {
    const Launch &launch = program.launches[i];
    std::string what = cat("launch ", i, " (", quote(launch.function), ")");
    if (launch.module >= program.modules.size())
      return invalid(cat(what, ": module index ", launch.module,
                         " is out of range (the program has ",
                         program.modules.size(), " modules)"));
    const KernelModule &module = program.modules[launch.module];
    if (std::find(module.functions.begin(), module.functions.end(),
                  launch.function) == module.functions.end())
      return invalid(cat(what, ": module ", launch.module,
                         " declares no kernel ", quote(launch.function)));
    const Dim3 &g = launch.grid, &b = launch.block;
    if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0)
      return invalid(cat(what, ": grid [", g.x, ", ", g.y, ", ", g.z,
                         "] and block [", b.x, ", ", b.y, ", ", b.z,
                         "] must be at least 1 in every dimension"));
    if (isGpu(program.target)) {
      uint64_t threads = uint64_t(b.x) * b.y * b.z;
      if (b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024)
        return invalid(cat(what, ": block [", b.x, ", ", b.y, ", ", b.z,
                           "] exceeds the GPU limits (x, y <= 1024, z <= 64, "
                           "x*y*z <= 1024)"));
      if (g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
        return invalid(cat(what, ": grid [", g.x, ", ", g.y, ", ", g.z,
                           "] exceeds the GPU limits (x < 2^31, "
                           "y, z <= 65535)"));
    }
    if (launch.sharedMemBytes > maxSharedMemory(program.target))
      return invalid(cat(what, ": ", launch.sharedMemBytes,
                         " bytes of dynamic shared memory exceed the ",
                         maxSharedMemory(program.target), " bytes of ",
                         targetName(program.target)));
    uint64_t paramBytes = 0;
    for (size_t a = 0; a < launch.args.size(); ++a) {
      const LaunchArg &arg = launch.args[a];
      uint64_t size = 8;
      if (arg.kind == LaunchArg::Kind::Buffer) {
        if (arg.offset >= program.arenaSize && !pointsIntoBuffer(arg.offset))
          return invalid(cat(what, ": argument ", a, ": buffer offset ",
                             arg.offset, " is outside the arena of ",
                             program.arenaSize, " bytes"));
        if (!pointsIntoBuffer(arg.offset))
          return invalid(cat(what, ": argument ", a, ": buffer offset ",
                             arg.offset, " does not point into any buffer"));
      } else {
        size = scalarTypeSize(arg.scalarType);
        if (size == 4 && arg.bits > 0xffffffffu)
          return invalid(cat(what, ": argument ", a, ": ",
                             scalarTypeName(arg.scalarType), " bits ", arg.bits,
                             " do not fit in 32 bits"));
      }
      paramBytes = (paramBytes + size - 1) / size * size + size;
    }
    if (isGpu(program.target) && paramBytes > kMaxParamBytes)
      return invalid(cat(what, ": ", paramBytes,
                         " bytes of kernel parameters exceed the "
                         "CUDA limit of ",
                         kMaxParamBytes));
  }
  return absl::OkStatus();
}

//===----------------------------------------------------------------------===//
// CRC-32
//===----------------------------------------------------------------------===//

namespace {

std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

} // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  static const std::array<uint32_t, 256> table = makeCrcTable();
  crc = ~crc;
  for (unsigned char byte : data)
    crc = table[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return ~crc;
}

//===----------------------------------------------------------------------===//
// Manifest (JSON)
//===----------------------------------------------------------------------===//

namespace {

OrderedJson dimJson(const Dim3 &d) {
  return OrderedJson::array({d.x, d.y, d.z});
}

/// Builds the manifest; the sections after the manifest hold the modules
/// in order, each image followed by its alternatives (serializeProgram).
OrderedJson manifestOf(const Program &program) {
  OrderedJson root = OrderedJson::object();
  root["target"] = std::string(targetName(program.target));
  root["arena"] = {{"size", program.arenaSize},
                   {"alignment", program.arenaAlignment}};
  OrderedJson modules = OrderedJson::array();
  uint64_t section = 1;
  for (const KernelModule &module : program.modules) {
    OrderedJson entry = {
        {"name", module.name},
        {"format", std::string(moduleFormatName(module.format))},
        {"section", section++},
        {"functions", module.functions}};
    if (!module.alternatives.empty()) {
      OrderedJson alternatives = OrderedJson::array();
      for (const ModuleImage &image : module.alternatives)
        alternatives.push_back(
            {{"format", std::string(moduleFormatName(image.format))},
             {"section", section++}});
      entry["alternatives"] = std::move(alternatives);
    }
    modules.push_back(std::move(entry));
  }
  root["modules"] = std::move(modules);
  OrderedJson buffers = OrderedJson::array();
  for (const BufferDesc &buffer : program.buffers)
    buffers.push_back({{"name", buffer.name},
                       {"role", std::string(bufferRoleName(buffer.role))},
                       {"type", std::string(elementTypeName(buffer.type))},
                       {"shape", buffer.shape},
                       {"offset", buffer.offset},
                       {"size", buffer.byteSize}});
  root["buffers"] = std::move(buffers);
  OrderedJson launches = OrderedJson::array();
  for (const Launch &launch : program.launches) {
    OrderedJson args = OrderedJson::array();
    for (const LaunchArg &arg : launch.args) {
      if (arg.kind == LaunchArg::Kind::Buffer) {
        args.push_back({{"kind", "buffer"}, {"offset", arg.offset}});
        continue;
      }
      OrderedJson entry = {
          {"kind", std::string(scalarTypeName(arg.scalarType))}};
      switch (arg.scalarType) {
      case ScalarType::I32:
        entry["value"] = static_cast<int32_t>(static_cast<uint32_t>(arg.bits));
        break;
      case ScalarType::I64:
        entry["value"] = static_cast<int64_t>(arg.bits);
        break;
      case ScalarType::F32:
      case ScalarType::F64:
        entry["bits"] = arg.bits;
        break;
      }
      args.push_back(std::move(entry));
    }
    launches.push_back({{"module", launch.module},
                        {"function", launch.function},
                        {"grid", dimJson(launch.grid)},
                        {"block", dimJson(launch.block)},
                        {"shared_memory_bytes", launch.sharedMemBytes},
                        {"args", std::move(args)}});
  }
  root["launches"] = std::move(launches);
  if (!program.metadata.empty()) {
    OrderedJson metadata = OrderedJson::object();
    for (const auto &[key, value] : program.metadata)
      metadata[key] = value;
    root["metadata"] = std::move(metadata);
  }
  return root;
}

/// Reads the manifest of a file (strict) or of a spec (lenient, see
/// parseProgramSpec). Errors are plain messages, the caller adds the code.
class ManifestReader {
public:
  /// Supplies the bytes of module \p index described by \p entry.
  using ModuleLoader = std::function<absl::StatusOr<std::string>(
      const OrderedJson &entry, const std::string &where)>;

  ManifestReader(bool spec, ModuleLoader loader)
      : spec(spec), loader(std::move(loader)) {}

  absl::StatusOr<Program> read(const OrderedJson &root);

private:
  bool spec;
  ModuleLoader loader;

  static absl::Status error(const std::string &where, const std::string &what) {
    return absl::InvalidArgumentError(cat(where, ": ", what));
  }

  absl::Status checkKeys(const OrderedJson &object, const std::string &where,
                         std::initializer_list<std::string_view> allowed) {
    if (!object.is_object())
      return error(where, "expected an object");
    for (const auto &item : object.items())
      if (std::find(allowed.begin(), allowed.end(), item.key()) ==
          allowed.end())
        return error(where, cat("unknown key \"", item.key(), "\""));
    return absl::OkStatus();
  }

  absl::StatusOr<const OrderedJson *> field(const OrderedJson &object,
                                            const std::string &where,
                                            std::string_view key) {
    auto it = object.find(key);
    if (it == object.end())
      return error(where, cat("missing key \"", key, "\""));
    return &*it;
  }

  absl::StatusOr<std::string> stringField(const OrderedJson &object,
                                          const std::string &where,
                                          std::string_view key) {
    auto value = field(object, where, key);
    if (!value.ok())
      return value.status();
    if (!(*value)->is_string())
      return error(cat(where, ".", key), "expected a string");
    return (*value)->get<std::string>();
  }

  absl::StatusOr<ModuleFormat> formatField(const OrderedJson &object,
                                           const std::string &where) {
    absl::StatusOr<std::string> format = stringField(object, where, "format");
    if (!format.ok())
      return format.status();
    std::optional<ModuleFormat> parsed = parseModuleFormat(*format);
    if (!parsed)
      return error(where + ".format",
                   cat("unknown module format \"", *format,
                       "\" (expected ptx, cubin or cpu-so)"));
    return *parsed;
  }

  static absl::StatusOr<uint64_t>
  asUnsigned(const OrderedJson &value, const std::string &where, uint64_t max) {
    if (!value.is_number_unsigned())
      return error(where, "expected a non-negative integer");
    uint64_t result = value.get<uint64_t>();
    if (result > max)
      return error(where, cat(result, " exceeds ", max));
    return result;
  }

  absl::StatusOr<uint64_t>
  unsignedField(const OrderedJson &object, const std::string &where,
                std::string_view key,
                uint64_t max = std::numeric_limits<uint64_t>::max()) {
    auto value = field(object, where, key);
    if (!value.ok())
      return value.status();
    return asUnsigned(**value, cat(where, ".", key), max);
  }

  absl::StatusOr<const OrderedJson *> arrayField(const OrderedJson &object,
                                                 const std::string &where,
                                                 std::string_view key) {
    auto value = field(object, where, key);
    if (!value.ok())
      return value.status();
    if (!(*value)->is_array())
      return error(cat(where, ".", key), "expected an array");
    return *value;
  }

  absl::StatusOr<Dim3> dimField(const OrderedJson &object,
                                const std::string &where,
                                std::string_view key) {
    auto array = arrayField(object, where, key);
    if (!array.ok())
      return array.status();
    std::string at = cat(where, ".", key);
    if ((*array)->size() != 3)
      return error(at, "expected three integers [x, y, z]");
    uint32_t v[3];
    for (size_t i = 0; i < 3; ++i) {
      auto d = asUnsigned((**array)[i], cat(at, "[", i, "]"),
                          std::numeric_limits<uint32_t>::max());
      if (!d.ok())
        return d.status();
      v[i] = static_cast<uint32_t>(*d);
    }
    return Dim3{v[0], v[1], v[2]};
  }

  absl::StatusOr<LaunchArg>
  readArg(const OrderedJson &entry, const std::string &where,
          const std::map<std::string, uint64_t> &bufferOffsets);
};

#define MOMA_ASSIGN_OR_RETURN(lhs, expr)                                       \
  auto MOMA_CONCAT(status_or_, __LINE__) = (expr);                             \
  if (!MOMA_CONCAT(status_or_, __LINE__).ok())                                 \
    return MOMA_CONCAT(status_or_, __LINE__).status();                         \
  lhs = std::move(*MOMA_CONCAT(status_or_, __LINE__))
#define MOMA_CONCAT_INNER(a, b) a##b
#define MOMA_CONCAT(a, b) MOMA_CONCAT_INNER(a, b)
#define MOMA_RETURN_IF_ERROR(expr)                                             \
  do {                                                                         \
    absl::Status status_ = (expr);                                             \
    if (!status_.ok())                                                         \
      return status_;                                                          \
  } while (false)

absl::StatusOr<LaunchArg>
ManifestReader::readArg(const OrderedJson &entry, const std::string &where,
                        const std::map<std::string, uint64_t> &bufferOffsets) {
  if (!entry.is_object())
    return error(where, "expected an object");
  MOMA_ASSIGN_OR_RETURN(std::string kind, stringField(entry, where, "kind"));
  if (kind == "buffer") {
    if (spec && entry.contains("name")) {
      MOMA_RETURN_IF_ERROR(checkKeys(entry, where, {"kind", "name"}));
      MOMA_ASSIGN_OR_RETURN(std::string name,
                            stringField(entry, where, "name"));
      auto it = bufferOffsets.find(name);
      if (it == bufferOffsets.end())
        return error(where, cat("no buffer named '", name, "'"));
      return LaunchArg::buffer(it->second);
    }
    MOMA_RETURN_IF_ERROR(checkKeys(entry, where, {"kind", "offset"}));
    MOMA_ASSIGN_OR_RETURN(uint64_t offset,
                          unsignedField(entry, where, "offset"));
    return LaunchArg::buffer(offset);
  }
  std::optional<ScalarType> type = parseScalarType(kind);
  if (!type)
    return error(cat(where, ".kind"),
                 cat("unknown argument kind \"", kind,
                     "\" (expected buffer, i32, i64, f32 or f64)"));
  LaunchArg arg;
  arg.kind = LaunchArg::Kind::Scalar;
  arg.scalarType = *type;
  bool isFloat = *type == ScalarType::F32 || *type == ScalarType::F64;
  uint64_t size = scalarTypeSize(*type);
  if (isFloat && (!spec || entry.contains("bits"))) {
    MOMA_RETURN_IF_ERROR(checkKeys(entry, where, {"kind", "bits"}));
    MOMA_ASSIGN_OR_RETURN(
        arg.bits,
        unsignedField(entry, where, "bits",
                      size == 4 ? 0xffffffffu
                                : std::numeric_limits<uint64_t>::max()));
    return arg;
  }
  MOMA_RETURN_IF_ERROR(checkKeys(entry, where, {"kind", "value"}));
  MOMA_ASSIGN_OR_RETURN(const OrderedJson *value, field(entry, where, "value"));
  std::string at = cat(where, ".value");
  if (isFloat) {
    if (!value->is_number())
      return error(at, "expected a number");
    double d = value->get<double>();
    return *type == ScalarType::F32 ? LaunchArg::f32(static_cast<float>(d))
                                    : LaunchArg::f64(d);
  }
  if (!value->is_number_integer())
    return error(at, "expected an integer");
  if (value->is_number_unsigned() &&
      value->get<uint64_t>() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return error(at, "the value does not fit in an i64");
  int64_t v = value->get<int64_t>();
  if (*type == ScalarType::I32) {
    if (v < std::numeric_limits<int32_t>::min() ||
        v > std::numeric_limits<int32_t>::max())
      return error(at, cat(v, " does not fit in an i32"));
    return LaunchArg::i32(static_cast<int32_t>(v));
  }
  return LaunchArg::i64(v);
}

absl::StatusOr<Program> ManifestReader::read(const OrderedJson &root) {
  Program program;
  const std::string top = "manifest";
  MOMA_RETURN_IF_ERROR(checkKeys(
      root, top,
      {"target", "arena", "modules", "buffers", "launches", "metadata"}));
  if (root.contains("metadata")) {
    const OrderedJson &metadata = root["metadata"];
    if (!metadata.is_object())
      return error(top + ".metadata", "expected an object of strings");
    for (const auto &item : metadata.items()) {
      if (!item.value().is_string())
        return error(cat(top, ".metadata.", item.key()), "expected a string");
      program.metadata[item.key()] = item.value().get<std::string>();
    }
  }

  MOMA_ASSIGN_OR_RETURN(std::string target, stringField(root, top, "target"));
  std::optional<Target> parsedTarget = parseTarget(target);
  if (!parsedTarget)
    return error(top + ".target",
                 cat("unknown target \"", target,
                     "\" (expected cpu, sm_80, sm_90 or sm_90a)"));
  program.target = *parsedTarget;

  MOMA_ASSIGN_OR_RETURN(const OrderedJson *arena, field(root, top, "arena"));
  const std::string arenaWhere = top + ".arena";
  MOMA_RETURN_IF_ERROR(checkKeys(*arena, arenaWhere, {"size", "alignment"}));
  bool autoArenaSize = spec && !arena->contains("size");
  if (!autoArenaSize) {
    MOMA_ASSIGN_OR_RETURN(program.arenaSize,
                          unsignedField(*arena, arenaWhere, "size"));
  }
  MOMA_ASSIGN_OR_RETURN(program.arenaAlignment,
                        unsignedField(*arena, arenaWhere, "alignment"));
  if (program.arenaAlignment == 0 ||
      (program.arenaAlignment & (program.arenaAlignment - 1)) != 0 ||
      program.arenaAlignment > kMaxArenaAlignment)
    return error(arenaWhere + ".alignment",
                 cat(program.arenaAlignment, " is not a power of two in [1, ",
                     kMaxArenaAlignment, "]"));

  MOMA_ASSIGN_OR_RETURN(const OrderedJson *modules,
                        arrayField(root, top, "modules"));
  for (size_t i = 0; i < modules->size(); ++i) {
    const OrderedJson &entry = (*modules)[i];
    std::string where = cat(top, ".modules[", i, "]");
    MOMA_RETURN_IF_ERROR(checkKeys(entry, where,
                                   {"name", "format", spec ? "path" : "section",
                                    "functions", "alternatives"}));
    KernelModule module;
    if (entry.contains("name")) {
      MOMA_ASSIGN_OR_RETURN(module.name, stringField(entry, where, "name"));
    }
    MOMA_ASSIGN_OR_RETURN(module.format, formatField(entry, where));
    MOMA_ASSIGN_OR_RETURN(const OrderedJson *functions,
                          arrayField(entry, where, "functions"));
    for (size_t f = 0; f < functions->size(); ++f) {
      if (!(*functions)[f].is_string())
        return error(cat(where, ".functions[", f, "]"), "expected a string");
      module.functions.push_back((*functions)[f].get<std::string>());
    }
    MOMA_ASSIGN_OR_RETURN(module.bytes, loader(entry, where));
    if (entry.contains("alternatives")) {
      MOMA_ASSIGN_OR_RETURN(const OrderedJson *alternatives,
                            arrayField(entry, where, "alternatives"));
      for (size_t j = 0; j < alternatives->size(); ++j) {
        const OrderedJson &alternative = (*alternatives)[j];
        std::string at = cat(where, ".alternatives[", j, "]");
        MOMA_RETURN_IF_ERROR(
            checkKeys(alternative, at, {"format", spec ? "path" : "section"}));
        ModuleImage image;
        MOMA_ASSIGN_OR_RETURN(image.format, formatField(alternative, at));
        MOMA_ASSIGN_OR_RETURN(image.bytes, loader(alternative, at));
        module.alternatives.push_back(std::move(image));
      }
    }
    program.modules.push_back(std::move(module));
  }

  MOMA_ASSIGN_OR_RETURN(const OrderedJson *buffers,
                        arrayField(root, top, "buffers"));
  uint64_t nextOffset = 0;
  std::map<std::string, uint64_t> bufferOffsets;
  for (size_t i = 0; i < buffers->size(); ++i) {
    const OrderedJson &entry = (*buffers)[i];
    std::string where = cat(top, ".buffers[", i, "]");
    MOMA_RETURN_IF_ERROR(checkKeys(
        entry, where, {"name", "role", "type", "shape", "offset", "size"}));
    BufferDesc buffer;
    MOMA_ASSIGN_OR_RETURN(buffer.name, stringField(entry, where, "name"));
    MOMA_ASSIGN_OR_RETURN(std::string role, stringField(entry, where, "role"));
    std::optional<BufferRole> parsedRole = parseBufferRole(role);
    if (!parsedRole)
      return error(where + ".role", cat("unknown role \"", role,
                                        "\" (expected input, weight, output or "
                                        "scratch)"));
    buffer.role = *parsedRole;
    MOMA_ASSIGN_OR_RETURN(std::string type, stringField(entry, where, "type"));
    std::optional<ElementType> parsedType = parseElementType(type);
    if (!parsedType)
      return error(where + ".type",
                   cat("unknown element type \"", type,
                       "\" (expected f32, f64, bf16, f16, i32 or "
                       "i64)"));
    buffer.type = *parsedType;
    MOMA_ASSIGN_OR_RETURN(const OrderedJson *shape,
                          arrayField(entry, where, "shape"));
    if (shape->size() > kMaxRank)
      return error(where + ".shape",
                   cat("rank ", shape->size(), " exceeds ", kMaxRank));
    for (size_t d = 0; d < shape->size(); ++d) {
      MOMA_ASSIGN_OR_RETURN(
          uint64_t dim, asUnsigned((*shape)[d], cat(where, ".shape[", d, "]"),
                                   std::numeric_limits<int64_t>::max()));
      buffer.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t count = buffer.numElements();
    uint64_t elementSize = elementTypeSize(buffer.type);
    uint64_t computed =
        count > std::numeric_limits<uint64_t>::max() / elementSize
            ? std::numeric_limits<uint64_t>::max()
            : count * elementSize;
    if (spec && !entry.contains("size")) {
      buffer.byteSize = computed;
    } else {
      MOMA_ASSIGN_OR_RETURN(buffer.byteSize,
                            unsignedField(entry, where, "size"));
    }
    if (spec && !entry.contains("offset")) {
      uint64_t align = std::max(program.arenaAlignment, elementSize);
      if (nextOffset > std::numeric_limits<uint64_t>::max() - align)
        return error(where, "the arena layout overflows");
      buffer.offset = (nextOffset + align - 1) / align * align;
    } else {
      MOMA_ASSIGN_OR_RETURN(buffer.offset,
                            unsignedField(entry, where, "offset"));
    }
    if (buffer.byteSize > std::numeric_limits<uint64_t>::max() - buffer.offset)
      return error(where, "offset + size overflows");
    nextOffset = std::max(nextOffset, buffer.offset + buffer.byteSize);
    bufferOffsets.emplace(buffer.name, buffer.offset);
    program.buffers.push_back(std::move(buffer));
  }
  if (autoArenaSize) {
    uint64_t align = program.arenaAlignment;
    if (nextOffset > std::numeric_limits<uint64_t>::max() - align)
      return error(arenaWhere, "the arena size overflows");
    program.arenaSize = (nextOffset + align - 1) / align * align;
  }

  MOMA_ASSIGN_OR_RETURN(const OrderedJson *launches,
                        arrayField(root, top, "launches"));
  for (size_t i = 0; i < launches->size(); ++i) {
    const OrderedJson &entry = (*launches)[i];
    std::string where = cat(top, ".launches[", i, "]");
    MOMA_RETURN_IF_ERROR(checkKeys(entry, where,
                                   {"module", "function", "grid", "block",
                                    "shared_memory_bytes", "args"}));
    Launch launch;
    MOMA_ASSIGN_OR_RETURN(uint64_t module,
                          unsignedField(entry, where, "module",
                                        std::numeric_limits<uint32_t>::max()));
    launch.module = static_cast<uint32_t>(module);
    MOMA_ASSIGN_OR_RETURN(launch.function,
                          stringField(entry, where, "function"));
    MOMA_ASSIGN_OR_RETURN(launch.grid, dimField(entry, where, "grid"));
    MOMA_ASSIGN_OR_RETURN(launch.block, dimField(entry, where, "block"));
    if (spec && !entry.contains("shared_memory_bytes")) {
      launch.sharedMemBytes = 0;
    } else {
      MOMA_ASSIGN_OR_RETURN(
          uint64_t smem, unsignedField(entry, where, "shared_memory_bytes",
                                       std::numeric_limits<uint32_t>::max()));
      launch.sharedMemBytes = static_cast<uint32_t>(smem);
    }
    MOMA_ASSIGN_OR_RETURN(const OrderedJson *args,
                          arrayField(entry, where, "args"));
    for (size_t a = 0; a < args->size(); ++a) {
      MOMA_ASSIGN_OR_RETURN(
          LaunchArg arg,
          readArg((*args)[a], cat(where, ".args[", a, "]"), bufferOffsets));
      launch.args.push_back(arg);
    }
    program.launches.push_back(std::move(launch));
  }
  return program;
}

} // namespace

std::string programManifestJson(const Program &program, bool pretty) {
  return manifestOf(program).dump(pretty ? 2 : -1);
}

//===----------------------------------------------------------------------===//
// Container
//===----------------------------------------------------------------------===//

namespace {

constexpr uint64_t kHeaderSize = 32;
constexpr uint64_t kSectionEntrySize = 24;
constexpr uint64_t kChecksumSize = 4;
constexpr uint64_t kSectionAlignment = 16;
constexpr uint32_t kMaxSections = 1u << 20;
constexpr uint32_t kSectionManifest = 1;
constexpr uint32_t kSectionModule = 2;

void putU32(std::string &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void putU64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void setU64(std::string &out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
/// Reads a little-endian u32 at \p at; the caller checks bounds.
uint32_t getU32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}
uint64_t getU64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

} // namespace

absl::StatusOr<std::string> serializeProgram(const Program &program) {
  if (absl::Status status = validateProgram(program); !status.ok())
    return absl::InvalidArgumentError(
        cat("cannot write an invalid program: ", status.message()));
  std::string manifest = programManifestJson(program, /*pretty=*/false);
  std::vector<std::pair<uint32_t, std::string_view>> sections;
  sections.emplace_back(kSectionManifest, manifest);
  for (const KernelModule &module : program.modules) {
    sections.emplace_back(kSectionModule, module.bytes);
    for (const ModuleImage &image : module.alternatives)
      sections.emplace_back(kSectionModule, image.bytes);
  }

  std::string out(kProgramMagic, sizeof(kProgramMagic));
  putU32(out, kProgramFormatVersion);
  putU32(out, 0); // flags
  putU64(out, 0); // file size, patched below
  putU32(out, static_cast<uint32_t>(sections.size()));
  putU32(out, 0); // reserved
  size_t tableAt = out.size();
  out.resize(out.size() + sections.size() * kSectionEntrySize, '\0');
  for (size_t i = 0; i < sections.size(); ++i) {
    out.resize((out.size() + kSectionAlignment - 1) / kSectionAlignment *
                   kSectionAlignment,
               '\0');
    std::string entry;
    putU32(entry, sections[i].first);
    putU32(entry, 0);
    putU64(entry, out.size());
    putU64(entry, sections[i].second.size());
    out.replace(tableAt + i * kSectionEntrySize, kSectionEntrySize, entry);
    out.append(sections[i].second);
  }
  setU64(out, 16, out.size() + kChecksumSize);
  putU32(out, crc32(out));
  return out;
}

absl::StatusOr<Program> parseProgram(std::string_view bytes,
                                     std::string_view sourceName) {
  auto damaged = [&](const std::string &message) {
    return absl::DataLossError(cat(sourceName, ": ", message));
  };
  uint64_t size = bytes.size();
  if (size < sizeof(kProgramMagic) ||
      std::memcmp(bytes.data(), kProgramMagic, sizeof(kProgramMagic)) != 0)
    return damaged("not a moma program (the file does not start with "
                   "\"MOMAPROG\")");
  if (size < 12)
    return damaged(
        cat("truncated: ", size, " bytes is too short for the header"));
  uint32_t version = getU32(bytes, 8);
  if (version > kProgramFormatVersion)
    return absl::UnimplementedError(
        cat(sourceName, ": written by a newer moma (program format version ",
            version, "; this runtime reads versions up to ",
            kProgramFormatVersion, ")"));
  if (version == 0)
    return damaged("invalid program format version 0");
  if (size < kHeaderSize + kChecksumSize)
    return damaged(
        cat("truncated: ", size, " bytes is too short for the header"));
  uint64_t declaredSize = getU64(bytes, 16);
  if (declaredSize != size)
    return damaged(declaredSize > size
                       ? cat("truncated: the header says ", declaredSize,
                             " bytes, the file has ", size)
                       : cat("the header says ", declaredSize,
                             " bytes, but the file has ", size,
                             " (trailing data)"));
  uint32_t stored = getU32(bytes, size - kChecksumSize);
  uint32_t computed = crc32(bytes.substr(0, size - kChecksumSize));
  if (stored != computed)
    return damaged(absl::StrFormat("checksum mismatch (stored 0x%08x, "
                                   "computed 0x%08x): the file is damaged",
                                   stored, computed));
  if (uint32_t flags = getU32(bytes, 12); flags != 0)
    return damaged(absl::StrFormat("unknown header flags 0x%08x", flags));
  if (uint32_t reserved = getU32(bytes, 28); reserved != 0)
    return damaged("the reserved header field is not zero");
  uint32_t count = getU32(bytes, 24);
  if (count == 0 || count > kMaxSections)
    return damaged(cat("invalid section count ", count));
  uint64_t payloadEnd = size - kChecksumSize;
  uint64_t tableEnd = kHeaderSize + uint64_t(count) * kSectionEntrySize;
  if (tableEnd > payloadEnd)
    return damaged(cat("the section table (", count,
                       " entries) extends past the end of the file"));

  struct Section {
    uint32_t kind;
    uint64_t offset, size;
  };
  std::vector<Section> sections;
  for (uint32_t i = 0; i < count; ++i) {
    size_t at = kHeaderSize + size_t(i) * kSectionEntrySize;
    Section section{getU32(bytes, at), getU64(bytes, at + 8),
                    getU64(bytes, at + 16)};
    if (section.kind != kSectionManifest && section.kind != kSectionModule)
      return damaged(cat("section ", i, " has unknown kind ", section.kind));
    if (getU32(bytes, at + 4) != 0)
      return damaged(cat("section ", i, ": the reserved field is not zero"));
    if (section.offset < tableEnd || section.offset > payloadEnd ||
        section.size > payloadEnd - section.offset)
      return damaged(cat("section ", i, " (bytes [", section.offset, ", ",
                         section.offset + section.size,
                         ")) lies outside the data area [", tableEnd, ", ",
                         payloadEnd, ")"));
    if (i == 0 && section.kind != kSectionManifest)
      return damaged("section 0 is not the manifest");
    if (i != 0 && section.kind == kSectionManifest)
      return damaged(cat("section ", i, " is a second manifest"));
    sections.push_back(section);
  }
  {
    std::vector<Section> sorted = sections;
    std::sort(
        sorted.begin(), sorted.end(),
        [](const Section &a, const Section &b) { return a.offset < b.offset; });
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset)
        return damaged("two sections overlap");
  }

  std::string_view manifestText =
      bytes.substr(sections[0].offset, sections[0].size);
  absl::StatusOr<OrderedJson> manifest = parseOrderedJson(manifestText);
  if (!manifest.ok())
    return damaged(cat("the manifest is ", manifest.status().message()));

  std::vector<bool> used(sections.size(), false);
  used[0] = true;
  ManifestReader reader(
      /*spec=*/false,
      [&](const OrderedJson &entry,
          const std::string &where) -> absl::StatusOr<std::string> {
        auto it = entry.find("section");
        if (it == entry.end())
          return absl::InvalidArgumentError(
              cat(where, ": missing key \"section\""));
        if (!it->is_number_unsigned())
          return absl::InvalidArgumentError(
              cat(where, ".section: expected a non-negative integer"));
        uint64_t index = it->get<uint64_t>();
        if (index == 0 || index >= sections.size())
          return absl::InvalidArgumentError(
              cat(where, ".section: ", index,
                  " is not a module section (the file has ", sections.size(),
                  " sections)"));
        if (used[index])
          return absl::InvalidArgumentError(
              cat(where, ".section: section ", index, " is used twice"));
        used[index] = true;
        return std::string(
            bytes.substr(sections[index].offset, sections[index].size));
      });
  absl::StatusOr<Program> program = reader.read(*manifest);
  if (!program.ok())
    return damaged(std::string(program.status().message()));
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i])
      return damaged(cat("section ", i, " is not used by any module"));
  for (size_t i = 0; i < program->modules.size(); ++i)
    if (version < 2 && !program->modules[i].alternatives.empty())
      return damaged(cat("module ", i,
                         " has alternative images, which program format "
                         "version ",
                         version, " does not have (they came with version 2)"));
  if (absl::Status status = validateProgram(*program); !status.ok())
    return damaged(cat("invalid program: ", status.message()));
  return program;
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

absl::StatusOr<Program> readProgram(const std::string &path) {
  absl::StatusOr<std::string> bytes = readFile(path);
  if (!bytes.ok())
    return bytes.status();
  return parseProgram(*bytes, path);
}

absl::Status writeProgram(const Program &program, const std::string &path) {
  absl::StatusOr<std::string> bytes = serializeProgram(program);
  if (!bytes.ok())
    return bytes.status();
  return writeFileAtomically(path, *bytes);
}

absl::StatusOr<Program> parseProgramSpec(std::string_view specJson,
                                         const std::string &baseDir) {
  absl::StatusOr<OrderedJson> root = parseOrderedJson(specJson);
  if (!root.ok())
    return absl::InvalidArgumentError(
        cat("program spec: ", root.status().message()));
  ManifestReader reader(
      /*spec=*/true,
      [&](const OrderedJson &entry,
          const std::string &where) -> absl::StatusOr<std::string> {
        auto it = entry.find("path");
        if (it == entry.end() || !it->is_string())
          return absl::InvalidArgumentError(
              cat(where, ": expected a string \"path\""));
        std::string path = it->get<std::string>();
        if (!path.empty() && path[0] != '/' && !baseDir.empty())
          path = baseDir + "/" + path;
        absl::StatusOr<std::string> bytes = readFile(path);
        if (!bytes.ok())
          return absl::Status(bytes.status().code(),
                              cat(where, ".path: ", bytes.status().message()));
        return bytes;
      });
  absl::StatusOr<Program> program = reader.read(*root);
  if (!program.ok())
    return absl::Status(program.status().code(),
                        cat("program spec: ", program.status().message()));
  if (absl::Status status = validateProgram(*program); !status.ok())
    return absl::InvalidArgumentError(cat("program spec: ", status.message()));
  return program;
}

//===----------------------------------------------------------------------===//
// ProgramBuilder
//===----------------------------------------------------------------------===//

ProgramBuilder::ProgramBuilder(Target target, uint64_t arenaAlignment) {
  program.target = target;
  program.arenaAlignment = arenaAlignment;
}

void ProgramBuilder::addModuleAlternative(uint32_t module, ModuleFormat format,
                                          std::string bytes) {
  program.modules.at(module).alternatives.push_back(
      ModuleImage{format, std::move(bytes)});
}

uint32_t ProgramBuilder::addModule(ModuleFormat format, std::string bytes,
                                   std::vector<std::string> functions,
                                   std::string name) {
  KernelModule module;
  module.name = std::move(name);
  module.format = format;
  module.functions = std::move(functions);
  module.bytes = std::move(bytes);
  program.modules.push_back(std::move(module));
  return static_cast<uint32_t>(program.modules.size() - 1);
}

uint64_t ProgramBuilder::addBuffer(std::string name, BufferRole role,
                                   ElementType type,
                                   std::vector<int64_t> shape) {
  uint64_t align = std::max<uint64_t>(
      {program.arenaAlignment, elementTypeSize(type), uint64_t(1)});
  uint64_t offset = (nextOffset + align - 1) / align * align;
  return addBufferAt(std::move(name), role, type, std::move(shape), offset);
}

uint64_t ProgramBuilder::endOfBuffers() const {
  uint64_t align = program.arenaAlignment;
  return (nextOffset + align - 1) / align * align;
}

uint64_t ProgramBuilder::addBufferAt(std::string name, BufferRole role,
                                     ElementType type,
                                     std::vector<int64_t> shape,
                                     uint64_t offset) {
  BufferDesc buffer;
  buffer.name = std::move(name);
  buffer.role = role;
  buffer.type = type;
  buffer.shape = std::move(shape);
  buffer.offset = offset;
  uint64_t count = buffer.numElements();
  uint64_t size = elementTypeSize(type);
  buffer.byteSize = count > std::numeric_limits<uint64_t>::max() / size
                        ? std::numeric_limits<uint64_t>::max()
                        : count * size;
  uint64_t end = buffer.byteSize > std::numeric_limits<uint64_t>::max() - offset
                     ? std::numeric_limits<uint64_t>::max()
                     : offset + buffer.byteSize;
  nextOffset = std::max(nextOffset, end);
  program.buffers.push_back(std::move(buffer));
  return offset;
}

std::optional<uint64_t>
ProgramBuilder::bufferOffset(std::string_view name) const {
  if (const BufferDesc *buffer = program.findBuffer(name))
    return buffer->offset;
  return std::nullopt;
}

void ProgramBuilder::setArenaSize(uint64_t size) { explicitArenaSize = size; }

void ProgramBuilder::setMetadata(std::string key, std::string value) {
  program.metadata[std::move(key)] = std::move(value);
}

void ProgramBuilder::addLaunch(uint32_t module, std::string function, Dim3 grid,
                               Dim3 block, std::vector<LaunchArg> args,
                               uint32_t sharedMemBytes) {
  Launch launch;
  launch.module = module;
  launch.function = std::move(function);
  launch.grid = grid;
  launch.block = block;
  launch.sharedMemBytes = sharedMemBytes;
  launch.args = std::move(args);
  program.launches.push_back(std::move(launch));
}

absl::StatusOr<Program> ProgramBuilder::build() const {
  Program result = program;
  if (explicitArenaSize) {
    result.arenaSize = *explicitArenaSize;
  } else {
    uint64_t align = std::max<uint64_t>(program.arenaAlignment, 1);
    if (nextOffset > std::numeric_limits<uint64_t>::max() - align)
      return absl::InvalidArgumentError("the arena size overflows");
    result.arenaSize = (nextOffset + align - 1) / align * align;
  }
  if (absl::Status status = validateProgram(result); !status.ok())
    return status;
  return result;
}

} // namespace moma::runtime
