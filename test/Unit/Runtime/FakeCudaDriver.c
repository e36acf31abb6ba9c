/*===- FakeCudaDriver.c - A CUDA driver stand-in for the runtime tests ---===*\
|*                                                                            *|
|* Part of the moma project.                                                  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * A shared object exporting the CUDA driver functions the runtime dlsym's,
 * implemented on the host, so that the runtime's CUDA back end (context,
 * modules, arena, argument packing, launches, graph capture and replay,
 * events, error paths) runs on a machine without a GPU. Tests point the
 * runtime at it with MOMA_LIBCUDA.
 *
 * "Device memory" is host memory; a module is any image, and its kernels
 * `vadd` and `scale` are host functions with the signatures of
 * test/Integration/Inputs/vadd.ptx, run over grid.x * block.x threads. Like
 * the real driver, a launch asking for more than 48 KiB of dynamic shared
 * memory fails unless the kernel opted in with cuFuncSetAttribute, and an
 * image containing "this is not an instruction" fails to load with a log.
 * FAKE_CUDA_CC=MAJOR*10+MINOR (default 90) sets the compute capability.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum {
  SUCCESS = 0,
  ERROR_INVALID_VALUE = 1,
  ERROR_OUT_OF_MEMORY = 2,
  ERROR_INVALID_DEVICE = 101,
  ERROR_INVALID_PTX = 218,
  ERROR_NOT_FOUND = 500,
  ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
};

typedef void (*KernelBody)(void **params, uint64_t threads);

struct Function {
  const char *name;
  KernelBody body;
  int maxDynamicShared;
};

struct Launch {
  struct Function *function;
  uint64_t threads;
  void **params;
};

struct Graph {
  struct Launch *launches;
  int count;
};

static void vadd(void **params, uint64_t threads) {
  const float *a = (const float *)(uintptr_t)*(CUdeviceptr *)params[0];
  const float *b = (const float *)(uintptr_t)*(CUdeviceptr *)params[1];
  float *c = (float *)(uintptr_t)*(CUdeviceptr *)params[2];
  int32_t n = *(int32_t *)params[3];
  for (uint64_t i = 0; i < threads && (int64_t)i < n; ++i)
    c[i] = a[i] + b[i];
}

static void scale(void **params, uint64_t threads) {
  const float *x = (const float *)(uintptr_t)*(CUdeviceptr *)params[0];
  float *y = (float *)(uintptr_t)*(CUdeviceptr *)params[1];
  float alpha = *(float *)params[2];
  int64_t n = *(int64_t *)params[3];
  double beta = *(double *)params[4];
  for (uint64_t i = 0; i < threads && (int64_t)i < n; ++i)
    y[i] = alpha * x[i] + (float)beta;
}

static struct Function functions[] = {{"vadd", vadd, 0}, {"scale", scale, 0}};

static int capturing;
static struct Graph captured;
static int kernelLaunches, graphLaunches, liveAllocations;

/* Counters the tests read with dlsym. */
int fake_cuda_kernel_launches(void) { return kernelLaunches; }
int fake_cuda_graph_launches(void) { return graphLaunches; }
int fake_cuda_live_allocations(void) { return liveAllocations; }

CUresult cuInit(unsigned int flags) { return SUCCESS; }
CUresult cuDriverGetVersion(int *version) {
  *version = 13000;
  return SUCCESS;
}
CUresult cuDeviceGetCount(int *count) {
  *count = 1;
  return SUCCESS;
}
CUresult cuDeviceGet(int *device, int ordinal) {
  if (ordinal != 0)
    return ERROR_INVALID_DEVICE;
  *device = 0;
  return SUCCESS;
}
CUresult cuDeviceGetName(char *name, int length, int device) {
  snprintf(name, (size_t)length, "Fake GPU");
  return SUCCESS;
}
CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  const char *cc = getenv("FAKE_CUDA_CC");
  int capability = cc ? atoi(cc) : 90;
  if (attribute == 75)
    *value = capability / 10;
  else if (attribute == 76)
    *value = capability % 10;
  else
    return ERROR_INVALID_VALUE;
  return SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(void **context, int device) {
  *context = (void *)functions;
  return SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease_v2(int device) { return SUCCESS; }
CUresult cuCtxSetCurrent(void *context) {
  return context == (void *)functions ? SUCCESS : ERROR_INVALID_VALUE;
}

CUresult cuModuleLoadDataEx(void **module, const void *image,
                            unsigned int count, int *options, void **values) {
  if (strstr((const char *)image, "this is not an instruction")) {
    for (unsigned int i = 0; i < count; ++i)
      if (options[i] == 5) /* CU_JIT_ERROR_LOG_BUFFER */
        snprintf((char *)values[i], 64, "ptxas fatal: syntax error");
    return ERROR_INVALID_PTX;
  }
  *module = (void *)functions;
  return SUCCESS;
}
CUresult cuModuleUnload(void *module) { return SUCCESS; }
CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
  for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); ++i)
    if (strcmp(functions[i].name, name) == 0) {
      *function = &functions[i];
      return SUCCESS;
    }
  return ERROR_NOT_FOUND;
}
CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
  if (attribute != 8) /* MAX_DYNAMIC_SHARED_SIZE_BYTES */
    return ERROR_INVALID_VALUE;
  ((struct Function *)function)->maxDynamicShared = value;
  return SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr *pointer, size_t size) {
  void *memory = size ? malloc(size) : NULL;
  if (!memory)
    return size ? ERROR_OUT_OF_MEMORY : ERROR_INVALID_VALUE;
  memset(memory, 0xAB, size); /* the runtime must zero the arena itself */
  *pointer = (CUdeviceptr)(uintptr_t)memory;
  ++liveAllocations;
  return SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr pointer) {
  free((void *)(uintptr_t)pointer);
  --liveAllocations;
  return SUCCESS;
}
CUresult cuMemsetD8_v2(CUdeviceptr pointer, unsigned char value, size_t n) {
  memset((void *)(uintptr_t)pointer, value, n);
  return SUCCESS;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  if (capturing)
    return ERROR_STREAM_CAPTURE_UNSUPPORTED;
  memcpy((void *)(uintptr_t)dst, src, n);
  return SUCCESS;
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  if (capturing)
    return ERROR_STREAM_CAPTURE_UNSUPPORTED;
  memcpy(dst, (void *)(uintptr_t)src, n);
  return SUCCESS;
}

CUresult cuLaunchKernel(void *f, unsigned int gx, unsigned int gy,
                        unsigned int gz, unsigned int bx, unsigned int by,
                        unsigned int bz, unsigned int shared, void *stream,
                        void **params, void **extra) {
  struct Function *function = (struct Function *)f;
  if (!stream || !params || extra)
    return ERROR_INVALID_VALUE;
  if (shared > 48 * 1024 && (int)shared > function->maxDynamicShared)
    return ERROR_INVALID_VALUE;
  if (bx * by * bz > 1024)
    return ERROR_INVALID_VALUE;
  uint64_t threads = (uint64_t)gx * gy * gz * bx * by * bz;
  if (capturing) {
    captured.launches = realloc(captured.launches,
                                sizeof(struct Launch) * (captured.count + 1));
    captured.launches[captured.count++] =
        (struct Launch){function, threads, params};
    return SUCCESS;
  }
  ++kernelLaunches;
  function->body(params, threads);
  return SUCCESS;
}

CUresult cuStreamCreate(void **stream, unsigned int flags) {
  *stream = malloc(1);
  return SUCCESS;
}
CUresult cuStreamDestroy_v2(void *stream) {
  free(stream);
  return SUCCESS;
}
CUresult cuStreamSynchronize(void *stream) { return SUCCESS; }
CUresult cuStreamBeginCapture_v2(void *stream, int mode) {
  if (capturing)
    return ERROR_INVALID_VALUE;
  capturing = 1;
  captured.launches = NULL;
  captured.count = 0;
  return SUCCESS;
}
CUresult cuStreamEndCapture(void *stream, void **graph) {
  if (!capturing)
    return ERROR_INVALID_VALUE;
  capturing = 0;
  struct Graph *copy = malloc(sizeof(struct Graph));
  *copy = captured;
  *graph = copy;
  return SUCCESS;
}
CUresult cuGraphInstantiateWithFlags(void **exec, void *graph,
                                     unsigned long long flags) {
  struct Graph *source = (struct Graph *)graph;
  struct Graph *copy = malloc(sizeof(struct Graph));
  copy->count = source->count;
  copy->launches = malloc(sizeof(struct Launch) * (source->count + 1));
  memcpy(copy->launches, source->launches,
         sizeof(struct Launch) * source->count);
  *exec = copy;
  return SUCCESS;
}
CUresult cuGraphLaunch(void *exec, void *stream) {
  struct Graph *graph = (struct Graph *)exec;
  ++graphLaunches;
  for (int i = 0; i < graph->count; ++i)
    graph->launches[i].function->body(graph->launches[i].params,
                                      graph->launches[i].threads);
  return SUCCESS;
}
static void freeGraph(void *graph) {
  free(((struct Graph *)graph)->launches);
  free(graph);
}
CUresult cuGraphExecDestroy(void *exec) {
  freeGraph(exec);
  return SUCCESS;
}
CUresult cuGraphDestroy(void *graph) {
  freeGraph(graph);
  return SUCCESS;
}

CUresult cuEventCreate(void **event, unsigned int flags) {
  *event = malloc(1);
  return SUCCESS;
}
CUresult cuEventRecord(void *event, void *stream) { return SUCCESS; }
CUresult cuEventSynchronize(void *event) { return SUCCESS; }
CUresult cuEventElapsedTime_v2(float *ms, void *start, void *stop) {
  *ms = 0.25f;
  return SUCCESS;
}
CUresult cuEventDestroy_v2(void *event) {
  free(event);
  return SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **name) {
  switch (error) {
  case ERROR_INVALID_VALUE:
    *name = "CUDA_ERROR_INVALID_VALUE";
    return SUCCESS;
  case ERROR_INVALID_PTX:
    *name = "CUDA_ERROR_INVALID_PTX";
    return SUCCESS;
  case ERROR_NOT_FOUND:
    *name = "CUDA_ERROR_NOT_FOUND";
    return SUCCESS;
  default:
    *name = NULL;
    return ERROR_INVALID_VALUE;
  }
}
CUresult cuGetErrorString(CUresult error, const char **text) {
  const char *name = NULL;
  if (cuGetErrorName(error, &name) != SUCCESS)
    return ERROR_INVALID_VALUE;
  *text = "fake driver error";
  return SUCCESS;
}
