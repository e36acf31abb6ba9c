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

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::moma {

/// Options of `moma-to-cpu`.
struct CpuPipelineOptions : public PassPipelineOptions<CpuPipelineOptions> {
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
};

/// moma -> linalg/tensor -> one-shot bufferization -> loops -> LLVM dialect.
void buildMomaToCpuPipeline(OpPassManager &pm,
                            const CpuPipelineOptions &options);

/// Registers `moma-to-cpu`.
void registerMomaPipelines();

/// Adds the dialects and external interface models (bufferization,
/// LLVM conversion) the pipelines need to `registry`.
void registerPipelineDialects(DialectRegistry &registry);

} // namespace mlir::moma

#endif // PASSES_PIPELINES_PIPELINES_H
