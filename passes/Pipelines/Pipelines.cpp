//===- Pipelines.cpp - moma's named pass pipelines ------------------------===//

#include "passes/Pipelines/Pipelines.h"
#include "passes/CPU/Passes.h"
#include "passes/Conversion/Passes.h"
#include "passes/GPU/Passes.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/SCFToGPU/SCFToGPUPass.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Transforms/FuncBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Index/IR/IndexDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

/// moma -> linalg/tensor (element-wise tensor arith included) -> buffers,
/// results optionally through out-parameters: the common front of both
/// pipelines.
void moma::buildMomaToFusedTensors(OpPassManager &pm, StringRef kernelTarget,
                                   int64_t vocabChunk, bool permuteModality) {
  if (permuteModality)
    pm.addNestedPass<func::FuncOp>(moma::createMomaHoistModalityPermutation());
  // bf16/f16 ops compute in f32 and round their results once (Semantics.md).
  pm.addPass(moma::createMomaWidenCompute());
  // The LM head fused with cross-entropy in a loss-only program sizes its
  // vocabulary chunks for the target.
  ConvertMomaToLinalgOptions toLinalg;
  toLinalg.target = kernelTarget.str();
  toLinalg.vocabChunk = vocabChunk;
  pm.addPass(moma::createConvertMomaToLinalg(toLinalg));
  // Element-wise arith on tensors (residual adds, loss arithmetic).
  pm.addNestedPass<func::FuncOp>(createConvertElementwiseToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // The kernel layer's fusions: dispatch's row gathers into the grouped
  // GEMMs that read them.
  pm.addNestedPass<func::FuncOp>(moma::createMomaFuseRowGathers());
  // CSE shared one fill among every layer's accumulators: one each, so that
  // bufferization fills them in place instead of copying shared zeros.
  pm.addNestedPass<func::FuncOp>(moma::createMomaCloneFills());
}

/// `kernelTarget`, `vocabChunk` and `permuteModality` as
/// buildMomaToFusedTensors; `unrollChunks` for a target whose host code cannot
/// loop (moma-gpu-unroll-chunk-loops).
static void buildMomaToBuffers(OpPassManager &pm, StringRef kernelTarget,
                               int64_t vocabChunk, bool permuteModality,
                               bool outParams, bool unrollChunks) {
  moma::buildMomaToFusedTensors(pm, kernelTarget, vocabChunk, permuteModality);
  if (unrollChunks)
    pm.addNestedPass<func::FuncOp>(moma::createMomaGpuUnrollChunkLoops());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // A train program's updated weights and optimizer state
  // (`moma.updates` results) bufferize in place into their writable
  // arguments: such a result is the argument's buffer itself, and is
  // dropped rather than copied out.
  pm.addNestedPass<func::FuncOp>(moma::createMomaDropInPlaceUpdates());
  if (outParams) {
    bufferization::BufferResultsToOutParamsPassOptions outParams;
    outParams.modifyPublicFunctions = true;
    // Results allocated with a static shape are written in place into the
    // caller's buffer instead of being copied there.
    outParams.hoistStaticAllocs = true;
    pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  }
  pm.addPass(createCanonicalizerPass());
}

void moma::buildMomaToCpuPipeline(OpPassManager &pm,
                                  const CpuPipelineOptions &options) {
  buildMomaToCpuBufferStage(pm, options);
  buildCpuBuffersToLLVM(pm, options);
}

void moma::buildMomaToCpuBufferStage(OpPassManager &pm,
                                     const CpuPipelineOptions &options) {
  buildMomaToBuffers(pm, options.cpu, options.vocabChunk,
                     options.permuteModality, options.outParams,
                     /*unrollChunks=*/false);
  // The kernel layer's CPU mapping: matmul-class ops, with their fused
  // epilogues, to register-blocked vector loops (an scf.parallel each),
  // before the arena, which then sees what each fused kernel reads and
  // writes.
  MomaCpuVectorizeContractionsOptions contractions;
  contractions.target = options.cpu;
  contractions.combine = options.combine;
  pm.addNestedPass<func::FuncOp>(
      createMomaCpuVectorizeContractions(contractions));
  if (options.scratchArena)
    pm.addPass(createMomaScratchArena());
}

void moma::buildCpuBuffersToLLVM(OpPassManager &pm,
                                 const CpuPipelineOptions &options) {
  // Each kernel in a function of its own, one function for identical
  // kernels (the layers repeat): what follows lowers and compiles each
  // distinct kernel once.
  pm.addPass(createMomaCpuOutlineKernels());
  // Every op the CPU mapping left to loops.
  // With threads, the parallel dimensions of every other op become an
  // scf.parallel too.
  if (options.threads)
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  else
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // What arithmetic is left on bf16/f16 (element-wise tensor arith, the
  // depth-region scatter) runs in f32, and the casts become integer code:
  // a generic x86-64 has no instruction for them, and LLVM's fallback calls
  // compiler-runtime routines (__truncsfbf2, ...) the program cannot load.
  arith::ArithEmulateUnsupportedFloatsOptions emulate;
  emulate.sourceTypeStrs = {"bf16", "f16"};
  emulate.targetTypeStr = "f32";
  pm.addPass(arith::createArithEmulateUnsupportedFloats(emulate));
  pm.addPass(math::createMathExtendToSupportedTypes());
  pm.addPass(moma::createMomaExpandNarrowFloatCasts());
  // f32 exp and erf (softmax, GELU) as polynomials, not libm calls per
  // element.
  pm.addPass(moma::createMomaCpuApproximateMath());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // scf.parallel runs on OpenMP threads, or else in sequence (scf-to-cf).
  if (options.threads) {
    pm.addNestedPass<func::FuncOp>(createMomaCpuLimitParallelism());
    pm.addPass(createConvertSCFToOpenMPPass());
    // Inlines the memref.alloca_scope around each loop body (the bodies
    // allocate nothing), which control-flow lowering could not keep.
    pm.addPass(createCanonicalizerPass());
  }

  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  // log1p (aux_router_loss) becomes a libm call: math-to-llvm's own
  // approximation, log(1 + x), loses every digit of a small x.
  ConvertMathToLLVMPassOptions mathOptions;
  mathOptions.approximateLog1p = false;
  pm.addPass(createConvertMathToLLVMPass(mathOptions));
  pm.addPass(createConvertMathToLibmPass());
  // math-to-libm calls vector math (an epilogue's erf) element by element.
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  ConvertFuncToLLVMPassOptions funcOptions;
  funcOptions.useBarePtrCallConv = options.barePointers;
  pm.addPass(createConvertFuncToLLVMPass(funcOptions));
  if (options.threads)
    pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createMomaStripAttributes());
}

void moma::buildMomaToGpuPipeline(OpPassManager &pm,
                                  const GpuPipelineOptions &options) {
  // The runtime passes every buffer, results included, as a kernel argument.
  buildMomaToBuffers(pm, options.chip, options.vocabChunk,
                     options.permuteModality, /*outParams=*/true,
                     /*unrollChunks=*/true);

  // Host function: loops over buffers, then one launch per loop nest.
  OpPassManager &host = pm.nest<func::FuncOp>();
  host.addPass(createConvertLinalgToParallelLoopsPass());
  host.addPass(createMomaGpuPrepareLoops());
  host.addPass(createCanonicalizerPass());
  // One thread per element: blocks of `block-size` threads over the
  // one-dimensional loop; a bounds check (scf.if) instead of min/max keeps
  // the block size a constant.
  host.addPass(createParallelLoopTilingPass({int64_t(options.blockSize)},
                                            /*noMinMaxBounds=*/true));
  host.addPass(createGpuMapParallelLoopsPass());
  host.addPass(createConvertParallelLoopToGpuPass());
  host.addPass(createMomaGpuWrapSequential());
  // Fold the launch sizes to constants; canonicalization hoists constants
  // out of the launch bodies, so sink (constants, views, globals) after it.
  host.addPass(createCanonicalizerPass());
  host.addPass(createCSEPass());
  host.addPass(createMomaGpuSinkIntoLaunches());

  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createMomaGpuMergeModules());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));

  // Device code: the usual GPU -> NVVM steps, on the gpu.module only (the
  // host function keeps its memref/arith form for the program compiler).
  OpPassManager &device = pm.nest<gpu::GPUModuleOp>();
  device.addPass(memref::createExpandStridedMetadataPass());
  device.addPass(createLowerAffinePass());
  device.addPass(arith::createArithExpandOpsPass());
  device.addPass(createSCFToControlFlowPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  // Kernels take root buffers as plain pointers: the runtime's kernel ABI.
  nvvm.useBarePtrCallConv = true;
  device.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  device.addPass(createCanonicalizerPass());
  device.addPass(createCSEPass());
  device.addPass(createReconcileUnrealizedCastsPass());

  if (options.format == "nvvm")
    return;
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = options.toolkit;
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void moma::registerMomaPipelines() {
  PassPipelineRegistration<CpuPipelineOptions>(
      "moma-to-cpu",
      "Lower moma IR to the LLVM dialect for the CPU (linalg, one-shot "
      "bufferization, loops)",
      buildMomaToCpuPipeline);
  PassPipelineRegistration<CpuPipelineOptions>(
      "moma-to-cpu-buffers",
      "The first half of moma-to-cpu: moma IR to bufferized linalg (and the "
      "scratch arena with scratch-arena), the IR whose buffers a CPU "
      "program has",
      buildMomaToCpuBufferStage);
  PassPipelineRegistration<GpuPipelineOptions>(
      "moma-to-ptx",
      "Lower moma IR to kernels (PTX in a gpu.binary) and a host function "
      "of allocations and gpu.launch_func ops (linalg, one-shot "
      "bufferization, parallel loops, NVVM)",
      buildMomaToGpuPipeline);
}

void moma::registerPipelineDialects(DialectRegistry &registry) {
  registry.insert<affine::AffineDialect, bufferization::BufferizationDialect,
                  cf::ControlFlowDialect, gpu::GPUDialect, index::IndexDialect,
                  LLVM::LLVMDialect, math::MathDialect, memref::MemRefDialect,
                  NVVM::NVVMDialect, omp::OpenMPDialect, scf::SCFDialect,
                  ub::UBDialect, vector::VectorDialect>();
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  bufferization::func_ext::registerBufferizableOpInterfaceExternalModels(
      registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferizableOpInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);

  // convert-gpu-to-nvvm lowers every loaded dialect through its
  // ConvertToLLVMPatternInterface.
  arith::registerConvertArithToLLVMInterface(registry);
  cf::registerConvertControlFlowToLLVMInterface(registry);
  index::registerConvertIndexToLLVMInterface(registry);
  registerConvertFuncToLLVMInterface(registry);
  registerConvertMathToLLVMInterface(registry);
  registerConvertMemRefToLLVMInterface(registry);
  registerConvertNVVMToLLVMInterface(registry);
  ub::registerConvertUBToLLVMInterface(registry);
  // gpu-module-to-binary: the #nvvm.target serializer and the translations
  // from the LLVM/NVVM dialects to LLVM IR.
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerGPUDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
  // CPU programs: OpenMP regions to calls of the OpenMP runtime.
  registerOpenMPDialectTranslation(registry);
}
