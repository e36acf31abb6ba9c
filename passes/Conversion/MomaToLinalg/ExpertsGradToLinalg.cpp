//===- ExpertsGradToLinalg.cpp - Lower moma.experts_grad to linalg --------===//
//
// The backward of the grouped expert FFN (moma.experts_grad) over the
// ragged expert-major slots, in the formulation of the forward lowering:
// every slot's expert comes from the offsets (`buildSlotExperts`, -1
// outside `[off[0], off[E])`) and selects that expert's weights per row.
// The pre-activations `u` and the hidden `h` are recomputed as in the
// forward; then, per projection (`buildProjectionGradients`), the row
// gradients are row-selected products with the transposed weights and the
// weight gradients sums over the slots of each expert, in ascending slot
// order (`weightGradient` with the expert ids as the selector: slots of no
// expert contribute nothing, an expert without slots gets zeros).
//
// Cost and the kernel layer: the row gradients (`dh = dy w_out[e]^T`,
// `dtokens = du w_in[e]^T`) are row-selected generics over `(s, k, n)`
// that read the weight as `w[e, k, n]` with `n` the reduction, i.e. the
// forward's row-selected matmul with B transposed; the weight gradients are
// generics over `(e, k, n, s)` that visit every slot for every expert (E
// times the products of the grouped GEMM). For the kernel layer to map them
// onto the grouped GEMM it would need (1) a transposed-B variant of the
// row-selected matmul class (ContractionAnalysis: the extract's indices
// `[slice, k, n]` with `n` reduced) and (2) a grouped `A^T B` kernel that,
// per expert, reduces only over its contiguous slot range
// `[off[e], off[e+1])` (the offsets being a runtime operand, that is a loop
// over experts with dynamic row bounds rather than the masked sum here).
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/GradientUtils.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

using namespace mlir;
using namespace moma;

namespace {

/// `u = x w_in[e] (+ s (x A_in[e]) B_in[e])`, `h` its activation; the out
/// projection's gradients from `dy` and `h`, `du` through the activation
/// from `dh`, then the in projection's from `du` and `x`; `dtokens` is
/// zeroed on slots without an expert.
struct ExpertsGradLowering : OpRewritePattern<ExpertsGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ExpertsGradOp op,
                                PatternRewriter &rewriter) const override {
    Type elementType = elementTypeOf(op.getTokens());
    if (!elementType.isF32() && !elementType.isF64())
      return rewriter.notifyMatchFailure(
          op, "lowers f32 and f64 only (narrower types are widened first)");
    Location loc = op.getLoc();
    bool swiglu = op.getActivation() == Activation::swiglu;
    Value x = op.getTokens(), dy = op.getDy();
    Value wIn = op.getWIn(), wOut = op.getWOut();
    Value offsets = op.getExpertOffsets();
    int64_t numExperts = tensorTypeOf(offsets).getDimSize(0) - 1;
    int64_t numSlots = tensorTypeOf(x).getDimSize(0);
    Value experts =
        buildSlotExperts(rewriter, loc, offsets, numSlots, numExperts);
    SmallVector<Value> lora(op.getLora());
    bool hasLora = !lora.empty();
    Value aIn = hasLora ? lora[0] : Value(), bIn = hasLora ? lora[1] : Value();
    Value aOut = hasLora ? lora[2] : Value();
    Value bOut = hasLora ? lora[3] : Value();
    double scale = op.getLoraScale().convertToDouble();

    Value u = projectRows(rewriter, loc, x, wIn, experts, aIn, bIn, scale);
    Value h = buildFfnHidden(rewriter, loc, swiglu, u);
    ProjectionGradients out = buildProjectionGradients(
        rewriter, loc, h, dy, wOut, experts, aOut, bOut, scale);
    Value du = buildFfnHiddenGradient(rewriter, loc, swiglu, u, out.dx);
    ProjectionGradients in = buildProjectionGradients(rewriter, loc, x, du, wIn,
                                                      experts, aIn, bIn, scale);

    SmallVector<Value> results = {
        maskUnassignedSlots(rewriter, loc, in.dx, experts), in.dw, out.dw};
    if (hasLora)
      results.append({in.da, in.db, out.da, out.db});
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void moma::populateExpertsGradToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<ExpertsGradLowering>(patterns.getContext());
}
