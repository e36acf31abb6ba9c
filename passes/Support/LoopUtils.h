//===- LoopUtils.h - Rewrites of scf.parallel loops -------------*- C++ -*-===//
//
// Loop rewrites the GPU mapping (moma-gpu-prepare-loops) and the CPU
// mapping (moma-cpu-limit-parallelism) share.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_SUPPORT_LOOPUTILS_H
#define PASSES_SUPPORT_LOOPUTILS_H

#include "mlir/Dialect/SCF/IR/SCF.h"

#include "moma/Support/LLVM.h"

namespace moma {

/// Moves the operations of `loop`'s body (all but its terminator) into
/// `dest`, before its terminator, with the induction variables replaced by
/// `ivs`, and erases `loop`.
void inlineLoopBody(mlir::scf::ParallelOp loop, Block *dest,
                    mlir::ValueRange ivs);

/// Replaces `loop` (no reductions) by a nest of `scf.for` loops, the first
/// dimension outermost.
void sequentialize(mlir::scf::ParallelOp loop);

} // namespace moma

#endif // PASSES_SUPPORT_LOOPUTILS_H
