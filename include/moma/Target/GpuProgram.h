//===- GpuProgram.h - moma IR to GPU programs (PTX + launches) --*- C++ -*-===//
//
// The GPU back end: turns the `@forward` function that momac builds into a
// compiled program (.momaprog, lib/Format/ProgramFormat.md) for an NVIDIA
// GPU: one PTX module from MLIR's NVVM/NVPTX path, one arena holding every
// input, weight, output and scratch buffer, and a static list of launches.
// Nothing runs on the host at run time: the runtime only executes launches.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_TARGET_GPUPROGRAM_H
#define MOMA_TARGET_GPUPROGRAM_H

#include "moma/Format/Program.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <string>

namespace moma {

/// Whether a GPU program carries a cubin beside its PTX.
enum class CubinPolicy {
  /// When a ptxas is found (GpuProgramOptions::ptxas).
  Auto,
  /// Always; no ptxas is an error.
  Always,
  /// Never: PTX only.
  Never,
};

/// How compileGpuProgram builds a program.
struct GpuProgramOptions {
  /// Let scratch buffers whose launches do not overlap share arena bytes;
  /// without it every scratch buffer gets its own (a bump allocator: a
  /// bigger arena, for debugging).
  bool reuseScratch = true;
  /// Run the network in modality-sorted token order
  /// (moma-hoist-modality-permutation).
  bool permuteModality = true;
  /// Whether to assemble a cubin with ptxas.
  CubinPolicy cubin = CubinPolicy::Auto;
  /// The ptxas to run; empty: the toolkit's bin/ptxas (the toolkit whose
  /// libdevice is linked), else the first `ptxas` on PATH.
  std::string ptxas;
  /// Receives each line ptxas writes when it succeeds: its warnings (it
  /// runs with --warn-on-spills, so a kernel that spills registers to
  /// local memory is reported). Null: they are dropped.
  std::function<void(const std::string &)> warn;
  /// When positive, the fused LM head's vocabulary chunk instead of the
  /// cost model's (GpuPipelineOptions).
  int64_t vocabChunk = 0;
};

/// Returns the program target of a GPU chip name (`sm_80`, `sm_90`,
/// `sm_90a`), or std::nullopt for any other name.
std::optional<runtime::Target> parseGpuTarget(llvm::StringRef chip);

/// Compiles `module` (moma IR with a `@forward` whose arguments and results
/// carry `moma.input` / `moma.weight` / `moma.output` names) for the NVIDIA
/// architecture `chip` (`sm_80`, `sm_90` or `sm_90a`):
///
/// - marks the arguments of `@forward` `bufferization.writable = false`, so
///   that no kernel writes into an input or a weight (a schedule may run
///   many times on the same inputs: repeats, CUDA graph replay);
/// - runs `moma-to-ptx` (passes/Pipelines/Pipelines.h): every kernel is an
///   outlined `gpu.func` of one `gpu.module`, compiled to PTX (ISA 8.0) by
///   MLIR's NVVM target with CUDA's libdevice for the math functions (from
///   the toolkit CUDA_ROOT / CUDA_HOME / CUDA_PATH names, else that of the
///   `ptxas` on PATH, /usr/local/cuda or /usr/lib/cuda; an error names the
///   paths tried when there is none);
/// - reads the host function that is left (`memref.alloc`, constants,
///   `gpu.launch_func`) into a program: the inputs, weights and outputs are
///   named buffers in the CPU back end's order and with its names
///   (compileCpuProgram), each allocation is a `scratch.N` buffer placed by
///   a liveness-based first-fit planner (scratch buffers whose launches do
///   not overlap share bytes), and each `gpu.launch_func` is a launch with
///   constant grid, block and dynamic shared memory whose buffer arguments
///   are arena offsets and whose scalar arguments are constants;
/// - stores the PTX text as one `ptx` module named `kernels` (the driver
///   compiles PTX for the GPU it runs on, so an sm_80 program also runs on
///   Hopper), and, unless `options.cubin` is Never, the cubin that ptxas
///   assembles from it for `chip` as the module's alternative image, which
///   the runtime prefers on GPUs that can run it (no JIT at load time). A
///   ptxas that fails is an error quoting its output.
///
/// Anything else on the host (a non-constant launch size or argument, a
/// host op other than those above) is an error naming the op. `module` is
/// consumed.
llvm::Expected<runtime::Program>
compileGpuProgram(mlir::ModuleOp module, llvm::StringRef chip,
                  const GpuProgramOptions &options = {});

} // namespace moma

#endif // MOMA_TARGET_GPUPROGRAM_H
