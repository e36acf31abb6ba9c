//===- DepthToLinalg.cpp - Lower the mixture-of-depths ops to linalg ------===//
//
// Patterns for moma.depth_route, moma.depth_region and moma.depth_mask
// (Semantics.md):
//
// - depth_route keeps the K best positions of each sequence (a larger
//   score, ties: the lower position, or with the `positions` operand the
//   lower original position), those whose selection keys reach the
//   sequence's threshold (SelectionUtils.h, parallel over the sequences),
//   or, with `aux` (logits), those with aux > 0, and compacts them in
//   ascending order with `scf.for` loops.
// - depth_region gathers the kept rows (padding rows: 0 / modality -1 /
//   position -1), inlines its body, and scatters the (gated) rows back into
//   the residual stream with `scf.for` loops over the slots; extra yielded
//   values become the extra results.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"
#include "passes/Conversion/MomaToLinalg/SelectionUtils.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

using utils::IteratorType;

//===----------------------------------------------------------------------===//
// moma.depth_route
//===----------------------------------------------------------------------===//

namespace {

/// `r = sigmoid(x . w)`; keep the K best positions per sequence (or those
/// with the logit aux > 0), listed ascending with their scores as gates.
struct DepthRouteLowering : OpRewritePattern<DepthRouteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthRouteOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    Type elementType = xType.getElementType();
    Type i32 = rewriter.getI32Type();
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    int64_t kept = op.getIndices().getType().getDimSize(1);

    // Scores r[b, l] = sigmoid(x[b, l] . w).
    Value logits =
        tokenMatmul(rewriter, loc, collapseTokens(rewriter, loc, op.getX()),
                    op.getWeight(), Value());
    logits = tensor::CollapseShapeOp::create(
        rewriter, loc, logits, SmallVector<ReassociationIndices>{{0, 1}});
    logits = expandTokens(rewriter, loc, logits, batch, seq);
    auto scoreType = RankedTensorType::get({batch, seq}, elementType);
    Value scores =
        mapElementwise(rewriter, loc, scoreType, ValueRange{logits},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         return scalarSigmoid(b, l, args[0]);
                       });

    // keep[b, l] (i1 as i32 0/1).
    auto keepType = RankedTensorType::get({batch, seq}, i32);
    Value keep;
    if (Value aux = op.getAux()) {
      Value flat = tensor::CollapseShapeOp::create(
          rewriter, loc, aux, SmallVector<ReassociationIndices>{{0}, {1, 2}});
      keep = mapElementwise(
          rewriter, loc, keepType, ValueRange{flat},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            Value zero = constantFloat(b, l, elementType, 0.0);
            Value above = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT,
                                                args[0], zero);
            return arith::ExtUIOp::create(b, l, b.getI32Type(), above);
          });
    } else {
      // The K best positions of each sequence: those whose selection keys
      // (score, then the lower position: the lower `positions` entry when
      // given) reach the sequence's threshold, parallel over the sequences
      // (SelectionUtils.h).
      Type keyType = selectionKeyType(elementType, seq);
      SmallVector<Value> keyInputs = {scores};
      if (Value positions = op.getPositions())
        keyInputs.push_back(
            buildStableRanks(rewriter, loc, positions, /*acrossBatch=*/false));
      Value keys = mapElementwise(
          rewriter, loc, RankedTensorType::get({batch, seq}, keyType),
          keyInputs, [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            Value pos = args.size() > 1
                            ? arith::IndexCastOp::create(b, l, b.getIndexType(),
                                                         args[1])
                                  .getResult()
                            : Value(linalg::IndexOp::create(b, l, 1));
            return buildSelectionKey(b, l, args[0], pos, seq);
          });
      Value thresholds = buildTopThresholds(
          rewriter, loc, keys, selectionKeyBits(elementType, seq),
          [&](OpBuilder &b, Location l, Value) -> Value {
            return constantIndex(b, l, kept);
          });
      keep = mapElementwise(
          rewriter, loc, keepType, ValueRange{keys, thresholds},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            Value selected = arith::CmpIOp::create(
                b, l, arith::CmpIPredicate::uge, args[0], args[1]);
            return arith::ExtUIOp::create(b, l, b.getI32Type(), selected);
          });
    }

    // Compaction in ascending position order: trailing slots keep -1 / 0.
    Value indices = createFilledInt(rewriter, loc, {batch, kept}, i32, -1);
    Value gates = createFilled(rewriter, loc, {batch, kept}, elementType, 0.0);
    Value zero = constantIndex(rewriter, loc, 0);
    Value one = constantIndex(rewriter, loc, 1);
    Value capacity = constantIndex(rewriter, loc, kept);
    auto outer = scf::ForOp::create(
        rewriter, loc, zero, constantIndex(rewriter, loc, batch), one,
        ValueRange{indices, gates},
        [&](OpBuilder &b, Location l, Value row, ValueRange rowArgs) {
          auto inner = scf::ForOp::create(
              b, l, zero, constantIndex(b, l, seq), one,
              ValueRange{rowArgs[0], rowArgs[1], zero},
              [&](OpBuilder &ib, Location il, Value pos, ValueRange args) {
                Value flag = tensor::ExtractOp::create(ib, il, keep,
                                                       ValueRange{row, pos});
                Value isKept =
                    arith::CmpIOp::create(ib, il, arith::CmpIPredicate::ne,
                                          flag, constantI32(ib, il, 0));
                Value room = arith::CmpIOp::create(
                    ib, il, arith::CmpIPredicate::ult, args[2], capacity);
                Value take = arith::AndIOp::create(ib, il, isKept, room);
                auto ifOp = scf::IfOp::create(
                    ib, il, take,
                    [&](OpBuilder &tb, Location tl) {
                      Value slot = args[2];
                      Value position = arith::IndexCastOp::create(
                          tb, tl, tb.getI32Type(), pos);
                      Value score = tensor::ExtractOp::create(
                          tb, tl, scores, ValueRange{row, pos});
                      Value newIndices = tensor::InsertOp::create(
                          tb, tl, position, args[0], ValueRange{row, slot});
                      Value newGates = tensor::InsertOp::create(
                          tb, tl, score, args[1], ValueRange{row, slot});
                      Value next = arith::AddIOp::create(tb, tl, slot, one);
                      scf::YieldOp::create(
                          tb, tl, ValueRange{newIndices, newGates, next});
                    },
                    [&](OpBuilder &eb, Location el) {
                      scf::YieldOp::create(eb, el, args);
                    });
                scf::YieldOp::create(ib, il, ifOp.getResults());
              });
          scf::YieldOp::create(
              b, l, ValueRange{inner.getResult(0), inner.getResult(1)});
        });
    rewriter.replaceOp(op, outer.getResults());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.depth_region
//===----------------------------------------------------------------------===//

/// Gather, inline the body, scatter back (see the file header).
struct DepthRegionLowering : OpRewritePattern<DepthRegionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthRegionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getX(), modality = op.getModality();
    Value indices = op.getIndices(), gate = op.getGate();
    RankedTensorType xType = op.getX().getType();
    Type elementType = xType.getElementType();
    int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
    int64_t width = xType.getDimSize(2);
    int64_t kept = tensorTypeOf(indices).getDimSize(1);
    auto rowsType = RankedTensorType::get({batch, kept, width}, elementType);
    auto idsType = RankedTensorType::get({batch, kept}, rewriter.getI32Type());

    // xs[b, k] = x[b, idx[b, k]] (0 rows for empty slots).
    Value xs = mapElementwise(
        rewriter, loc, rowsType, ValueRange{indices},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value valid = isInRange(b, l, args[0], seq);
          Value row = linalg::IndexOp::create(b, l, 0);
          Value pos = clampedIndex(b, l, args[0], seq);
          Value feature = linalg::IndexOp::create(b, l, 2);
          Value value =
              tensor::ExtractOp::create(b, l, x, ValueRange{row, pos, feature});
          return arith::SelectOp::create(b, l, valid, value,
                                         constantFloat(b, l, elementType, 0.0));
        });
    // ms / ps: modality ids and positions, -1 for empty slots.
    Value ms =
        mapElementwise(rewriter, loc, idsType, ValueRange{indices},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         Value valid = isInRange(b, l, args[0], seq);
                         Value row = linalg::IndexOp::create(b, l, 0);
                         Value pos = clampedIndex(b, l, args[0], seq);
                         Value id = tensor::ExtractOp::create(
                             b, l, modality, ValueRange{row, pos});
                         return arith::SelectOp::create(b, l, valid, id,
                                                        constantI32(b, l, -1));
                       });
    // ps = idx, or positions[b, idx] with the positions operand.
    Value positions = op.getPositions();
    Value ps =
        mapElementwise(rewriter, loc, idsType, ValueRange{indices},
                       [&](OpBuilder &b, Location l, ValueRange args) -> Value {
                         Value valid = isInRange(b, l, args[0], seq);
                         Value position = args[0];
                         if (positions)
                           position = tensor::ExtractOp::create(
                               b, l, positions,
                               ValueRange{linalg::IndexOp::create(b, l, 0),
                                          clampedIndex(b, l, args[0], seq)});
                         return arith::SelectOp::create(b, l, valid, position,
                                                        constantI32(b, l, -1));
                       });

    // Inline the body on the gathered rows; its extra yielded values (e.g.
    // losses computed inside the block) become the region's extra results.
    // The yielded values are read after inlining, when uses of the block
    // arguments already refer to the gathered tensors.
    Block &body = op.getBody().front();
    auto yield = cast<YieldOp>(body.getTerminator());
    rewriter.inlineBlockBefore(&body, op, ValueRange{xs, ms, ps});
    Value out = yield.getValue();
    SmallVector<Value> results = {Value()};
    llvm::append_range(results, yield.getExtras());
    rewriter.eraseOp(yield);

    // New rows: o (ungated) or xs + gate * (o - xs), computed in f32 and
    // rounded once for bf16/f16 (Semantics.md).
    Value rows = out;
    if (gate)
      rows = mapElementwise(
          rewriter, loc, rowsType, ValueRange{xs, out, gate},
          [&](OpBuilder &b, Location l, ValueRange args) -> Value {
            Value x = widenToF32(b, l, args[0]);
            Value branch =
                arith::SubFOp::create(b, l, widenToF32(b, l, args[1]), x);
            Value gated =
                arith::MulFOp::create(b, l, widenToF32(b, l, args[2]), branch);
            return roundTo(b, l, arith::AddFOp::create(b, l, x, gated),
                           args[0].getType());
          });

    // y = x, then y[b, idx[b, k]] = rows[b, k] for the non-empty slots, in
    // slot order.
    Value zero = constantIndex(rewriter, loc, 0);
    Value one = constantIndex(rewriter, loc, 1);
    SmallVector<OpFoldResult> sizes = {rewriter.getIndexAttr(1),
                                       rewriter.getIndexAttr(1),
                                       rewriter.getIndexAttr(width)};
    SmallVector<OpFoldResult> strides(3, rewriter.getIndexAttr(1));
    auto sliceType = RankedTensorType::get({1, 1, width}, elementType);
    auto outer = scf::ForOp::create(
        rewriter, loc, zero, constantIndex(rewriter, loc, batch), one,
        ValueRange{x},
        [&](OpBuilder &b, Location l, Value row, ValueRange rowArgs) {
          auto inner = scf::ForOp::create(
              b, l, zero, constantIndex(b, l, kept), one, rowArgs,
              [&](OpBuilder &ib, Location il, Value slot, ValueRange args) {
                Value index = tensor::ExtractOp::create(ib, il, indices,
                                                        ValueRange{row, slot});
                Value valid = isInRange(ib, il, index, seq);
                auto ifOp = scf::IfOp::create(
                    ib, il, valid,
                    [&](OpBuilder &tb, Location tl) {
                      Value pos = arith::IndexCastOp::create(
                          tb, tl, tb.getIndexType(), index);
                      Value source = tensor::ExtractSliceOp::create(
                          tb, tl, sliceType, rows,
                          SmallVector<OpFoldResult>{row, slot,
                                                    tb.getIndexAttr(0)},
                          sizes, strides);
                      Value updated = tensor::InsertSliceOp::create(
                          tb, tl, source, args[0],
                          SmallVector<OpFoldResult>{row, pos,
                                                    tb.getIndexAttr(0)},
                          sizes, strides);
                      scf::YieldOp::create(tb, tl, updated);
                    },
                    [&](OpBuilder &eb, Location el) {
                      scf::YieldOp::create(eb, el, args[0]);
                    });
                scf::YieldOp::create(ib, il, ifOp.getResults());
              });
          scf::YieldOp::create(b, l, inner.getResults());
        });
    results.front() = outer.getResult(0);
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.depth_mask
//===----------------------------------------------------------------------===//

/// `mask[b, l, 0] = 1` if `l` is among `idx[b, :]`, else 0.
struct DepthMaskLowering : OpRewritePattern<DepthMaskOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthMaskOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    RankedTensorType resultType = op.getResult().getType();
    Type elementType = resultType.getElementType();
    int64_t batch = resultType.getDimSize(0), seq = resultType.getDimSize(1);
    auto maskType = RankedTensorType::get({batch, seq}, elementType);
    // Dimensions b, l, k.
    Value mask =
        linalg::GenericOp::create(
            rewriter, loc, maskType, ValueRange{op.getIndices()},
            ValueRange{
                createFilled(rewriter, loc, {batch, seq}, elementType, 0.0)},
            {AffineMap::get(
                 3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(2, ctx)},
                 ctx),
             AffineMap::get(
                 3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx)},
                 ctx)},
            {IteratorType::parallel, IteratorType::parallel,
             IteratorType::reduction},
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value pos = arith::IndexCastOp::create(
                  b, l, b.getI32Type(), linalg::IndexOp::create(b, l, 1));
              Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq,
                                                args[0], pos);
              Value value = arith::SelectOp::create(
                  b, l, hit, constantFloat(b, l, elementType, 1.0), args[1]);
              linalg::YieldOp::create(b, l, ValueRange{value});
            })
            .getResult(0);
    Value result = tensor::ExpandShapeOp::create(
        rewriter, loc, resultType, mask,
        SmallVector<ReassociationIndices>{{0}, {1, 2}});
    rewriter.replaceOp(op, result);
    return success();
  }
};

} // namespace

void moma::populateDepthToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<DepthRouteLowering, DepthRegionLowering, DepthMaskLowering>(
      patterns.getContext());
}
