//===- Runtime.cpp - The moma runtime C API -------------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The C boundary: every entry point clears the calling thread's last error,
// runs its body, and turns an error status, or any C++ exception that escaped
// the library (std::bad_alloc included), into a moma_status and a message.
//
//===----------------------------------------------------------------------===//

#include "moma/Runtime/Runtime.h"

#include "Device.h"
#include "lib/Format/Errors.h"
#include "lib/Format/Strings.h"
#include "moma/Format/ProgramFile.h"
#include "moma/Format/SafetensorsReader.h"

#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

using namespace moma::runtime;

struct moma_program_s {
  std::shared_ptr<const Program> program;
  std::string target;
  std::string cpuLevel; // "" for GPU programs
  std::vector<moma_buffer_info> infos;
};

struct moma_session_s {
  std::shared_ptr<const Program> program;
  std::unique_ptr<Device> device;
  double lastRunMs = -1;
};

namespace {

thread_local std::string lastError;

moma_status fail(moma_status code, std::string message) {
  lastError = std::move(message);
  return code;
}

moma_status report(const absl::Status &status) {
  if (status.ok())
    return MOMA_STATUS_OK;
  return fail(toMomaStatus(status), std::string(status.message()));
}

/// Runs \p body (returning absl::Status) at the C boundary.
template <typename Body> moma_status guarded(Body &&body) {
  lastError.clear();
  try {
    return report(body());
  } catch (const std::bad_alloc &) {
    return fail(MOMA_STATUS_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception &error) {
    return fail(MOMA_STATUS_INTERNAL, cat("internal error: ", error.what()));
  } catch (...) {
    return fail(MOMA_STATUS_INTERNAL, "internal error: unknown exception");
  }
}

absl::Status nullArgument(const char *what) {
  return absl::InvalidArgumentError(cat(what, " is NULL"));
}

// The C enums number roles and element types as the C++ ones do.
static_assert(int(BufferRole::Input) == MOMA_ROLE_INPUT &&
              int(BufferRole::Weight) == MOMA_ROLE_WEIGHT &&
              int(BufferRole::Output) == MOMA_ROLE_OUTPUT &&
              int(BufferRole::Scratch) == MOMA_ROLE_SCRATCH &&
              int(BufferRole::State) == MOMA_ROLE_STATE);
static_assert(int(ElementType::F32) == MOMA_DTYPE_F32 &&
              int(ElementType::F64) == MOMA_DTYPE_F64 &&
              int(ElementType::BF16) == MOMA_DTYPE_BF16 &&
              int(ElementType::F16) == MOMA_DTYPE_F16 &&
              int(ElementType::I32) == MOMA_DTYPE_I32 &&
              int(ElementType::I64) == MOMA_DTYPE_I64);

absl::Status wrapProgram(absl::StatusOr<Program> parsed, moma_program *out) {
  if (!parsed.ok())
    return parsed.status();
  auto handle = std::make_unique<moma_program_s>();
  handle->program = std::make_shared<const Program>(std::move(*parsed));
  handle->target = std::string(targetName(handle->program->target));
  if (handle->program->target == Target::Cpu)
    handle->cpuLevel = handle->program->cpuLevel.empty()
                           ? std::string(cpuLevelName(CpuLevel::X86_64))
                           : handle->program->cpuLevel;
  for (const BufferDesc &buffer : handle->program->buffers)
    handle->infos.push_back(
        {buffer.name.c_str(), static_cast<moma_buffer_role>(buffer.role),
         static_cast<moma_dtype>(buffer.type), buffer.shape.size(),
         buffer.shape.data(), buffer.offset, buffer.byteSize});
  *out = handle.release();
  return absl::OkStatus();
}

/// Finds buffer \p name of \p session for a copy of \p byteSize bytes to or
/// from \p data: checks that the size matches, then that \p data is given
/// when there is something to copy.
absl::StatusOr<const BufferDesc *> sessionBuffer(moma_session session,
                                                 const char *name,
                                                 const void *data,
                                                 size_t byteSize) {
  if (!session)
    return nullArgument("session");
  if (!name)
    return nullArgument("name");
  const BufferDesc *buffer = session->program->findBuffer(name);
  if (!buffer)
    return absl::NotFoundError(
        cat("the program has no buffer named '", name, "'"));
  if (byteSize != buffer->byteSize)
    return absl::InvalidArgumentError(
        cat("buffer '", name, "' holds ", buffer->byteSize, " bytes (",
            elementTypeName(buffer->type), " x ", buffer->numElements(),
            "), not ", byteSize));
  if (!data && byteSize)
    return nullArgument("data");
  return buffer;
}

} // namespace

extern "C" {

const char *moma_last_error(void) { return lastError.c_str(); }

const char *moma_status_name(moma_status status) {
  switch (status) {
  case MOMA_STATUS_OK:
    return "MOMA_STATUS_OK";
  case MOMA_STATUS_INVALID_ARGUMENT:
    return "MOMA_STATUS_INVALID_ARGUMENT";
  case MOMA_STATUS_NOT_FOUND:
    return "MOMA_STATUS_NOT_FOUND";
  case MOMA_STATUS_INVALID_PROGRAM:
    return "MOMA_STATUS_INVALID_PROGRAM";
  case MOMA_STATUS_UNSUPPORTED:
    return "MOMA_STATUS_UNSUPPORTED";
  case MOMA_STATUS_INVALID_WEIGHTS:
    return "MOMA_STATUS_INVALID_WEIGHTS";
  case MOMA_STATUS_NO_CUDA_DRIVER:
    return "MOMA_STATUS_NO_CUDA_DRIVER";
  case MOMA_STATUS_DEVICE_ERROR:
    return "MOMA_STATUS_DEVICE_ERROR";
  case MOMA_STATUS_OUT_OF_MEMORY:
    return "MOMA_STATUS_OUT_OF_MEMORY";
  case MOMA_STATUS_IO_ERROR:
    return "MOMA_STATUS_IO_ERROR";
  case MOMA_STATUS_INTERNAL:
    return "MOMA_STATUS_INTERNAL";
  case MOMA_STATUS_UNSUPPORTED_CPU:
    return "MOMA_STATUS_UNSUPPORTED_CPU";
  }
  return "MOMA_STATUS_<unknown>";
}

uint32_t moma_program_format_version(void) { return kProgramFormatVersion; }

moma_status moma_program_load(const char *path, moma_program *out_program) {
  return guarded([&]() -> absl::Status {
    if (!out_program)
      return nullArgument("out_program");
    *out_program = nullptr;
    if (!path)
      return nullArgument("path");
    return wrapProgram(readProgram(path), out_program);
  });
}

moma_status moma_program_load_from_memory(const void *data, size_t size,
                                          moma_program *out_program) {
  return guarded([&]() -> absl::Status {
    if (!out_program)
      return nullArgument("out_program");
    *out_program = nullptr;
    if (!data && size)
      return nullArgument("data");
    std::string_view bytes(static_cast<const char *>(data), data ? size : 0);
    return wrapProgram(parseProgram(bytes, "<memory>"), out_program);
  });
}

void moma_program_free(moma_program program) { delete program; }

const char *moma_program_target(moma_program program) {
  return program ? program->target.c_str() : "";
}

const char *moma_program_cpu_level(moma_program program) {
  return program ? program->cpuLevel.c_str() : "";
}

const char *moma_program_metadata(moma_program program, const char *key) {
  if (!program || !key)
    return nullptr;
  auto it = program->program->metadata.find(key);
  return it == program->program->metadata.end() ? nullptr : it->second.c_str();
}

uint64_t moma_program_arena_size(moma_program program) {
  return program ? program->program->arenaSize : 0;
}

size_t moma_program_num_modules(moma_program program) {
  return program ? program->program->modules.size() : 0;
}

size_t moma_program_num_launches(moma_program program) {
  return program ? program->program->launches.size() : 0;
}

size_t moma_program_num_buffers(moma_program program) {
  return program ? program->infos.size() : 0;
}

moma_status moma_program_buffer_info(moma_program program, size_t index,
                                     moma_buffer_info *out_info) {
  return guarded([&]() -> absl::Status {
    if (!program)
      return nullArgument("program");
    if (!out_info)
      return nullArgument("out_info");
    if (index >= program->infos.size())
      return absl::InvalidArgumentError(
          cat("buffer index ", index, " is out of range (",
              program->infos.size(), " buffers)"));
    *out_info = program->infos[index];
    return absl::OkStatus();
  });
}

moma_status moma_program_find_buffer(moma_program program, const char *name,
                                     moma_buffer_info *out_info) {
  return guarded([&]() -> absl::Status {
    if (!program)
      return nullArgument("program");
    if (!name)
      return nullArgument("name");
    if (!out_info)
      return nullArgument("out_info");
    for (const moma_buffer_info &info : program->infos)
      if (std::string_view(info.name) == name) {
        *out_info = info;
        return absl::OkStatus();
      }
    return absl::NotFoundError(
        cat("the program has no buffer named '", name, "'"));
  });
}

moma_status moma_session_create(moma_program program, moma_device_kind kind,
                                int device_ordinal, moma_session *out_session) {
  return moma_session_create_with_options(program, kind, device_ordinal,
                                          nullptr, out_session);
}

moma_status moma_session_create_with_options(
    moma_program program, moma_device_kind kind, int device_ordinal,
    const moma_session_options *options, moma_session *out_session) {
  return guarded([&]() -> absl::Status {
    if (!out_session)
      return nullArgument("out_session");
    *out_session = nullptr;
    if (!program)
      return nullArgument("program");
    // Enums come from C and may hold any value: no switch.
    ImagePreference preference = ImagePreference::Auto;
    moma_kernel_image image =
        options ? options->kernel_image : MOMA_KERNEL_IMAGE_AUTO;
    if (image == MOMA_KERNEL_IMAGE_PTX)
      preference = ImagePreference::Ptx;
    else if (image == MOMA_KERNEL_IMAGE_CUBIN)
      preference = ImagePreference::Cubin;
    else if (image != MOMA_KERNEL_IMAGE_AUTO)
      return absl::InvalidArgumentError(
          cat("unknown kernel image choice ", int(image)));
    int threads = options ? options->cpu_threads : 0;
    if (threads < 0)
      return absl::InvalidArgumentError(
          cat("cpu_threads is ", threads,
              "; expected a positive thread count, or 0 for every core"));
    absl::StatusOr<std::unique_ptr<Device>> device;
    if (kind == MOMA_DEVICE_CPU) {
      if (device_ordinal != 0)
        return absl::InvalidArgumentError(
            cat("the cpu device has ordinal 0, not ", device_ordinal));
      if (preference != ImagePreference::Auto)
        return absl::InvalidArgumentError(
            "a kernel image choice (ptx or cubin) applies to CUDA sessions "
            "only; the cpu runs the program's shared object");
      device = createCpuDevice(program->program, threads);
    } else if (kind == MOMA_DEVICE_CUDA) {
      if (threads != 0)
        return absl::InvalidArgumentError(
            "a thread count (cpu_threads) applies to CPU sessions only");
      device = createCudaDevice(program->program, device_ordinal, preference);
    } else {
      return absl::InvalidArgumentError(cat("unknown device kind ", int(kind)));
    }
    if (!device.ok())
      return device.status();
    auto session = std::make_unique<moma_session_s>();
    session->program = program->program;
    session->device = std::move(*device);
    *out_session = session.release();
    return absl::OkStatus();
  });
}

moma_status moma_session_cpu_threads(moma_session session, int *out_threads) {
  return guarded([&]() -> absl::Status {
    if (!session)
      return nullArgument("session");
    if (!out_threads)
      return nullArgument("out_threads");
    std::optional<int> threads = session->device->cpuThreads();
    if (!threads)
      return makeError(MOMA_STATUS_UNSUPPORTED,
                       cat("the session runs on ",
                           session->device->description(),
                           ", not on the cpu: it has no thread count"));
    *out_threads = *threads;
    return absl::OkStatus();
  });
}

void moma_session_free(moma_session session) { delete session; }

const char *moma_session_device_name(moma_session session) {
  return session ? session->device->description().c_str() : "";
}

moma_status moma_session_load_weights(moma_session session, const char *path,
                                      size_t *out_loaded) {
  return guarded([&]() -> absl::Status {
    if (out_loaded)
      *out_loaded = 0;
    if (!session)
      return nullArgument("session");
    if (!path)
      return nullArgument("path");
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::open(path);
    if (!file.ok())
      return file.status();
    // Check that every weight is present before changing any buffer.
    std::vector<std::pair<const BufferDesc *, const SafetensorsTensor *>> work;
    for (const BufferDesc &buffer : session->program->buffers) {
      if (buffer.role != BufferRole::Weight)
        continue;
      const SafetensorsTensor *tensor = (*file)->find(buffer.name);
      if (!tensor)
        return absl::NotFoundError(cat(path, ": no tensor '", buffer.name,
                                       "' for weight buffer '", buffer.name,
                                       "' (the file has ",
                                       (*file)->tensors().size(), " tensors)"));
      work.emplace_back(&buffer, tensor);
    }
    // A tensor no weight buffer takes means the file is not this program's
    // (examples/README.md: extra tensors are errors, as in the reference).
    std::vector<const SafetensorsTensor *> extra;
    for (const SafetensorsTensor &tensor : (*file)->tensors()) {
      const BufferDesc *buffer = session->program->findBuffer(tensor.name);
      if (!buffer || buffer->role != BufferRole::Weight)
        extra.push_back(&tensor);
    }
    if (!extra.empty())
      return makeError(MOMA_STATUS_INVALID_WEIGHTS,
                       cat(path, ": unexpected tensor '", extra[0]->name,
                           "' (not a weight buffer of the program; ",
                           extra.size(), " unexpected in all)"));
    std::vector<char> staging;
    for (const auto &[buffer, tensor] : work) {
      staging.resize(buffer->byteSize);
      if (absl::Status s =
              (*file)->convertInto(*tensor, *buffer, staging.data());
          !s.ok())
        return s;
      if (absl::Status s = session->device->write(
              buffer->offset, staging.data(), buffer->byteSize);
          !s.ok())
        return s;
      if (out_loaded)
        ++*out_loaded;
    }
    return absl::OkStatus();
  });
}

moma_status moma_session_set_buffer(moma_session session, const char *name,
                                    const void *data, size_t byte_size) {
  return guarded([&]() -> absl::Status {
    absl::StatusOr<const BufferDesc *> buffer =
        sessionBuffer(session, name, data, byte_size);
    if (!buffer.ok())
      return buffer.status();
    return session->device->write((*buffer)->offset, data, byte_size);
  });
}

moma_status moma_session_get_buffer(moma_session session, const char *name,
                                    void *data, size_t byte_size) {
  return guarded([&]() -> absl::Status {
    absl::StatusOr<const BufferDesc *> buffer =
        sessionBuffer(session, name, data, byte_size);
    if (!buffer.ok())
      return buffer.status();
    return session->device->read((*buffer)->offset, data, byte_size);
  });
}

moma_status moma_session_use_graph(moma_session session, int enable) {
  return guarded([&]() -> absl::Status {
    if (!session)
      return nullArgument("session");
    return session->device->setUseGraph(enable != 0);
  });
}

moma_status moma_session_run(moma_session session) {
  return guarded([&]() -> absl::Status {
    if (!session)
      return nullArgument("session");
    absl::StatusOr<double> ms = session->device->run();
    if (!ms.ok())
      return ms.status();
    session->lastRunMs = *ms;
    return absl::OkStatus();
  });
}

moma_status moma_session_last_run_ms(moma_session session, double *out_ms) {
  return guarded([&]() -> absl::Status {
    if (!session)
      return nullArgument("session");
    if (!out_ms)
      return nullArgument("out_ms");
    if (session->lastRunMs < 0)
      return absl::FailedPreconditionError("the session has not run yet");
    *out_ms = session->lastRunMs;
    return absl::OkStatus();
  });
}

} // extern "C"
