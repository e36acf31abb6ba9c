//===- LoopUtils.cpp - Rewrites of scf.parallel loops both back ends use --===//

#include "passes/Support/LoopUtils.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

/// Moves the operations of `loop`'s body (all but its terminator) into
/// `dest`, before its terminator, with the induction variables replaced by
/// `ivs`, and erases `loop`.
void moma::inlineLoopBody(scf::ParallelOp loop, Block *dest, ValueRange ivs) {
  Block *body = loop.getBody();
  for (auto [arg, iv] : llvm::zip_equal(body->getArguments(), ivs))
    arg.replaceAllUsesWith(iv);
  dest->getOperations().splice(Block::iterator(dest->getTerminator()),
                               body->getOperations(), body->begin(),
                               std::prev(body->end()));
  loop.erase();
}

/// Replaces `loop` (no reductions) by a nest of `scf.for` loops, the first
/// dimension outermost.
void moma::sequentialize(scf::ParallelOp loop) {
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  SmallVector<Value> ivs;
  for (auto [lower, upper, step] : llvm::zip_equal(
           loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
    auto forOp = scf::ForOp::create(b, loc, lower, upper, step);
    ivs.push_back(forOp.getInductionVar());
    b.setInsertionPointToStart(forOp.getBody());
  }
  inlineLoopBody(loop, b.getInsertionBlock(), ivs);
}
