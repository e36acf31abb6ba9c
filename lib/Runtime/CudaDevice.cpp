//===- CudaDevice.cpp - Running programs on a CUDA GPU --------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// One CUDA session: the device's primary context, one non-blocking stream,
// the program's modules (for each, a cubin when one runs on this GPU, else
// the PTX, JIT-compiled by the driver), one
// device allocation for the arena (zero-filled), and the packed arguments of
// every launch. A run enqueues the launches in order (or replays the CUDA
// graph captured from them at the first graph run) between two events, and
// synchronizes the stream.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "Device.h"
#include "lib/Format/Errors.h"
#include "lib/Format/Strings.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace moma::runtime {
namespace {

/// Dynamic shared memory a kernel may use without opting in.
constexpr uint32_t kDefaultSharedMemLimit = 48 * 1024;

class CudaDevice final : public Device {
public:
  CudaDevice(std::shared_ptr<const Program> program, const CudaDriver &cu,
             ImagePreference preference)
      : program(std::move(program)), cu(cu), preference(preference) {}
  ~CudaDevice() override;

  absl::Status initialize(int ordinal);

  const std::string &description() const override { return name; }
  absl::Status write(uint64_t offset, const void *src, uint64_t size) override;
  absl::Status read(uint64_t offset, void *dst, uint64_t size) override;
  absl::Status setUseGraph(bool enable) override {
    useGraph = enable;
    return absl::OkStatus();
  }
  absl::StatusOr<double> run() override;

private:
  /// Returns an error for a failed driver call \p call, or OK.
  absl::Status check(CUresult result, const std::string &call) const {
    if (result == CUDA_SUCCESS)
      return absl::OkStatus();
    return makeError(result == CUDA_ERROR_OUT_OF_MEMORY
                         ? MOMA_STATUS_OUT_OF_MEMORY
                         : MOMA_STATUS_DEVICE_ERROR,
                     cat(name, ": ", call, " failed: ", cu.describe(result)));
  }
  absl::Status makeCurrent() const {
    return check(cu.ctxSetCurrent(context), "cuCtxSetCurrent");
  }
  /// Checks that every module has an image this GPU can run under
  /// `preference`.
  absl::Status checkTarget() const;
  absl::Status loadModules();
  absl::Status enqueueLaunches();
  absl::Status captureGraph();

  std::shared_ptr<const Program> program;
  const CudaDriver &cu;
  ImagePreference preference;
  int major = 0, minor = 0;
  std::string name;
  CUdevice device = 0;
  CUcontext context = nullptr;
  bool retained = false;
  CUstream stream = nullptr;
  CUevent start = nullptr, stop = nullptr;
  std::vector<CUmodule> modules;
  CUdeviceptr allocation = 0;
  CUdeviceptr arena = 0;
  std::vector<CUfunction> kernels; // per launch
  std::vector<PackedArgs> args;    // per launch
  bool useGraph = false;
  CUgraph graph = nullptr;
  CUgraphExec graphExec = nullptr;
};

CudaDevice::~CudaDevice() {
  if (!retained)
    return;
  cu.ctxSetCurrent(context);
  if (stream)
    cu.streamSynchronize(stream);
  if (graphExec)
    cu.graphExecDestroy(graphExec);
  if (graph)
    cu.graphDestroy(graph);
  if (start)
    cu.eventDestroy(start);
  if (stop)
    cu.eventDestroy(stop);
  if (stream)
    cu.streamDestroy(stream);
  for (CUmodule module : modules)
    cu.moduleUnload(module);
  if (allocation)
    cu.memFree(allocation);
  cu.primaryCtxRelease(device);
}

/// The formats of a module's images, e.g. "ptx" or "ptx, cubin".
std::string imageFormats(const KernelModule &module) {
  std::string formats(moduleFormatName(module.format));
  for (const ModuleImage &image : module.alternatives)
    formats += cat(", ", moduleFormatName(image.format));
  return formats;
}

absl::Status CudaDevice::checkTarget() const {
  for (size_t i = 0; i < program->modules.size(); ++i) {
    const KernelModule &module = program->modules[i];
    if (!selectModuleImages(module, program->target, major, minor, preference)
             .empty())
      continue;
    // Another image would run: the preference excluded it.
    if (preference != ImagePreference::Auto &&
        !selectModuleImages(module, program->target, major, minor,
                            ImagePreference::Auto)
             .empty()) {
      std::string_view wanted = preference == ImagePreference::Ptx
                                    ? moduleFormatName(ModuleFormat::Ptx)
                                    : moduleFormatName(ModuleFormat::Cubin);
      return makeError(MOMA_STATUS_UNSUPPORTED,
                       cat("module ", i, " has no ", wanted, " image that ",
                           name, " can run (it has ", imageFormats(module),
                           "), and only ", wanted, " was asked for"));
    }
    bool archSpecific = program->target == Target::Sm90a;
    // Formats are distinct within a module: any alternative is PTX.
    bool cubinOnly =
        module.format == ModuleFormat::Cubin && module.alternatives.empty();
    return makeError(MOMA_STATUS_UNSUPPORTED,
                     cat("the program targets ", targetName(program->target),
                         " (", imageFormats(module), "), but ", name,
                         " cannot run it",
                         archSpecific ? " (sm_90a needs compute capability 9.0)"
                         : cubinOnly ? " (a cubin needs the same major compute "
                                       "capability)"
                                     : " (PTX needs at least the target's "
                                       "compute capability)"));
  }
  return absl::OkStatus();
}

absl::Status CudaDevice::initialize(int ordinal) {
  if (program->target == Target::Cpu)
    return makeError(MOMA_STATUS_UNSUPPORTED,
                     "the program targets cpu; run it on the cpu device");
  int count = 0;
  CUresult result = cu.deviceGetCount(&count);
  if (result != CUDA_SUCCESS)
    return makeError(MOMA_STATUS_DEVICE_ERROR,
                     "cuDeviceGetCount failed: " + cu.describe(result));
  if (count == 0)
    return makeError(MOMA_STATUS_DEVICE_ERROR, "no CUDA device");
  if (ordinal < 0 || ordinal >= count)
    return makeError(MOMA_STATUS_INVALID_ARGUMENT,
                     cat("CUDA device ", ordinal, " does not exist (there are ",
                         count, ")"));
  name = cat("cuda:", ordinal);
  if (absl::Status s = check(cu.deviceGet(&device, ordinal), "cuDeviceGet");
      !s.ok())
    return s;
  char deviceName[256] = {0};
  int driverVersion = 0;
  if (absl::Status s =
          check(cu.deviceGetName(deviceName, sizeof(deviceName) - 1, device),
                "cuDeviceGetName");
      !s.ok())
    return s;
  if (absl::Status s = check(
          cu.deviceGetAttribute(
              &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
          "cuDeviceGetAttribute");
      !s.ok())
    return s;
  if (absl::Status s = check(
          cu.deviceGetAttribute(
              &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
          "cuDeviceGetAttribute");
      !s.ok())
    return s;
  cu.driverGetVersion(&driverVersion);
  name = cat("cuda:", ordinal, " (", deviceName, ", sm_", major, minor,
             ", driver ", driverVersion / 1000, ".", driverVersion % 1000 / 10,
             ")");
  if (absl::Status s = checkTarget(); !s.ok())
    return s;

  if (absl::Status s = check(cu.primaryCtxRetain(&context, device),
                             "cuDevicePrimaryCtxRetain");
      !s.ok())
    return s;
  retained = true;
  if (absl::Status s = makeCurrent(); !s.ok())
    return s;
  if (absl::Status s = check(cu.streamCreate(&stream, CU_STREAM_NON_BLOCKING),
                             "cuStreamCreate");
      !s.ok())
    return s;
  if (absl::Status s =
          check(cu.eventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
      !s.ok())
    return s;
  if (absl::Status s =
          check(cu.eventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
      !s.ok())
    return s;
  if (absl::Status s = loadModules(); !s.ok())
    return s;

  // The arena: over-allocate by alignment - 1 bytes so that an aligned base
  // always fits (cuMemAlloc aligns to 256 bytes, but nothing depends on it).
  uint64_t alignment = program->arenaAlignment;
  uint64_t extra = alignment - 1;
  uint64_t size = std::max<uint64_t>(program->arenaSize, 1) + extra;
  if (absl::Status s =
          check(cu.memAlloc(&allocation, size),
                cat("cuMemAlloc of the ", program->arenaSize, "-byte arena"));
      !s.ok())
    return s;
  arena = (allocation + alignment - 1) / alignment * alignment;
  if (absl::Status s = check(cu.memsetD8(allocation, 0, size), "cuMemsetD8");
      !s.ok())
    return s;

  args.reserve(program->launches.size());
  for (const Launch &launch : program->launches)
    args.push_back(packArgs(launch, arena));
  return absl::OkStatus();
}

absl::Status CudaDevice::loadModules() {
  std::vector<std::map<std::string, CUfunction>> functions;
  std::set<ModuleFormat> loadedFormats;
  for (size_t i = 0; i < program->modules.size(); ++i) {
    const KernelModule &module = program->modules[i];
    std::string what = cat("module ", i);
    if (!module.name.empty())
      what += cat(" ('", module.name, "')");
    // The images this GPU can run, best first (checkTarget made sure there
    // is one): a driver that rejects a cubin (say, one older than the ptxas
    // that made it) gets the PTX next.
    CUmodule loaded = nullptr;
    std::string failures;
    for (const ImageChoice &choice : selectModuleImages(
             module, program->target, major, minor, preference)) {
      // The driver reads PTX as a C string: std::string's c_str() is one,
      // without copying the module.
      const char *image = choice.bytes->c_str();
      std::string errorLog(16384, '\0');
      CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER,
                                CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
      void *values[] = {errorLog.data(),
                        reinterpret_cast<void *>(errorLog.size() - 1)};
      CUresult result = cu.moduleLoadDataEx(&loaded, image, 2, options, values);
      if (result == CUDA_SUCCESS) {
        loadedFormats.insert(choice.format);
        break;
      }
      loaded = nullptr;
      errorLog.resize(std::strlen(errorLog.c_str()));
      failures += cat(failures.empty() ? "" : "; ", what, " (",
                      moduleFormatName(choice.format),
                      ") does not load: ", cu.describe(result),
                      errorLog.empty() ? "" : ": ", errorLog);
    }
    if (!loaded)
      return makeError(MOMA_STATUS_DEVICE_ERROR, cat(name, ": ", failures));
    modules.push_back(loaded);
    functions.emplace_back();
    for (const std::string &function : module.functions) {
      CUfunction handle = nullptr;
      CUresult result = cu.moduleGetFunction(&handle, loaded, function.c_str());
      if (result != CUDA_SUCCESS)
        return makeError(MOMA_STATUS_DEVICE_ERROR,
                         cat(name, ": ", what, ": kernel '", function,
                             "' not found: ", cu.describe(result)));
      functions.back()[function] = handle;
    }
  }
  // Say in the device's description which images run.
  std::string formats;
  for (ModuleFormat format : loadedFormats)
    formats += cat(formats.empty() ? "" : "+", moduleFormatName(format));
  name.insert(name.size() - 1, cat("; ", formats));
  // Resolve each launch and opt in to large dynamic shared memory.
  std::map<CUfunction, uint32_t> sharedMem;
  for (const Launch &launch : program->launches) {
    CUfunction function = functions[launch.module].at(launch.function);
    kernels.push_back(function);
    uint32_t &most = sharedMem[function];
    most = std::max(most, launch.sharedMemBytes);
  }
  for (const auto &[function, bytes] : sharedMem)
    if (bytes > kDefaultSharedMemLimit)
      if (absl::Status s = check(
              cu.funcSetAttribute(
                  function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                  static_cast<int>(bytes)),
              cat("cuFuncSetAttribute (", bytes,
                  " bytes of dynamic shared memory)"));
          !s.ok())
        return s;
  return absl::OkStatus();
}

absl::Status CudaDevice::write(uint64_t offset, const void *src,
                               uint64_t size) {
  if (absl::Status s = makeCurrent(); !s.ok())
    return s;
  if (size == 0)
    return absl::OkStatus();
  return check(cu.memcpyHtoD(arena + offset, src, size), "cuMemcpyHtoD");
}

absl::Status CudaDevice::read(uint64_t offset, void *dst, uint64_t size) {
  if (absl::Status s = makeCurrent(); !s.ok())
    return s;
  if (size == 0)
    return absl::OkStatus();
  return check(cu.memcpyDtoH(dst, arena + offset, size), "cuMemcpyDtoH");
}

absl::Status CudaDevice::enqueueLaunches() {
  for (size_t i = 0; i < kernels.size(); ++i) {
    const Launch &launch = program->launches[i];
    CUresult result = cu.launchKernel(
        kernels[i], launch.grid.x, launch.grid.y, launch.grid.z, launch.block.x,
        launch.block.y, launch.block.z, launch.sharedMemBytes, stream,
        args[i].pointers.data(), nullptr);
    if (result != CUDA_SUCCESS)
      return makeError(MOMA_STATUS_DEVICE_ERROR,
                       cat(name, ": launch ", i, " ('", launch.function,
                           "', grid [", launch.grid.x, ", ", launch.grid.y,
                           ", ", launch.grid.z, "], block [", launch.block.x,
                           ", ", launch.block.y, ", ", launch.block.z, "], ",
                           launch.sharedMemBytes,
                           " bytes of shared memory): cuLaunchKernel failed: ",
                           cu.describe(result)));
  }
  return absl::OkStatus();
}

absl::Status CudaDevice::captureGraph() {
  if (absl::Status s = check(
          cu.streamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
          "cuStreamBeginCapture");
      !s.ok())
    return s;
  absl::Status launched = enqueueLaunches();
  CUgraph captured = nullptr;
  CUresult ended = cu.streamEndCapture(stream, &captured);
  if (!launched.ok()) {
    if (captured)
      cu.graphDestroy(captured);
    return launched;
  }
  if (absl::Status s = check(ended, "cuStreamEndCapture"); !s.ok())
    return s;
  graph = captured;
  return check(cu.graphInstantiate(&graphExec, graph, 0), "cuGraphInstantiate");
}

absl::StatusOr<double> CudaDevice::run() {
  if (absl::Status s = makeCurrent(); !s.ok())
    return s;
  if (useGraph && !graphExec)
    if (absl::Status s = captureGraph(); !s.ok())
      return s;
  if (absl::Status s = check(cu.eventRecord(start, stream), "cuEventRecord");
      !s.ok())
    return s;
  if (useGraph) {
    if (absl::Status s =
            check(cu.graphLaunch(graphExec, stream), "cuGraphLaunch");
        !s.ok())
      return s;
  } else if (absl::Status s = enqueueLaunches(); !s.ok()) {
    return s;
  }
  if (absl::Status s = check(cu.eventRecord(stop, stream), "cuEventRecord");
      !s.ok())
    return s;
  if (absl::Status s = check(cu.streamSynchronize(stream),
                             "running the schedule (cuStreamSynchronize)");
      !s.ok())
    return s;
  float ms = 0;
  if (absl::Status s =
          check(cu.eventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
      !s.ok())
    return s;
  return static_cast<double>(ms);
}

} // namespace

absl::StatusOr<std::unique_ptr<Device>>
createCudaDevice(std::shared_ptr<const Program> program, int ordinal,
                 ImagePreference preference) {
  absl::StatusOr<const CudaDriver *> driver = loadCudaDriver();
  if (!driver.ok())
    return driver.status();
  auto device =
      std::make_unique<CudaDevice>(std::move(program), **driver, preference);
  if (absl::Status status = device->initialize(ordinal); !status.ok())
    return status;
  return std::unique_ptr<Device>(std::move(device));
}

} // namespace moma::runtime
