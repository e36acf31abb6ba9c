//===- ApproximateMath.cpp - f32 exp and erf as polynomials ---------------===//
//
// Implements `moma-cpu-approximate-math` (see Passes.td) with upstream
// MLIR's polynomial approximations.
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/Passes.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moma {
#define GEN_PASS_DEF_MOMACPUAPPROXIMATEMATH
#include "passes/CPU/Passes.h.inc"
} // namespace moma

using namespace mlir;

namespace {

struct ApproximateMathPass
    : moma::impl::MomaCpuApproximateMathBase<ApproximateMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      return name == math::ExpOp::getOperationName() ||
             name == math::ErfOp::getOperationName();
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
