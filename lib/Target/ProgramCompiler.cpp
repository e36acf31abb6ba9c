//===- ProgramCompiler.cpp - moma IR to compiled programs -----------------===//

#include "moma/Target/ProgramCompiler.h"
#include "moma/Format/ModalityMetadata.h"
#include "moma/Format/ProgramBuilder.h"
#include "moma/Target/CpuObject.h"

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaOps.h"
#include "passes/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using moma::runtime::BufferRole;
using moma::runtime::ElementType;

namespace moma {
llvm::Expected<ElementType> runtimeElementType(Type type) {
  if (type.isF32())
    return ElementType::F32;
  if (type.isF64())
    return ElementType::F64;
  if (type.isBF16())
    return ElementType::BF16;
  if (type.isF16())
    return ElementType::F16;
  if (type.isInteger(32))
    return ElementType::I32;
  if (type.isInteger(64) || type.isIndex())
    return ElementType::I64;
  std::string text;
  llvm::raw_string_ostream(text) << type;
  return llvm::createStringError("no runtime element type for " + text);
}

llvm::Expected<std::vector<ProgramArgument>> prepareForward(ModuleOp module) {
  auto func = module.lookupSymbol<func::FuncOp>("forward");
  if (!func)
    return llvm::createStringError("the module has no @forward function");
  std::vector<ProgramArgument> buffers;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    std::pair<StringRef, BufferRole> roles[] = {
        {moma::MomaDialect::getInputAttrName(), BufferRole::Input},
        {moma::MomaDialect::getWeightAttrName(), BufferRole::Weight},
        {moma::MomaDialect::getStateAttrName(), BufferRole::State}};
    std::optional<ProgramArgument> buffer;
    for (auto [attr, role] : roles)
      if (auto name = func.getArgAttrOfType<StringAttr>(i, attr))
        buffer = ProgramArgument{name.getValue().str(), role, type};
    if (!type || !buffer)
      return llvm::createStringError(
          "@forward argument " + std::to_string(i) +
          " is not a named tensor input, weight or optimizer state");
    buffers.push_back(*buffer);
  }
  // A train program's `moma.updates` results replace a weight or a state
  // buffer in place: they are no buffers of their own, and bufferization
  // drops them (drop-equivalent-buffer-results), which needs the arguments
  // they replace to be writable.
  bool updatesInPlace = false;
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getResultTypes()[i]);
    if (auto updates = func.getResultAttrOfType<StringAttr>(
            i, moma::MomaDialect::getUpdatesAttrName())) {
      auto target = llvm::find_if(buffers, [&](const ProgramArgument &b) {
        return b.role != BufferRole::Input && b.name == updates.getValue();
      });
      if (target == buffers.end() || target->type != type)
        return llvm::createStringError(
            "@forward result " + std::to_string(i) + " updates '" +
            updates.getValue().str() +
            "', which is no weight or state argument of its type");
      updatesInPlace = true;
      continue;
    }
    auto output = func.getResultAttrOfType<StringAttr>(
        i, moma::MomaDialect::getOutputAttrName());
    if (!type || !output)
      return llvm::createStringError("@forward result " + std::to_string(i) +
                                     " is not a named tensor output");
    buffers.push_back({output.getValue().str(), BufferRole::Output, type});
  }
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
    func.setArgAttr(
        i, "bufferization.writable",
        BoolAttr::get(module.getContext(),
                      updatesInPlace && buffers[i].role != BufferRole::Input));
  return buffers;
}

llvm::Expected<std::vector<uint64_t>>
addProgramBuffers(ArrayRef<ProgramArgument> buffers,
                  runtime::ProgramBuilder &builder) {
  std::vector<uint64_t> offsets;
  for (const ProgramArgument &buffer : buffers) {
    llvm::Expected<ElementType> type =
        runtimeElementType(buffer.type.getElementType());
    if (!type)
      return type.takeError();
    offsets.push_back(
        builder.addBuffer(buffer.name, buffer.role, *type,
                          std::vector<int64_t>(buffer.type.getShape().begin(),
                                               buffer.type.getShape().end())));
  }
  return offsets;
}

void recordModelMetadata(ModuleOp module, runtime::ProgramBuilder &builder) {
  if (std::optional<StringRef> name = module.getSymName())
    builder.setMetadata("model", name->str());
  if (auto modalities = module->getAttrOfType<ArrayAttr>(
          moma::MomaDialect::getModalitiesAttrName())) {
    std::vector<runtime::TokenModality> list;
    for (Attribute attr : modalities)
      if (auto modality = dyn_cast<moma::ModalityAttr>(attr))
        list.push_back({modality.getName().getValue().str(),
                        modality.getTokenBegin(), modality.getTokenEnd()});
    auto [names, ranges] = runtime::formatModalityMetadata(list);
    builder.setMetadata("modalities", names);
    builder.setMetadata("modality_ranges", ranges);
  }
}

llvm::Error runLoweringPipeline(ModuleOp module,
                                llvm::function_ref<void(OpPassManager &)> build,
                                StringRef what) {
  MLIRContext *ctx = module.getContext();
  DialectRegistry registry;
  moma::registerPipelineDialects(registry);
  ctx->appendDialectRegistry(registry);

  std::string diagnostics;
  ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &diag) {
    llvm::raw_string_ostream os(diagnostics);
    os << diag.getLocation() << ": " << diag << "\n";
    for (const Diagnostic &note : diag.getNotes())
      if (note.getSeverity() == DiagnosticSeverity::Note &&
          !StringRef(note.str()).starts_with("see current operation"))
        os << note.getLocation() << ": note: " << note << "\n";
    return success();
  });
  PassManager pm(ctx);
  build(pm);
  if (failed(pm.run(module)))
    return llvm::createStringError("lowering for " + what + " failed:\n" +
                                   diagnostics);
  return llvm::Error::success();
}

/// An error naming the first memref.alloc left in `func`, if any.
static llvm::Error checkNoAllocations(func::FuncOp func) {
  Operation *first = nullptr;
  size_t count = 0;
  func.walk([&](Operation *op) {
    if (isa<memref::AllocOp, memref::ReallocOp>(op)) {
      if (!first)
        first = op;
      ++count;
    }
  });
  if (!first)
    return llvm::Error::success();
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "internal error: moma-scratch-arena left " << count
     << " allocation(s) in @forward that would be made at every run; the "
        "first, at "
     << first->getLoc() << ": " << *first;
  return llvm::createStringError(text);
}

llvm::Expected<runtime::Program>
compileCpuProgram(ModuleOp module, StringRef cpu, StringRef combine,
                  int64_t vocabChunk, bool permuteModality) {
  llvm::Expected<std::vector<ProgramArgument>> buffers = prepareForward(module);
  if (!buffers)
    return buffers.takeError();
  runtime::ProgramBuilder builder(runtime::Target::Cpu);
  // The runtime refuses a CPU below this level before loading the code.
  builder.setCpuLevel(cpu.str());
  recordModelMetadata(module, builder);

  // moma-to-cpu in its two halves, to read the scratch arena's size from
  // the bufferized function in between.
  moma::CpuPipelineOptions options;
  options.outParams = true;
  options.barePointers = true;
  options.scratchArena = true;
  options.cpu = cpu.str();
  options.combine = combine.str();
  options.vocabChunk = vocabChunk;
  options.permuteModality = permuteModality;
  if (llvm::Error err = runLoweringPipeline(
          module,
          [&](OpPassManager &pm) {
            moma::buildMomaToCpuBufferStage(pm, options);
          },
          "the CPU"))
    return std::move(err);
  // One argument per buffer, then at most the scratch arena's (checked
  // below); moma-drop-in-place-updates has removed the in-place updates.
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward || forward.getNumArguments() < buffers->size() ||
      forward.getNumArguments() > buffers->size() + 1)
    return llvm::createStringError(
        "internal error: @forward does not take one argument per buffer "
        "after bufferization");
  std::optional<uint64_t> scratchBytes;
  if (forward.getNumArguments() == buffers->size() + 1) {
    auto bytes = forward.getArgAttrOfType<IntegerAttr>(
        buffers->size(), moma::MomaDialect::getScratchAttrName());
    if (!bytes)
      return llvm::createStringError(
          "internal error: @forward has an argument that is neither a "
          "buffer of the model nor the scratch arena");
    scratchBytes = bytes.getInt();
  }
  // Every temporary must be in the arena: anything else would be allocated
  // at every run and never freed.
  if (llvm::Error err = checkNoAllocations(forward))
    return std::move(err);
  if (llvm::Error err = runLoweringPipeline(
          module,
          [&](OpPassManager &pm) { moma::buildCpuBuffersToLLVM(pm, options); },
          "the CPU"))
    return std::move(err);
  if (llvm::Error err =
          addPointerArrayWrapper(module, "forward", "moma_forward"))
    return std::move(err);
  llvm::Expected<std::vector<char>> library =
      compileToSharedObject(module, cpu);
  if (!library)
    return library.takeError();

  uint32_t kernels =
      builder.addModule(runtime::ModuleFormat::CpuSo,
                        std::string(library->begin(), library->end()),
                        {"moma_forward"}, "forward");
  llvm::Expected<std::vector<uint64_t>> offsets =
      addProgramBuffers(*buffers, builder);
  if (!offsets)
    return offsets.takeError();
  std::vector<runtime::LaunchArg> args;
  for (uint64_t offset : *offsets)
    args.push_back(runtime::LaunchArg::buffer(offset));
  if (scratchBytes) {
    // The arena's bytes, described as the i32 words that cover them (the
    // planner's alignment makes the size a multiple of 4); the caller never
    // reads or writes them.
    uint64_t offset =
        builder.addBuffer("scratch", runtime::BufferRole::Scratch,
                          ElementType::I32, {int64_t((*scratchBytes + 3) / 4)});
    args.push_back(runtime::LaunchArg::buffer(offset));
  }
  builder.addLaunch(kernels, "moma_forward", {}, {}, std::move(args));
  return buildProgram(builder);
}

llvm::Expected<runtime::Program>
buildProgram(runtime::ProgramBuilder &builder) {
  absl::StatusOr<runtime::Program> program = builder.build();
  if (!program.ok())
    return llvm::createStringError("internal error: invalid program: " +
                                   std::string(program.status().message()));
  return std::move(*program);
}
} // namespace moma
