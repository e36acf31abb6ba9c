//===- MergeGpuModules.cpp - The moma-gpu-merge-modules pass --------------===//
//
// Moves the kernels of every gpu.module into one, renaming each kernel after
// its old module, and retargets the gpu.launch_func ops.
//
//===----------------------------------------------------------------------===//

#include "passes/GPU/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

namespace moma {
#define GEN_PASS_DEF_MOMAGPUMERGEMODULES
#include "passes/GPU/Passes.h.inc"
} // namespace moma

using namespace mlir;

namespace {
struct MomaGpuMergeModules
    : moma::impl::MomaGpuMergeModulesBase<MomaGpuMergeModules> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<gpu::GPUModuleOp> sources(module.getOps<gpu::GPUModuleOp>());
    if (sources.empty())
      return;
    SymbolTable moduleSymbols(module);
    if (Operation *existing = moduleSymbols.lookup(moduleName)) {
      existing->emitOpError() << "is named '" << moduleName
                              << "', the name of the merged GPU module";
      return signalPassFailure();
    }

    OpBuilder b(ctx);
    b.setInsertionPoint(sources.front());
    auto merged =
        gpu::GPUModuleOp::create(b, sources.front().getLoc(), moduleName);
    SymbolTable mergedSymbols(merged);
    // Old (module, kernel) -> new kernel name.
    llvm::DenseMap<std::pair<StringAttr, StringAttr>, StringAttr> renamed;
    for (gpu::GPUModuleOp source : sources) {
      StringAttr sourceName = source.getSymNameAttr();
      // Kernels first, so that they get their module's name before the
      // other symbols could take it.
      SmallVector<Operation *> ops;
      for (Operation &op : source.getBody()->without_terminator())
        if (isa<gpu::GPUFuncOp>(op))
          ops.push_back(&op);
      for (Operation &op : source.getBody()->without_terminator())
        if (!isa<gpu::GPUFuncOp>(op))
          ops.push_back(&op);
      for (Operation *op : ops) {
        auto symbol = dyn_cast<SymbolOpInterface>(op);
        if (auto kernel = dyn_cast<gpu::GPUFuncOp>(op)) {
          StringAttr oldName = kernel.getNameAttr();
          if (mergedSymbols.lookup(sourceName)) {
            kernel.emitOpError() << "cannot take the name of its module '"
                                 << sourceName.getValue()
                                 << "': the merged module has that symbol";
            return signalPassFailure();
          }
          kernel.setName(sourceName);
          op->moveBefore(merged.getBody(), merged.getBody()->end());
          mergedSymbols.insert(op);
          renamed[{sourceName, oldName}] = kernel.getNameAttr();
          continue;
        }
        if (symbol && mergedSymbols.lookup(symbol.getNameAttr())) {
          // A copy of the same host symbol (outlining clones what each
          // kernel uses): keep the first.
          op->erase();
          continue;
        }
        op->moveBefore(merged.getBody(), merged.getBody()->end());
        if (symbol)
          mergedSymbols.insert(op);
      }
      source.erase();
    }

    // Globals and helper functions first, then the kernels.
    Operation *firstKernel = nullptr;
    SmallVector<Operation *> others;
    for (Operation &op : merged.getBody()->without_terminator()) {
      if (isa<gpu::GPUFuncOp>(op))
        firstKernel = firstKernel ? firstKernel : &op;
      else if (firstKernel)
        others.push_back(&op);
    }
    for (Operation *op : others)
      op->moveBefore(firstKernel);

    StringAttr mergedName = merged.getSymNameAttr();
    WalkResult result = module.walk([&](gpu::LaunchFuncOp launch) {
      SymbolRefAttr kernel = launch.getKernel();
      auto it =
          renamed.find({kernel.getRootReference(), kernel.getLeafReference()});
      if (it == renamed.end()) {
        launch.emitOpError()
            << "launches " << kernel << ", which no merged GPU module defines";
        return WalkResult::interrupt();
      }
      launch.setKernelAttr(
          SymbolRefAttr::get(mergedName, {FlatSymbolRefAttr::get(it->second)}));
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
