//===- DenseToLinalg.cpp - Lower the dense moma ops to linalg -------------===//
//
// Patterns for the token-wise ops of Semantics.md: moma.embed, moma.norm,
// moma.linear, moma.ffn, moma.scale and moma.stop_gradient. Matrix products
// go through `tokenMatmul` on the flattened `[B * L, ...]` token rows
// (untied weights select their slice per token); everything else is an
// element-wise `linalg.generic` or a last-dimension reduction.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

using namespace mlir;
using namespace moma;

/// `weight[feature]` (tied, `weight: [D]`) or `weight[slice, feature]`
/// (untied, `weight: [M, D]`; `slice` null when tied).
static Value extractFeatureWeight(OpBuilder &b, Location loc, Value weight,
                                  Value slice, Value feature) {
  if (!slice)
    return tensor::ExtractOp::create(b, loc, weight, ValueRange{feature});
  return tensor::ExtractOp::create(b, loc, weight, ValueRange{slice, feature});
}

//===----------------------------------------------------------------------===//
// moma.embed
//===----------------------------------------------------------------------===//

namespace {

/// `y[b, l, :] = table[ids[b, l]]` (untied: `table[modality[b, l]]`), with
/// ids and modality ids clamped into range so that no id reads out of
/// bounds.
struct EmbedLowering : OpRewritePattern<EmbedOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(EmbedOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value table = op.getTable();
    Value modality = op.getModality();
    RankedTensorType tableType = tensorTypeOf(table);
    int64_t vocab = tableType.getDimSize(tableType.getRank() - 2);
    SmallVector<Value> inputs = {op.getIds()};
    if (modality)
      inputs.push_back(modality);
    Value result =
        mapElementwise(rewriter, loc, op.getResult().getType(), inputs,
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         SmallVector<Value> indices;
                         if (modality)
                           indices.push_back(clampedIndex(
                               b, l, args[1], tableType.getDimSize(0)));
                         indices.push_back(clampedIndex(b, l, args[0], vocab));
                         indices.push_back(linalg::IndexOp::create(b, l, 2));
                         return tensor::ExtractOp::create(b, l, table, indices);
                       });
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.norm
//===----------------------------------------------------------------------===//

/// RMSNorm `x / sqrt(sum(x^2) / D + eps) * w` and LayerNorm
/// `(x - mean) / sqrt(sum((x - mean)^2) / D + eps) * w + bias`, with the
/// weights (and bias) tied or selected per token by the modality ids. The
/// statistics are last-dimension sums in the element type.
struct NormLowering : OpRewritePattern<NormOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(NormOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getX();
    RankedTensorType xType = tensorTypeOf(x);
    Type elementType = xType.getElementType();
    int64_t width = xType.getDimSize(2);
    double epsilon = op.getEpsilon().convertToDouble();
    Value weight = op.getWeight(), bias = op.getBias();
    Value modality = op.getModality();
    bool layer = op.getKind() == NormKind::layer;

    auto divideByWidth = [&](OpBuilder &b, Location l, Value sum) -> Value {
      return arith::DivFOp::create(
          b, l, sum, constantFloat(b, l, elementType, double(width)));
    };

    // Centre the rows for LayerNorm: mean = sum(x) / D.
    Value mean, centred = x;
    if (layer) {
      Value sum = reduceLastDim(rewriter, loc, x);
      mean = mapElementwise(
          rewriter, loc, tensorTypeOf(sum), ValueRange{sum},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            return divideByWidth(b, l, args[0]);
          });
      centred = mapElementwise(
          rewriter, loc, xType, ValueRange{x, mean},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            return arith::SubFOp::create(b, l, args[0], args[1]);
          });
    }
    // Mean of squares (RMS) or biased variance (layer).
    Value squares =
        mapElementwise(rewriter, loc, xType, ValueRange{centred},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[0], args[0]);
                       });
    Value sumOfSquares = reduceLastDim(rewriter, loc, squares);

    SmallVector<Value> inputs = {centred, sumOfSquares};
    if (modality)
      inputs.push_back(modality);
    Value result = mapElementwise(
        rewriter, loc, xType, inputs,
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value slice = modality
                            ? clampedIndex(b, l, args[2],
                                           tensorTypeOf(weight).getDimSize(0))
                            : Value();
          Value feature = linalg::IndexOp::create(b, l, 2);
          Value variance = divideByWidth(b, l, args[1]);
          Value eps = constantFloat(b, l, elementType, epsilon);
          Value denominator = math::SqrtOp::create(
              b, l, arith::AddFOp::create(b, l, variance, eps));
          Value normalised = arith::DivFOp::create(b, l, args[0], denominator);
          Value y = arith::MulFOp::create(
              b, l, normalised,
              extractFeatureWeight(b, l, weight, slice, feature));
          if (bias)
            y = arith::AddFOp::create(
                b, l, y, extractFeatureWeight(b, l, bias, slice, feature));
          return y;
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.linear
//===----------------------------------------------------------------------===//

/// `y = x W + bias + lora_scale * (x A) B` on the flattened token rows, each
/// weight tied or untied like `W`.
struct LinearLowering : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = tensorTypeOf(op.getX());
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    Value rows = collapseTokens(rewriter, loc, op.getX());
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    Value y = tokenMatmul(rewriter, loc, rows, op.getWeight(), modality);
    if (Value bias = op.getBias())
      y = addRowBias(rewriter, loc, y, bias, modality);
    if (op.getLoraA()) {
      Value low =
          tokenMatmul(rewriter, loc,
                      tokenMatmul(rewriter, loc, rows, op.getLoraA(), modality),
                      op.getLoraB(), modality);
      double scale = op.getLoraScale().convertToDouble();
      Type elementType = elementTypeOf(y);
      y = mapElementwise(
          rewriter, loc, tensorTypeOf(y), ValueRange{y, low},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            Value factor = constantFloat(b, l, elementType, scale);
            Value scaled = arith::MulFOp::create(b, l, args[1], factor);
            return arith::AddFOp::create(b, l, args[0], scaled);
          });
    }
    rewriter.replaceOp(op, expandTokens(rewriter, loc, y, batch, seq));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.ffn
//===----------------------------------------------------------------------===//

/// The dense SwiGLU / GELU FFN on the flattened token rows (`buildFfnRows`).
struct FfnLowering : OpRewritePattern<FfnOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(FfnOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = tensorTypeOf(op.getX());
    Value rows = collapseTokens(rewriter, loc, op.getX());
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    Value y =
        buildFfnRows(rewriter, loc, op.getActivation() == Activation::swiglu,
                     rows, op.getWIn(), op.getWOut(), modality);
    rewriter.replaceOp(op, expandTokens(rewriter, loc, y, xType.getDimSize(0),
                                        xType.getDimSize(1)));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.scale / moma.stop_gradient
//===----------------------------------------------------------------------===//

/// `y[b, l, :] = scale[b, l] * x[b, l, :]`.
struct ScaleLowering : OpRewritePattern<ScaleOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ScaleOp op,
                                PatternRewriter &rewriter) const override {
    Value result =
        mapElementwise(rewriter, op.getLoc(), op.getResult().getType(),
                       ValueRange{op.getScale(), op.getX()},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[0], args[1]);
                       });
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// The forward pass of a stop-gradient is the identity.
struct StopGradientLowering : OpRewritePattern<StopGradientOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(StopGradientOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, op.getInput());
    return success();
  }
};

} // namespace

void moma::populateDenseToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<EmbedLowering, NormLowering, LinearLowering, FfnLowering,
               ScaleLowering, StopGradientLowering>(patterns.getContext());
}
