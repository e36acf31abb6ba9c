//===- GradientsToLinalg.cpp - Lower the dense backward ops to linalg -----===//
//
// Patterns for the backward ops of the dense path (MomaGradientOps.td):
// moma.embed_grad, moma.norm_grad, moma.bias_grad, moma.linear_grad,
// moma.ffn_grad and moma.cross_entropy_grad. They work on the flattened
// `[B * L, ...]` token rows: activation gradients are products with
// transposed weights (`transposedTokenMatmul`), weight gradients are sums
// over tokens (`weightGradient`, per modality slice when untied), and the
// rest is element-wise `linalg.generic`s and last-dimension reductions.
// Every sum runs in a fixed order.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/GradientUtils.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

/// The scalar `weight[slice?, index]` of a per-feature weight, `slice` null
/// when the weight is tied.
static Value featureWeight(OpBuilder &b, Location loc, Value weight,
                           Value slice, Value index) {
  if (!slice)
    return tensor::ExtractOp::create(b, loc, weight, ValueRange{index});
  return tensor::ExtractOp::create(b, loc, weight, ValueRange{slice, index});
}

/// The modality slice of token row `t` (a `linalg.index`-free helper for
/// bodies that already hold the modality id), clamped like the forward ops.
static Value sliceOf(OpBuilder &b, Location loc, Value modalityId,
                     int64_t slices) {
  return clampedIndex(b, loc, modalityId, slices);
}

namespace {

//===----------------------------------------------------------------------===//
// moma.embed_grad
//===----------------------------------------------------------------------===//

/// `dtable[ids[t]] += dy[t]` in ascending `t` (untied: into
/// `dtable[modality[t]]`), skipping ids and modality ids out of range.
struct EmbedGradLowering : OpRewritePattern<EmbedGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(EmbedGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType tableType = op.getResult().getType();
    bool untied = static_cast<bool>(op.getModality());
    int64_t rank = tableType.getRank();
    int64_t vocab = tableType.getDimSize(rank - 2);
    int64_t width = tableType.getDimSize(rank - 1);
    int64_t slices = untied ? tableType.getDimSize(0) : 1;
    Type elementType = tableType.getElementType();
    Value ids = collapseTokens(rewriter, loc, op.getIds());
    Value dy = collapseTokens(rewriter, loc, op.getDy());
    Value modality =
        untied ? collapseTokens(rewriter, loc, op.getModality()) : Value();
    int64_t numTokens = tensorTypeOf(ids).getDimSize(0);
    Value table =
        createFilled(rewriter, loc, tableType.getShape(), elementType, 0.0);
    MLIRContext *ctx = rewriter.getContext();
    auto loop = scf::ForOp::create(
        rewriter, loc, constantIndex(rewriter, loc, 0),
        constantIndex(rewriter, loc, numTokens),
        constantIndex(rewriter, loc, 1), ValueRange{table},
        [&](OpBuilder &b, Location l, Value t, ValueRange iter) {
          Value id = extractAt(b, l, ids, t);
          Value valid = isInRange(b, l, id, vocab);
          Value m;
          if (untied) {
            m = extractAt(b, l, modality, t);
            valid = andi(b, l, valid, isInRange(b, l, m, slices));
          }
          auto ifOp = scf::IfOp::create(b, l, iter.getTypes(), valid,
                                        /*withElseRegion=*/true);
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(ifOp.thenBlock());
          SmallVector<OpFoldResult> offsets, sizes;
          if (untied) {
            offsets.push_back(toIndex(b, l, m));
            sizes.push_back(b.getIndexAttr(1));
          }
          offsets.append({toIndex(b, l, id), b.getIndexAttr(0)});
          sizes.append({b.getIndexAttr(1), b.getIndexAttr(width)});
          SmallVector<OpFoldResult> strides(rank, b.getIndexAttr(1));
          auto rowType = RankedTensorType::get({width}, elementType);
          Value acc = tensor::ExtractSliceOp::create(b, l, rowType, iter[0],
                                                     offsets, sizes, strides);
          Value in = tensor::ExtractSliceOp::create(
              b, l, rowType, dy, ArrayRef<OpFoldResult>{t, b.getIndexAttr(0)},
              ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(width)},
              ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
          AffineMap identity = AffineMap::getMultiDimIdentityMap(1, ctx);
          Value sum =
              linalg::GenericOp::create(
                  b, l, rowType, ValueRange{in}, ValueRange{acc},
                  ArrayRef<AffineMap>{identity, identity},
                  ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, args[1], args[0])
                            .getResult());
                  })
                  .getResult(0);
          Value updated = tensor::InsertSliceOp::create(
              b, l, sum, iter[0], offsets, sizes, strides);
          scf::YieldOp::create(b, l, updated);
          b.setInsertionPointToStart(ifOp.elseBlock());
          scf::YieldOp::create(b, l, iter);
          b.setInsertionPointAfter(ifOp);
          scf::YieldOp::create(b, l, ifOp.getResults());
        });
    rewriter.replaceOp(op, loop.getResult(0));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.bias_grad, moma.norm_grad
//===----------------------------------------------------------------------===//

struct BiasGradLowering : OpRewritePattern<BiasGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(BiasGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    rewriter.replaceOp(op,
                       sumOverTokens(rewriter, loc,
                                     collapseTokens(rewriter, loc, op.getDy()),
                                     modality, op.getResult().getType()));
    return success();
  }
};

/// RMSNorm and LayerNorm backward, row by row: the statistics are recomputed
/// (`r` the reciprocal root, `xhat` the normalised row), then with
/// `g = dy * w`: `dx = r (g - mean(g) - mean(g xhat) xhat)` (the `mean(g)`
/// term only for layer norm) and `dw = sum over tokens of dy * xhat`.
struct NormGradLowering : OpRewritePattern<NormGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(NormGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    Type elementType = xType.getElementType();
    int64_t width = xType.getDimSize(2);
    bool layer = op.getKind() == NormKind::layer;
    double epsilon = op.getEpsilon().convertToDouble();
    Value x = op.getX(), dy = op.getDy(), weight = op.getWeight();
    Value modality = op.getModality();
    int64_t slices = modality ? tensorTypeOf(weight).getDimSize(0) : int64_t(1);
    auto rowType =
        RankedTensorType::get(xType.getShape().drop_back(), elementType);
    auto mean = [&](Value sum) {
      return mapElementwise(
          rewriter, loc, rowType, ValueRange{sum},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            return arith::DivFOp::create(
                b, l, args[0], constantFloat(b, l, elementType, double(width)));
          });
    };

    // The centred rows (layer norm) and the reciprocal root.
    Value centred = x;
    if (layer) {
      Value mu = mean(reduceLastDim(rewriter, loc, x));
      centred = mapElementwise(
          rewriter, loc, xType, ValueRange{x, mu},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            return arith::SubFOp::create(b, l, args[0], args[1]);
          });
    }
    Value squares =
        mapElementwise(rewriter, loc, xType, ValueRange{centred},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[0], args[0]);
                       });
    Value r = mapElementwise(
        rewriter, loc, rowType,
        ValueRange{mean(reduceLastDim(rewriter, loc, squares))},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value sum = arith::AddFOp::create(
              b, l, args[0], constantFloat(b, l, elementType, epsilon));
          return arith::DivFOp::create(b, l,
                                       constantFloat(b, l, elementType, 1.0),
                                       math::SqrtOp::create(b, l, sum));
        });
    Value xhat =
        mapElementwise(rewriter, loc, xType, ValueRange{centred, r},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[0], args[1]);
                       });
    // g = dy * w.
    SmallVector<Value> gInputs = {dy};
    if (modality)
      gInputs.push_back(modality);
    Value g = mapElementwise(
        rewriter, loc, xType, gInputs,
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value slice = modality ? sliceOf(b, l, args[1], slices) : Value();
          Value w = featureWeight(b, l, weight, slice,
                                  linalg::IndexOp::create(b, l, 2));
          return arith::MulFOp::create(b, l, args[0], w);
        });
    Value gx =
        mapElementwise(rewriter, loc, xType, ValueRange{g, xhat},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[0], args[1]);
                       });
    Value meanGx = mean(reduceLastDim(rewriter, loc, gx));
    SmallVector<Value> dxInputs = {g, xhat, r, meanGx};
    if (layer)
      dxInputs.push_back(mean(reduceLastDim(rewriter, loc, g)));
    Value dx = mapElementwise(
        rewriter, loc, xType, dxInputs,
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value term = arith::MulFOp::create(b, l, args[3], args[1]);
          Value diff = arith::SubFOp::create(b, l, args[0], term);
          if (layer)
            diff = arith::SubFOp::create(b, l, diff, args[4]);
          return arith::MulFOp::create(b, l, args[2], diff);
        });
    Value dyXhat =
        mapElementwise(rewriter, loc, xType, ValueRange{dy, xhat},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[0], args[1]);
                       });
    Value dw = sumOverTokens(
        rewriter, loc, collapseTokens(rewriter, loc, dyXhat),
        modality ? collapseTokens(rewriter, loc, modality) : Value(),
        op.getDweight().getType());
    rewriter.replaceOp(op, {dx, dw});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.linear_grad
//===----------------------------------------------------------------------===//

struct LinearGradLowering : OpRewritePattern<LinearGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LinearGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    ProjectionGradients grads = buildProjectionGradients(
        rewriter, loc, collapseTokens(rewriter, loc, op.getX()),
        collapseTokens(rewriter, loc, op.getDy()), op.getWeight(), modality,
        op.getLoraA(), op.getLoraB(), op.getLoraScale().convertToDouble());
    SmallVector<Value> results = {
        expandTokens(rewriter, loc, grads.dx, batch, seq), grads.dw};
    if (op.getLoraA())
      results.append({grads.da, grads.db});
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.ffn_grad
//===----------------------------------------------------------------------===//

/// Recomputes `u = x w_in` and the hidden `h`, then `dw_out = h^T dy`,
/// `dh = dy w_out^T`, `du` through the activation, `dw_in = x^T du` and
/// `dx = du w_in^T`.
struct FfnGradLowering : OpRewritePattern<FfnGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(FfnGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    bool swiglu = op.getActivation() == Activation::swiglu;
    Value x = collapseTokens(rewriter, loc, op.getX());
    Value dy = collapseTokens(rewriter, loc, op.getDy());
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    Value wIn = op.getWIn(), wOut = op.getWOut();
    Value u = tokenMatmul(rewriter, loc, x, wIn, modality);
    Value h = buildFfnHidden(rewriter, loc, swiglu, u);
    Value dwOut =
        weightGradient(rewriter, loc, h, dy, modality, op.getDwOut().getType());
    Value dh = transposedTokenMatmul(rewriter, loc, dy, wOut, modality);
    Value du = buildFfnHiddenGradient(rewriter, loc, swiglu, u, dh);
    Value dwIn =
        weightGradient(rewriter, loc, x, du, modality, op.getDwIn().getType());
    Value dx = transposedTokenMatmul(rewriter, loc, du, wIn, modality);
    rewriter.replaceOp(
        op, {expandTokens(rewriter, loc, dx, batch, seq), dwIn, dwOut});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.cross_entropy_grad
//===----------------------------------------------------------------------===//

/// `(softmax(logits[t]) - onehot(target[t])) * w[t]`, with the per-token
/// weight `w[t] = d_total / N + d_per_modality[m] / N_m` of the means of
/// Semantics.md (0 for rows without a target).
struct CrossEntropyGradLowering : OpRewritePattern<CrossEntropyGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CrossEntropyGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getLogits().getType();
    Type elementType = type.getElementType();
    if (!hasInfinity(elementType))
      return rewriter.notifyMatchFailure(op, "needs a type with infinities");
    int64_t batch = type.getDimSize(0), seq = type.getDimSize(1);
    Value logits = collapseTokens(rewriter, loc, op.getLogits());
    Value targets = collapseTokens(rewriter, loc, op.getTargets());
    Value tmod = collapseTokens(rewriter, loc, op.getTargetModality());
    int64_t numTokens = batch * seq;
    int64_t numModalities = tensorTypeOf(op.getDPerModality()).getDimSize(0);

    // Target counts: all (N) and per modality (N_m), as floats.
    MLIRContext *ctx = rewriter.getContext();
    AffineExpr m, t;
    bindDims(ctx, m, t);
    Value countInit =
        createFilled(rewriter, loc, {numModalities + 1}, elementType, 0.0);
    // Row M of the counts is N (every target), rows m < M are N_m.
    Value counts =
        linalg::GenericOp::create(
            rewriter, loc, countInit.getType(), ValueRange{targets, tmod},
            ValueRange{countInit},
            ArrayRef<AffineMap>{AffineMap::get(2, 0, {t}, ctx),
                                AffineMap::get(2, 0, {t}, ctx),
                                AffineMap::get(2, 0, {m}, ctx)},
            ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                          utils::IteratorType::reduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value row = toI32(b, l, linalg::IndexOp::create(b, l, 0));
              Value hasTarget = cmpi(b, l, arith::CmpIPredicate::sge, args[0],
                                     constantI32(b, l, 0));
              Value isAll = cmpi(b, l, arith::CmpIPredicate::eq, row,
                                 constantI32(b, l, numModalities));
              Value isRow = cmpi(b, l, arith::CmpIPredicate::eq, row, args[1]);
              Value counted =
                  andi(b, l, hasTarget,
                       arith::OrIOp::create(b, l, isAll, isRow).getResult());
              Value one = arith::SelectOp::create(
                  b, l, counted, constantFloat(b, l, elementType, 1.0),
                  constantFloat(b, l, elementType, 0.0));
              linalg::YieldOp::create(
                  b, l, arith::AddFOp::create(b, l, args[2], one).getResult());
            })
            .getResult(0);
    Value dPer = op.getDPerModality(), dTotal = op.getDTotal();
    auto tokenType = RankedTensorType::get({numTokens}, elementType);
    Value weights = mapElementwise(
        rewriter, loc, tokenType, ValueRange{targets, tmod},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value zero = constantFloat(b, l, elementType, 0.0);
          Value all =
              extractAt(b, l, counts, constantIndex(b, l, numModalities));
          Value w = arith::DivFOp::create(
              b, l, tensor::ExtractOp::create(b, l, dTotal, ValueRange{}),
              arith::MaximumFOp::create(b, l, all,
                                        constantFloat(b, l, elementType, 1.0)));
          Value inRange = isInRange(b, l, args[1], numModalities);
          Value index = clampedIndex(b, l, args[1], numModalities);
          Value perCount =
              arith::MaximumFOp::create(b, l, extractAt(b, l, counts, index),
                                        constantFloat(b, l, elementType, 1.0));
          Value per = arith::DivFOp::create(b, l, extractAt(b, l, dPer, index),
                                            perCount);
          w = arith::AddFOp::create(
              b, l, w, arith::SelectOp::create(b, l, inRange, per, zero));
          Value hasTarget = cmpi(b, l, arith::CmpIPredicate::sge, args[0],
                                 constantI32(b, l, 0));
          return arith::SelectOp::create(b, l, hasTarget, w, zero);
        });
    Value maxima = reduceLastDim(rewriter, loc, logits, /*max=*/true);
    Value exps = mapElementwise(
        rewriter, loc, tensorTypeOf(logits), ValueRange{logits, maxima},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          return math::ExpOp::create(
              b, l, arith::SubFOp::create(b, l, args[0], args[1]));
        });
    Value sums = reduceLastDim(rewriter, loc, exps);
    Value grad = mapElementwise(
        rewriter, loc, tensorTypeOf(logits),
        ValueRange{exps, sums, weights, targets},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value p = arith::DivFOp::create(b, l, args[0], args[1]);
          Value column = toI32(b, l, linalg::IndexOp::create(b, l, 1));
          Value isTarget =
              cmpi(b, l, arith::CmpIPredicate::eq, column, args[3]);
          Value diff = arith::SubFOp::create(
              b, l, p,
              arith::SelectOp::create(b, l, isTarget,
                                      constantFloat(b, l, elementType, 1.0),
                                      constantFloat(b, l, elementType, 0.0)));
          return arith::MulFOp::create(b, l, diff, args[2]);
        });
    rewriter.replaceOp(op, expandTokens(rewriter, loc, grad, batch, seq));
    return success();
  }
};

} // namespace

void moma::populateGradientsToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<EmbedGradLowering, BiasGradLowering, NormGradLowering,
               LinearGradLowering, FfnGradLowering, CrossEntropyGradLowering>(
      patterns.getContext());
}
