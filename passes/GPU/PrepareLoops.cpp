//===- PrepareLoops.cpp - The moma-gpu-prepare-loops pass -----------------===//
//
// Shapes the loops of a bufferized host function for the GPU mapping
// passes: copies become loops, nested parallel loops become sequential, and
// top-level parallel loops become one-dimensional (last dimension fastest).
//
//===----------------------------------------------------------------------===//

#include "passes/GPU/Passes.h"
#include "passes/Support/LoopUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

namespace moma {
#define GEN_PASS_DEF_MOMAGPUPREPARELOOPS
#include "passes/GPU/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {
/// Replaces `copy` by an `scf.parallel` nest of loads and stores over the
/// copied shape (a load and a store for rank 0).
void lowerCopy(memref::CopyOp copy) {
  OpBuilder b(copy);
  Location loc = copy.getLoc();
  Value source = copy.getSource(), target = copy.getTarget();
  auto type = cast<MemRefType>(source.getType());
  if (type.getRank() == 0) {
    Value value = memref::LoadOp::create(b, loc, source, ValueRange{});
    memref::StoreOp::create(b, loc, value, target, ValueRange{});
    copy.erase();
    return;
  }
  SmallVector<Value> lower, upper, steps;
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  for (int64_t i = 0, e = type.getRank(); i < e; ++i) {
    lower.push_back(zero);
    steps.push_back(one);
    if (type.isDynamicDim(i))
      upper.push_back(memref::DimOp::create(b, loc, source, i));
    else
      upper.push_back(
          arith::ConstantIndexOp::create(b, loc, type.getDimSize(i)));
  }
  scf::ParallelOp::create(
      b, loc, lower, upper, steps,
      [&](OpBuilder &nested, Location nestedLoc, ValueRange ivs) {
        Value value = memref::LoadOp::create(nested, nestedLoc, source, ivs);
        memref::StoreOp::create(nested, nestedLoc, value, target, ivs);
      });
  copy.erase();
}

/// Rewrites a multi-dimensional `loop` into a one-dimensional loop over the
/// product of the trip counts whose index is split row-major (the last
/// dimension varies fastest, so neighbouring threads touch neighbouring
/// elements of row-major buffers).
void collapse(scf::ParallelOp loop) {
  if (loop.getNumLoops() <= 1)
    return;
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  SmallVector<Value> trips;
  Value total = one;
  for (auto [lower, upper, step] : llvm::zip_equal(
           loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
    Value extent = b.createOrFold<arith::SubIOp>(loc, upper, lower);
    Value trip = b.createOrFold<arith::CeilDivUIOp>(loc, extent, step);
    trips.push_back(trip);
    total = b.createOrFold<arith::MulIOp>(loc, total, trip);
  }
  auto flat = scf::ParallelOp::create(b, loc, ValueRange{zero},
                                      ValueRange{total}, ValueRange{one});
  Block *flatBody = flat.getBody();
  b.setInsertionPointToStart(flatBody);
  Value rest = flatBody->getArgument(0);
  unsigned rank = loop.getNumLoops();
  SmallVector<Value> ivs(rank);
  for (unsigned i = rank; i-- > 0;) {
    Value index = rest;
    if (i > 0) {
      index = b.createOrFold<arith::RemUIOp>(loc, rest, trips[i]);
      rest = b.createOrFold<arith::DivUIOp>(loc, rest, trips[i]);
    }
    Value scaled = b.createOrFold<arith::MulIOp>(loc, index, loop.getStep()[i]);
    ivs[i] =
        b.createOrFold<arith::AddIOp>(loc, loop.getLowerBound()[i], scaled);
  }
  inlineLoopBody(loop, flatBody, ivs);
}

struct MomaGpuPrepareLoops
    : moma::impl::MomaGpuPrepareLoopsBase<MomaGpuPrepareLoops> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<memref::CopyOp> copies;
    func.walk([&](memref::CopyOp copy) { copies.push_back(copy); });
    for (memref::CopyOp copy : copies)
      lowerCopy(copy);

    SmallVector<scf::ParallelOp> nested, topLevel;
    WalkResult result =
        func.walk([&](scf::ParallelOp loop) {
          if (loop.getNumReductions() != 0) {
            loop.emitOpError()
                << "has reductions, which moma-gpu-prepare-loops does not map";
            return WalkResult::interrupt();
          }
          (loop->getParentOp() == func.getOperation() ? topLevel : nested)
              .push_back(loop);
          return WalkResult::advance();
        });
    if (result.wasInterrupted())
      return signalPassFailure();
    // Post-order: inner loops first, then the loops around them.
    for (scf::ParallelOp loop : nested)
      sequentialize(loop);
    for (scf::ParallelOp loop : topLevel)
      collapse(loop);
  }
};
} // namespace
