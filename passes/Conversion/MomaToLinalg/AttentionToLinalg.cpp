//===- AttentionToLinalg.cpp - Lower moma.attention to linalg -------------===//
//
// Global grouped-query self-attention with rotary embeddings, as fixed in
// Semantics.md: the projections, RoPE and masked softmax of
// AttentionUtils.h, then `o = softmax . v` over the visible keys and
// `y = o Wo`. A query without a visible key gets an all-zero probability row
// (output 0).
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/AttentionUtils.h"

using namespace mlir;
using namespace moma;

namespace {

/// Lowers moma.attention; see the file header.
struct AttentionLowering : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    Type elementType = xType.getElementType();
    if (!hasInfinity(elementType))
      return rewriter.notifyMatchFailure(
          op, "the row maxima start at -inf, which the element type lacks");
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    int64_t heads = op.getHeads(), headDim = op.getHeadDim();
    AttentionForm form = attentionFormOf(op);
    AttentionActivations acts = buildAttentionProbs(rewriter, loc, form);

    // o[b, i, g, r, c] = sum_j p[b, g, r, i, j] * v[b, j, g, c] over the
    // visible keys.
    Value out = contractKeys(rewriter, loc, acts.probs, acts.v, acts.positions,
                             form.causal);

    // Output projection on the token rows [B * L, H * d].
    auto flatType =
        RankedTensorType::get({batch * seq, heads * headDim}, elementType);
    Value flat = tensor::CollapseShapeOp::create(
        rewriter, loc, flatType, out,
        SmallVector<ReassociationIndices>{{0, 1}, {2, 3, 4}});
    Value y = tokenMatmul(rewriter, loc, flat, op.getWo(), acts.modality);
    rewriter.replaceOp(op, expandTokens(rewriter, loc, y, batch, seq));
    return success();
  }
};

} // namespace

void moma::populateAttentionToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionLowering>(patterns.getContext());
}
