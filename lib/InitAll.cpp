//===- InitAll.cpp - Register moma's dialects and passes ------------------===//

#include "moma/InitAll.h"

#include "dialects/moma/MomaDialect.h"
#include "passes/CPU/Passes.h"
#include "passes/Conversion/Passes.h"
#include "passes/GPU/Passes.h"
#include "passes/Kernels/Passes.h"
#include "passes/Pipelines/Pipelines.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void moma::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<moma::MomaDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
                  mlir::linalg::LinalgDialect>();
  moma::registerPipelineDialects(registry);
}

void moma::registerAllPasses() {
  mlir::registerTransformsPasses();
  moma::registerMomaTransformsPasses();
  moma::registerMomaConversionPasses();
  moma::registerMomaGPUPasses();
  moma::registerMomaCPUPasses();
  moma::registerMomaKernelPlanPasses();
  moma::registerMomaPipelines();
}
