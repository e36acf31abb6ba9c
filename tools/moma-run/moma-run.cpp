//===- moma-run.cpp - Run a compiled moma program -------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// moma-run PROGRAM [--weights W.safetensors] [--input NAME=FILE.bin ...]
//          [--device cpu|cuda] [--device-ordinal N] [--kernel-image K]
//          [--threads N] [--graph] [--warmup N]
//          [--repeat N] [--dump NAME=FILE.bin ...] [--print NAME[:COUNT] ...]
//          [--expect NAME=FILE.bin ...] [--atol X] [--rtol X]
//          [--grads G.safetensors]
//
// Loads a program, binds it to a device, loads the weights, sets inputs from
// raw little-endian files of the buffer's element type, runs the schedule,
// prints what it ran and the timings, and writes, prints or checks buffers.
// It runs programs through the runtime's C API (moma/Runtime/Runtime.h) only;
// token files and file I/O use the runtime's C++ helpers. On error it prints
// "moma-run: error: ..." and exits with 1 (2 for usage errors).
//
//===----------------------------------------------------------------------===//

#include "moma/Format/Files.h"
#include "moma/Format/FloatConversion.h"
#include "moma/Format/SafetensorsWriter.h"
#include "moma/Runtime/Runtime.h"
#include "moma/Runtime/Tokens.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr const char *kUsage =
    "usage: moma-run PROGRAM [options]\n"
    "  --weights FILE            load the weight buffers from a safetensors "
    "file\n"
    "  --input NAME=FILE         set buffer NAME from a raw little-endian "
    "file\n"
    "                            (repeatable; inputs not given stay zero)\n"
    "  --device cpu|cuda         where to run (default: cpu for cpu "
    "programs,\n"
    "                            cuda otherwise)\n"
    "  --device-ordinal N        which CUDA device (default 0)\n"
    "  --kernel-image auto|ptx|cubin\n"
    "                            which image of each GPU module to load "
    "(default\n"
    "                            auto: a cubin that runs on the GPU, else the "
    "PTX)\n"
    "  --threads N               CPU programs: run the kernels on N >= 1 "
    "threads\n"
    "                            (default: every core; ignored on cuda)\n"
    "  --graph                   capture the schedule as a CUDA graph once "
    "and\n"
    "                            replay it\n"
    "  --warmup N                untimed runs before the timed ones "
    "(default 0)\n"
    "  --repeat N                timed runs (default 1)\n"
    "  --tokens FILE             set a model's inputs (ids, modality, "
    "targets,\n"
    "                            target_modality) from a moma-tokens/1 file "
    "and\n"
    "                            print its per-modality losses after the runs\n"
    "  --dump NAME=FILE          write buffer NAME to FILE after the runs\n"
    "  --print NAME[:COUNT]      print the first COUNT (default 8) elements\n"
    "  --expect NAME=FILE        check buffer NAME against a raw reference "
    "file:\n"
    "                            |out - ref| <= atol + rtol * |ref| "
    "everywhere\n"
    "  --atol X, --rtol X        tolerances of --expect (default 0: exact)\n"
    "  --grads FILE              gradients and train programs (momac "
    "--program=\n"
    "                            gradients|train):\n"
    "                            write every weight's gradient (the outputs\n"
    "                            grad:NAME) to a safetensors file, named as "
    "the\n"
    "                            weights (the reference's run --grads "
    "format)\n";

struct NamedFile {
  std::string name;
  std::string path;
};

struct Options {
  std::string program;
  std::string weights;
  std::string tokens;
  std::string grads;
  std::vector<NamedFile> inputs, dumps, expects;
  std::vector<std::pair<std::string, size_t>> prints;
  std::string device;
  int ordinal = 0;
  std::string kernelImage = "auto";
  long threads = 0; // 0: every core
  bool graph = false;
  long warmup = 0;
  long repeat = 1;
  double atol = 0, rtol = 0;
};

[[noreturn]] void usageError(const std::string &message) {
  std::fprintf(stderr, "moma-run: error: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

[[noreturn]] void fatal(const std::string &message) {
  std::fprintf(stderr, "moma-run: error: %s\n", message.c_str());
  std::exit(1);
}

/// Exits with the runtime's message if \p status is not OK.
void check(moma_status status, const std::string &context) {
  if (status == MOMA_STATUS_OK)
    return;
  fatal(context + ": " + moma_last_error() + " [" + moma_status_name(status) +
        "]");
}

NamedFile parseNamedFile(const std::string &option, const std::string &value) {
  size_t eq = value.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
    usageError(option + " expects NAME=FILE, got '" + value + "'");
  return {value.substr(0, eq), value.substr(eq + 1)};
}

long parseCount(const std::string &option, const std::string &value, long min) {
  char *end = nullptr;
  errno = 0;
  long n = std::strtol(value.c_str(), &end, 10);
  if (errno || end == value.c_str() || *end || n < min)
    usageError(option + " expects an integer >= " + std::to_string(min) +
               ", got '" + value + "'");
  return n;
}

double parseTolerance(const std::string &option, const std::string &value) {
  char *end = nullptr;
  double x = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || *end || !(x >= 0))
    usageError(option + " expects a non-negative number, got '" + value + "'");
  return x;
}

Options parseOptions(int argc, char **argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    // "--option=value" is the same as "--option value".
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('=');
        arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inlineValue = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&](int &i, const std::string &option) -> std::string {
      if (inlineValue)
        return *std::exchange(inlineValue, std::nullopt);
      if (i + 1 >= argc)
        usageError(option + " expects a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--weights") {
      options.weights = value(i, arg);
    } else if (arg == "--tokens") {
      options.tokens = value(i, arg);
    } else if (arg == "--grads") {
      options.grads = value(i, arg);
    } else if (arg == "--input") {
      options.inputs.push_back(parseNamedFile(arg, value(i, arg)));
    } else if (arg == "--dump") {
      options.dumps.push_back(parseNamedFile(arg, value(i, arg)));
    } else if (arg == "--expect") {
      options.expects.push_back(parseNamedFile(arg, value(i, arg)));
    } else if (arg == "--print") {
      std::string v = value(i, arg);
      size_t count = 8;
      if (size_t colon = v.rfind(':'); colon != std::string::npos) {
        count = static_cast<size_t>(parseCount(arg, v.substr(colon + 1), 1));
        v = v.substr(0, colon);
      }
      if (v.empty())
        usageError("--print expects NAME[:COUNT]");
      options.prints.emplace_back(v, count);
    } else if (arg == "--device") {
      options.device = value(i, arg);
    } else if (arg == "--device-ordinal") {
      options.ordinal = static_cast<int>(parseCount(arg, value(i, arg), 0));
    } else if (arg == "--kernel-image") {
      options.kernelImage = value(i, arg);
    } else if (arg == "--threads") {
      options.threads = parseCount(arg, value(i, arg), 1);
      if (options.threads > std::numeric_limits<int>::max())
        usageError("--threads expects at most " +
                   std::to_string(std::numeric_limits<int>::max()) +
                   " threads, got " + std::to_string(options.threads));
    } else if (arg == "--graph" && !inlineValue) {
      options.graph = true;
    } else if (arg == "--warmup") {
      options.warmup = parseCount(arg, value(i, arg), 0);
    } else if (arg == "--repeat") {
      options.repeat = parseCount(arg, value(i, arg), 1);
    } else if (arg == "--atol") {
      options.atol = parseTolerance(arg, value(i, arg));
    } else if (arg == "--rtol") {
      options.rtol = parseTolerance(arg, value(i, arg));
    } else if (arg.size() > 1 && arg[0] == '-') {
      usageError("unknown option '" + arg + "'");
    } else if (inlineValue) {
      usageError("unexpected argument '" + std::string(argv[i]) + "'");
    } else if (options.program.empty()) {
      options.program = arg;
    } else {
      usageError("more than one program given ('" + options.program +
                 "' and '" + arg + "')");
    }
  }
  if (options.program.empty())
    usageError("no program given");
  if (!options.device.empty() && options.device != "cpu" &&
      options.device != "cuda")
    usageError("--device expects cpu or cuda, got '" + options.device + "'");
  if (options.kernelImage != "auto" && options.kernelImage != "ptx" &&
      options.kernelImage != "cubin")
    usageError("--kernel-image expects auto, ptx or cubin, got '" +
               options.kernelImage + "'");
  return options;
}

/// Reads the file at \p path for option \p what, or exits.
std::string readFile(const std::string &path, const std::string &what) {
  absl::StatusOr<std::string> data = moma::runtime::readFile(path);
  if (!data.ok())
    fatal(what + ": " + std::string(data.status().message()));
  return *std::move(data);
}

/// Writes \p data to \p path for option \p what (a failure never leaves a
/// partial file), or exits.
void writeFileAtomically(const std::string &path, const std::string &data,
                         const std::string &what) {
  absl::Status status = moma::runtime::writeFileAtomically(path, data);
  if (!status.ok())
    fatal(what + ": " + std::string(status.message()));
}

const char *dtypeName(moma_dtype dtype) {
  switch (dtype) {
  case MOMA_DTYPE_F32:
    return "f32";
  case MOMA_DTYPE_F64:
    return "f64";
  case MOMA_DTYPE_BF16:
    return "bf16";
  case MOMA_DTYPE_F16:
    return "f16";
  case MOMA_DTYPE_I32:
    return "i32";
  case MOMA_DTYPE_I64:
    return "i64";
  }
  return "?";
}

size_t dtypeSize(moma_dtype dtype) {
  switch (dtype) {
  case MOMA_DTYPE_F64:
  case MOMA_DTYPE_I64:
    return 8;
  case MOMA_DTYPE_BF16:
  case MOMA_DTYPE_F16:
    return 2;
  default:
    return 4;
  }
}

std::string shapeString(const moma_buffer_info &info) {
  std::string out = "[";
  for (size_t i = 0; i < info.rank; ++i)
    out += (i ? ", " : "") + std::to_string(info.shape[i]);
  return out + "]";
}

/// Returns the \p T stored, unaligned, at \p p.
template <typename T> T load(const char *p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

/// Returns element \p i of a host array of type \p dtype as a double.
double element(const std::string &bytes, moma_dtype dtype, size_t i) {
  const char *p = bytes.data() + i * dtypeSize(dtype);
  switch (dtype) {
  case MOMA_DTYPE_F32:
    return load<float>(p);
  case MOMA_DTYPE_F64:
    return load<double>(p);
  case MOMA_DTYPE_I32:
    return load<int32_t>(p);
  case MOMA_DTYPE_I64:
    return static_cast<double>(load<int64_t>(p));
  case MOMA_DTYPE_BF16:
    return moma::runtime::bfloat16ToDouble(load<uint16_t>(p));
  case MOMA_DTYPE_F16:
    return moma::runtime::halfToDouble(load<uint16_t>(p));
  }
  return 0;
}

/// Returns the significant decimal digits that round-trip every value of the
/// float type \p dtype (its max_digits10: 9 for f32, 17 for f64, 4 for bf16,
/// 5 for f16).
int roundTripDigits(moma_dtype dtype) {
  switch (dtype) {
  case MOMA_DTYPE_F64:
    return 17;
  case MOMA_DTYPE_BF16:
    return 4;
  case MOMA_DTYPE_F16:
    return 5;
  default:
    return 9;
  }
}

/// Formats element \p i of a host array of type \p dtype: integers in
/// decimal, floats with the digits that round-trip their type.
std::string formatElement(const std::string &bytes, moma_dtype dtype,
                          size_t i) {
  char text[64];
  if (dtype == MOMA_DTYPE_I32 || dtype == MOMA_DTYPE_I64) {
    const char *p = bytes.data() + i * dtypeSize(dtype);
    int64_t v = dtype == MOMA_DTYPE_I32 ? load<int32_t>(p) : load<int64_t>(p);
    std::snprintf(text, sizeof(text), "%" PRId64, v);
  } else {
    std::snprintf(text, sizeof(text), "%.*g", roundTripDigits(dtype),
                  element(bytes, dtype, i));
  }
  return text;
}

moma_buffer_info findBuffer(moma_program program, const std::string &name,
                            const std::string &option) {
  moma_buffer_info info;
  check(moma_program_find_buffer(program, name.c_str(), &info), option);
  return info;
}

std::string readBuffer(moma_session session, const moma_buffer_info &info,
                       const std::string &option) {
  std::string bytes(info.byte_size, '\0');
  check(moma_session_get_buffer(session, info.name, bytes.data(), bytes.size()),
        option + " " + info.name);
  return bytes;
}

} // namespace

int main(int argc, char **argv) {
  Options options = parseOptions(argc, argv);

  moma_program program = nullptr;
  check(moma_program_load(options.program.c_str(), &program),
        "cannot load the program");
  std::string target = moma_program_target(program);
  std::string cpuLevel = moma_program_cpu_level(program);
  size_t numBuffers = moma_program_num_buffers(program);
  std::printf("moma-run: program %s: target %s%s, %zu module(s), %zu "
              "buffer(s) in a %" PRIu64 "-byte arena, %zu launch(es)\n",
              options.program.c_str(), target.c_str(),
              cpuLevel.empty() ? "" : (" (" + cpuLevel + ")").c_str(),
              moma_program_num_modules(program), numBuffers,
              moma_program_arena_size(program),
              moma_program_num_launches(program));

  std::string device = options.device;
  if (device.empty())
    device = target == "cpu" ? "cpu" : "cuda";
  moma_session session = nullptr;
  moma_session_options sessionOptions = {};
  sessionOptions.kernel_image =
      options.kernelImage == "ptx"     ? MOMA_KERNEL_IMAGE_PTX
      : options.kernelImage == "cubin" ? MOMA_KERNEL_IMAGE_CUBIN
                                       : MOMA_KERNEL_IMAGE_AUTO;
  if (device == "cpu")
    sessionOptions.cpu_threads = static_cast<int>(options.threads);
  else if (options.threads)
    std::fprintf(stderr, "moma-run: note: --threads applies to CPU programs "
                         "only; ignored on cuda\n");
  check(moma_session_create_with_options(
            program, device == "cpu" ? MOMA_DEVICE_CPU : MOMA_DEVICE_CUDA,
            device == "cpu" ? 0 : options.ordinal, &sessionOptions, &session),
        "cannot run on " + device);
  std::printf("moma-run: device %s\n", moma_session_device_name(session));
  int threads = 0;
  if (device == "cpu")
    check(moma_session_cpu_threads(session, &threads), "thread count");

  // Weights.
  size_t numWeights = 0, numStates = 0;
  for (size_t i = 0; i < numBuffers; ++i) {
    moma_buffer_info info;
    check(moma_program_buffer_info(program, i, &info), "buffer info");
    numWeights += info.role == MOMA_ROLE_WEIGHT;
    numStates += info.role == MOMA_ROLE_STATE;
  }
  if (!options.weights.empty()) {
    size_t loaded = 0;
    check(moma_session_load_weights(session, options.weights.c_str(), &loaded),
          "cannot load the weights");
    std::printf("moma-run: weights %s: %zu buffer(s) loaded\n",
                options.weights.c_str(), loaded);
  } else if (numWeights > 0) {
    fatal("the program has " + std::to_string(numWeights) +
          " weight buffer(s); pass --weights FILE.safetensors");
  }
  if (numStates)
    std::printf("moma-run: %zu state buffer(s), zero at the start (a train "
                "program's optimizer state)\n",
                numStates);

  // Inputs.
  std::vector<std::string> given;
  std::vector<moma::runtime::TokenModality> modalities;
  moma::runtime::TokenBatch tokens;
  if (!options.tokens.empty()) {
    const char *names = moma_program_metadata(program, "modalities");
    const char *ranges = moma_program_metadata(program, "modality_ranges");
    if (!names || !ranges)
      fatal("--tokens: the program does not record its modalities (it was "
            "not compiled from a model file by momac)");
    absl::StatusOr<std::vector<moma::runtime::TokenModality>> parsed =
        moma::runtime::parseModalityMetadata(names, ranges);
    if (!parsed.ok())
      fatal("--tokens: " + std::string(parsed.status().message()));
    modalities = *parsed;
    absl::StatusOr<moma::runtime::TokenBatch> batch =
        moma::runtime::readTokenFile(options.tokens, modalities);
    if (!batch.ok())
      fatal(std::string(batch.status().message()));
    tokens = std::move(*batch);
    std::pair<const char *, const std::vector<int32_t> *> fields[] = {
        {"ids", &tokens.ids},
        {"modality", &tokens.modality},
        {"targets", &tokens.targets},
        {"target_modality", &tokens.targetModality}};
    for (auto [name, values] : fields) {
      moma_buffer_info info = findBuffer(program, name, "--tokens");
      size_t bytes = values->size() * sizeof(int32_t);
      if (info.dtype != MOMA_DTYPE_I32 || info.byte_size != bytes)
        fatal("--tokens: " + options.tokens + " holds " +
              std::to_string(tokens.batch) + " x " +
              std::to_string(tokens.length) +
              " tokens, but the program was compiled for " + shapeString(info) +
              " (momac --batch/--seq-len)");
      check(moma_session_set_buffer(session, name, values->data(), bytes),
            "--tokens");
      given.push_back(name);
    }
    std::printf("moma-run: tokens %s: %lld x %lld\n", options.tokens.c_str(),
                static_cast<long long>(tokens.batch),
                static_cast<long long>(tokens.length));
  }
  for (const NamedFile &input : options.inputs) {
    moma_buffer_info info = findBuffer(program, input.name, "--input");
    std::string data = readFile(input.path, "--input " + input.name);
    if (data.size() != info.byte_size)
      fatal("--input " + input.name + ": " + input.path + " has " +
            std::to_string(data.size()) + " bytes, but buffer '" + input.name +
            "' (" + dtypeName(info.dtype) + " " + shapeString(info) +
            ") holds " + std::to_string(info.byte_size));
    check(moma_session_set_buffer(session, info.name, data.data(), data.size()),
          "--input " + input.name);
    given.push_back(input.name);
    std::printf("moma-run: input %s <- %s (%zu bytes)\n", input.name.c_str(),
                input.path.c_str(), data.size());
  }
  // A train program's step number (examples/Training.md) starts at 1; step
  // 0 would make AdamW's bias correction divide by zero.
  moma_buffer_info stepInfo;
  if (moma_program_find_buffer(program, "step", &stepInfo) == MOMA_STATUS_OK &&
      stepInfo.role == MOMA_ROLE_INPUT && stepInfo.dtype == MOMA_DTYPE_I64 &&
      stepInfo.rank == 0 &&
      std::find(given.begin(), given.end(), "step") == given.end()) {
    int64_t one = 1;
    check(moma_session_set_buffer(session, "step", &one, sizeof(one)), "step");
    given.push_back("step");
    std::fprintf(stderr, "moma-run: note: input 'step' not given; it is 1 "
                         "(the first training step)\n");
  }
  for (size_t i = 0; i < numBuffers; ++i) {
    moma_buffer_info info;
    check(moma_program_buffer_info(program, i, &info), "buffer info");
    if (info.role == MOMA_ROLE_INPUT &&
        std::find(given.begin(), given.end(), info.name) == given.end())
      std::fprintf(stderr,
                   "moma-run: note: input '%s' not given; it is "
                   "zero\n",
                   info.name);
  }

  // Runs.
  if (options.graph)
    check(moma_session_use_graph(session, 1), "--graph");
  for (long i = 0; i < options.warmup; ++i)
    check(moma_session_run(session), "warm-up run " + std::to_string(i + 1));
  std::vector<double> times;
  for (long i = 0; i < options.repeat; ++i) {
    check(moma_session_run(session), "run " + std::to_string(i + 1));
    double ms = 0;
    check(moma_session_last_run_ms(session, &ms), "timing");
    times.push_back(ms);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  double median =
      sorted.size() % 2
          ? sorted[sorted.size() / 2]
          : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
  double mean = 0;
  for (double t : times)
    mean += t / times.size();
  std::string clock =
      device == "cpu"
          ? " (wall clock, " + std::to_string(threads) + " thread(s))"
          : std::string(" (CUDA events)");
  std::printf("moma-run: ran %ld time(s) (%ld warm-up) with %s: median %.4g "
              "ms, min %.4g ms, mean %.4g ms%s\n",
              options.repeat, options.warmup,
              options.graph ? "CUDA graph replay" : "kernel launches", median,
              sorted.front(), mean, clock.c_str());

  // Outputs.
  int failures = 0;
  for (const auto &[name, count] : options.prints) {
    moma_buffer_info info = findBuffer(program, name, "--print");
    std::string bytes = readBuffer(session, info, "--print");
    size_t n = info.byte_size / dtypeSize(info.dtype);
    std::string line;
    for (size_t i = 0; i < std::min(n, count); ++i)
      line += (i ? ", " : "") + formatElement(bytes, info.dtype, i);
    if (n > count)
      line += ", ...";
    std::printf("moma-run: %s (%s %s) = [%s]\n", info.name,
                dtypeName(info.dtype), shapeString(info).c_str(), line.c_str());
  }
  for (const NamedFile &expect : options.expects) {
    moma_buffer_info info = findBuffer(program, expect.name, "--expect");
    std::string actual = readBuffer(session, info, "--expect");
    std::string reference = readFile(expect.path, "--expect " + expect.name);
    if (reference.size() != actual.size())
      fatal("--expect " + expect.name + ": " + expect.path + " has " +
            std::to_string(reference.size()) + " bytes, but buffer '" +
            expect.name + "' holds " + std::to_string(actual.size()));
    size_t n = actual.size() / dtypeSize(info.dtype);
    size_t bad = 0, first = 0;
    double maxError = 0;
    for (size_t i = 0; i < n; ++i) {
      double out = element(actual, info.dtype, i);
      double ref = element(reference, info.dtype, i);
      double error = std::fabs(out - ref);
      bool ok = (std::isnan(out) && std::isnan(ref)) || out == ref ||
                error <= options.atol + options.rtol * std::fabs(ref);
      if (!std::isnan(error))
        maxError = std::max(maxError, error);
      if (!ok && bad++ == 0)
        first = i;
    }
    if (bad) {
      ++failures;
      std::fprintf(stderr,
                   "moma-run: error: --expect %s: %zu of %zu elements differ "
                   "from %s (first: element %zu is %s, expected %s; atol %g, "
                   "rtol %g)\n",
                   expect.name.c_str(), bad, n, expect.path.c_str(), first,
                   formatElement(actual, info.dtype, first).c_str(),
                   formatElement(reference, info.dtype, first).c_str(),
                   options.atol, options.rtol);
    } else {
      std::printf("moma-run: expect %s: OK (%zu elements, max abs error "
                  "%g)\n",
                  expect.name.c_str(), n, maxError);
    }
  }
  if (!options.tokens.empty()) {
    // The losses, in the reference's `key value` form, each with the digits
    // that round-trip its type.
    auto scalar = [&](const char *name, size_t index) {
      moma_buffer_info info = findBuffer(program, name, "--tokens");
      std::string bytes = readBuffer(session, info, "--tokens");
      return formatElement(bytes, info.dtype, index);
    };
    if (const char *model = moma_program_metadata(program, "model"))
      std::printf("model %s\n", model);
    std::printf("batch %lld\nlength %lld\n",
                static_cast<long long>(tokens.batch),
                static_cast<long long>(tokens.length));
    size_t all = 0;
    for (size_t m = 0; m < modalities.size(); ++m) {
      size_t count =
          std::count(tokens.targetModality.begin(), tokens.targetModality.end(),
                     static_cast<int32_t>(m));
      all += count;
      std::printf("ce.%s %s targets %zu\n", modalities[m].name.c_str(),
                  scalar("ce_per_modality", m).c_str(), count);
    }
    std::printf("ce %s targets %zu\n", scalar("ce", 0).c_str(), all);
    // The auxiliary losses, where the program has them (momac's forward
    // and train programs do).
    for (const char *name :
         {"load_balancing", "router_z", "aux_router", "total"}) {
      moma_buffer_info info;
      if (std::string_view(name) == "total" ||
          moma_program_find_buffer(program, name, &info) == MOMA_STATUS_OK)
        std::printf("%s %s\n", name, scalar(name, 0).c_str());
    }
  }
  if (!options.grads.empty()) {
    // Outputs "grad:NAME" become tensors NAME of the buffers' type.
    constexpr std::string_view prefix = "grad:";
    moma::runtime::SafetensorsFileWriter writer;
    size_t count = 0;
    for (size_t i = 0; i < numBuffers; ++i) {
      moma_buffer_info info;
      check(moma_program_buffer_info(program, i, &info), "buffer info");
      std::string_view name = info.name;
      if (info.role != MOMA_ROLE_OUTPUT ||
          name.substr(0, prefix.size()) != prefix)
        continue;
      std::string bytes = readBuffer(session, info, "--grads");
      absl::Status added = writer.add(
          name.substr(prefix.size()),
          moma::runtime::dtypeOf(
              static_cast<moma::runtime::ElementType>(info.dtype)),
          std::vector<int64_t>(info.shape, info.shape + info.rank), bytes);
      if (!added.ok())
        fatal("--grads: " + std::string(added.message()));
      ++count;
    }
    if (!count)
      fatal("--grads: the program has no gradient outputs (compile it with "
            "momac --program=gradients)");
    writer.setMetadata("format", "moma-grads");
    if (const char *model = moma_program_metadata(program, "model"))
      writer.setMetadata("model", model);
    writer.setMetadata("of", "total");
    absl::Status written = writer.writeToFile(options.grads);
    if (!written.ok())
      fatal("--grads: " + std::string(written.message()));
    std::printf("moma-run: grads -> %s (%zu tensors)\n", options.grads.c_str(),
                count);
  }
  for (const NamedFile &dump : options.dumps) {
    moma_buffer_info info = findBuffer(program, dump.name, "--dump");
    std::string bytes = readBuffer(session, info, "--dump");
    writeFileAtomically(dump.path, bytes, "--dump " + dump.name);
    std::printf("moma-run: dump %s -> %s (%zu bytes)\n", dump.name.c_str(),
                dump.path.c_str(), bytes.size());
  }

  moma_session_free(session);
  moma_program_free(program);
  return failures ? 1 : 0;
}
