//===- GpuProgram.cpp - moma IR to GPU programs (PTX + launches) ----------===//
//
// Runs moma-to-ptx, then reads the host function it leaves (allocations,
// constants, gpu.launch_func) into a program: an arena plan and a launch
// list, with the PTX of the one gpu.module as the program's module and the
// cubin ptxas assembles from it as that module's alternative image.
//
//===----------------------------------------------------------------------===//

#include "moma/Target/GpuProgram.h"
#include "moma/Format/ProgramBuilder.h"
#include "moma/Target/ProgramCompiler.h"

#include "dialects/moma/MomaDialect.h"
#include "passes/Pipelines/Pipelines.h"
#include "passes/Support/ScratchPlanner.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

using namespace mlir;
using namespace moma;
using moma::runtime::BufferRole;
using moma::runtime::ElementType;
using moma::runtime::LaunchArg;

namespace {
/// Alignment of the arena and of every buffer in it.
constexpr uint64_t kArenaAlignment = 256;

/// One memref.alloc of the host function: a scratch buffer.
struct ScratchBuffer {
  std::string name;
  ElementType type;
  std::vector<int64_t> shape;
  uint64_t byteSize = 0;
  /// Launch indices of the first and last use; first > last when unused.
  size_t first = std::numeric_limits<size_t>::max();
  size_t last = 0;
  uint64_t offset = 0;
};

/// A launch whose buffer arguments still name buffers.
struct PendingLaunch {
  std::string kernel;
  runtime::Dim3 grid, block;
  uint32_t sharedMemBytes = 0;
  /// Per argument: a buffer (function argument i, or scratch i), or a
  /// scalar.
  struct Arg {
    enum Kind { Argument, Scratch, Scalar } kind;
    size_t index = 0;
    LaunchArg scalar;
  };
  std::vector<Arg> args;
};

llvm::Error errorAt(Operation *op, const Twine &message) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << op->getLoc() << ": '" << op->getName() << "' " << message;
  return llvm::createStringError(text);
}

/// Describes the buffer of an allocation. Element types the runtime has no
/// name for (i1 and other narrow integers, stored one byte per element by
/// NVPTX) are described as the i32 words that cover their bytes: scratch
/// buffers are never read or written by the caller.
llvm::Expected<ScratchBuffer> describeScratch(Operation *alloc, MemRefType type,
                                              size_t index) {
  if (!type.hasStaticShape() || !type.getLayout().isIdentity())
    return errorAt(alloc, "allocates a buffer without a static shape and an "
                          "identity layout; the arena plan needs both");
  if (type.getMemorySpace())
    return errorAt(alloc, "allocates in a memory space; the arena is global "
                          "memory");
  Type element = type.getElementType();
  uint64_t elementBytes = moma::elementStorageBytes(element);
  if (elementBytes == 0)
    return errorAt(alloc, "allocates a buffer of a non-scalar element type");
  ScratchBuffer scratch;
  scratch.name = "scratch." + std::to_string(index);
  uint64_t count = type.getNumElements();
  if (elementBytes != 0 &&
      count > std::numeric_limits<uint64_t>::max() / elementBytes)
    return errorAt(alloc, "allocates more bytes than fit in 64 bits");
  scratch.byteSize = count * elementBytes;
  llvm::Expected<ElementType> known = moma::runtimeElementType(element);
  if (known) {
    scratch.type = *known;
    scratch.shape.assign(type.getShape().begin(), type.getShape().end());
  } else {
    llvm::consumeError(known.takeError());
    scratch.type = ElementType::I32;
    scratch.shape = {int64_t((scratch.byteSize + 3) / 4)};
    scratch.byteSize = uint64_t(scratch.shape[0]) * 4;
  }
  return scratch;
}

/// Reads one constant launch dimension.
llvm::Expected<uint32_t> constantDim(gpu::LaunchFuncOp launch, Value value,
                                     StringRef what, uint64_t limit) {
  std::optional<int64_t> constant = getConstantIntValue(value);
  if (!constant)
    return errorAt(launch, "launches " + launch.getKernelName().getValue() +
                               " with a " + what +
                               " that is not a constant; the schedule is "
                               "static");
  if (*constant < 1 || uint64_t(*constant) > limit)
    return errorAt(launch, "launches " + launch.getKernelName().getValue() +
                               " with " + what + " " +
                               std::to_string(*constant) + ", outside [1, " +
                               std::to_string(limit) + "]");
  return uint32_t(*constant);
}

/// A scalar launch argument from a constant.
llvm::Expected<LaunchArg> scalarArgument(gpu::LaunchFuncOp launch, Value value,
                                         unsigned position) {
  Attribute attr;
  if (!matchPattern(value, m_Constant(&attr)))
    return errorAt(launch, "passes argument " + std::to_string(position) +
                               " to " + launch.getKernelName().getValue() +
                               ", which is neither a buffer nor a constant");
  Type type = value.getType();
  if (auto integer = dyn_cast<IntegerAttr>(attr)) {
    if (type.isIndex() || type.isInteger(64))
      return LaunchArg::i64(integer.getValue().getSExtValue());
    if (type.isInteger(32))
      return LaunchArg::i32(int32_t(integer.getValue().getSExtValue()));
  }
  if (auto real = dyn_cast<FloatAttr>(attr)) {
    if (type.isF32())
      return LaunchArg::f32(real.getValue().convertToFloat());
    if (type.isF64())
      return LaunchArg::f64(real.getValue().convertToDouble());
  }
  std::string text;
  llvm::raw_string_ostream(text) << type;
  return errorAt(launch, "passes argument " + std::to_string(position) +
                             " to " + launch.getKernelName().getValue() +
                             " of type " + text +
                             ", which the runtime cannot pass (i32, i64, "
                             "f32, f64 and index only)");
}

/// Places the scratch buffers above `base` (planLiveIntervals, by launch
/// positions) and returns the end of the scratch region.
uint64_t planScratch(std::vector<ScratchBuffer> &scratch, uint64_t base,
                     uint64_t alignment, bool reuse) {
  std::vector<moma::LiveInterval> intervals;
  for (const ScratchBuffer &buffer : scratch)
    intervals.push_back({buffer.byteSize, buffer.first, buffer.last});
  uint64_t end = moma::planLiveIntervals(intervals, base, alignment, reuse);
  for (auto [buffer, interval] : llvm::zip_equal(scratch, intervals))
    buffer.offset = interval.offset;
  return end;
}

/// The CUDA toolkit whose libdevice MLIR's NVVM target links for the math
/// functions: the one CUDA_ROOT, CUDA_HOME or CUDA_PATH names (strictly),
/// else the first of the toolkit of the `ptxas` on PATH, /usr/local/cuda and
/// /usr/lib/cuda (Debian's layout) that has nvvm/libdevice/libdevice.10.bc.
llvm::Expected<std::string> findToolkit() {
  auto libdeviceOf = [](StringRef toolkit) {
    llvm::SmallString<256> path(toolkit);
    llvm::sys::path::append(path, "nvvm", "libdevice", "libdevice.10.bc");
    return std::string(path);
  };
  for (const char *variable : {"CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"}) {
    const char *value = std::getenv(variable);
    if (!value || !*value)
      continue;
    std::string libdevice = libdeviceOf(value);
    if (!llvm::sys::fs::is_regular_file(libdevice))
      return llvm::createStringError(
          "the GPU back end links CUDA's libdevice for the math functions, "
          "and " +
          libdevice + " does not exist (" + variable + "=" + value +
          "); install the CUDA toolkit or point " + variable + " at one");
    return std::string(value);
  }
  std::vector<std::string> candidates;
  if (llvm::ErrorOr<std::string> ptxas =
          llvm::sys::findProgramByName("ptxas")) {
    llvm::SmallString<256> real;
    if (!llvm::sys::fs::real_path(*ptxas, real))
      candidates.push_back(
          llvm::sys::path::parent_path(llvm::sys::path::parent_path(real))
              .str());
  }
  candidates.push_back("/usr/local/cuda");
  candidates.push_back("/usr/lib/cuda");
  for (const std::string &toolkit : candidates)
    if (llvm::sys::fs::is_regular_file(libdeviceOf(toolkit)))
      return toolkit;
  std::string tried;
  for (const std::string &toolkit : candidates)
    tried += (tried.empty() ? "" : ", ") + libdeviceOf(toolkit);
  return llvm::createStringError(
      "the GPU back end links CUDA's libdevice for the math functions, and "
      "none was found (tried " +
      tried + "); install the CUDA toolkit or point CUDA_HOME at one");
}
/// The ptxas to assemble cubins with: `requested` if given (an error if it
/// is not an executable), else `toolkit`/bin/ptxas, else the first on PATH;
/// std::nullopt when there is none.
llvm::Expected<std::optional<std::string>> findPtxas(StringRef requested,
                                                     StringRef toolkit) {
  if (!requested.empty()) {
    if (!llvm::sys::fs::can_execute(requested))
      return llvm::createStringError("--ptxas=" + requested +
                                     ": not an executable file");
    return std::optional<std::string>(requested.str());
  }
  llvm::SmallString<256> bundled(toolkit);
  llvm::sys::path::append(bundled, "bin", "ptxas");
  if (llvm::sys::fs::can_execute(bundled))
    return std::optional<std::string>(std::string(bundled));
  if (llvm::ErrorOr<std::string> onPath = llvm::sys::findProgramByName("ptxas"))
    return std::optional<std::string>(*onPath);
  return std::optional<std::string>();
}

/// Assembles `ptx` for `chip` with `ptxas` and returns the cubin's bytes;
/// passes what ptxas writes on success (its warnings) to `warn`, line by
/// line.
llvm::Expected<std::string>
assembleCubin(StringRef ptxas, StringRef ptx, StringRef chip,
              const std::function<void(const std::string &)> &warn) {
  llvm::SmallString<128> input, output, log;
  for (auto [path, suffix] :
       {std::pair{&input, "ptx"}, std::pair{&output, "cubin"},
        std::pair{&log, "log"}})
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("moma-kernels", suffix, *path))
      return llvm::createStringError("cannot create a temporary file for "
                                     "ptxas: " +
                                     ec.message());
  llvm::FileRemover removeInput(input), removeOutput(output), removeLog(log);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(input, ec);
    if (ec)
      return llvm::createStringError(input + ": " + ec.message());
    os << ptx;
    os.close();
    if (os.has_error())
      return llvm::createStringError(input + ": write error");
  }
  std::string arch = ("-arch=" + chip).str();
  llvm::SmallVector<StringRef> args = {ptxas, arch, "-O3", "--warn-on-spills",
                                       input, "-o", output};
  std::optional<StringRef> redirects[] = {StringRef(""), log, log};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(ptxas, args, /*Env=*/std::nullopt,
                                         redirects, /*SecondsToWait=*/0,
                                         /*MemoryLimit=*/0, &message);
  auto slurp = [](StringRef path) -> std::string {
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
        llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                    /*RequiresNullTerminator=*/false);
    return buffer ? (*buffer)->getBuffer().str() : std::string();
  };
  if (status != 0) {
    std::string text = StringRef(slurp(log)).trim().str();
    return llvm::createStringError(
        ptxas + " " + arch + " failed" +
        (status < 0 ? " to run (" + message + ")"
                    : " with exit status " + std::to_string(status)) +
        (text.empty() ? "" : ":\n" + text) +
        "\n(momac --cubin=never writes the program with PTX only)");
  }
  if (warn) {
    llvm::SmallVector<StringRef> lines;
    std::string text = slurp(log);
    StringRef(text).split(lines, '\n', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
    for (StringRef line : lines)
      if (!line.trim().empty())
        warn(("ptxas " + arch + ": " + line.trim()).str());
  }
  std::string cubin = slurp(output);
  if (!StringRef(cubin).starts_with("\x7f"
                                    "ELF"))
    return llvm::createStringError(ptxas + " " + arch + " wrote no ELF cubin");
  return cubin;
}
} // namespace

namespace moma {
std::optional<runtime::Target> parseGpuTarget(StringRef chip) {
  if (chip == "sm_80")
    return runtime::Target::Sm80;
  if (chip == "sm_90")
    return runtime::Target::Sm90;
  if (chip == "sm_90a")
    return runtime::Target::Sm90a;
  return std::nullopt;
}

llvm::Expected<runtime::Program>
compileGpuProgram(ModuleOp module, StringRef chip,
                  const GpuProgramOptions &options) {
  std::optional<runtime::Target> target = parseGpuTarget(chip);
  if (!target)
    return llvm::createStringError("unknown GPU target '" + chip +
                                   "' (expected sm_80, sm_90 or sm_90a)");
  llvm::Expected<std::vector<ProgramArgument>> buffers = prepareForward(module);
  if (!buffers)
    return buffers.takeError();
  llvm::Expected<std::string> toolkit = findToolkit();
  if (!toolkit)
    return toolkit.takeError();
  std::optional<std::string> ptxas;
  if (options.cubin != CubinPolicy::Never) {
    llvm::Expected<std::optional<std::string>> found =
        findPtxas(options.ptxas, *toolkit);
    if (!found)
      return found.takeError();
    ptxas = std::move(*found);
    if (!ptxas && options.cubin == CubinPolicy::Always)
      return llvm::createStringError(
          "--cubin=always needs ptxas, and there is none in " + *toolkit +
          "/bin or on PATH (name one with --ptxas=PATH)");
  }
  runtime::ProgramBuilder builder(*target, kArenaAlignment);
  recordModelMetadata(module, builder);

  if (llvm::Error err = runLoweringPipeline(
          module,
          [&](OpPassManager &pm) {
            moma::GpuPipelineOptions pipeline;
            pipeline.chip = chip.str();
            pipeline.toolkit = *toolkit;
            pipeline.vocabChunk = options.vocabChunk;
            pipeline.permuteModality = options.permuteModality;
            moma::buildMomaToGpuPipeline(pm, pipeline);
          },
          "the GPU (" + chip.str() + ")"))
    return std::move(err);

  // The PTX of the one gpu.module.
  std::string ptx;
  for (auto binary : module.getOps<gpu::BinaryOp>()) {
    if (!ptx.empty())
      return errorAt(binary, "is a second GPU binary; moma-to-ptx makes one");
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly)
        return errorAt(binary, "does not hold PTX text");
      ptx = object.getObject().getValue().str();
    }
  }

  // The host function: arguments are the buffers, in order.
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward || forward.getNumArguments() != buffers->size() ||
      forward.getNumResults() != 0)
    return llvm::createStringError(
        "internal error: @forward does not take one buffer per input, "
        "weight and output after moma-to-ptx");
  for (auto [arg, buffer] : llvm::zip_equal(forward.getArguments(), *buffers)) {
    auto type = dyn_cast<MemRefType>(arg.getType());
    if (!type || type.getShape() != buffer.type.getShape() ||
        type.getElementType() != buffer.type.getElementType())
      return llvm::createStringError("internal error: @forward's buffer '" +
                                     buffer.name +
                                     "' changed type in moma-to-ptx");
  }

  std::vector<ScratchBuffer> scratch;
  llvm::DenseMap<Value, size_t> scratchOf;
  std::vector<PendingLaunch> launches;
  std::vector<std::string> kernels;
  llvm::StringSet<> kernelSet;
  for (Operation &op : forward.getBody().front()) {
    if (isa<func::ReturnOp, memref::DeallocOp>(op) ||
        op.hasTrait<OpTrait::ConstantLike>())
      continue;
    if (isa<memref::AllocOp, memref::AllocaOp>(op)) {
      auto type = cast<MemRefType>(op.getResult(0).getType());
      llvm::Expected<ScratchBuffer> buffer =
          describeScratch(&op, type, scratch.size());
      if (!buffer)
        return buffer.takeError();
      scratchOf[op.getResult(0)] = scratch.size();
      scratch.push_back(std::move(*buffer));
      continue;
    }
    auto launchOp = dyn_cast<gpu::LaunchFuncOp>(op);
    if (!launchOp)
      return errorAt(&op, "is left on the host by moma-to-ptx; GPU programs "
                          "only allocate and launch");
    if (launchOp.getKernelModuleName().getValue() != "kernels")
      return errorAt(&op, "launches a kernel outside the 'kernels' module");
    PendingLaunch launch;
    launch.kernel = launchOp.getKernelName().getValue().str();
    if (kernelSet.insert(launch.kernel).second)
      kernels.push_back(launch.kernel);
    constexpr uint64_t kGridX = (uint64_t(1) << 31) - 1, kGridYZ = 65535;
    gpu::KernelDim3 grid = launchOp.getGridSizeOperandValues();
    gpu::KernelDim3 block = launchOp.getBlockSizeOperandValues();
    struct {
      Value value;
      const char *what;
      uint64_t limit;
      uint32_t *out;
    } dims[] = {{grid.x, "grid x", kGridX, &launch.grid.x},
                {grid.y, "grid y", kGridYZ, &launch.grid.y},
                {grid.z, "grid z", kGridYZ, &launch.grid.z},
                {block.x, "block x", 1024, &launch.block.x},
                {block.y, "block y", 1024, &launch.block.y},
                {block.z, "block z", 64, &launch.block.z}};
    for (auto &dim : dims) {
      llvm::Expected<uint32_t> value =
          constantDim(launchOp, dim.value, dim.what, dim.limit);
      if (!value)
        return value.takeError();
      *dim.out = *value;
    }
    if (Value shared = launchOp.getDynamicSharedMemorySize()) {
      std::optional<int64_t> bytes = getConstantIntValue(shared);
      if (!bytes || *bytes < 0 || *bytes > std::numeric_limits<int32_t>::max())
        return errorAt(&op, "has a dynamic shared memory size that is not a "
                            "non-negative constant");
      launch.sharedMemBytes = uint32_t(*bytes);
    }
    size_t index = launches.size();
    for (auto [position, value] :
         llvm::enumerate(launchOp.getKernelOperands())) {
      PendingLaunch::Arg arg;
      if (auto blockArg = dyn_cast<BlockArgument>(value);
          blockArg && blockArg.getOwner()->getParentOp() == forward) {
        arg.kind = PendingLaunch::Arg::Argument;
        arg.index = blockArg.getArgNumber();
      } else if (auto it = scratchOf.find(value); it != scratchOf.end()) {
        arg.kind = PendingLaunch::Arg::Scratch;
        arg.index = it->second;
        ScratchBuffer &buffer = scratch[arg.index];
        buffer.first = std::min(buffer.first, index);
        buffer.last = std::max(buffer.last, index);
      } else if (isa<MemRefType>(value.getType())) {
        return errorAt(&op, "passes argument " + std::to_string(position) +
                                " to " + launch.kernel +
                                ", a buffer that is neither an argument of "
                                "@forward nor an allocation");
      } else {
        llvm::Expected<LaunchArg> scalar =
            scalarArgument(launchOp, value, position);
        if (!scalar)
          return scalar.takeError();
        arg.kind = PendingLaunch::Arg::Scalar;
        arg.scalar = *scalar;
      }
      launch.args.push_back(arg);
    }
    launches.push_back(std::move(launch));
  }
  if (launches.empty() || ptx.empty())
    return llvm::createStringError(
        "internal error: moma-to-ptx produced no kernels");

  // The arena: inputs, weights and outputs in order, then scratch space.
  llvm::Expected<std::vector<uint64_t>> argumentOffsets =
      addProgramBuffers(*buffers, builder);
  if (!argumentOffsets)
    return argumentOffsets.takeError();
  uint64_t base = builder.endOfBuffers();
  uint64_t arenaEnd =
      planScratch(scratch, base, kArenaAlignment, options.reuseScratch);
  for (const ScratchBuffer &buffer : scratch)
    if (buffer.first <= buffer.last)
      builder.addBufferAt(buffer.name, BufferRole::Scratch, buffer.type,
                          buffer.shape, buffer.offset);
  builder.setArenaSize(std::max(arenaEnd, base));

  std::string cubin;
  if (ptxas) {
    llvm::Expected<std::string> assembled =
        assembleCubin(*ptxas, ptx, chip, options.warn);
    if (!assembled)
      return assembled.takeError();
    cubin = std::move(*assembled);
  }
  uint32_t module_ = builder.addModule(runtime::ModuleFormat::Ptx,
                                       std::move(ptx), kernels, "kernels");
  if (!cubin.empty())
    builder.addModuleAlternative(module_, runtime::ModuleFormat::Cubin,
                                 std::move(cubin));
  for (PendingLaunch &launch : launches) {
    std::vector<LaunchArg> args;
    for (const PendingLaunch::Arg &arg : launch.args) {
      switch (arg.kind) {
      case PendingLaunch::Arg::Argument:
        args.push_back(LaunchArg::buffer((*argumentOffsets)[arg.index]));
        break;
      case PendingLaunch::Arg::Scratch:
        args.push_back(LaunchArg::buffer(scratch[arg.index].offset));
        break;
      case PendingLaunch::Arg::Scalar:
        args.push_back(arg.scalar);
        break;
      }
    }
    builder.addLaunch(module_, launch.kernel, launch.grid, launch.block,
                      std::move(args), launch.sharedMemBytes);
  }
  return buildProgram(builder);
}
} // namespace moma
