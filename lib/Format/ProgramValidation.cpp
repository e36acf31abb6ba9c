//===- ProgramValidation.cpp - Every rule a program obeys -----------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// validateProgram(): the rules of ProgramFormat.md ("Validation").
//
//===----------------------------------------------------------------------===//

#include "moma/Format/ProgramFile.h"

#include "lib/Format/ProgramLimits.h"
#include "lib/Format/Strings.h"

#include "absl/strings/str_format.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace moma::runtime {

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

namespace {

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

absl::Status validateProgram(const Program &program) {
  // The CPU level.
  if (!program.cpuLevel.empty()) {
    if (isGpu(program.target))
      return invalid(cat("\"cpu\": CPU level '", program.cpuLevel,
                         "' on a program for target '",
                         targetName(program.target),
                         "' (only 'cpu' programs record a CPU level)"));
    if (!parseCpuLevel(program.cpuLevel))
      return invalid(cat("\"cpu\": unknown CPU level '", program.cpuLevel,
                         "' (expected x86-64, x86-64-v2, x86-64-v3 or "
                         "x86-64-v4)"));
  }

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

} // namespace moma::runtime
