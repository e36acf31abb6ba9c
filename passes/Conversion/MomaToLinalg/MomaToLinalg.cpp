//===- MomaToLinalg.cpp - The convert-moma-to-linalg pass -----------------===//
//
// Collects the lowering patterns of every op family and applies them as a
// partial dialect conversion with the moma dialect illegal: a moma op that
// no pattern lowers fails the pass with the conversion driver's located
// "failed to legalize operation" diagnostic. Before it, every moma op's
// location records the op (its provenance), which the ops built from it
// inherit. The LM head and its cross-entropy lower together where nothing
// else reads the logits. The lowered IR is then folded (constants deduplicated
// and hoisted, dead ops erased).
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"
#include "passes/Conversion/Passes.h"
#include "passes/Kernels/CostModel.h"
#include "passes/Support/Provenance.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/DialectConversion.h"
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
    // Provenance: every op a pattern builds at the moma op's location
    // records which moma op it lowers (passes/Support/Provenance.h). A
    // location, not an attribute, so the lowered IR prints as before.
    getOperation()->walk([](Operation *op) {
      if (isa<MomaDialect>(op->getDialect()))
        op->setLoc(provenanceLocation(op));
    });

    std::optional<TargetModel> model = TargetModel::get(target);
    if (!model) {
      getOperation().emitError()
          << "convert-moma-to-linalg: unknown target '" << target
          << "' (expected " << kKnownTargetNames << ")";
      signalPassFailure();
      return;
    }
    RewritePatternSet patterns(&getContext());
    populateLmHeadLossPatterns(patterns, *model, vocabChunk);
    populateDenseToLinalgPatterns(patterns);
    populateAttentionToLinalgPatterns(patterns);
    populateAttentionGradToLinalgPatterns(patterns);
    populateRouteToLinalgPatterns(patterns);
    populateExpertsToLinalgPatterns(patterns);
    populateExpertsGradToLinalgPatterns(patterns);
    populateDepthToLinalgPatterns(patterns);
    populateLossesToLinalgPatterns(patterns);
    populatePermuteToLinalgPatterns(patterns);
    populateGradientsToLinalgPatterns(patterns);
    populateRoutingGradToLinalgPatterns(patterns);
    populateDepthGradToLinalgPatterns(patterns);
    populateOptimizerToLinalgPatterns(patterns);

    // Every moma op must be lowered; everything else (the upstream dialects
    // the patterns produce, and whatever surrounds the moma ops) stays.
    ConversionTarget target(getContext());
    target.addIllegalDialect<MomaDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns)))) {
      signalPassFailure();
      return;
    }

    // The patterns build constants where they need them: fold the new IR
    // (the greedy driver without patterns), which deduplicates the
    // constants, hoists them to the function entry and erases dead ops.
    (void)applyPatternsGreedily(getOperation(), FrozenRewritePatternSet());
  }
};
} // namespace
