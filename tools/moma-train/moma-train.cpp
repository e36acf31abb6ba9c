//===- moma-train.cpp - Train a model with a compiled train program -------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// moma-train T.momaprog --weights W.safetensors --data D --steps N --out DIR
//            [--seed S] [--shuffle=seeded|none] [--checkpoint-every K]
//            [--resume DIR2] [--threads N] [--device cpu|cuda] [--quiet]
//
// Runs a train program (momac --program=train: one run is one optimizer
// step) over rows of a token file or packed corpus in the seeded batch
// order, writes DIR/metrics.jsonl and atomic checkpoints, resumes from one,
// and stops at a non-finite loss. examples/Training.md specifies all of it.
// LLVM-free: the runtime's C API, its data helpers and the format library.
// On error it prints "moma-train: error: ..." and exits with 1 (2 for usage
// errors); it checks every input before it writes anything.
//
//===----------------------------------------------------------------------===//

#include "tools/moma-train/Checkpoint.h"

#include "lib/Format/Json.h"
#include "moma/Format/Files.h"
#include "moma/Format/FloatConversion.h"
#include "moma/Format/SafetensorsReader.h"
#include "moma/Format/SafetensorsWriter.h"
#include "moma/Runtime/Runtime.h"
#include "moma/Runtime/TrainData.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace moma::runtime;
using namespace moma::train;

namespace {

constexpr const char *kUsage =
    "usage: moma-train PROGRAM --weights W.safetensors --data D --steps N "
    "--out DIR [options]\n"
    "  PROGRAM                   a train program (momac --program=train)\n"
    "  --weights FILE            the initial weights (not needed with "
    "--resume)\n"
    "  --data FILE               a moma-tokens/1 file (every sequence one "
    "row)\n"
    "                            or a moma-corpus/1 packed corpus\n"
    "  --steps N                 train up to step N (the last step's "
    "number)\n"
    "  --out DIR                 write DIR/metrics.jsonl and "
    "DIR/checkpoint\n"
    "  --seed S                  the batch order's seed (default 0)\n"
    "  --shuffle seeded|none     shuffle the rows each epoch (default "
    "seeded)\n"
    "  --checkpoint-every K      also checkpoint after every K-th step\n"
    "  --resume DIR              continue from a checkpoint (a run "
    "directory or\n"
    "                            its checkpoint/)\n"
    "  --threads N               CPU: run the kernels on N threads "
    "(default: all)\n"
    "  --device cpu|cuda         where to run (default: the program's "
    "target)\n"
    "  --quiet                   print no progress\n";

struct Options {
  std::string program, weights, data, out, resume;
  int64_t steps = 0;
  std::optional<uint64_t> seed;
  std::optional<bool> shuffle;
  int64_t checkpointEvery = 0;
  long threads = 0;
  std::string device;
  bool quiet = false;
};

[[noreturn]] void usageError(const std::string &message) {
  std::fprintf(stderr, "moma-train: error: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

/// Whether stdout ends in an unfinished progress-bar line (a terminal).
bool progressBarOpen = false;

[[noreturn]] void fatal(const std::string &message) {
  if (progressBarOpen)
    std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "moma-train: error: %s\n", message.c_str());
  std::exit(1);
}

void check(moma_status status, const std::string &context) {
  if (status != MOMA_STATUS_OK)
    fatal(context + ": " + moma_last_error() + " [" + moma_status_name(status) +
          "]");
}

void check(const absl::Status &status, const std::string &context = "") {
  if (!status.ok())
    fatal((context.empty() ? "" : context + ": ") +
          std::string(status.message()));
}

uint64_t parseUnsigned(const std::string &option, const std::string &value,
                       uint64_t min, uint64_t max) {
  char *end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(value.c_str(), &end, 10);
  if (errno || end == value.c_str() || *end || value[0] == '-' || n < min ||
      n > max)
    usageError(option + " expects an integer in [" + std::to_string(min) +
               ", " + std::to_string(max) + "], got '" + value + "'");
  return n;
}

Options parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('=');
        arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inlineValue = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inlineValue)
        return *std::exchange(inlineValue, std::nullopt);
      if (i + 1 >= argc)
        usageError(arg + " expects a value");
      return argv[++i];
    };
    constexpr uint64_t kMaxSigned = uint64_t(INT64_MAX);
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--weights") {
      o.weights = value();
    } else if (arg == "--data") {
      o.data = value();
    } else if (arg == "--out") {
      o.out = value();
    } else if (arg == "--resume") {
      o.resume = value();
    } else if (arg == "--steps") {
      o.steps = int64_t(parseUnsigned(arg, value(), 1, kMaxSigned));
    } else if (arg == "--seed") {
      o.seed = parseUnsigned(arg, value(), 0, UINT64_MAX);
    } else if (arg == "--shuffle") {
      std::string v = value();
      if (v != "seeded" && v != "none")
        usageError("--shuffle expects seeded or none, got '" + v + "'");
      o.shuffle = v == "seeded";
    } else if (arg == "--checkpoint-every") {
      o.checkpointEvery = int64_t(parseUnsigned(arg, value(), 1, kMaxSigned));
    } else if (arg == "--threads") {
      o.threads = long(parseUnsigned(arg, value(), 1, INT32_MAX));
    } else if (arg == "--device") {
      o.device = value();
      if (o.device != "cpu" && o.device != "cuda")
        usageError("--device expects cpu or cuda, got '" + o.device + "'");
    } else if (arg == "--quiet" && !inlineValue) {
      o.quiet = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      usageError("unknown option '" + arg + "'");
    } else if (inlineValue || !o.program.empty()) {
      usageError("unexpected argument '" + std::string(argv[i]) + "'");
    } else {
      o.program = arg;
    }
  }
  if (o.program.empty())
    usageError("no program given");
  if (o.data.empty())
    usageError("no data given (--data FILE)");
  if (o.out.empty())
    usageError("no output directory given (--out DIR)");
  if (!o.steps)
    usageError("no step count given (--steps N)");
  if (o.weights.empty() && o.resume.empty())
    usageError("no weights given (--weights FILE, or --resume DIR)");
  return o;
}

/// A buffer of the program, as the C API describes it.
struct Buffer {
  moma_buffer_info info;
  std::string name;
  std::vector<int64_t> shape() const {
    return std::vector<int64_t>(info.shape, info.shape + info.rank);
  }
  size_t elements() const {
    return info.byte_size / elementTypeSize(ElementType(info.dtype));
  }
};

std::string readBytes(moma_session session, const Buffer &buffer) {
  std::string bytes(buffer.info.byte_size, '\0');
  check(moma_session_get_buffer(session, buffer.info.name, bytes.data(),
                                bytes.size()),
        "reading '" + buffer.name + "'");
  return bytes;
}

bool isFloat(moma_dtype dtype) {
  return dtype == MOMA_DTYPE_F32 || dtype == MOMA_DTYPE_F64 ||
         dtype == MOMA_DTYPE_BF16 || dtype == MOMA_DTYPE_F16;
}

/// Returns element \p i of a float array of type \p dtype.
double floatAt(const std::string &bytes, moma_dtype dtype, size_t i) {
  const char *p = bytes.data();
  switch (dtype) {
  case MOMA_DTYPE_F64: {
    double v;
    std::memcpy(&v, p + 8 * i, 8);
    return v;
  }
  case MOMA_DTYPE_BF16:
  case MOMA_DTYPE_F16: {
    uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    return dtype == MOMA_DTYPE_BF16 ? bfloat16ToDouble(v) : halfToDouble(v);
  }
  default: {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  }
}

/// Returns the index of the first non-finite element, if any.
std::optional<size_t> firstNonFinite(const std::string &bytes,
                                     const Buffer &buffer) {
  if (!isFloat(buffer.info.dtype))
    return std::nullopt;
  for (size_t i = 0; i < buffer.elements(); ++i)
    if (!std::isfinite(floatAt(bytes, buffer.info.dtype, i)))
      return i;
  return std::nullopt;
}

/// \p v with 9 significant digits; a NaN of either sign is `nan`.
std::string formatValue(double v) {
  if (std::isnan(v))
    return "nan";
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", v);
  return text;
}

/// The program's buffers that moma-train reads and writes.
struct TrainProgram {
  std::vector<Buffer> all;
  std::vector<const Buffer *> weights, states, outputs, grads, expertOffsets;
  int64_t rowsPerStep = 0, length = 0;
  std::vector<TokenModality> modalities;

  const Buffer *find(const std::string &name) const {
    for (const Buffer &b : all)
      if (b.name == name)
        return &b;
    return nullptr;
  }
};

TrainProgram describeProgram(moma_program program, const std::string &path) {
  TrainProgram t;
  size_t n = moma_program_num_buffers(program);
  t.all.resize(n);
  for (size_t i = 0; i < n; ++i) {
    check(moma_program_buffer_info(program, i, &t.all[i].info), "buffer info");
    t.all[i].name = t.all[i].info.name;
  }
  for (const Buffer &b : t.all) {
    if (b.info.role == MOMA_ROLE_WEIGHT)
      t.weights.push_back(&b);
    else if (b.info.role == MOMA_ROLE_STATE)
      t.states.push_back(&b);
    else if (b.info.role == MOMA_ROLE_OUTPUT && b.name.rfind("grad:", 0) == 0)
      t.grads.push_back(&b);
    else if (b.info.role == MOMA_ROLE_OUTPUT &&
             b.name.rfind("expert_offsets:", 0) == 0)
      t.expertOffsets.push_back(&b);
    else if (b.info.role == MOMA_ROLE_OUTPUT)
      t.outputs.push_back(&b);
  }
  const std::string notTrain =
      path + ": not a train program (compile it with momac --program=train): ";
  const Buffer *ids = t.find("ids");
  if (!ids || ids->info.role != MOMA_ROLE_INPUT ||
      ids->info.dtype != MOMA_DTYPE_I32 || ids->info.rank != 2)
    fatal(notTrain + "no i32 [A*B, L] input 'ids'");
  t.rowsPerStep = ids->info.shape[0];
  t.length = ids->info.shape[1];
  for (const char *name : {"modality", "targets", "target_modality"}) {
    const Buffer *b = t.find(name);
    if (!b || b->info.role != MOMA_ROLE_INPUT ||
        b->info.dtype != MOMA_DTYPE_I32 || b->shape() != ids->shape())
      fatal(notTrain + "no i32 input '" + name + "' shaped as 'ids'");
  }
  const Buffer *step = t.find("step");
  if (!step || step->info.role != MOMA_ROLE_INPUT ||
      step->info.dtype != MOMA_DTYPE_I64 || step->info.rank != 0)
    fatal(notTrain + "no i64 [] input 'step'");
  for (const char *name : {"total", "lr", "grad_norm"}) {
    const Buffer *b = t.find(name);
    if (!b || b->info.role != MOMA_ROLE_OUTPUT || !isFloat(b->info.dtype))
      fatal(notTrain + "no float output '" + name + "'");
  }
  if (t.weights.empty())
    fatal(notTrain + "no weight buffers");
  const char *names = moma_program_metadata(program, "modalities");
  const char *ranges = moma_program_metadata(program, "modality_ranges");
  if (!names || !ranges)
    fatal(path + ": the program does not record its modalities (it was not "
                 "compiled from a model file by momac)");
  absl::StatusOr<std::vector<TokenModality>> modalities =
      parseModalityMetadata(names, ranges);
  check(modalities.status(), path);
  t.modalities = *modalities;
  return t;
}

/// Loads the tensors of the safetensors file \p path into the buffers
/// \p buffers, which must be exactly its tensors.
void loadTensors(moma_session session, const std::string &path,
                 const std::vector<const Buffer *> &buffers) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::open(path);
  check(file.status(), "damaged checkpoint");
  for (const Buffer *b : buffers)
    if (!(*file)->find(b->name))
      fatal("damaged checkpoint: " + path + ": no tensor '" + b->name + "'");
  for (const SafetensorsTensor &tensor : (*file)->tensors())
    if (std::none_of(buffers.begin(), buffers.end(),
                     [&](const Buffer *b) { return b->name == tensor.name; }))
      fatal("checkpoint of another program: " + path + ": tensor '" +
            tensor.name + "' is not a state buffer of the program");
  std::string staging;
  for (const Buffer *b : buffers) {
    BufferDesc desc;
    desc.name = b->name;
    desc.role = BufferRole(b->info.role);
    desc.type = ElementType(b->info.dtype);
    desc.shape = b->shape();
    desc.byteSize = b->info.byte_size;
    staging.assign(b->info.byte_size, '\0');
    check((*file)->convertInto(*(*file)->find(b->name), desc, staging.data()),
          "damaged checkpoint");
    check(moma_session_set_buffer(session, b->info.name, staging.data(),
                                  staging.size()),
          "restoring '" + b->name + "'");
  }
}

/// The buffers \p buffers of the session, as one safetensors file.
std::string tensorsFile(moma_session session,
                        const std::vector<const Buffer *> &buffers,
                        const char *format, const char *model) {
  SafetensorsFileWriter writer;
  for (const Buffer *b : buffers)
    check(writer.add(b->name, dtypeOf(ElementType(b->info.dtype)), b->shape(),
                     readBytes(session, *b)),
          "checkpoint");
  writer.setMetadata("format", format);
  if (model)
    writer.setMetadata("model", model);
  return writer.serialize();
}

bool isDirectory(const std::string &path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

/// Prepares DIR/metrics.jsonl: empty for a fresh run; on a resume, the
/// lines of steps up to \p keepSteps. Returns the file, open for appending.
FILE *openMetrics(const std::string &dir, int64_t keepSteps) {
  std::string path = dir + "/metrics.jsonl";
  std::string kept;
  if (keepSteps > 0) {
    absl::StatusOr<std::string> old = readFile(path);
    if (old.ok()) {
      std::istringstream lines(*old);
      std::string line;
      while (std::getline(lines, line)) {
        absl::StatusOr<nlohmann::json> parsed = parseJson(line);
        if (!parsed.ok() || !parsed->is_object() ||
            !(*parsed)["step"].is_number_integer())
          break; // a torn last line, or not ours: keep what came before
        if ((*parsed)["step"].get<int64_t>() > keepSteps)
          break;
        kept += line + "\n";
      }
    }
  }
  check(writeFileAtomically(path, kept), "metrics");
  FILE *file = std::fopen(path.c_str(), "a");
  if (!file)
    fatal(path + ": cannot open: " + std::strerror(errno));
  return file;
}

/// One step's outputs.
struct StepResult {
  double total = 0, ce = 0, lr = 0, gradNorm = 0;
  std::vector<std::pair<std::string, double>> extraLosses;
  /// Per modality: its cross-entropy, none when the step has no target of
  /// it (the program's 0 is no loss).
  std::vector<std::optional<double>> perModality;
  /// Per modality: the step's target count, over its micro-batches.
  std::vector<int64_t> targets;
  std::vector<std::pair<std::string, std::vector<int64_t>>> expertLoad;
};

double scalarOutput(moma_session session, const TrainProgram &t,
                    const std::string &name) {
  const Buffer *b = t.find(name);
  return floatAt(readBytes(session, *b), b->info.dtype, 0);
}

/// Finds the first non-finite tensor, in the order examples/Training.md
/// gives, for the message of a stop.
std::string describeNonFinite(moma_session session, const TrainProgram &t) {
  std::vector<std::pair<const char *, const std::vector<const Buffer *> *>>
      groups = {
          {"output", &t.outputs}, {"output", &t.grads}, {"weight", &t.weights}};
  for (const auto &[kind, buffers] : groups)
    for (const Buffer *b : *buffers) {
      std::string bytes = readBytes(session, *b);
      if (std::optional<size_t> i = firstNonFinite(bytes, *b))
        return std::string(kind) + " '" + b->name + "' [" + std::to_string(*i) +
               "] = " + formatValue(floatAt(bytes, b->info.dtype, *i));
    }
  return "none (only a scalar checked was)";
}

std::string progressLine(const StepResult &r, const TrainProgram &t,
                         int64_t step, int64_t steps, double tokensPerSecond) {
  char head[96];
  std::snprintf(head, sizeof(head), "step %lld/%lld loss %.4f",
                static_cast<long long>(step), static_cast<long long>(steps),
                r.total);
  std::string line = head;
  for (size_t m = 0; m < t.modalities.size(); ++m) {
    char value[32] = "-";
    if (r.perModality[m])
      std::snprintf(value, sizeof(value), "%.4f", *r.perModality[m]);
    line += std::string(m ? ", " : " (") + t.modalities[m].name + " " + value;
  }
  char tail[96];
  std::snprintf(tail, sizeof(tail), ") %.0f tok/s lr %.3g grad_norm %.3g",
                tokensPerSecond, r.lr, r.gradNorm);
  return line + (t.modalities.empty() ? tail + 1 : tail);
}

} // namespace

int main(int argc, char **argv) {
  Options options = parseOptions(argc, argv);

  // Everything is read and checked before anything is written.
  moma_program program = nullptr;
  check(moma_program_load(options.program.c_str(), &program),
        "cannot load the program");
  TrainProgram t = describeProgram(program, options.program);
  absl::StatusOr<FileIdentity> programId = identifyFile(options.program);
  check(programId.status());
  absl::StatusOr<TrainRows> rows =
      readTrainRows(options.data, t.modalities, t.length);
  check(rows.status());
  absl::StatusOr<FileIdentity> dataId = identifyFile(options.data);
  check(dataId.status());

  CheckpointState state;
  state.seed = options.seed.value_or(0);
  state.shuffle = options.shuffle.value_or(true);
  state.program = *programId;
  state.data = *dataId;
  std::string resumeDir;
  if (!options.resume.empty()) {
    resumeDir = checkpointDirectory(options.resume);
    absl::StatusOr<CheckpointState> saved = readCheckpointState(resumeDir);
    check(saved.status(), "--resume");
    if (saved->program.size != programId->size ||
        saved->program.hash != programId->hash)
      fatal("--resume: the checkpoint in " + resumeDir +
            " is of another program (" + saved->program.file + ", not " +
            options.program + ")");
    if (saved->data.size != dataId->size || saved->data.hash != dataId->hash)
      fatal("--resume: the checkpoint in " + resumeDir +
            " was trained on other data (" + saved->data.file + ", not " +
            options.data + ")");
    if (options.seed && *options.seed != saved->seed)
      fatal("--resume: --seed " + std::to_string(*options.seed) +
            " differs from the checkpoint's seed " +
            std::to_string(saved->seed));
    if (options.shuffle && *options.shuffle != saved->shuffle)
      fatal("--resume: --shuffle differs from the checkpoint's");
    if (saved->rowsConsumed != uint64_t(saved->step) * t.rowsPerStep)
      fatal("--resume: damaged checkpoint: rows_consumed " +
            std::to_string(saved->rowsConsumed) + " is not step " +
            std::to_string(saved->step) + " x " +
            std::to_string(t.rowsPerStep) + " rows per step");
    if (saved->step >= options.steps)
      fatal("--resume: the checkpoint is at step " +
            std::to_string(saved->step) + "; --steps " +
            std::to_string(options.steps) + " leaves nothing to do");
    saved->program = *programId;
    saved->data = *dataId;
    state = *saved;
  } else if (isDirectory(options.out + "/checkpoint")) {
    fatal(options.out +
          " already holds a checkpoint; continue it with "
          "--resume " +
          options.out + ", or train into another --out");
  }

  std::string device = options.device;
  if (device.empty())
    device =
        std::string(moma_program_target(program)) == "cpu" ? "cpu" : "cuda";
  moma_session_options sessionOptions = {};
  if (device == "cpu")
    sessionOptions.cpu_threads = static_cast<int>(options.threads);
  moma_session session = nullptr;
  check(moma_session_create_with_options(
            program, device == "cpu" ? MOMA_DEVICE_CPU : MOMA_DEVICE_CUDA, 0,
            &sessionOptions, &session),
        "cannot run on " + device);
  if (resumeDir.empty()) {
    check(moma_session_load_weights(session, options.weights.c_str(), nullptr),
          "cannot load the weights");
  } else {
    if (!options.weights.empty())
      std::fprintf(stderr, "moma-train: note: --resume: the weights come "
                           "from the checkpoint; --weights is not used\n");
    std::string weightsPath = resumeDir + "/" + kWeightsFile;
    check(moma_session_load_weights(session, weightsPath.c_str(), nullptr),
          "--resume: damaged checkpoint");
    loadTensors(session, resumeDir + "/" + kOptimizerFile, t.states);
  }

  // Now the output directory.
  if (!isDirectory(options.out) && ::mkdir(options.out.c_str(), 0777) != 0)
    fatal(options.out +
          ": cannot create the directory: " + std::strerror(errno));
  FILE *metrics = openMetrics(options.out, resumeDir.empty() ? 0 : state.step);

  const char *model = moma_program_metadata(program, "model");
  int64_t ab = t.rowsPerStep, length = t.length;
  size_t cells = size_t(ab * length);
  std::vector<int32_t> ids(cells), modality(cells), targets(cells),
      targetModality(cells);
  RowOrder order(uint64_t(rows->rows), state.seed, state.shuffle);
  bool terminal = ::isatty(STDOUT_FILENO);
  int64_t first = state.step + 1;
  int64_t lastCheckpoint = resumeDir.empty() ? 0 : state.step;
  int64_t every = std::max<int64_t>(1, (options.steps - first + 1) / 100);
  std::printf("moma-train: %s on %s: %lld rows of %lld tokens, %lld per step; "
              "steps %lld to %lld\n",
              options.program.c_str(), moma_session_device_name(session),
              static_cast<long long>(rows->rows),
              static_cast<long long>(length), static_cast<long long>(ab),
              static_cast<long long>(first),
              static_cast<long long>(options.steps));
  std::fflush(stdout);

  for (int64_t step = first; step <= options.steps; ++step) {
    auto start = std::chrono::steady_clock::now();
    uint64_t position = uint64_t(step - 1) * uint64_t(ab);
    for (int64_t slot = 0; slot < ab; ++slot)
      rows->fill(int64_t(order.rowAt(position + slot)), slot, ids, modality,
                 targets, targetModality);
    for (auto [name, values] :
         {std::pair<const char *, std::vector<int32_t> *>{"ids", &ids},
          {"modality", &modality},
          {"targets", &targets},
          {"target_modality", &targetModality}})
      check(moma_session_set_buffer(session, name, values->data(),
                                    values->size() * 4),
            name);
    check(moma_session_set_buffer(session, "step", &step, sizeof(step)),
          "step");
    check(moma_session_run(session), "step " + std::to_string(step));

    StepResult r;
    bool finite = true;
    for (const Buffer *b : t.outputs) {
      std::string bytes = readBytes(session, *b);
      finite = finite && !firstNonFinite(bytes, *b);
      if (!isFloat(b->info.dtype))
        continue;
      if (b->name == "ce_per_modality") {
        for (size_t m = 0; m < t.modalities.size() && m < b->elements(); ++m)
          r.perModality.push_back(floatAt(bytes, b->info.dtype, m));
      } else if (b->info.rank == 0 &&
                 (b->name == "load_balancing" || b->name == "router_z" ||
                  b->name == "aux_router")) {
        r.extraLosses.emplace_back(b->name, floatAt(bytes, b->info.dtype, 0));
      }
    }
    r.perModality.resize(t.modalities.size());
    for (size_t m = 0; m < t.modalities.size(); ++m) {
      r.targets.push_back(
          std::count(targetModality.begin(), targetModality.end(), int32_t(m)));
      if (!r.targets[m])
        r.perModality[m].reset();
    }
    r.total = scalarOutput(session, t, "total");
    r.lr = scalarOutput(session, t, "lr");
    r.gradNorm = scalarOutput(session, t, "grad_norm");
    r.ce = t.find("ce") ? scalarOutput(session, t, "ce") : r.total;
    if (!finite) {
      std::string stop =
          "step " + std::to_string(step) +
          ": the loss is not finite (total = " + formatValue(r.total) +
          "): first non-finite tensor: " + describeNonFinite(session, t) +
          "; training stopped, ";
      fatal(stop + (lastCheckpoint
                        ? "the last good checkpoint (step " +
                              std::to_string(lastCheckpoint) + ") in " +
                              options.out + "/checkpoint is untouched"
                        : std::string("no checkpoint was written")));
    }
    for (const Buffer *b : t.expertOffsets) {
      std::string bytes = readBytes(session, *b);
      std::vector<int64_t> counts;
      for (size_t e = 0; e + 1 < b->elements(); ++e) {
        int32_t lo, hi;
        std::memcpy(&lo, bytes.data() + 4 * e, 4);
        std::memcpy(&hi, bytes.data() + 4 * e + 4, 4);
        counts.push_back(int64_t(hi) - lo);
      }
      r.expertLoad.emplace_back(b->name.substr(sizeof("expert_offsets:") - 1),
                                counts);
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    state.elapsedSeconds += seconds;
    double tokensPerSecond = seconds > 0 ? double(cells) / seconds : 0;

    nlohmann::ordered_json line;
    line["step"] = step;
    nlohmann::ordered_json loss = {{"total", r.total}, {"ce", r.ce}};
    for (const auto &[name, value] : r.extraLosses)
      loss[name] = value;
    nlohmann::ordered_json perModality = nlohmann::ordered_json::object(),
                           targetCounts = nlohmann::ordered_json::object();
    for (size_t m = 0; m < t.modalities.size(); ++m) {
      perModality[t.modalities[m].name] =
          r.perModality[m] ? nlohmann::ordered_json(*r.perModality[m])
                           : nlohmann::ordered_json(nullptr);
      targetCounts[t.modalities[m].name] = r.targets[m];
    }
    loss["ce_per_modality"] = perModality;
    line["loss"] = loss;
    line["targets"] = targetCounts;
    line["lr"] = r.lr;
    line["grad_norm"] = r.gradNorm;
    line["tokens"] = cells;
    line["tokens_per_s"] = tokensPerSecond;
    line["elapsed_s"] = state.elapsedSeconds;
    nlohmann::ordered_json load = nlohmann::ordered_json::object();
    for (const auto &[route, counts] : r.expertLoad)
      load[route] = counts;
    line["expert_load"] = load;
    std::string text = line.dump() + "\n";
    if (std::fwrite(text.data(), 1, text.size(), metrics) != text.size() ||
        std::fflush(metrics) != 0)
      fatal(options.out + "/metrics.jsonl: write failed");

    if (!options.quiet) {
      std::string progress =
          progressLine(r, t, step, options.steps, tokensPerSecond);
      if (terminal) {
        constexpr int kWidth = 24;
        int filled = int(kWidth * step / options.steps);
        std::printf("\r[%s%s] %s\033[K%s", std::string(filled, '#').c_str(),
                    std::string(kWidth - filled, '.').c_str(), progress.c_str(),
                    step == options.steps ? "\n" : "");
        progressBarOpen = step != options.steps;
      } else if (step == first || step == options.steps ||
                 (step - first + 1) % every == 0) {
        std::printf("moma-train: %s\n", progress.c_str());
      }
      std::fflush(stdout);
    }

    state.step = step;
    state.rowsConsumed = uint64_t(step) * uint64_t(ab);
    if (step == options.steps ||
        (options.checkpointEvery && step % options.checkpointEvery == 0)) {
      check(writeCheckpoint(
                options.out, state,
                tensorsFile(session, t.weights, "moma-weights", model),
                tensorsFile(session, t.states, "moma-optimizer-state", model)),
            "checkpoint");
      lastCheckpoint = step;
      if (!options.quiet && !terminal)
        std::printf("moma-train: checkpoint at step %lld -> %s/checkpoint\n",
                    static_cast<long long>(step), options.out.c_str());
    }
  }
  std::fclose(metrics);
  std::printf("moma-train: done: step %lld, %.3g s of training; weights in "
              "%s/checkpoint/%s\n",
              static_cast<long long>(state.step), state.elapsedSeconds,
              options.out.c_str(), kWeightsFile);
  moma_session_free(session);
  moma_program_free(program);
  return 0;
}
