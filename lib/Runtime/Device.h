//===- Device.h - The runtime's device back ends ----------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// A Device holds what executing one program on one machine needs: the loaded
/// kernel modules, the arena, the packed launch arguments. Two back ends
/// implement it: the host CPU (the program's `cpu-so` module, dlopen'ed) and
/// a CUDA GPU (the driver API, itself dlopen'ed).
///
/// Both back ends call kernels with the same ABI: an array of pointers to the
/// argument values, exactly cuLaunchKernel's `kernelParams`. A buffer argument
/// is the address of arena base + offset (a device pointer on the GPU, a host
/// pointer on the CPU), an i32/f32 scalar is 4 bytes, an i64/f64 scalar 8.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_RUNTIME_DEVICE_H
#define MOMA_LIB_RUNTIME_DEVICE_H

#include "moma/Format/Program.h"

#include "absl/status/statusor.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moma::runtime {

/// A program loaded on a device, ready to run.
class Device {
public:
  virtual ~Device();

  /// A description for messages, e.g. "cpu" or "cuda:0 (NVIDIA H100, ...)".
  virtual const std::string &description() const = 0;

  /// Copies \p size bytes from host memory \p src to the arena at \p offset.
  /// The range is checked by the caller.
  virtual absl::Status write(uint64_t offset, const void *src,
                             uint64_t size) = 0;

  /// Copies \p size bytes from the arena at \p offset to host memory \p dst.
  virtual absl::Status read(uint64_t offset, void *dst, uint64_t size) = 0;

  /// Selects graph replay for later runs; Unimplemented where unsupported.
  virtual absl::Status setUseGraph(bool enable) = 0;

  /// Runs the schedule once, waits for it, and returns its duration in
  /// milliseconds.
  virtual absl::StatusOr<double> run() = 0;

  /// Returns how many threads the kernels run on, for a CPU device;
  /// std::nullopt for a GPU.
  virtual std::optional<int> cpuThreads() const { return std::nullopt; }
};

/// Loads \p program on the host CPU, to run on \p threads threads (0: every
/// core the process may run on). Its target must be `cpu`, and the host CPU
/// must reach its CPU level (checkCpuLevel), which is checked before any
/// module is loaded.
absl::StatusOr<std::unique_ptr<Device>>
createCpuDevice(std::shared_ptr<const Program> program, int threads = 0);

/// Returns the number of cores this process may run on (its affinity mask;
/// the online cores if that cannot be read), at least 1.
int availableCores();

/// Loads \p program on CUDA device \p ordinal, each module from the first
/// image of selectModuleImages() under \p preference that the driver
/// accepts; the description names the formats loaded. Fails with
/// MOMA_STATUS_NO_CUDA_DRIVER when there is no usable driver.
absl::StatusOr<std::unique_ptr<Device>>
createCudaDevice(std::shared_ptr<const Program> program, int ordinal,
                 ImagePreference preference = ImagePreference::Auto);

/// The argument block of one launch: `pointers[i]` points at the value of
/// argument i, stored in `slots[i]` (8 bytes each, little-endian, so a 4-byte
/// value sits in the slot's first bytes).
struct PackedArgs {
  /// One 8-byte slot per argument.
  std::vector<uint64_t> slots;
  /// Pointers to the slots, in argument order: the `kernelParams` array.
  std::vector<void *> pointers;
};

/// Packs the arguments of \p launch for an arena whose base address is
/// \p arenaBase.
PackedArgs packArgs(const Launch &launch, uint64_t arenaBase);

} // namespace moma::runtime

#endif // MOMA_LIB_RUNTIME_DEVICE_H
