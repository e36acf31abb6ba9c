//===- CudaDriver.cpp - The CUDA driver API, loaded with dlopen -----------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"

#include "lib/Format/Errors.h"
#include "lib/Format/Strings.h"

#include <cstdlib>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>

namespace moma::runtime {

#if MOMA_HAVE_CUDA_H
// Check each signature against the declaration in cuda.h (whose macros map
// a name such as cuMemAlloc to the versioned symbol cuMemAlloc_v2).
#define MOMA_CUDA_CHECK(member, header, symbol, fallback, params)              \
  static_assert(std::is_same_v<decltype(&::header), CUresult(*) params>,       \
                "signature of " symbol " differs from cuda.h");
MOMA_CUDA_DRIVER_FUNCTIONS(MOMA_CUDA_CHECK)
#undef MOMA_CUDA_CHECK
#endif

std::string CudaDriver::describe(CUresult result) const {
  const char *name = nullptr;
  const char *text = nullptr;
  if (getErrorName(result, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (getErrorString(result, &text) != CUDA_SUCCESS)
    text = nullptr;
  std::string out = name ? name : cat("CUDA error ", int(result));
  if (text)
    out += cat(" (", text, ")");
  return out;
}

absl::StatusOr<const CudaDriver *> loadCudaDriver() {
  static std::mutex mutex;
  // One driver per library path, kept for the life of the process.
  static std::map<std::string, const CudaDriver *> *loaded =
      new std::map<std::string, const CudaDriver *>();
  std::lock_guard<std::mutex> lock(mutex);
  const char *overridePath = std::getenv("MOMA_LIBCUDA");
  std::string path =
      overridePath && *overridePath ? overridePath : "libcuda.so.1";
  if (auto it = loaded->find(path); it != loaded->end())
    return it->second;

  ::dlerror();
  void *handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *error = ::dlerror();
    return makeError(MOMA_STATUS_NO_CUDA_DRIVER,
                     cat("no CUDA driver (", path,
                         " not found: ", error ? error : "dlopen failed", ")"));
  }
  auto driver = std::make_unique<CudaDriver>();
  driver->libraryPath = path;
  std::string missing;
#define MOMA_CUDA_LOAD(member, header, symbol, fallback, params)               \
  {                                                                            \
    void *address = ::dlsym(handle, symbol);                                   \
    const char *alternative = fallback;                                        \
    if (!address && alternative)                                               \
      address = ::dlsym(handle, alternative);                                  \
    if (!address && missing.empty())                                           \
      missing = symbol;                                                        \
    driver->member = reinterpret_cast<decltype(driver->member)>(address);      \
  }
  MOMA_CUDA_DRIVER_FUNCTIONS(MOMA_CUDA_LOAD)
#undef MOMA_CUDA_LOAD
  if (!missing.empty()) {
    ::dlclose(handle);
    return makeError(MOMA_STATUS_NO_CUDA_DRIVER,
                     cat("the CUDA driver ", path,
                         " is too old or not a CUDA driver: it lacks ",
                         missing));
  }
  CUresult result = driver->init(0);
  if (result != CUDA_SUCCESS) {
    std::string what = driver->describe(result);
    ::dlclose(handle);
    if (result == CUDA_ERROR_STUB_LIBRARY)
      return makeError(MOMA_STATUS_NO_CUDA_DRIVER,
                       cat("no CUDA driver (", path,
                           " is the CUDA stub library: ", what, ")"));
    if (result == CUDA_ERROR_NO_DEVICE)
      return makeError(MOMA_STATUS_DEVICE_ERROR,
                       cat("no CUDA device (cuInit: ", what, ")"));
    return makeError(MOMA_STATUS_DEVICE_ERROR, cat("cuInit failed: ", what));
  }
  const CudaDriver *opened = driver.release();
  loaded->emplace(path, opened);
  return opened;
}

} // namespace moma::runtime
