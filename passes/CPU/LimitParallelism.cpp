//===- LimitParallelism.cpp - Threads only for loops worth them -----------===//
//
// Implements `moma-cpu-limit-parallelism` (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/Passes.h"
#include "passes/Support/LoopUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
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

/// The constant `c` of `upper = lower + c` (`arith.addi`, either operand
/// order), or nothing.
std::optional<int64_t> constantOffset(Value lower, Value upper) {
  auto add = upper.getDefiningOp<arith::AddIOp>();
  if (!add)
    return std::nullopt;
  if (add.getLhs() == lower)
    return getConstantIntValue(add.getRhs());
  if (add.getRhs() == lower)
    return getConstantIntValue(add.getLhs());
  return std::nullopt;
}

/// At most how far `upper` lies above `lower`, when that is known: the
/// difference of two constants, or, for a tile's clamped bound `upper =
/// min(lower + c, n)` (`arith.minsi`/`minui`, the bound a tiled loop over
/// a tail-folded dimension gets), at most `c`.
std::optional<int64_t> boundedDistance(Value lower, Value upper) {
  std::optional<int64_t> lo = getConstantIntValue(lower),
                         hi = getConstantIntValue(upper);
  if (lo && hi)
    return *hi - *lo;
  if (std::optional<int64_t> offset = constantOffset(lower, upper))
    return offset;
  Operation *min = upper.getDefiningOp();
  if (!isa_and_nonnull<arith::MinSIOp, arith::MinUIOp>(min))
    return std::nullopt;
  std::optional<int64_t> best;
  for (Value operand : min->getOperands())
    if (std::optional<int64_t> distance = boundedDistance(lower, operand))
      best = best ? std::min(*best, *distance) : *distance;
  return best;
}

/// The trip count of one loop dimension: exact for static bounds, an upper
/// bound for a tile's clamped bound (`boundedDistance`), else 1.
int64_t tripCount(Value lower, Value upper, Value step) {
  std::optional<int64_t> distance = boundedDistance(lower, upper),
                         st = getConstantIntValue(step);
  if (!distance || !st || *st <= 0)
    return 1;
  return std::max<int64_t>(0, (*distance + *st - 1) / *st);
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
