/*===- Runtime.h - The moma runtime C API -------------------------*- C -*-===*\
|*                                                                            *|
|* Part of the moma project.                                                  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/**
 * \file
 * The C API of the moma runtime: load a compiled program (.momaprog), bind it
 * to a device (the host CPU, or a CUDA GPU through a dlopen'ed driver), load
 * weights from a safetensors file, set inputs, run the launch schedule
 * (optionally as a replayed CUDA graph), read outputs.
 *
 * Conventions:
 *  - Every function that can fail returns a moma_status. On failure,
 *    moma_last_error() returns a message naming what was wrong; every API
 *    call clears it first, so it always describes the calling thread's most
 *    recent call ("" after a success).
 *  - Handles are opaque. A session keeps its own reference to the program, so
 *    a program may be freed while sessions made from it are alive.
 *  - A session is not thread-safe; use one session per thread, or lock.
 *  - Buffer contents cross the API as host arrays of the buffer's element type
 *    (bf16/f16 as their 16-bit patterns), little-endian, densely packed in
 *    row-major order; sizes are in bytes and must equal the buffer's size.
 *  - The runtime links neither LLVM nor MLIR, and never links libcuda: the
 *    CUDA driver is opened with dlopen("libcuda.so.1") (or the path in the
 *    environment variable MOMA_LIBCUDA) when a CUDA session is created.
 */

#ifndef MOMA_RUNTIME_RUNTIME_H
#define MOMA_RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Result codes of the C API. */
typedef enum moma_status {
  /** Success. */
  MOMA_STATUS_OK = 0,
  /** A bad argument: null pointer, wrong byte size, malformed option. */
  MOMA_STATUS_INVALID_ARGUMENT = 1,
  /** A file, buffer or weight tensor that does not exist. */
  MOMA_STATUS_NOT_FOUND = 2,
  /** A damaged, foreign or inconsistent program file. */
  MOMA_STATUS_INVALID_PROGRAM = 3,
  /** Valid, but not supported here: a program written by a newer moma, a
   *  program for another target than the device, graphs on the CPU. */
  MOMA_STATUS_UNSUPPORTED = 4,
  /** A damaged weight file, or a tensor whose type or shape does not fit. */
  MOMA_STATUS_INVALID_WEIGHTS = 5,
  /** No CUDA driver: libcuda.so.1 could not be loaded, or lacks a needed
   *  function. */
  MOMA_STATUS_NO_CUDA_DRIVER = 6,
  /** The device failed: a CUDA driver call, a kernel module that does not
   *  load, a kernel that does not exist, no GPU. */
  MOMA_STATUS_DEVICE_ERROR = 7,
  /** Out of host or device memory. */
  MOMA_STATUS_OUT_OF_MEMORY = 8,
  /** A file could not be read or written. */
  MOMA_STATUS_IO_ERROR = 9,
  /** A bug in the runtime. */
  MOMA_STATUS_INTERNAL = 10,
  /** The host CPU lacks instruction-set features that a `cpu` program's
   *  kernels need: the program records a CPU level (x86-64-v3: AVX2 and FMA;
   *  x86-64-v4: AVX-512) that this CPU does not reach. The message names the
   *  level and the missing features. */
  MOMA_STATUS_UNSUPPORTED_CPU = 11,
} moma_status;

/** The device a session runs on. */
typedef enum moma_device_kind {
  /** The host CPU: the program's `cpu-so` module is dlopen'ed. */
  MOMA_DEVICE_CPU = 0,
  /** A CUDA GPU through the driver API. */
  MOMA_DEVICE_CUDA = 1,
} moma_device_kind;

/** Role of a buffer (mirrors the program manifest). */
typedef enum moma_buffer_role {
  /** Set by the caller before a run. */
  MOMA_ROLE_INPUT = 0,
  /** Loaded from a weights file (or set by the caller); a training program
   *  updates its weights in place, and the caller reads them back. */
  MOMA_ROLE_WEIGHT = 1,
  /** Written by the schedule, read by the caller after a run. */
  MOMA_ROLE_OUTPUT = 2,
  /** Temporary storage of the schedule. */
  MOMA_ROLE_SCRATCH = 3,
  /** Persistent program state (an optimizer's moments; program format
   *  version 4): zero when the session starts, kept between runs; the caller
   *  may read it (a checkpoint) and set it (a resume). */
  MOMA_ROLE_STATE = 4,
} moma_buffer_role;

/** Element type of a buffer (mirrors the program manifest). */
typedef enum moma_dtype {
  MOMA_DTYPE_F32 = 0,
  MOMA_DTYPE_F64 = 1,
  MOMA_DTYPE_BF16 = 2,
  MOMA_DTYPE_F16 = 3,
  MOMA_DTYPE_I32 = 4,
  MOMA_DTYPE_I64 = 5,
} moma_dtype;

/** A validated program, independent of any device. */
typedef struct moma_program_s *moma_program;
/** A program bound to a device: loaded kernels, one arena, a stream. */
typedef struct moma_session_s *moma_session;

/** Description of one buffer of a program. The pointers stay valid as long as
 *  the program handle. */
typedef struct moma_buffer_info {
  /** The buffer's name (NUL-terminated). */
  const char *name;
  /** Who writes the buffer. */
  moma_buffer_role role;
  /** Element type. */
  moma_dtype dtype;
  /** Number of dimensions (0 for a scalar). */
  size_t rank;
  /** `rank` dimensions, outermost first. */
  const int64_t *shape;
  /** Byte offset in the arena. */
  uint64_t offset;
  /** Size in bytes. */
  uint64_t byte_size;
} moma_buffer_info;

/** Returns the message of the calling thread's most recent API call: "" if it
 *  succeeded. Valid until the thread's next API call. Never NULL. */
const char *moma_last_error(void);

/** Returns the name of `status`, e.g. "MOMA_STATUS_NO_CUDA_DRIVER". */
const char *moma_status_name(moma_status status);

/** Returns the version of the program format this runtime reads. */
uint32_t moma_program_format_version(void);

/** Reads and validates the program file at `path`. */
moma_status moma_program_load(const char *path, moma_program *out_program);

/** Parses and validates a program from `size` bytes at `data` (copied). */
moma_status moma_program_load_from_memory(const void *data, size_t size,
                                          moma_program *out_program);

/** Frees a program (NULL is ignored). */
void moma_program_free(moma_program program);

/** Returns the program's target: "cpu", "sm_80", "sm_90" or "sm_90a". */
const char *moma_program_target(moma_program program);

/** Returns the CPU level a `cpu` program's kernels need: "x86-64",
 *  "x86-64-v2", "x86-64-v3" or "x86-64-v4" ("x86-64" when the program
 *  records none); "" for a GPU program. */
const char *moma_program_cpu_level(moma_program program);

/** Returns the program's metadata value for `key`, or NULL if absent. */
const char *moma_program_metadata(moma_program program, const char *key);

/** Returns the arena size in bytes. */
uint64_t moma_program_arena_size(moma_program program);

/** Returns the number of kernel modules. */
size_t moma_program_num_modules(moma_program program);

/** Returns the number of launches in the schedule. */
size_t moma_program_num_launches(moma_program program);

/** Returns the number of buffers. */
size_t moma_program_num_buffers(moma_program program);

/** Describes buffer `index` (< moma_program_num_buffers). */
moma_status moma_program_buffer_info(moma_program program, size_t index,
                                     moma_buffer_info *out_info);

/** Finds the buffer named `name`; MOMA_STATUS_NOT_FOUND if there is none. */
moma_status moma_program_find_buffer(moma_program program, const char *name,
                                     moma_buffer_info *out_info);

/** Binds `program` to a device: for MOMA_DEVICE_CUDA, GPU `device_ordinal`
 *  (its primary context); for MOMA_DEVICE_CPU the ordinal must be 0. Loads
 *  the kernel modules, resolves every kernel the schedule names, allocates the
 *  arena and zero-fills it (so state buffers start at zero; runs keep every
 *  buffer's contents until the schedule or the caller changes them). Without a
 * CUDA driver, MOMA_DEVICE_CUDA returns MOMA_STATUS_NO_CUDA_DRIVER.
 *
 *  A CPU session first checks that the host CPU reaches the program's CPU
 *  level (moma_program_cpu_level), before it loads any module:
 *  MOMA_STATUS_UNSUPPORTED_CPU otherwise. For tests only, the environment
 *  variable MOMA_CPU_HIDE_FEATURES (comma-separated feature names such as
 *  "avx512f,avx512bw"; lib/Format/ProgramFormat.md lists them) makes that
 *  check treat those features as absent; an unknown name in it is
 *  MOMA_STATUS_INVALID_ARGUMENT. */
moma_status moma_session_create(moma_program program, moma_device_kind kind,
                                int device_ordinal, moma_session *out_session);

/** Which image of each kernel module a CUDA session loads. */
typedef enum moma_kernel_image {
  /** A cubin when the GPU can run it (same major compute capability as the
   *  program's target, at least its minor), else the PTX, which the driver
   *  compiles for the GPU; also the PTX when the driver rejects the cubin. */
  MOMA_KERNEL_IMAGE_AUTO = 0,
  /** The PTX only. */
  MOMA_KERNEL_IMAGE_PTX = 1,
  /** A cubin only. */
  MOMA_KERNEL_IMAGE_CUBIN = 2,
} moma_kernel_image;

/** Options of moma_session_create_with_options; zero-initialise, then set
 *  what you need. */
typedef struct moma_session_options {
  /** CUDA sessions: which kernel images to load (default AUTO). A CPU
   *  session accepts AUTO only. */
  moma_kernel_image kernel_image;
  /** CPU sessions: how many threads the program's kernels run on; 0 (the
   *  default) is every core this process may run on (as `nproc` counts
   *  them). Must not be negative; a CUDA session accepts 0 only. The session
   *  passes the count to `void moma_cpu_set_threads(int)` of every module
   *  that exports it (momac's do, for OpenMP), after loading the modules
   *  and before every run. Modules without it (older programs) run as they
   *  were compiled. */
  int cpu_threads;
} moma_session_options;

/** moma_session_create with `options` (NULL: the defaults). A module with no
 *  image the choice allows that this GPU can run is MOMA_STATUS_UNSUPPORTED.
 *  moma_session_device_name then names the formats loaded, e.g.
 *  "cuda:0 (NVIDIA H100 80GB HBM3, sm_90, driver 13.0; cubin)". */
moma_status moma_session_create_with_options(
    moma_program program, moma_device_kind kind, int device_ordinal,
    const moma_session_options *options, moma_session *out_session);

/** Returns in `out_threads` the number of threads a CPU session's kernels
 *  run on: moma_session_options.cpu_threads, or the core count it stood
 *  for; 1 when no module of the program takes a thread count (exports
 *  `moma_cpu_set_threads`). MOMA_STATUS_UNSUPPORTED for a CUDA session. */
moma_status moma_session_cpu_threads(moma_session session, int *out_threads);

/** Frees a session and its device resources (NULL is ignored). */
void moma_session_free(moma_session session);

/** Returns a description of the session's device, e.g. "cpu" or
 *  "cuda:0 (NVIDIA H100 80GB HBM3, sm_90, driver 13.0; ptx)", which names
 *  the formats of the kernel images loaded. */
const char *moma_session_device_name(moma_session session);

/** Loads every weight buffer from the safetensors file at `path`: each
 *  weight buffer needs a tensor of the same name and shape; F32/F64/F16/BF16
 *  tensors are converted to the buffer's float type, I32/I64 tensors to its
 *  integer type. A tensor that is not a weight buffer of the program is an
 *  error (MOMA_STATUS_INVALID_WEIGHTS), as is a missing one
 *  (MOMA_STATUS_NOT_FOUND); both are found before any buffer changes. On
 *  error the message names the tensor; on a shape or conversion error,
 *  buffers loaded before it keep their new values.
 *  If `out_loaded` is not NULL it receives the number of buffers loaded. */
moma_status moma_session_load_weights(moma_session session, const char *path,
                                      size_t *out_loaded);

/** Copies `byte_size` bytes from `data` into the buffer named `name` (any
 *  role: inputs, and also weights and state, e.g. to resume from a
 *  checkpoint); `byte_size` must equal the buffer's size. */
moma_status moma_session_set_buffer(moma_session session, const char *name,
                                    const void *data, size_t byte_size);

/** Copies the buffer named `name` (any role: outputs, and also weights and
 *  state, which a training program updates in place, e.g. to save a
 *  checkpoint) into `data`; `byte_size` must equal the buffer's size. */
moma_status moma_session_get_buffer(moma_session session, const char *name,
                                    void *data, size_t byte_size);

/** Makes later runs of a CUDA session replay the schedule as a CUDA graph,
 *  captured at the first such run (1), or launch kernel by kernel (0, the
 *  default). MOMA_STATUS_UNSUPPORTED on the CPU. */
moma_status moma_session_use_graph(moma_session session, int enable);

/** Runs the launch schedule once, in order, and waits for it to finish. */
moma_status moma_session_run(moma_session session);

/** Returns in `out_ms` the duration of the last run in milliseconds: CUDA
 *  event time on the GPU, wall-clock time on the CPU. */
moma_status moma_session_last_run_ms(moma_session session, double *out_ms);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOMA_RUNTIME_RUNTIME_H */
