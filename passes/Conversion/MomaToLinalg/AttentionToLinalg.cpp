//===- AttentionToLinalg.cpp - Lower moma.attention to linalg -------------===//
//
// Global grouped-query self-attention with rotary embeddings, as fixed in
// Semantics.md:
//
//   q = x Wq : [B, L, G, R, d]  (H = G * R query heads, head h = g * R + r)
//   k = x Wk, v = x Wv : [B, L, G, d]
//   q, k <- RoPE(q, k) at the positions (rotate-half form)
//   s[b, g, r, i, j] = q[b, i, g, r] . k[b, j, g] / sqrt(d)
//   softmax over the keys j visible to query i, o = softmax . v, y = o Wo
//
// Viewing the query heads as `[G, R]` makes query head h use kv head
// `h / R` with plain projected-permutation indexing maps. Masked keys never
// enter the max, the exponentials or the weighted sum (selects, not
// multiplications by 0), so padding rows cannot poison valid ones; a query
// without a visible key gets an all-zero probability row (output 0).
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>

using namespace mlir;
using namespace moma;

using utils::IteratorType;

/// `tensor.expand_shape` of `x` to `shape` with the given reassociation.
static Value expandTo(OpBuilder &b, Location loc, Value x,
                      ArrayRef<int64_t> shape,
                      ArrayRef<ReassociationIndices> reassociation) {
  auto type = RankedTensorType::get(shape, elementTypeOf(x));
  return tensor::ExpandShapeOp::create(b, loc, type, x, reassociation);
}

/// The map `(d0, ..., d(n-1)) -> (d_dims[0], d_dims[1], ...)`.
static AffineMap dimsMap(MLIRContext *ctx, unsigned numDims,
                         ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned dim : dims)
    exprs.push_back(getAffineDimExpr(dim, ctx));
  return AffineMap::get(numDims, 0, exprs, ctx);
}

/// `p[b, l] = l`: the default positions.
static Value defaultPositions(OpBuilder &b, Location loc, int64_t batch,
                              int64_t seq) {
  auto type = RankedTensorType::get({batch, seq}, b.getI32Type());
  Value init = createEmpty(b, loc, {batch, seq}, b.getI32Type());
  MLIRContext *ctx = b.getContext();
  return linalg::GenericOp::create(
             b, loc, type, ValueRange{}, ValueRange{init},
             {AffineMap::getMultiDimIdentityMap(2, ctx)},
             {IteratorType::parallel, IteratorType::parallel},
             [&](OpBuilder &nb, Location nl, ValueRange) {
               Value l = linalg::IndexOp::create(nb, nl, 1);
               Value p = arith::IndexCastOp::create(nb, nl, nb.getI32Type(), l);
               linalg::YieldOp::create(nb, nl, p);
             })
      .getResult(0);
}

/// The rotary tables `cos(p * freq_i)` and `sin(p * freq_i)`, `[B, L, d/2]`,
/// in the element type. `freq_i = theta^(-2i/d)` is a compile-time f64
/// constant split into `hi + lo` (both in the element type); the angle is
/// `a + e` with `a = p * hi` and the small correction
/// `e = fma(p, hi, -a) + p * lo`, and
/// `cos(a + e) ~ cos a - e sin a`, `sin(a + e) ~ sin a + e cos a`. This
/// keeps the tables within an ulp or so of the f64 computation of the
/// reference even at large positions.
static std::pair<Value, Value> buildRopeTables(OpBuilder &b, Location loc,
                                               Value positions, int64_t headDim,
                                               double theta, Type elementType) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType posType = tensorTypeOf(positions);
  int64_t batch = posType.getDimSize(0), seq = posType.getDimSize(1);
  int64_t half = headDim / 2;
  auto floatType = cast<FloatType>(elementType);
  SmallVector<APFloat> his, los;
  for (int64_t i = 0; i < half; ++i) {
    double freq = std::pow(theta, -2.0 * double(i) / double(headDim));
    bool losesInfo = false;
    APFloat hi(freq);
    hi.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
               &losesInfo);
    APFloat hiWide = hi;
    hiWide.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven,
                   &losesInfo);
    APFloat lo(freq - hiWide.convertToDouble());
    lo.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
               &losesInfo);
    his.push_back(hi);
    los.push_back(lo);
  }
  auto freqType = RankedTensorType::get({half}, elementType);
  Value hiTable = arith::ConstantOp::create(
      b, loc, freqType, DenseElementsAttr::get(freqType, his));
  Value loTable = arith::ConstantOp::create(
      b, loc, freqType, DenseElementsAttr::get(freqType, los));

  auto tableType = RankedTensorType::get({batch, seq, half}, elementType);
  Value cosInit = createEmpty(b, loc, tableType.getShape(), elementType);
  Value sinInit = createEmpty(b, loc, tableType.getShape(), elementType);
  SmallVector<AffineMap> maps = {dimsMap(ctx, 3, {0, 1}), dimsMap(ctx, 3, {2}),
                                 dimsMap(ctx, 3, {2}),
                                 AffineMap::getMultiDimIdentityMap(3, ctx),
                                 AffineMap::getMultiDimIdentityMap(3, ctx)};
  auto tables = linalg::GenericOp::create(
      b, loc, TypeRange{tableType, tableType},
      ValueRange{positions, hiTable, loTable}, ValueRange{cosInit, sinInit},
      maps, SmallVector<IteratorType>(3, IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value p = arith::SIToFPOp::create(nb, nl, elementType, args[0]);
        Value hi = args[1], lo = args[2];
        Value angle = arith::MulFOp::create(nb, nl, p, hi);
        Value negAngle = arith::NegFOp::create(nb, nl, angle);
        Value error = math::FmaOp::create(nb, nl, p, hi, negAngle);
        error = arith::AddFOp::create(nb, nl, error,
                                      arith::MulFOp::create(nb, nl, p, lo));
        Value cos = math::CosOp::create(nb, nl, angle);
        Value sin = math::SinOp::create(nb, nl, angle);
        Value cosOut = arith::SubFOp::create(
            nb, nl, cos, arith::MulFOp::create(nb, nl, error, sin));
        Value sinOut = arith::AddFOp::create(
            nb, nl, sin, arith::MulFOp::create(nb, nl, error, cos));
        linalg::YieldOp::create(nb, nl, ValueRange{cosOut, sinOut});
      });
  return {tables.getResult(0), tables.getResult(1)};
}

/// Rotate-half RoPE on `x: [B, L, N, d]` with tables `[B, L, d/2]`:
/// `(x_i, x_{i+d/2}) -> (x_i cos - x_{i+d/2} sin, x_{i+d/2} cos + x_i sin)`.
static Value applyRope(OpBuilder &b, Location loc, Value x, Value cos,
                       Value sin) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType type = tensorTypeOf(x);
  ArrayRef<int64_t> shape = type.getShape();
  int64_t half = shape[3] / 2;
  auto halfType = RankedTensorType::get({shape[0], shape[1], shape[2], half},
                                        type.getElementType());
  SmallVector<OpFoldResult> sizes = {
      b.getIndexAttr(shape[0]), b.getIndexAttr(shape[1]),
      b.getIndexAttr(shape[2]), b.getIndexAttr(half)};
  SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
  auto offsetsAt = [&](int64_t last) {
    return SmallVector<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0),
                                     b.getIndexAttr(0), b.getIndexAttr(last)};
  };
  Value first = tensor::ExtractSliceOp::create(b, loc, halfType, x,
                                               offsetsAt(0), sizes, strides);
  Value second = tensor::ExtractSliceOp::create(
      b, loc, halfType, x, offsetsAt(half), sizes, strides);
  Value firstInit =
      createEmpty(b, loc, halfType.getShape(), halfType.getElementType());
  Value secondInit =
      createEmpty(b, loc, halfType.getShape(), halfType.getElementType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(4, ctx);
  AffineMap table = dimsMap(ctx, 4, {0, 1, 3});
  auto rotated = linalg::GenericOp::create(
      b, loc, TypeRange{halfType, halfType},
      ValueRange{first, second, cos, sin}, ValueRange{firstInit, secondInit},
      {identity, identity, table, table, identity, identity},
      SmallVector<IteratorType>(4, IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value x1 = args[0], x2 = args[1], c = args[2], s = args[3];
        Value out1 =
            arith::SubFOp::create(nb, nl, arith::MulFOp::create(nb, nl, x1, c),
                                  arith::MulFOp::create(nb, nl, x2, s));
        Value out2 =
            arith::AddFOp::create(nb, nl, arith::MulFOp::create(nb, nl, x2, c),
                                  arith::MulFOp::create(nb, nl, x1, s));
        linalg::YieldOp::create(nb, nl, ValueRange{out1, out2});
      });
  Value result = createEmpty(b, loc, type.getShape(), type.getElementType());
  result = tensor::InsertSliceOp::create(b, loc, rotated.getResult(0), result,
                                         offsetsAt(0), sizes, strides);
  return tensor::InsertSliceOp::create(b, loc, rotated.getResult(1), result,
                                       offsetsAt(half), sizes, strides);
}

/// Whether key position `pKey` is visible to query position `pQuery` (i32
/// scalars): `pKey >= 0` and, when causal, `pKey <= pQuery`.
static Value isVisible(OpBuilder &b, Location loc, Value pKey, Value pQuery,
                       bool causal) {
  Value zero = constantI32(b, loc, 0);
  Value visible =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, pKey, zero);
  if (!causal)
    return visible;
  Value before =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, pKey, pQuery);
  return arith::AndIOp::create(b, loc, visible, before);
}

namespace {

/// Lowers moma.attention; see the file header.
struct AttentionLowering : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    RankedTensorType xType = op.getX().getType();
    Type elementType = xType.getElementType();
    if (!hasInfinity(elementType))
      return rewriter.notifyMatchFailure(
          op, "the row maxima start at -inf, which the element type lacks");
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    int64_t heads = op.getHeads(), kvHeads = op.getKvHeads();
    int64_t headDim = op.getHeadDim(), group = heads / kvHeads;
    double theta = op.getRopeTheta().convertToDouble();
    bool causal = op.getCausal();

    // Projections on the flattened token rows (tied or untied).
    Value rows = collapseTokens(rewriter, loc, op.getX());
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    Value q = tokenMatmul(rewriter, loc, rows, op.getWq(), modality);
    Value k = tokenMatmul(rewriter, loc, rows, op.getWk(), modality);
    Value v = tokenMatmul(rewriter, loc, rows, op.getWv(), modality);
    q = expandTo(rewriter, loc, q, {batch, seq, heads, headDim},
                 {{0, 1}, {2, 3}});
    k = expandTo(rewriter, loc, k, {batch, seq, kvHeads, headDim},
                 {{0, 1}, {2, 3}});
    v = expandTo(rewriter, loc, v, {batch, seq, kvHeads, headDim},
                 {{0, 1}, {2, 3}});

    Value positions = op.getPositions()
                          ? op.getPositions()
                          : defaultPositions(rewriter, loc, batch, seq);
    if (theta > 0.0) {
      auto [cos, sin] = buildRopeTables(rewriter, loc, positions, headDim,
                                        theta, elementType);
      q = applyRope(rewriter, loc, q, cos, sin);
      k = applyRope(rewriter, loc, k, cos, sin);
    }
    // Query head h = g * R + r.
    q = expandTo(rewriter, loc, q, {batch, seq, kvHeads, group, headDim},
                 {{0}, {1}, {2, 3}, {4}});

    // Raw scores s[b, g, r, i, j] = sum_c q[b, i, g, r, c] * k[b, j, g, c]
    // (dimensions b, g, r, i, j, c).
    SmallVector<int64_t> scoreShape = {batch, kvHeads, group, seq, seq};
    auto scoreType = RankedTensorType::get(scoreShape, elementType);
    Value scores =
        linalg::GenericOp::create(
            rewriter, loc, scoreType, ValueRange{q, k},
            ValueRange{
                createFilled(rewriter, loc, scoreShape, elementType, 0.0)},
            {dimsMap(ctx, 6, {0, 3, 1, 2, 5}), dimsMap(ctx, 6, {0, 4, 1, 5}),
             dimsMap(ctx, 6, {0, 1, 2, 3, 4})},
            {IteratorType::parallel, IteratorType::parallel,
             IteratorType::parallel, IteratorType::parallel,
             IteratorType::parallel, IteratorType::reduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value product = arith::MulFOp::create(b, l, args[0], args[1]);
              linalg::YieldOp::create(
                  b, l,
                  ValueRange{arith::AddFOp::create(b, l, args[2], product)});
            })
            .getResult(0);

    // Masked, scaled scores over (b, g, r, i, j); keys read p[b, j] and
    // queries p[b, i].
    AffineMap scoreMap = AffineMap::getMultiDimIdentityMap(5, ctx);
    AffineMap rowMap = dimsMap(ctx, 5, {0, 1, 2, 3});
    AffineMap keyPos = dimsMap(ctx, 5, {0, 4});
    AffineMap queryPos = dimsMap(ctx, 5, {0, 3});
    SmallVector<IteratorType> rowReduction(5, IteratorType::parallel);
    rowReduction.back() = IteratorType::reduction;
    SmallVector<int64_t> rowShape = {batch, kvHeads, group, seq};
    auto rowType = RankedTensorType::get(rowShape, elementType);
    double sqrtDim = std::sqrt(double(headDim));
    auto scaled = [&](OpBuilder &b, Location l, Value raw) -> Value {
      return arith::DivFOp::create(b, l, raw,
                                   constantFloat(b, l, elementType, sqrtDim));
    };

    // Row maxima over the visible keys (-inf when there is none).
    Value maxima =
        linalg::GenericOp::create(
            rewriter, loc, rowType, ValueRange{scores, positions, positions},
            ValueRange{createFilled(rewriter, loc, rowShape, elementType,
                                    -std::numeric_limits<double>::infinity())},
            {scoreMap, keyPos, queryPos, rowMap}, rowReduction,
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value visible = isVisible(b, l, args[1], args[2], causal);
              Value larger = arith::MaximumFOp::create(b, l, args[3],
                                                       scaled(b, l, args[0]));
              linalg::YieldOp::create(b, l,
                                      ValueRange{arith::SelectOp::create(
                                          b, l, visible, larger, args[3])});
            })
            .getResult(0);

    // Softmax denominators: sums of exp(s - max) over the visible keys (at
    // least 1 for a row with a visible key).
    auto shiftedExp = [&](OpBuilder &b, Location l, Value raw,
                          Value max) -> Value {
      Value shifted = arith::SubFOp::create(b, l, scaled(b, l, raw), max);
      return math::ExpOp::create(b, l, shifted);
    };
    Value sums =
        linalg::GenericOp::create(
            rewriter, loc, rowType,
            ValueRange{scores, maxima, positions, positions},
            ValueRange{createFilled(rewriter, loc, rowShape, elementType, 0.0)},
            {scoreMap, rowMap, keyPos, queryPos, rowMap}, rowReduction,
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value visible = isVisible(b, l, args[2], args[3], causal);
              Value sum = arith::AddFOp::create(
                  b, l, args[4], shiftedExp(b, l, args[0], args[1]));
              linalg::YieldOp::create(b, l,
                                      ValueRange{arith::SelectOp::create(
                                          b, l, visible, sum, args[4])});
            })
            .getResult(0);

    // Probabilities exp(s - max) / sum at the visible keys, 0 elsewhere (a
    // row without visible keys is all zero).
    Value probs =
        linalg::GenericOp::create(
            rewriter, loc, scoreType,
            ValueRange{scores, maxima, sums, positions, positions},
            ValueRange{createEmpty(rewriter, loc, scoreShape, elementType)},
            {scoreMap, rowMap, rowMap, keyPos, queryPos, scoreMap},
            SmallVector<IteratorType>(5, IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value visible = isVisible(b, l, args[3], args[4], causal);
              Value prob = arith::DivFOp::create(
                  b, l, shiftedExp(b, l, args[0], args[1]), args[2]);
              Value zero = constantFloat(b, l, elementType, 0.0);
              linalg::YieldOp::create(b, l,
                                      ValueRange{arith::SelectOp::create(
                                          b, l, visible, prob, zero)});
            })
            .getResult(0);

    // o[b, i, g, r, c] = sum_j p[b, g, r, i, j] * v[b, j, g, c] over the
    // visible keys (dimensions b, g, r, i, c, j).
    SmallVector<int64_t> outShape = {batch, seq, kvHeads, group, headDim};
    auto outType = RankedTensorType::get(outShape, elementType);
    Value out =
        linalg::GenericOp::create(
            rewriter, loc, outType, ValueRange{probs, v, positions, positions},
            ValueRange{createFilled(rewriter, loc, outShape, elementType, 0.0)},
            {dimsMap(ctx, 6, {0, 1, 2, 3, 5}), dimsMap(ctx, 6, {0, 5, 1, 4}),
             dimsMap(ctx, 6, {0, 5}), dimsMap(ctx, 6, {0, 3}),
             dimsMap(ctx, 6, {0, 3, 1, 2, 4})},
            {IteratorType::parallel, IteratorType::parallel,
             IteratorType::parallel, IteratorType::parallel,
             IteratorType::parallel, IteratorType::reduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value visible = isVisible(b, l, args[2], args[3], causal);
              Value product = arith::MulFOp::create(b, l, args[0], args[1]);
              Value sum = arith::AddFOp::create(b, l, args[4], product);
              linalg::YieldOp::create(b, l,
                                      ValueRange{arith::SelectOp::create(
                                          b, l, visible, sum, args[4])});
            })
            .getResult(0);

    // Output projection on the token rows [B * L, H * d].
    auto flatType =
        RankedTensorType::get({batch * seq, heads * headDim}, elementType);
    Value flat = tensor::CollapseShapeOp::create(
        rewriter, loc, flatType, out,
        SmallVector<ReassociationIndices>{{0, 1}, {2, 3, 4}});
    Value y = tokenMatmul(rewriter, loc, flat, op.getWo(), modality);
    rewriter.replaceOp(op, expandTokens(rewriter, loc, y, batch, seq));
    return success();
  }
};

} // namespace

void moma::populateAttentionToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionLowering>(patterns.getContext());
}
