//===- ProgramCompiler.h - moma IR to compiled programs ---------*- C++ -*-===//
//
// Turns the `@forward` function that momac builds into a compiled program
// (.momaprog, lib/Format/ProgramFormat.md): the kernels, one arena holding
// every input, weight, output and scratch buffer, and the launch schedule.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_TARGET_PROGRAMCOMPILER_H
#define MOMA_TARGET_PROGRAMCOMPILER_H

#include "moma/Format/Program.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/Error.h"

namespace moma {
namespace runtime {
/// moma/Format/ProgramBuilder.h (which brings absl, kept out of compiler
/// headers).
class ProgramBuilder;
} // namespace runtime

/// Compiles `module` (moma IR with a `@forward` whose arguments and results
/// carry `moma.input` / `moma.weight` / `moma.output` names) for a CPU of
/// the x86-64 feature level `cpu` ("x86-64-v3" or "x86-64-v4"): the kernel
/// layer's tiles for that level, `moma-to-cpu` with out-parameters, bare
/// pointers, OpenMP threads and the scratch
/// arena (every temporary a view of one planned byte buffer: the code
/// allocates nothing at run time, and an allocation left is an internal
/// error), one kernel `moma_forward(void **args)` in a shared object, and a
/// one-launch schedule over an arena of inputs, weights, outputs and the
/// `scratch` buffer (its bytes described as i32 words), passed last.
/// `combine` is moma-to-cpu's combine mode (deterministic or fast);
/// `vocabChunk`, when positive, replaces the cost model's vocabulary chunk
/// of the fused LM head (CpuPipelineOptions); `permuteModality` runs the
/// network in modality-sorted token order
/// (moma-hoist-modality-permutation). `module` is consumed.
llvm::Expected<runtime::Program>
compileCpuProgram(mlir::ModuleOp module, llvm::StringRef cpu = "x86-64-v3",
                  llvm::StringRef combine = "deterministic",
                  int64_t vocabChunk = 0, bool permuteModality = true);

/// One argument or result of `@forward` as a program buffer.
struct ProgramArgument {
  std::string name;
  runtime::BufferRole role;
  mlir::RankedTensorType type;
};

/// The buffers of `@forward` in `module`, in the order of its lowered
/// out-parameter signature: the named inputs, weights and optimizer state,
/// then the named outputs (a train program's `moma.updates` results are no
/// buffers: they replace their weight or state in place). Also marks
/// `@forward`'s arguments `bufferization.writable`: inputs never, as they
/// are set once while the schedule may run many times (repeats, CUDA graph
/// replay); weights and state only in a train program, whose one run is one
/// optimizer step that updates them. Both back ends start from this.
llvm::Expected<std::vector<ProgramArgument>>
prepareForward(mlir::ModuleOp module);

/// Adds `buffers` to `builder` in order (ProgramBuilder::addBuffer) and
/// returns their arena offsets.
llvm::Expected<std::vector<uint64_t>>
addProgramBuffers(llvm::ArrayRef<ProgramArgument> buffers,
                  runtime::ProgramBuilder &builder);

/// The runtime element type of an MLIR element type (index is i64).
llvm::Expected<runtime::ElementType> runtimeElementType(mlir::Type type);

/// Runs the pass pipeline `build` adds on `module`, with the dialects the
/// pipelines need registered. On failure the error is "lowering for
/// <what> failed:" followed by every diagnostic (and its notes) with its
/// location.
llvm::Error
runLoweringPipeline(mlir::ModuleOp module,
                    llvm::function_ref<void(mlir::OpPassManager &)> build,
                    llvm::StringRef what);

/// Records the model's name and modalities (`model`, `modalities`,
/// `modality_ranges`) from `module` in the program's metadata, so that
/// moma-run can read token files for it. Call before lowering.
void recordModelMetadata(mlir::ModuleOp module,
                         runtime::ProgramBuilder &builder);

/// Builds the program `builder` holds (ProgramBuilder::build); a program it
/// rejects is an internal error of the back end that filled it.
llvm::Expected<runtime::Program> buildProgram(runtime::ProgramBuilder &builder);

} // namespace moma

#endif // MOMA_TARGET_PROGRAMCOMPILER_H
