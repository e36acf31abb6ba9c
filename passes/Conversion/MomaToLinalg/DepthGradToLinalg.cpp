//===- DepthGradToLinalg.cpp - Lower the mixture-of-depths backward ops ---===//
//
// Patterns for moma.depth_route_grad, moma.depth_blend_grad and
// moma.depth_scatter_grad (MomaGradientOps.td). The kept positions are
// indices into each batch row; gathers read `dy[b, idx[b, k]]`, and the
// scatters are written as gathers through the inverse map `l -> k` (a
// reduction over the kept slots), so every kernel is a parallel
// `linalg.generic` with a fixed order.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

/// `[B, L] i32`: for every position the kept slot `k` with
/// `indices[b, k] = l`, or -1 (a maximum over the slots).
static Value inverseSlots(OpBuilder &b, Location loc, Value indices,
                          int64_t seq) {
  MLIRContext *ctx = b.getContext();
  int64_t batch = tensorTypeOf(indices).getDimSize(0);
  AffineExpr bb, l, k;
  bindDims(ctx, bb, l, k);
  Value init = createFilledInt(b, loc, {batch, seq}, b.getI32Type(), -1);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{indices}, ValueRange{init},
             ArrayRef<AffineMap>{AffineMap::get(3, 0, {bb, k}, ctx),
                                 AffineMap::get(3, 0, {bb, l}, ctx)},
             ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                           utils::IteratorType::parallel,
                                           utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value position =
                   toI32(nb, nl, linalg::IndexOp::create(nb, nl, 1));
               Value slot = toI32(nb, nl, linalg::IndexOp::create(nb, nl, 2));
               Value match =
                   cmpi(nb, nl, arith::CmpIPredicate::eq, args[0], position);
               Value candidate = arith::SelectOp::create(
                   nb, nl, match, slot, constantI32(nb, nl, -1));
               linalg::YieldOp::create(
                   nb, nl,
                   arith::MaxSIOp::create(nb, nl, args[1], candidate)
                       .getResult());
             })
      .getResult(0);
}

/// `rows[b, idx[b, k], d]` for `rows: [B, L, D]` and every kept slot, 0 for
/// empty slots: `[B, K, D]`.
static Value gatherKept(OpBuilder &b, Location loc, Value rows, Value indices) {
  RankedTensorType rowsType = tensorTypeOf(rows);
  int64_t seq = rowsType.getDimSize(1);
  ArrayRef<int64_t> kept = tensorTypeOf(indices).getShape();
  auto type = RankedTensorType::get({kept[0], kept[1], rowsType.getDimSize(2)},
                                    rowsType.getElementType());
  return mapElementwise(
      b, loc, type, ValueRange{indices},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value valid = isInRange(nb, nl, args[0], seq);
        Value value = tensor::ExtractOp::create(
            nb, nl, rows,
            ValueRange{linalg::IndexOp::create(nb, nl, 0),
                       clampedIndex(nb, nl, args[0], seq),
                       linalg::IndexOp::create(nb, nl, 2)});
        return arith::SelectOp::create(
            nb, nl, valid, value,
            constantFloat(nb, nl, rowsType.getElementType(), 0.0));
      });
}

namespace {

/// `dr[b, l] = dgate[b, k]` at the kept positions, `dz = dr r (1 - r)`,
/// `dx = dz w^T`, `dw = x^T dz`.
struct DepthRouteGradLowering : OpRewritePattern<DepthRouteGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthRouteGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    Type elementType = xType.getElementType();
    Value x = collapseTokens(rewriter, loc, op.getX());
    Value w = op.getWeight();
    Value z = tokenMatmul(rewriter, loc, x, w, Value());
    Value slots = inverseSlots(rewriter, loc, op.getIndices(), seq);
    Value dgate = op.getDgate();
    auto rowType = RankedTensorType::get({batch, seq}, elementType);
    Value dr = mapElementwise(
        rewriter, loc, rowType, ValueRange{slots},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value kept = cmpi(b, l, arith::CmpIPredicate::sge, args[0],
                            constantI32(b, l, 0));
          Value k = toIndex(
              b, l,
              arith::MaxSIOp::create(b, l, args[0], constantI32(b, l, 0)));
          Value value = tensor::ExtractOp::create(
              b, l, dgate, ValueRange{linalg::IndexOp::create(b, l, 0), k});
          return arith::SelectOp::create(b, l, kept, value,
                                         constantFloat(b, l, elementType, 0.0));
        });
    Value drRows = tensor::CollapseShapeOp::create(
        rewriter, loc, dr, SmallVector<ReassociationIndices>{{0, 1}});
    Value dz =
        mapElementwise(rewriter, loc, tensorTypeOf(z), ValueRange{z, drRows},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         Value r = scalarSigmoid(b, l, args[0]);
                         Value one = constantFloat(b, l, elementType, 1.0);
                         return arith::MulFOp::create(
                             b, l, arith::MulFOp::create(b, l, args[1], r),
                             arith::SubFOp::create(b, l, one, r));
                       });
    Value dx = transposedTokenMatmul(rewriter, loc, dz, w, Value());
    Value dw = weightGradient(rewriter, loc, x, dz, Value(), tensorTypeOf(w));
    rewriter.replaceOp(op, {expandTokens(rewriter, loc, dx, batch, seq), dw});
    return success();
  }
};

/// `dys = dy[b, idx]`; gated: `d_out = g dys`, `d_kept_x = (1 - g) dys`,
/// `d_gate = dys . (o - xs)`; ungated: `d_out = dys`, `d_kept_x = 0`.
struct DepthBlendGradLowering : OpRewritePattern<DepthBlendGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthBlendGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType keptType = op.getKeptX().getType();
    Type elementType = keptType.getElementType();
    Value dys = gatherKept(rewriter, loc, op.getDy(), op.getIndices());
    Value gate = op.getGate();
    if (!gate) {
      rewriter.replaceOp(op,
                         {dys, createFilled(rewriter, loc, keptType.getShape(),
                                            elementType, 0.0)});
      return success();
    }
    Value dOut =
        mapElementwise(rewriter, loc, keptType, ValueRange{dys, gate},
                       [](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return arith::MulFOp::create(b, l, args[1], args[0]);
                       });
    Value dKept = mapElementwise(
        rewriter, loc, keptType, ValueRange{dys, gate},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value one = constantFloat(b, l, elementType, 1.0);
          return arith::MulFOp::create(
              b, l, arith::SubFOp::create(b, l, one, args[1]), args[0]);
        });
    Value products = mapElementwise(
        rewriter, loc, keptType,
        ValueRange{dys, op.getKeptOut(), op.getKeptX()},
        [](OpBuilder &b, Location l, ValueRange args) -> Value {
          return arith::MulFOp::create(
              b, l, args[0], arith::SubFOp::create(b, l, args[1], args[2]));
        });
    rewriter.replaceOp(op,
                       {dOut, dKept, reduceLastDim(rewriter, loc, products)});
    return success();
  }
};

/// `dx = dy` with the kept rows replaced by `d_kept_x`.
struct DepthScatterGradLowering : OpRewritePattern<DepthScatterGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthScatterGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getDy().getType();
    Value slots =
        inverseSlots(rewriter, loc, op.getIndices(), type.getDimSize(1));
    Value dKept = op.getDKeptX();
    Value dx = mapElementwise(
        rewriter, loc, type, ValueRange{op.getDy(), slots},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value kept = cmpi(b, l, arith::CmpIPredicate::sge, args[1],
                            constantI32(b, l, 0));
          Value k = toIndex(
              b, l,
              arith::MaxSIOp::create(b, l, args[1], constantI32(b, l, 0)));
          Value value = tensor::ExtractOp::create(
              b, l, dKept,
              ValueRange{linalg::IndexOp::create(b, l, 0), k,
                         linalg::IndexOp::create(b, l, 2)});
          return arith::SelectOp::create(b, l, kept, value, args[0]);
        });
    rewriter.replaceOp(op, dx);
    return success();
  }
};

} // namespace

void moma::populateDepthGradToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<DepthRouteGradLowering, DepthBlendGradLowering,
               DepthScatterGradLowering>(patterns.getContext());
}
