//===- LimitParallelism.cpp - Threads only for loops worth them -----------===//
//
// Implements `moma-cpu-limit-parallelism` (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/Passes.h"
#include "passes/Support/LoopUtils.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <limits>

namespace moma {
#define GEN_PASS_DEF_MOMACPULIMITPARALLELISM
#include "passes/CPU/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

int64_t saturatingMul(int64_t a, int64_t b) {
  constexpr int64_t max = std::numeric_limits<int64_t>::max();
  return a != 0 && b > max / a ? max : a * b;
}

/// The static trip count of one loop dimension, or 1 if it is dynamic.
int64_t tripCount(Value lower, Value upper, Value step) {
  std::optional<int64_t> lo = getConstantIntValue(lower),
                         hi = getConstantIntValue(upper),
                         st = getConstantIntValue(step);
  if (!lo || !hi || !st || *st <= 0)
    return 1;
  return std::max<int64_t>(0, (*hi - *lo + *st - 1) / *st);
}

/// Loop-body operations executed by `block` (see Passes.td).
int64_t workOf(Block &block);

int64_t workOf(Operation &op) {
  int64_t inner = 0;
  for (Region &region : op.getRegions())
    for (Block &block : region)
      inner = std::max(inner, workOf(block));
  if (auto loop = dyn_cast<scf::ForOp>(op))
    return saturatingMul(
        tripCount(loop.getLowerBound(), loop.getUpperBound(), loop.getStep()),
        inner);
  if (auto loop = dyn_cast<scf::ParallelOp>(op)) {
    int64_t trips = 1;
    for (auto [lo, hi, st] : llvm::zip_equal(
             loop.getLowerBound(), loop.getUpperBound(), loop.getStep()))
      trips = saturatingMul(trips, tripCount(lo, hi, st));
    return saturatingMul(trips, inner);
  }
  return 1 + inner;
}

int64_t workOf(Block &block) {
  int64_t total = 0;
  for (Operation &op : block) {
    int64_t work = workOf(op);
    total = work > std::numeric_limits<int64_t>::max() - total
                ? std::numeric_limits<int64_t>::max()
                : total + work;
  }
  return total;
}

struct LimitParallelismPass
    : moma::impl::MomaCpuLimitParallelismBase<LimitParallelismPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<scf::ParallelOp> serial;
    func.walk([&](scf::ParallelOp loop) {
      bool topLevel = loop->getParentOp() == func.getOperation();
      if (!topLevel || workOf(*loop.getOperation()) < minWork)
        serial.push_back(loop);
    });
    // Inner loops first (the walk is post-order), so that each rewrite sees
    // a loop whose nested parallel loops are already sequential.
    for (scf::ParallelOp loop : serial)
      sequentialize(loop);
  }
};

} // namespace
