//===- CudaDriver.h - The CUDA driver API, loaded with dlopen ---*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The subset of the CUDA driver API the runtime uses, as a table of function
/// pointers filled by dlopen("libcuda.so.1") + dlsym. The runtime never links
/// libcuda, so it starts, and reports "no CUDA driver" cleanly, on machines
/// without one.
///
/// Types come from /usr/local/cuda/include/cuda.h when the build found it
/// (MOMA_HAVE_CUDA_H), and the signatures below are then checked against the
/// header's declarations at compile time; otherwise the few types needed are
/// declared here, so the runtime builds without CUDA installed.
///
/// Where cuda.h maps a name to a versioned symbol (cuMemAlloc to
/// cuMemAlloc_v2, cuEventElapsedTime to cuEventElapsedTime_v2, ...), the
/// versioned symbol is looked up.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_RUNTIME_CUDADRIVER_H
#define MOMA_LIB_RUNTIME_CUDADRIVER_H

#include "absl/status/statusor.h"

#include <cstddef>
#include <string>

#if MOMA_HAVE_CUDA_H
#include <cuda.h>
#else
// The driver API types the runtime needs (values as in cuda.h).
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef enum cudaError_enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_STUB_LIBRARY = 34,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_UNKNOWN = 999,
} CUresult;
typedef enum CUjit_option_enum {
  CU_JIT_INFO_LOG_BUFFER = 3,
  CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
  CU_JIT_ERROR_LOG_BUFFER = 5,
  CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
} CUjit_option;
typedef enum CUstreamCaptureMode_enum {
  CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
  CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
  CU_STREAM_CAPTURE_MODE_RELAXED = 2,
} CUstreamCaptureMode;
typedef enum CUdevice_attribute_enum {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
} CUdevice_attribute;
typedef enum CUfunction_attribute_enum {
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
} CUfunction_attribute;
typedef enum CUstream_flags_enum {
  CU_STREAM_DEFAULT = 0x0,
  CU_STREAM_NON_BLOCKING = 0x1,
} CUstream_flags;
typedef enum CUevent_flags_enum {
  CU_EVENT_DEFAULT = 0x0,
} CUevent_flags;
#endif

namespace moma::runtime {

/// The driver functions the runtime uses:
/// X(member, cuda.h name, symbol, fallback symbol or nullptr, parameters).
#define MOMA_CUDA_DRIVER_FUNCTIONS(X)                                          \
  X(init, cuInit, "cuInit", nullptr, (unsigned int))                           \
  X(driverGetVersion, cuDriverGetVersion, "cuDriverGetVersion", nullptr,       \
    (int *))                                                                   \
  X(deviceGetCount, cuDeviceGetCount, "cuDeviceGetCount", nullptr, (int *))    \
  X(deviceGet, cuDeviceGet, "cuDeviceGet", nullptr, (CUdevice *, int))         \
  X(deviceGetName, cuDeviceGetName, "cuDeviceGetName", nullptr,                \
    (char *, int, CUdevice))                                                   \
  X(deviceGetAttribute, cuDeviceGetAttribute, "cuDeviceGetAttribute", nullptr, \
    (int *, CUdevice_attribute, CUdevice))                                     \
  X(primaryCtxRetain, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain",    \
    nullptr, (CUcontext *, CUdevice))                                          \
  X(primaryCtxRelease, cuDevicePrimaryCtxRelease,                              \
    "cuDevicePrimaryCtxRelease_v2", nullptr, (CUdevice))                       \
  X(ctxSetCurrent, cuCtxSetCurrent, "cuCtxSetCurrent", nullptr, (CUcontext))   \
  X(moduleLoadDataEx, cuModuleLoadDataEx, "cuModuleLoadDataEx", nullptr,       \
    (CUmodule *, const void *, unsigned int, CUjit_option *, void **))         \
  X(moduleUnload, cuModuleUnload, "cuModuleUnload", nullptr, (CUmodule))       \
  X(moduleGetFunction, cuModuleGetFunction, "cuModuleGetFunction", nullptr,    \
    (CUfunction *, CUmodule, const char *))                                    \
  X(funcSetAttribute, cuFuncSetAttribute, "cuFuncSetAttribute", nullptr,       \
    (CUfunction, CUfunction_attribute, int))                                   \
  X(memAlloc, cuMemAlloc, "cuMemAlloc_v2", nullptr, (CUdeviceptr *, size_t))   \
  X(memFree, cuMemFree, "cuMemFree_v2", nullptr, (CUdeviceptr))                \
  X(memsetD8, cuMemsetD8, "cuMemsetD8_v2", nullptr,                            \
    (CUdeviceptr, unsigned char, size_t))                                      \
  X(memcpyHtoD, cuMemcpyHtoD, "cuMemcpyHtoD_v2", nullptr,                      \
    (CUdeviceptr, const void *, size_t))                                       \
  X(memcpyDtoH, cuMemcpyDtoH, "cuMemcpyDtoH_v2", nullptr,                      \
    (void *, CUdeviceptr, size_t))                                             \
  X(launchKernel, cuLaunchKernel, "cuLaunchKernel", nullptr,                   \
    (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,       \
     unsigned int, unsigned int, unsigned int, CUstream, void **, void **))    \
  X(streamCreate, cuStreamCreate, "cuStreamCreate", nullptr,                   \
    (CUstream *, unsigned int))                                                \
  X(streamDestroy, cuStreamDestroy, "cuStreamDestroy_v2", nullptr, (CUstream)) \
  X(streamSynchronize, cuStreamSynchronize, "cuStreamSynchronize", nullptr,    \
    (CUstream))                                                                \
  X(streamBeginCapture, cuStreamBeginCapture, "cuStreamBeginCapture_v2",       \
    nullptr, (CUstream, CUstreamCaptureMode))                                  \
  X(streamEndCapture, cuStreamEndCapture, "cuStreamEndCapture", nullptr,       \
    (CUstream, CUgraph *))                                                     \
  X(graphInstantiate, cuGraphInstantiate, "cuGraphInstantiateWithFlags",       \
    nullptr, (CUgraphExec *, CUgraph, unsigned long long))                     \
  X(graphLaunch, cuGraphLaunch, "cuGraphLaunch", nullptr,                      \
    (CUgraphExec, CUstream))                                                   \
  X(graphExecDestroy, cuGraphExecDestroy, "cuGraphExecDestroy", nullptr,       \
    (CUgraphExec))                                                             \
  X(graphDestroy, cuGraphDestroy, "cuGraphDestroy", nullptr, (CUgraph))        \
  X(eventCreate, cuEventCreate, "cuEventCreate", nullptr,                      \
    (CUevent *, unsigned int))                                                 \
  X(eventRecord, cuEventRecord, "cuEventRecord", nullptr, (CUevent, CUstream)) \
  X(eventSynchronize, cuEventSynchronize, "cuEventSynchronize", nullptr,       \
    (CUevent))                                                                 \
  X(eventElapsedTime, cuEventElapsedTime, "cuEventElapsedTime_v2",             \
    "cuEventElapsedTime", (float *, CUevent, CUevent))                         \
  X(eventDestroy, cuEventDestroy, "cuEventDestroy_v2", nullptr, (CUevent))     \
  X(getErrorString, cuGetErrorString, "cuGetErrorString", nullptr,             \
    (CUresult, const char **))                                                 \
  X(getErrorName, cuGetErrorName, "cuGetErrorName", nullptr,                   \
    (CUresult, const char **))

/// The loaded driver: one function pointer per entry of
/// MOMA_CUDA_DRIVER_FUNCTIONS, all non-null, and cuInit(0) has succeeded.
struct CudaDriver {
#define MOMA_CUDA_MEMBER(member, header, symbol, fallback, params)             \
  CUresult(*member) params = nullptr;
  MOMA_CUDA_DRIVER_FUNCTIONS(MOMA_CUDA_MEMBER)
#undef MOMA_CUDA_MEMBER

  /// The library that was opened (libcuda.so.1 or $MOMA_LIBCUDA).
  std::string libraryPath;

  /// Formats \p result as "CUDA_ERROR_X (description)".
  std::string describe(CUresult result) const;
};

/// Opens the driver once per process and library path (later calls return
/// the same table): dlopen("libcuda.so.1") (or the path in $MOMA_LIBCUDA,
/// which tests use), dlsym of every function, cuInit(0). Errors:
/// MOMA_STATUS_NO_CUDA_DRIVER when the library is missing, lacks a function or
/// is the CUDA stub library; MOMA_STATUS_DEVICE_ERROR when cuInit fails
/// otherwise (e.g. no GPU). A failure is not remembered: the next call tries
/// again.
absl::StatusOr<const CudaDriver *> loadCudaDriver();

} // namespace moma::runtime

#endif // MOMA_LIB_RUNTIME_CUDADRIVER_H
