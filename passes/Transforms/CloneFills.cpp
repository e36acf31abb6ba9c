//===- CloneFills.cpp - A fill of its own for every consumer --------------===//
//
// Implements `moma-clone-fills` (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

namespace moma {
#define GEN_PASS_DEF_MOMACLONEFILLS
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

struct CloneFillsPass : moma::impl::MomaCloneFillsBase<CloneFillsPass> {
  void runOnOperation() override {
    SmallVector<linalg::FillOp> fills;
    getOperation().walk([&](linalg::FillOp fill) {
      if (fill.hasPureTensorSemantics() &&
          fill.getOutputs().front().getDefiningOp<tensor::EmptyOp>() &&
          !fill->getResult(0).hasOneUse())
        fills.push_back(fill);
    });
    for (linalg::FillOp fill : fills) {
      auto empty = fill.getOutputs().front().getDefiningOp<tensor::EmptyOp>();
      // Every use but the first gets a fill (and an empty tensor) of its own,
      // right before the op of the fill's block that holds the user (a loop
      // whose body reads the fill gets one before the loop).
      Block *block = fill->getBlock();
      SmallVector<std::pair<Operation *, OpOperand *>> uses;
      for (OpOperand &use : fill->getResult(0).getUses())
        if (Operation *top = block->findAncestorOpInBlock(*use.getOwner()))
          uses.push_back({top, &use});
      llvm::stable_sort(uses, [](const auto &a, const auto &b) {
        return a.first->isBeforeInBlock(b.first);
      });
      for (auto [top, use] : llvm::drop_begin(uses)) {
        OpBuilder b(top);
        Operation *freshEmpty = b.clone(*empty);
        IRMapping mapping;
        mapping.map(empty.getResult(), freshEmpty->getResult(0));
        Operation *fresh = b.clone(*fill, mapping);
        // The fill is now part of its user's computation (the moma op a
        // kernel plan names).
        freshEmpty->setLoc(top->getLoc());
        fresh->setLoc(top->getLoc());
        use->set(fresh->getResult(0));
      }
    }
  }
};

} // namespace
