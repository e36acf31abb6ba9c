//===- AttentionUtils.cpp - Builders shared by attention and its grad -----===//
//
// Grouped-query self-attention with rotary embeddings, as fixed in
// Semantics.md:
//
//   q = x Wq : [B, L, G, R, d]  (H = G * R query heads, head h = g * R + r)
//   k = x Wk, v = x Wv : [B, L, G, d]
//   q, k <- RoPE(q, k) at the positions (rotate-half form)
//   s[b, g, r, i, j] = q[b, i, g, r] . k[b, j, g] / sqrt(d)
//   softmax over the keys j visible to query i
//
// Viewing the query heads as `[G, R]` makes query head h use kv head
// `h / R` with plain projected-permutation indexing maps. Masked keys never
// enter the max, the exponentials or the weighted sums (selects, not
// multiplications by 0), so padding rows cannot poison valid ones; a query
// without a visible key gets an all-zero probability row.
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MomaToLinalg/AttentionUtils.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace moma;

using utils::IteratorType;

Value moma::expandTo(OpBuilder &b, Location loc, Value x,
                     ArrayRef<int64_t> shape,
                     ArrayRef<ReassociationIndices> reassociation) {
  auto type = RankedTensorType::get(shape, elementTypeOf(x));
  return tensor::ExpandShapeOp::create(b, loc, type, x, reassociation);
}

AffineMap moma::dimsMap(MLIRContext *ctx, unsigned numDims,
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

/// Rotate-half RoPE:
/// `(x_i, x_{i+d/2}) -> (x_i cos - x_{i+d/2} sin, x_{i+d/2} cos + x_i sin)`,
/// or `(x_i cos + x_{i+d/2} sin, x_{i+d/2} cos - x_i sin)` when `inverse`.
Value moma::applyRope(OpBuilder &b, Location loc, Value x, Value cos, Value sin,
                      bool inverse) {
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
        // The transpose of the rotation by the angle is the rotation by its
        // opposite: the sine changes sign.
        Value x1c = arith::MulFOp::create(nb, nl, x1, c);
        Value x2s = arith::MulFOp::create(nb, nl, x2, s);
        Value out1 = inverse ? Value(arith::AddFOp::create(nb, nl, x1c, x2s))
                             : Value(arith::SubFOp::create(nb, nl, x1c, x2s));
        Value x2c = arith::MulFOp::create(nb, nl, x2, c);
        Value x1s = arith::MulFOp::create(nb, nl, x1, s);
        Value out2 = inverse ? Value(arith::SubFOp::create(nb, nl, x2c, x1s))
                             : Value(arith::AddFOp::create(nb, nl, x2c, x1s));
        linalg::YieldOp::create(nb, nl, ValueRange{out1, out2});
      });
  Value result = createEmpty(b, loc, type.getShape(), type.getElementType());
  result = tensor::InsertSliceOp::create(b, loc, rotated.getResult(0), result,
                                         offsetsAt(0), sizes, strides);
  return tensor::InsertSliceOp::create(b, loc, rotated.getResult(1), result,
                                       offsetsAt(half), sizes, strides);
}

Value moma::isVisible(OpBuilder &b, Location loc, Value pKey, Value pQuery,
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

Value moma::contractHeadDim(OpBuilder &b, Location loc, Value a, Value c) {
  MLIRContext *ctx = b.getContext();
  ArrayRef<int64_t> shape = tensorTypeOf(a).getShape();
  Type elementType = elementTypeOf(a);
  // Dimensions b, g, r, i, j, c.
  SmallVector<int64_t> resultShape = {shape[0], shape[2], shape[3], shape[1],
                                      shape[1]};
  auto resultType = RankedTensorType::get(resultShape, elementType);
  return linalg::GenericOp::create(
             b, loc, resultType, ValueRange{a, c},
             ValueRange{createFilled(b, loc, resultShape, elementType, 0.0)},
             {dimsMap(ctx, 6, {0, 3, 1, 2, 5}), dimsMap(ctx, 6, {0, 4, 1, 5}),
              dimsMap(ctx, 6, {0, 1, 2, 3, 4})},
             {IteratorType::parallel, IteratorType::parallel,
              IteratorType::parallel, IteratorType::parallel,
              IteratorType::parallel, IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value product = arith::MulFOp::create(nb, nl, args[0], args[1]);
               linalg::YieldOp::create(
                   nb, nl,
                   ValueRange{arith::AddFOp::create(nb, nl, args[2], product)});
             })
      .getResult(0);
}

/// `r = sum w * a` over the last `reductions` dimensions of the 6-D
/// iteration space, counting only the (key, query) pairs where the key is
/// visible: `maps` index w, a, the key and query positions and r.
static Value visibleContraction(OpBuilder &b, Location loc, Value w, Value a,
                                Value positions, bool causal,
                                ArrayRef<int64_t> resultShape,
                                ArrayRef<AffineMap> maps, int64_t reductions) {
  Type elementType = elementTypeOf(w);
  SmallVector<IteratorType> iterators(6, IteratorType::parallel);
  for (int64_t dim = 6 - reductions; dim < 6; ++dim)
    iterators[dim] = IteratorType::reduction;
  auto resultType = RankedTensorType::get(resultShape, elementType);
  return linalg::GenericOp::create(
             b, loc, resultType, ValueRange{w, a, positions, positions},
             ValueRange{createFilled(b, loc, resultShape, elementType, 0.0)},
             maps, iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value visible = isVisible(nb, nl, args[2], args[3], causal);
               Value product = arith::MulFOp::create(nb, nl, args[0], args[1]);
               Value sum = arith::AddFOp::create(nb, nl, args[4], product);
               linalg::YieldOp::create(nb, nl,
                                       ValueRange{arith::SelectOp::create(
                                           nb, nl, visible, sum, args[4])});
             })
      .getResult(0);
}

Value moma::contractKeys(OpBuilder &b, Location loc, Value w, Value v,
                         Value positions, bool causal) {
  MLIRContext *ctx = b.getContext();
  ArrayRef<int64_t> shape = tensorTypeOf(w).getShape();
  // Dimensions b, g, r, i, c, j.
  return visibleContraction(
      b, loc, w, v, positions, causal,
      {shape[0], shape[3], shape[1], shape[2], tensorTypeOf(v).getDimSize(3)},
      {dimsMap(ctx, 6, {0, 1, 2, 3, 5}), dimsMap(ctx, 6, {0, 5, 1, 4}),
       dimsMap(ctx, 6, {0, 5}), dimsMap(ctx, 6, {0, 3}),
       dimsMap(ctx, 6, {0, 3, 1, 2, 4})},
      /*reductions=*/1);
}

Value moma::contractQueries(OpBuilder &b, Location loc, Value w, Value a,
                            Value positions, bool causal) {
  MLIRContext *ctx = b.getContext();
  ArrayRef<int64_t> shape = tensorTypeOf(w).getShape();
  // Dimensions b, j, g, c, r, i.
  return visibleContraction(
      b, loc, w, a, positions, causal,
      {shape[0], shape[4], shape[1], tensorTypeOf(a).getDimSize(4)},
      {dimsMap(ctx, 6, {0, 2, 4, 5, 1}), dimsMap(ctx, 6, {0, 5, 2, 4, 3}),
       dimsMap(ctx, 6, {0, 1}), dimsMap(ctx, 6, {0, 5}),
       dimsMap(ctx, 6, {0, 1, 2, 3})},
      /*reductions=*/2);
}

AttentionActivations moma::buildAttentionProbs(OpBuilder &b, Location loc,
                                               const AttentionForm &form) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType xType = tensorTypeOf(form.x);
  Type elementType = xType.getElementType();
  int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
  int64_t heads = form.heads, kvHeads = form.kvHeads;
  int64_t headDim = form.headDim, group = heads / kvHeads;
  bool causal = form.causal;
  AttentionActivations acts;

  // Projections on the flattened token rows (tied or untied).
  acts.rows = collapseTokens(b, loc, form.x);
  acts.modality =
      form.modality ? collapseTokens(b, loc, form.modality) : Value();
  Value q = tokenMatmul(b, loc, acts.rows, form.wq, acts.modality);
  Value k = tokenMatmul(b, loc, acts.rows, form.wk, acts.modality);
  Value v = tokenMatmul(b, loc, acts.rows, form.wv, acts.modality);
  q = expandTo(b, loc, q, {batch, seq, heads, headDim}, {{0, 1}, {2, 3}});
  k = expandTo(b, loc, k, {batch, seq, kvHeads, headDim}, {{0, 1}, {2, 3}});
  v = expandTo(b, loc, v, {batch, seq, kvHeads, headDim}, {{0, 1}, {2, 3}});

  acts.positions =
      form.positions ? form.positions : defaultPositions(b, loc, batch, seq);
  Value positions = acts.positions;
  if (form.theta > 0.0) {
    std::tie(acts.cos, acts.sin) =
        buildRopeTables(b, loc, positions, headDim, form.theta, elementType);
    q = applyRope(b, loc, q, acts.cos, acts.sin);
    k = applyRope(b, loc, k, acts.cos, acts.sin);
  }
  // Query head h = g * R + r.
  acts.q = expandTo(b, loc, q, {batch, seq, kvHeads, group, headDim},
                    {{0}, {1}, {2, 3}, {4}});
  acts.k = k;
  acts.v = v;

  // Raw scores s[b, g, r, i, j] = sum_c q[b, i, g, r, c] * k[b, j, g, c].
  Value scores = contractHeadDim(b, loc, acts.q, k);
  SmallVector<int64_t> scoreShape = {batch, kvHeads, group, seq, seq};

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
  auto scoreType = RankedTensorType::get(scoreShape, elementType);
  double sqrtDim = std::sqrt(double(headDim));
  auto scaled = [&](OpBuilder &nb, Location l, Value raw) -> Value {
    return arith::DivFOp::create(nb, l, raw,
                                 constantFloat(nb, l, elementType, sqrtDim));
  };

  // Row maxima over the visible keys (-inf when there is none).
  Value maxima =
      linalg::GenericOp::create(
          b, loc, rowType, ValueRange{scores, positions, positions},
          ValueRange{createFilled(b, loc, rowShape, elementType,
                                  -std::numeric_limits<double>::infinity())},
          {scoreMap, keyPos, queryPos, rowMap}, rowReduction,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value visible = isVisible(nb, l, args[1], args[2], causal);
            Value larger = arith::MaximumFOp::create(nb, l, args[3],
                                                     scaled(nb, l, args[0]));
            linalg::YieldOp::create(nb, l,
                                    ValueRange{arith::SelectOp::create(
                                        nb, l, visible, larger, args[3])});
          })
          .getResult(0);

  // Softmax denominators: sums of exp(s - max) over the visible keys (at
  // least 1 for a row with a visible key).
  auto shiftedExp = [&](OpBuilder &nb, Location l, Value raw,
                        Value max) -> Value {
    Value shifted = arith::SubFOp::create(nb, l, scaled(nb, l, raw), max);
    return math::ExpOp::create(nb, l, shifted);
  };
  Value sums =
      linalg::GenericOp::create(
          b, loc, rowType, ValueRange{scores, maxima, positions, positions},
          ValueRange{createFilled(b, loc, rowShape, elementType, 0.0)},
          {scoreMap, rowMap, keyPos, queryPos, rowMap}, rowReduction,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value visible = isVisible(nb, l, args[2], args[3], causal);
            Value sum = arith::AddFOp::create(
                nb, l, args[4], shiftedExp(nb, l, args[0], args[1]));
            linalg::YieldOp::create(nb, l,
                                    ValueRange{arith::SelectOp::create(
                                        nb, l, visible, sum, args[4])});
          })
          .getResult(0);

  // Probabilities exp(s - max) / sum at the visible keys, 0 elsewhere (a
  // row without visible keys is all zero).
  acts.probs = linalg::GenericOp::create(
                   b, loc, scoreType,
                   ValueRange{scores, maxima, sums, positions, positions},
                   ValueRange{createEmpty(b, loc, scoreShape, elementType)},
                   {scoreMap, rowMap, rowMap, keyPos, queryPos, scoreMap},
                   SmallVector<IteratorType>(5, IteratorType::parallel),
                   [&](OpBuilder &nb, Location l, ValueRange args) {
                     Value visible = isVisible(nb, l, args[3], args[4], causal);
                     Value prob = arith::DivFOp::create(
                         nb, l, shiftedExp(nb, l, args[0], args[1]), args[2]);
                     Value zero = constantFloat(nb, l, elementType, 0.0);
                     linalg::YieldOp::create(nb, l,
                                             ValueRange{arith::SelectOp::create(
                                                 nb, l, visible, prob, zero)});
                   })
                   .getResult(0);
  return acts;
}
