//===- ProgramManifest.cpp - The JSON manifest of a program ---------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The manifest (ProgramFormat.md, "Manifest"): writing it, reading it strictly
// from a file or leniently from a program spec.
//
//===----------------------------------------------------------------------===//

#include "lib/Format/ProgramManifest.h"

#include "moma/Format/Files.h"
#include "moma/Format/ProgramFile.h"

#include "lib/Format/ProgramLimits.h"
#include "lib/Format/Strings.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace moma::runtime {

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
  if (!program.cpuLevel.empty())
    root["cpu"] = program.cpuLevel;
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
  MOMA_RETURN_IF_ERROR(checkKeys(root, top,
                                 {"target", "cpu", "arena", "modules",
                                  "buffers", "launches", "metadata"}));
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
  // The level's spelling and its target are checked by validateProgram; an
  // empty level would read as no key.
  if (root.contains("cpu")) {
    MOMA_ASSIGN_OR_RETURN(program.cpuLevel, stringField(root, top, "cpu"));
    if (program.cpuLevel.empty())
      return error(top + ".cpu", "expected a CPU level, not \"\"");
  }

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
                                        "\" (expected input, weight, output, "
                                        "scratch or state)"));
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

absl::StatusOr<Program> readManifest(const OrderedJson &root, bool spec,
                                     ModuleLoader loader) {
  return ManifestReader(spec, std::move(loader)).read(root);
}

std::string programManifestJson(const Program &program, bool pretty) {
  return manifestOf(program).dump(pretty ? 2 : -1);
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

} // namespace moma::runtime
