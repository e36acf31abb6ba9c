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

#include "mlir/IR/AffineMap.h"

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
///
/// Two passes over the rows (LayerNorm: one more for the mean): the sum of
/// squares squares in the reduction's body, and the output pass recomputes
/// the centred value instead of reading a centred copy. A post-norm
/// residual add `r + norm(x)` that is the norm's only use joins the output
/// pass (the same additions in the same type, so the same bits).
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

    // `r + norm(x)` (either order) as the only use: built at the add, where
    // both the norm's operands and `r` are defined.
    arith::AddFOp residualAdd = residualUse(op);
    Value residual;
    bool residualFirst = false;
    if (residualAdd) {
      residualFirst = residualAdd.getRhs() == op.getResult();
      residual = residualFirst ? residualAdd.getLhs() : residualAdd.getRhs();
      rewriter.setInsertionPoint(residualAdd);
    }

    auto divideByWidth = [&](OpBuilder &b, Location l, Value sum) -> Value {
      return arith::DivFOp::create(
          b, l, sum, constantFloat(b, l, elementType, double(width)));
    };

    // LayerNorm centres the rows: mean = sum(x) / D.
    Value mean;
    if (layer) {
      Value sum = reduceLastDim(rewriter, loc, x);
      mean = mapElementwise(
          rewriter, loc, tensorTypeOf(sum), ValueRange{sum},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            return divideByWidth(b, l, args[0]);
          });
    }
    auto centre = [&](OpBuilder &b, Location l, ValueRange args) -> Value {
      return layer ? arith::SubFOp::create(b, l, args[0], args[1]).getResult()
                   : args[0];
    };

    // Sum of squares (RMS) or of centred squares (layer), in feature order.
    MLIRContext *ctx = rewriter.getContext();
    AffineMap rowMap = AffineMap::get(
        3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx)}, ctx);
    SmallVector<Value> rowInputs = {x};
    SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(3, ctx)};
    if (layer) {
      rowInputs.push_back(mean);
      maps.push_back(rowMap);
    }
    maps.push_back(rowMap);
    Value zeros =
        createFilled(rewriter, loc, {xType.getDimSize(0), xType.getDimSize(1)},
                     elementType, 0.0);
    Value sumOfSquares =
        linalg::GenericOp::create(
            rewriter, loc, zeros.getType(), rowInputs, ValueRange{zeros}, maps,
            {utils::IteratorType::parallel, utils::IteratorType::parallel,
             utils::IteratorType::reduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value c = centre(b, l, args.drop_back());
              Value square = arith::MulFOp::create(b, l, c, c);
              linalg::YieldOp::create(
                  b, l,
                  ValueRange{arith::AddFOp::create(b, l, square, args.back())});
            })
            .getResult(0);

    SmallVector<Value> inputs = {x};
    if (layer)
      inputs.push_back(mean);
    size_t sumIndex = inputs.size();
    inputs.push_back(sumOfSquares);
    if (modality)
      inputs.push_back(modality);
    if (residual)
      inputs.push_back(residual);
    Value result = mapElementwise(
        rewriter, loc, xType, inputs,
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value slice = modality
                            ? clampedIndex(b, l, args[sumIndex + 1],
                                           tensorTypeOf(weight).getDimSize(0))
                            : Value();
          Value feature = linalg::IndexOp::create(b, l, 2);
          Value variance = divideByWidth(b, l, args[sumIndex]);
          Value eps = constantFloat(b, l, elementType, epsilon);
          Value denominator = math::SqrtOp::create(
              b, l, arith::AddFOp::create(b, l, variance, eps));
          Value normalised = arith::DivFOp::create(
              b, l, centre(b, l, args.take_front(sumIndex)), denominator);
          Value y = arith::MulFOp::create(
              b, l, normalised,
              extractFeatureWeight(b, l, weight, slice, feature));
          if (bias)
            y = arith::AddFOp::create(
                b, l, y, extractFeatureWeight(b, l, bias, slice, feature));
          if (residual)
            y = residualFirst
                    ? arith::AddFOp::create(b, l, args.back(), y).getResult()
                    : arith::AddFOp::create(b, l, y, args.back()).getResult();
          return y;
        });
    if (residualAdd) {
      rewriter.replaceOp(residualAdd, result);
      rewriter.eraseOp(op);
    } else {
      rewriter.replaceOp(op, result);
    }
    return success();
  }

private:
  /// The `arith.addf` of the same type in the same block that is the norm
  /// result's only use, adding another value (the residual stream).
  static arith::AddFOp residualUse(NormOp op) {
    Value result = op.getResult();
    if (!result.hasOneUse())
      return {};
    auto add = dyn_cast<arith::AddFOp>(*result.user_begin());
    if (!add || add->getBlock() != op->getBlock() ||
        add.getType() != result.getType() || add.getLhs() == add.getRhs())
      return {};
    return add;
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
