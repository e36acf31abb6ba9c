//===- MomaToLinalg.cpp - The convert-moma-to-linalg pass -----------------===//
//
// Collects the lowering patterns of every op family and applies them until
// no moma op is left; an op that no pattern lowers is reported.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"
#include "passes/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moma {
#define GEN_PASS_DEF_CONVERTMOMATOLINALG
#include "passes/Conversion/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {
struct ConvertMomaToLinalg
    : moma::impl::ConvertMomaToLinalgBase<ConvertMomaToLinalg> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDenseToLinalgPatterns(patterns);
    populateAttentionToLinalgPatterns(patterns);
    populateRouteToLinalgPatterns(patterns);
    populateExpertsToLinalgPatterns(patterns);
    populateDepthToLinalgPatterns(patterns);
    populateLossesToLinalgPatterns(patterns);
    GreedyRewriteConfig config;
    config.setMaxIterations(GreedyRewriteConfig::kNoLimit);
    (void)applyPatternsGreedily(getOperation(), std::move(patterns), config);

    // Everything must be lowered: name what was not.
    WalkResult result = getOperation().walk([&](Operation *op) {
      if (isa<MomaDialect>(op->getDialect())) {
        op->emitOpError() << "was not lowered by convert-moma-to-linalg";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
