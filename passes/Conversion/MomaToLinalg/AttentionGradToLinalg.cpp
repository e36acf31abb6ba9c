//===- AttentionGradToLinalg.cpp - Lower moma.attention_grad to linalg ----===//
//
// The backward pass of grouped-query attention. It recomputes the forward
// (AttentionUtils.h: q, k, v with RoPE, the masked softmax p and
// o = p v), then, with `do` the gradient of o and query head h = g * R + r
// using kv head g:
//
//   dWo = o^T dy, do = dy Wo^T           (token rows [B * L, H * d])
//   dv[j] = sum_{i, r} p[i, j] do[i]     (the R query heads of a kv head add)
//   dp[i, j] = do[i] . v[j]
//   ds = p (dp - sum_j p dp) / sqrt(d)
//   dq = ds k, dk[j] = sum_{i, r} ds[i, j] q[i]
//   dq, dk <- RoPE^T (the rotation by the opposite angle)
//   dWq = x^T dq, dWk = x^T dk, dWv = x^T dv
//   dx = dq Wq^T + dk Wk^T + dv Wv^T
//
// Padding queries (p_i < 0) contribute nothing: their dy rows are taken as
// 0, so they add nothing to dWo, and their do, dp and ds rows are 0, so
// they add nothing to dq, dk or dv, even where a non-causal mask lets them
// see keys.
// Untied weights (a modality operand) take slice modality[t] for token t,
// as the forward does.
//
// The probabilities are materialised as [B, G, R, L, L]; a flash-style
// backward (recomputing p per key block from the row statistics) is future
// work. Only f32 and f64 are lowered: the bf16/f16 form (f32 inside the op)
// is not written yet, so the pattern leaves such ops and the conversion
// reports them.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/AttentionUtils.h"

#include <cmath>

using namespace mlir;
using namespace moma;

/// `ds = p (dp - rowsum) / sqrt(d)` with `rowsum[b, g, r, i] = sum_j p dp`
/// (`p, dp: [B, G, R, L, L]`); 0 wherever p is, at the masked keys.
static Value buildScoreGradient(OpBuilder &b, Location loc, Value probs,
                                Value dprobs, int64_t headDim) {
  RankedTensorType scoreType = tensorTypeOf(probs);
  Type elementType = scoreType.getElementType();
  Value products =
      mapElementwise(b, loc, scoreType, ValueRange{probs, dprobs},
                     [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
                       return arith::MulFOp::create(nb, nl, args[0], args[1]);
                     });
  Value rowSums = reduceLastDim(b, loc, products);
  double sqrtDim = std::sqrt(double(headDim));
  return mapElementwise(
      b, loc, scoreType, ValueRange{probs, dprobs, rowSums},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value centred = arith::SubFOp::create(nb, nl, args[1], args[2]);
        Value grad = arith::MulFOp::create(nb, nl, args[0], centred);
        return arith::DivFOp::create(
            nb, nl, grad, constantFloat(nb, nl, elementType, sqrtDim));
      });
}

/// `x: [B, L, ...]` collapsed to token rows `[B * L, prod(...)]`.
static Value tokenRows(OpBuilder &b, Location loc, Value x) {
  RankedTensorType type = tensorTypeOf(x);
  ReassociationIndices features;
  int64_t width = 1;
  for (int64_t dim = 2; dim < type.getRank(); ++dim) {
    features.push_back(dim);
    width *= type.getDimSize(dim);
  }
  auto rowsType = RankedTensorType::get(
      {type.getDimSize(0) * type.getDimSize(1), width}, type.getElementType());
  return tensor::CollapseShapeOp::create(
      b, loc, rowsType, x, SmallVector<ReassociationIndices>{{0, 1}, features});
}

namespace {

/// Lowers moma.attention_grad; see the file header.
struct AttentionGradLowering : OpRewritePattern<AttentionGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    Type elementType = xType.getElementType();
    if (!elementType.isF32() && !elementType.isF64())
      return rewriter.notifyMatchFailure(
          op, "only f32 and f64 attention gradients are lowered");
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    int64_t heads = op.getHeads(), kvHeads = op.getKvHeads();
    int64_t headDim = op.getHeadDim();
    bool causal = op.getCausal();
    double theta = op.getRopeTheta().convertToDouble();
    AttentionForm form = attentionFormOf(op);

    // Recompute the forward up to o.
    AttentionActivations acts = buildAttentionProbs(rewriter, loc, form);
    Value positions = acts.positions, modality = acts.modality;
    Value out =
        contractKeys(rewriter, loc, acts.probs, acts.v, positions, causal);

    // dy with the rows of padding queries zeroed.
    Value dy = collapseTokens(rewriter, loc, op.getDy());
    Value tokenPositions = collapseTokens(rewriter, loc, positions);
    dy = mapElementwise(
        rewriter, loc, tensorTypeOf(dy), ValueRange{dy, tokenPositions},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value real = cmpi(nb, nl, arith::CmpIPredicate::sge, args[1],
                            constantI32(nb, nl, 0));
          return arith::SelectOp::create(
              nb, nl, real, args[0], constantFloat(nb, nl, elementType, 0.0));
        });

    // The output projection.
    Value dwo = weightGradient(rewriter, loc, tokenRows(rewriter, loc, out), dy,
                               modality, op.getDwo().getType());
    Value dout = transposedTokenMatmul(rewriter, loc, dy, op.getWo(), modality);
    dout = expandTo(rewriter, loc, dout,
                    {batch, seq, kvHeads, heads / kvHeads, headDim},
                    {{0, 1}, {2, 3, 4}});

    // Through o = p v and the softmax.
    Value dv =
        contractQueries(rewriter, loc, acts.probs, dout, positions, causal);
    Value dprobs = contractHeadDim(rewriter, loc, dout, acts.v);
    Value dscores =
        buildScoreGradient(rewriter, loc, acts.probs, dprobs, headDim);
    Value dq = contractKeys(rewriter, loc, dscores, acts.k, positions, causal);
    Value dk =
        contractQueries(rewriter, loc, dscores, acts.q, positions, causal);

    // Through RoPE: [B, L, G, R, d] as [B, L, H, d].
    auto headsType =
        RankedTensorType::get({batch, seq, heads, headDim}, elementType);
    dq = tensor::CollapseShapeOp::create(
        rewriter, loc, headsType, dq,
        SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}, {4}});
    if (theta > 0.0) {
      dq = applyRope(rewriter, loc, dq, acts.cos, acts.sin, /*inverse=*/true);
      dk = applyRope(rewriter, loc, dk, acts.cos, acts.sin, /*inverse=*/true);
    }

    // The input projections.
    Value dqRows = tokenRows(rewriter, loc, dq);
    Value dkRows = tokenRows(rewriter, loc, dk);
    Value dvRows = tokenRows(rewriter, loc, dv);
    Value dwq = weightGradient(rewriter, loc, acts.rows, dqRows, modality,
                               op.getDwq().getType());
    Value dwk = weightGradient(rewriter, loc, acts.rows, dkRows, modality,
                               op.getDwk().getType());
    Value dwv = weightGradient(rewriter, loc, acts.rows, dvRows, modality,
                               op.getDwv().getType());
    Value dxq =
        transposedTokenMatmul(rewriter, loc, dqRows, op.getWq(), modality);
    Value dxk =
        transposedTokenMatmul(rewriter, loc, dkRows, op.getWk(), modality);
    Value dxv =
        transposedTokenMatmul(rewriter, loc, dvRows, op.getWv(), modality);
    Value dx = mapElementwise(
        rewriter, loc, tensorTypeOf(dxq), ValueRange{dxq, dxk, dxv},
        [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value sum = arith::AddFOp::create(nb, nl, args[0], args[1]);
          return arith::AddFOp::create(nb, nl, sum, args[2]);
        });
    rewriter.replaceOp(op,
                       ValueRange{expandTokens(rewriter, loc, dx, batch, seq),
                                  dwq, dwk, dwv, dwo});
    return success();
  }
};

} // namespace

void moma::populateAttentionGradToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionGradLowering>(patterns.getContext());
}
