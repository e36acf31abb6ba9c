//===- UnrollChunkLoops.cpp - The moma-gpu-unroll-chunk-loops pass --------===//
//
// Fully unrolls the vocabulary-chunk loops of the fused LM head and
// cross-entropy, so that the GPU host function stays straight-line launches.
//
//===----------------------------------------------------------------------===//

#include "passes/GPU/Passes.h"
#include "passes/Kernels/KernelReport.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"

namespace moma {
#define GEN_PASS_DEF_MOMAGPUUNROLLCHUNKLOOPS
#include "passes/GPU/Passes.h.inc"
} // namespace moma

using namespace mlir;

namespace {
struct MomaGpuUnrollChunkLoops
    : moma::impl::MomaGpuUnrollChunkLoopsBase<MomaGpuUnrollChunkLoops> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<scf::ForOp> loops;
    getOperation().walk([&](scf::ForOp loop) {
      if (loop->hasAttr(moma::kVocabChunkAttrName))
        loops.push_back(loop);
    });
    for (scf::ForOp loop : loops)
      if (failed(loopUnrollFull(loop))) {
        loop.emitError("moma-gpu-unroll-chunk-loops: the vocabulary-chunk "
                       "loop has no static trip count");
        return signalPassFailure();
      }
  }
};
} // namespace
