//===- CpuDevice.cpp - Running programs on the host CPU -------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// A `cpu` program carries one or more `cpu-so` modules: ELF shared objects
// whose kernels are `extern "C" void NAME(void **args)`. Each module is
// written to a private temporary file (mkstemps in $TMPDIR or /tmp, mode
// 0600), dlopen'ed, and unlinked at once, so nothing is left on disk. Each
// launch calls its kernel once; grid, block and shared memory are ignored, so
// a CPU kernel loops over its whole iteration space itself.
//
// Before loading anything, the device checks the host CPU against the
// program's CPU level (CpuFeatures.h). After loading, it hands its thread
// count to every module that exports `void moma_cpu_set_threads(int)` (an
// OpenMP program's omp_set_num_threads), and again before every run: OpenMP
// keeps the count per calling thread and per process, which other sessions
// share.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/Files.h"

#include "CpuFeatures.h"
#include "Device.h"
#include "lib/Format/Errors.h"
#include "lib/Format/Strings.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <limits>
#include <sched.h>
#include <unistd.h>

namespace moma::runtime {
namespace {

using CpuKernel = void (*)(void **);
using SetThreads = void (*)(int);

/// The function a module may export to take the session's thread count.
constexpr char kSetThreadsSymbol[] = "moma_cpu_set_threads";

class CpuDevice final : public Device {
public:
  CpuDevice(std::shared_ptr<const Program> program, int threads)
      : program(std::move(program)),
        threads(threads > 0 ? threads : availableCores()) {}
  ~CpuDevice() override;

  absl::Status initialize();

  const std::string &description() const override { return name; }
  absl::Status write(uint64_t offset, const void *src, uint64_t size) override {
    if (size)
      std::memcpy(arena + offset, src, size);
    return absl::OkStatus();
  }
  absl::Status read(uint64_t offset, void *dst, uint64_t size) override {
    if (size)
      std::memcpy(dst, arena + offset, size);
    return absl::OkStatus();
  }
  absl::Status setUseGraph(bool enable) override {
    if (!enable)
      return absl::OkStatus();
    return makeError(MOMA_STATUS_UNSUPPORTED,
                     "CUDA graphs are not available on the cpu device");
  }
  absl::StatusOr<double> run() override;
  std::optional<int> cpuThreads() const override {
    return setThreads.empty() ? 1 : threads;
  }

private:
  absl::StatusOr<void *> loadModule(size_t index, const KernelModule &module);

  std::shared_ptr<const Program> program;
  std::string name = "cpu";
  int threads;
  char *arena = nullptr;
  std::vector<void *> handles;
  std::vector<SetThreads> setThreads; // of the modules that export it
  std::vector<CpuKernel> kernels;     // per launch
  std::vector<PackedArgs> args;       // per launch
};

CpuDevice::~CpuDevice() {
  std::free(arena);
  for (void *handle : handles)
    ::dlclose(handle);
}

absl::StatusOr<void *> CpuDevice::loadModule(size_t index,
                                             const KernelModule &module) {
  std::string what = cat("module ", index);
  if (!module.name.empty())
    what += cat(" ('", module.name, "')");
  const char *tmp = std::getenv("TMPDIR");
  std::string path = cat(tmp && *tmp ? tmp : "/tmp", "/moma-kernels-XXXXXX.so");
  std::vector<char> name(path.begin(), path.end());
  name.push_back('\0');
  int fd = ::mkstemps(name.data(), 3);
  if (fd < 0)
    return makeError(MOMA_STATUS_IO_ERROR,
                     cat(what, ": cannot create a temporary file ", path, ": ",
                         std::strerror(errno)));
  if (absl::Status status = writeAll(fd, module.bytes); !status.ok()) {
    ::close(fd);
    ::unlink(name.data());
    return makeError(
        MOMA_STATUS_IO_ERROR,
        cat(what, ": cannot write ", name.data(), ": ", status.message()));
  }
  ::close(fd);
  ::dlerror();
  void *handle = ::dlopen(name.data(), RTLD_NOW | RTLD_LOCAL);
  std::string error = handle ? "" : ::dlerror();
  ::unlink(name.data());
  if (!handle)
    return makeError(MOMA_STATUS_DEVICE_ERROR,
                     cat(what, ": the cpu-so module does not load: ", error));
  return handle;
}

absl::Status CpuDevice::initialize() {
  if (program->target != Target::Cpu)
    return makeError(MOMA_STATUS_UNSUPPORTED,
                     cat("the program targets ", targetName(program->target),
                         "; the cpu device runs only 'cpu' programs"));
  std::optional<CpuLevel> level = program->requiredCpuLevel();
  if (!level)
    return makeError(MOMA_STATUS_INTERNAL,
                     cat("unknown CPU level '", program->cpuLevel, "'"));
  if (absl::Status status = checkCpuLevel(*level); !status.ok())
    return status;
  // Resolve every declared kernel of every module.
  std::vector<std::vector<CpuKernel>> functions;
  for (size_t i = 0; i < program->modules.size(); ++i) {
    const KernelModule &module = program->modules[i];
    absl::StatusOr<void *> handle = loadModule(i, module);
    if (!handle.ok())
      return handle.status();
    handles.push_back(*handle);
    functions.emplace_back();
    for (const std::string &function : module.functions) {
      ::dlerror();
      void *symbol = ::dlsym(*handle, function.c_str());
      if (!symbol)
        return makeError(MOMA_STATUS_DEVICE_ERROR,
                         cat("module ", i, ": kernel '", function,
                             "' is not defined by the cpu-so module"));
      functions.back().push_back(reinterpret_cast<CpuKernel>(symbol));
    }
    if (void *symbol = ::dlsym(*handle, kSetThreadsSymbol))
      setThreads.push_back(reinterpret_cast<SetThreads>(symbol));
  }
  for (SetThreads set : setThreads)
    set(threads);

  uint64_t alignment = std::max<uint64_t>(program->arenaAlignment, 64);
  uint64_t size = std::max<uint64_t>(program->arenaSize, 1);
  if (size > std::numeric_limits<uint64_t>::max() - alignment)
    return makeError(MOMA_STATUS_OUT_OF_MEMORY, "the arena is too large");
  size = (size + alignment - 1) / alignment * alignment;
  arena = static_cast<char *>(std::aligned_alloc(alignment, size));
  if (!arena)
    return makeError(
        MOMA_STATUS_OUT_OF_MEMORY,
        cat("cannot allocate the arena of ", program->arenaSize, " bytes"));
  std::memset(arena, 0, size);

  kernels.reserve(program->launches.size());
  args.reserve(program->launches.size());
  for (const Launch &launch : program->launches) {
    const KernelModule &module = program->modules[launch.module];
    size_t index =
        static_cast<size_t>(std::find(module.functions.begin(),
                                      module.functions.end(), launch.function) -
                            module.functions.begin());
    kernels.push_back(functions[launch.module][index]);
    args.push_back(packArgs(launch, reinterpret_cast<uintptr_t>(arena)));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> CpuDevice::run() {
  for (SetThreads set : setThreads)
    set(threads);
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kernels.size(); ++i)
    kernels[i](args[i].pointers.data());
  auto stop = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(stop - start).count();
}

} // namespace

int availableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

absl::StatusOr<std::unique_ptr<Device>>
createCpuDevice(std::shared_ptr<const Program> program, int threads) {
  auto device = std::make_unique<CpuDevice>(std::move(program), threads);
  if (absl::Status status = device->initialize(); !status.ok())
    return status;
  return std::unique_ptr<Device>(std::move(device));
}

} // namespace moma::runtime
