//===- ProgramBuilder.h - Incremental construction of programs --*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// ProgramBuilder: what the compiler's back ends and the tests use to make a
/// Program (moma/Format/Program.h) one module, buffer and launch at a time.
///
/// This header is safe to include from code compiled without exceptions.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_PROGRAMBUILDER_H
#define MOMA_FORMAT_PROGRAMBUILDER_H

#include "moma/Format/Program.h"

#include "absl/status/statusor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

/// Incremental construction of a Program; buffers are laid out in order.
class ProgramBuilder {
public:
  /// Starts a program for \p target whose arena base is aligned to
  /// \p arenaAlignment bytes; buffers added with addBuffer() start at
  /// multiples of it.
  explicit ProgramBuilder(Target target, uint64_t arenaAlignment = 256);

  /// Adds a kernel module and returns its index.
  uint32_t addModule(ModuleFormat format, std::string bytes,
                     std::vector<std::string> functions, std::string name = "");

  /// Adds an alternative image (ModuleImage) to module \p module.
  void addModuleAlternative(uint32_t module, ModuleFormat format,
                            std::string bytes);

  /// Adds a buffer after the previous ones, at the next multiple of the arena
  /// alignment, and returns its offset.
  uint64_t addBuffer(std::string name, BufferRole role, ElementType type,
                     std::vector<int64_t> shape);

  /// Adds a buffer at an explicit \p offset (e.g. scratch space shared by
  /// buffers with disjoint lifetimes) and returns \p offset.
  uint64_t addBufferAt(std::string name, BufferRole role, ElementType type,
                       std::vector<int64_t> shape, uint64_t offset);

  /// Returns the end of the buffers added so far rounded up to the arena
  /// alignment: where addBuffer() would place a buffer next.
  uint64_t endOfBuffers() const;

  /// Returns the offset of the buffer named \p name, or std::nullopt.
  std::optional<uint64_t> bufferOffset(std::string_view name) const;

  /// Overrides the arena size; by default it is the end of the last buffer
  /// rounded up to the alignment.
  void setArenaSize(uint64_t size);

  /// Records the CPU level a `cpu` program's kernels are compiled for
  /// ("x86-64", "x86-64-v2", "x86-64-v3" or "x86-64-v4"; see
  /// Program::cpuLevel). build() rejects an unknown level, and any level on
  /// a GPU program.
  void setCpuLevel(std::string level);

  /// Sets a metadata entry (see Program::metadata).
  void setMetadata(std::string key, std::string value);

  /// Appends a launch of \p function of module \p module.
  void addLaunch(uint32_t module, std::string function, Dim3 grid, Dim3 block,
                 std::vector<LaunchArg> args, uint32_t sharedMemBytes = 0);

  /// Returns the validated program.
  absl::StatusOr<Program> build() const;

private:
  Program program;
  uint64_t nextOffset = 0;
  std::optional<uint64_t> explicitArenaSize;
};

} // namespace moma::runtime

#endif // MOMA_FORMAT_PROGRAMBUILDER_H
