//===- ProgramBuilder.cpp - Incremental construction of programs ----------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// ProgramBuilder: buffers laid out in order, launches appended, validated by
// build().
//
//===----------------------------------------------------------------------===//

#include "moma/Format/ProgramBuilder.h"
#include "moma/Format/ProgramFile.h"

namespace moma::runtime {

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

void ProgramBuilder::setCpuLevel(std::string level) {
  program.cpuLevel = std::move(level);
}

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
