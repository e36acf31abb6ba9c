//===- Pipelines.h - moma's named pass pipelines ----------------*- C++ -*-===//
//
// The pipelines that take moma IR to executable code, registered in moma-opt
// (so every stage can be inspected with --mlir-print-ir-after-all) and used
// by momac.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_PIPELINES_PIPELINES_H
#define PASSES_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "moma/Support/LLVM.h"

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace moma {

/// Options of `moma-to-cpu`.
struct CpuPipelineOptions
    : public mlir::PassPipelineOptions<CpuPipelineOptions> {
  PassOptions::Option<bool> outParams{
      *this, "out-params",
      llvm::cl::desc("Return results through caller-provided buffers "
                     "(buffer-results-to-out-params)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> barePointers{
      *this, "bare-pointers",
      llvm::cl::desc("Pass memrefs as bare pointers (the runtime's kernel "
                     "ABI); unranked memrefs are then unsupported"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> scratchArena{
      *this, "scratch-arena",
      llvm::cl::desc("Place temporaries in one planned byte arena, a new "
                     "last argument (moma-scratch-arena), so that the code "
                     "allocates nothing"),
      llvm::cl::init(false)};
  PassOptions::Option<std::string> cpu{
      *this, "cpu",
      llvm::cl::desc("The CPU level the kernels are tiled and compiled for: "
                     "x86-64-v3 (AVX2 + FMA) or x86-64-v4 (AVX-512)"),
      llvm::cl::init("x86-64-v3")};
  PassOptions::Option<std::string> combine{
      *this, "combine",
      llvm::cl::desc("moma.combine fused into the second expert GEMM: "
                     "deterministic (no atomics, every sum in slot order) or "
                     "fast (atomic adds)"),
      llvm::cl::init("deterministic")};
  PassOptions::Option<int64_t> vocabChunk{
      *this, "vocab-chunk",
      llvm::cl::desc("The fused LM head's vocabulary chunk instead of the "
                     "cost model's (convert-moma-to-linalg's vocab-chunk; "
                     "0: the cost model's)"),
      llvm::cl::init(0)};
  PassOptions::Option<bool> threads{
      *this, "threads",
      llvm::cl::desc("Run the kernels' parallel loops on OpenMP threads "
                     "(else in sequence)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> permuteModality{
      *this, "permute-modality",
      llvm::cl::desc("Run the network in modality-sorted token order "
                     "(moma-hoist-modality-permutation) before lowering"),
      llvm::cl::init(false)};
};

/// The tensor stage both pipelines share: with `permuteModality` the
/// network moved to modality-sorted token order
/// (moma-hoist-modality-permutation), bf16/f16 ops widened to f32 compute,
/// moma -> linalg/tensor, and the kernel layer's fusions (the IR
/// `moma-kernel-plan` plans), for the kernel target `kernelTarget` (a CPU
/// level or a GPU chip: its cost model sizes the fused LM head's chunks,
/// unless `vocabChunk` is positive).
void buildMomaToFusedTensors(OpPassManager &pm, StringRef kernelTarget,
                             int64_t vocabChunk = 0,
                             bool permuteModality = false);

/// moma -> linalg/tensor -> one-shot bufferization -> loops -> LLVM dialect:
/// buildMomaToCpuBufferStage, then buildCpuBuffersToLLVM.
void buildMomaToCpuPipeline(OpPassManager &pm,
                            const CpuPipelineOptions &options);

/// The first half of `moma-to-cpu`: moma -> linalg/tensor -> one-shot
/// bufferization (-> out-parameters, -> the scratch arena).
void buildMomaToCpuBufferStage(OpPassManager &pm,
                               const CpuPipelineOptions &options);

/// The second half of `moma-to-cpu`: buffers -> loops -> LLVM dialect, and
/// moma's attributes dropped.
void buildCpuBuffersToLLVM(OpPassManager &pm,
                           const CpuPipelineOptions &options);

/// Options of `moma-to-ptx`.
struct GpuPipelineOptions
    : public mlir::PassPipelineOptions<GpuPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("The NVIDIA architecture of the PTX (sm_80, sm_90, "
                     "sm_90a)"),
      llvm::cl::init("sm_80")};
  PassOptions::Option<std::string> features{
      *this, "features",
      llvm::cl::desc("NVPTX target features (the PTX ISA version): +ptx80 "
                     "is what sm_90a needs and what CUDA 12.0+ drivers "
                     "load"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit whose nvvm/libdevice/libdevice.10.bc "
                     "provides the math functions; empty: MLIR's default "
                     "search"),
      llvm::cl::init("")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("What gpu-module-to-binary produces: isa (PTX text), "
                     "bin (cubin, needs ptxas), fatbin, offload (LLVM IR); "
                     "nvvm: stop before it, leaving the gpu.module in the "
                     "LLVM/NVVM dialects (needs no CUDA toolkit)"),
      llvm::cl::init("isa")};
  PassOptions::Option<int64_t> vocabChunk{
      *this, "vocab-chunk",
      llvm::cl::desc("The fused LM head's vocabulary chunk instead of the "
                     "cost model's (convert-moma-to-linalg's vocab-chunk; "
                     "0: the cost model's)"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> blockSize{
      *this, "block-size",
      llvm::cl::desc("Threads per block of a parallel loop's launch (the "
                     "tile size of scf-parallel-loop-tiling)"),
      llvm::cl::init(256)};
  PassOptions::Option<bool> permuteModality{
      *this, "permute-modality",
      llvm::cl::desc("Run the network in modality-sorted token order "
                     "(moma-hoist-modality-permutation) before lowering"),
      llvm::cl::init(false)};
};

/// moma -> linalg/tensor -> one-shot bufferization (out-parameters) ->
/// parallel loops -> one gpu.launch per top-level parallel loop (one thread
/// per element, `block-size` threads per block) and one single-thread launch
/// per run of sequential host code -> outlined kernels in one gpu.module
/// taking root buffers as bare pointers -> NVVM -> `gpu.binary` (PTX text
/// by default). The host function is left with `memref.alloc`, constants
/// and `gpu.launch_func` only, which the program compiler turns into an
/// arena and a launch list (include/moma/Target/GpuProgram.h).
void buildMomaToGpuPipeline(OpPassManager &pm,
                            const GpuPipelineOptions &options);

/// Registers `moma-to-cpu` and `moma-to-ptx`.
void registerMomaPipelines();

/// Adds the dialects and external interface models (bufferization,
/// LLVM conversion, the NVVM target and its LLVM IR translations) the
/// pipelines need to `registry`.
void registerPipelineDialects(DialectRegistry &registry);

} // namespace moma

#endif // PASSES_PIPELINES_PIPELINES_H
