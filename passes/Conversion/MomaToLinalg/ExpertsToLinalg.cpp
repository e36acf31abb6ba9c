//===- ExpertsToLinalg.cpp - Lower routers, dispatch, experts, combine ----===//
//
// Lowers moma.router, moma.aux_router, moma.dispatch, moma.experts and
// moma.combine to tensor-level linalg, tensor, arith, math and scf with the
// exact meaning of Semantics.md. Matrix products go through `tokenMatmul`
// (per-group weights are stacked and selected per token); the scatter-add
// of combine is an `scf.for` loop over tensors that one-shot bufferization
// turns into an in-place loop.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

static Value stackGroupWeights(OpBuilder &b, Location loc,
                               ArrayRef<Value> weights) {
  int64_t rows = 0, cols = 0;
  for (Value weight : weights) {
    rows = std::max(rows, tensorTypeOf(weight).getDimSize(0));
    cols = std::max(cols, tensorTypeOf(weight).getDimSize(1));
  }
  Type elementType = elementTypeOf(weights.front());
  Value stacked =
      createFilled(b, loc, {static_cast<int64_t>(weights.size()), rows, cols},
                   elementType, 0.0);
  for (auto [index, weight] : llvm::enumerate(weights)) {
    RankedTensorType type = tensorTypeOf(weight);
    SmallVector<OpFoldResult> offsets = {b.getIndexAttr(index),
                                         b.getIndexAttr(0), b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                       b.getIndexAttr(type.getDimSize(0)),
                                       b.getIndexAttr(type.getDimSize(1))};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    stacked = tensor::InsertSliceOp::create(b, loc, weight, stacked, offsets,
                                            sizes, strides);
  }
  return stacked;
}

/// `x[t] W_g` with the weight of token t's group (`groupIds: [T]`): a plain
/// matmul for a single group, else an untied `tokenMatmul` over the stacked
/// weights. Columns beyond a group's own are 0; rows of tokens without a
/// group are unspecified (callers mask them).
static Value groupMatmul(OpBuilder &b, Location loc, Value x,
                         ArrayRef<Value> weights, Value groupIds) {
  if (weights.size() == 1)
    return tokenMatmul(b, loc, x, weights.front(), Value());
  return tokenMatmul(b, loc, x, stackGroupWeights(b, loc, weights), groupIds);
}

/// `y[t, j]` where `j` is one of the local experts of token t's group, 0
/// elsewhere, as a `resultType` (`[T, N]`, `N` at least `y`'s columns).
static Value maskGroupColumns(OpBuilder &b, Location loc, Value y,
                              Value groupIds, ArrayRef<ExpertGroupAttr> groups,
                              RankedTensorType resultType) {
  RankedTensorType type = tensorTypeOf(y);
  if (type.getDimSize(1) < resultType.getDimSize(1)) {
    Value zeros = createFilled(b, loc, resultType.getShape(),
                               resultType.getElementType(), 0.0);
    SmallVector<OpFoldResult> offsets(2, b.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(type.getDimSize(0)),
                                       b.getIndexAttr(type.getDimSize(1))};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    y = tensor::InsertSliceOp::create(b, loc, y, zeros, offsets, sizes,
                                      strides);
  }
  Type elementType = resultType.getElementType();
  return mapElementwise(
      b, loc, resultType, ValueRange{y, groupIds},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value column = linalg::IndexOp::create(nb, nl, 1);
        Value valid = isGroupColumn(nb, nl, args[1], column, groups);
        Value zero = constantFloat(nb, nl, elementType, 0.0);
        return arith::SelectOp::create(nb, nl, valid, args[0], zero);
      });
}

namespace {

//===----------------------------------------------------------------------===//
// moma.router
//===----------------------------------------------------------------------===//

struct RouterLowering : OpRewritePattern<RouterOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouterOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    RankedTensorType resultType = op.getLogits().getType();
    int64_t batch = resultType.getDimSize(0), seq = resultType.getDimSize(1);
    Value x = collapseTokens(rewriter, loc, op.getX());
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    SmallVector<Value> weights(op.getWeights());
    Value y = groupMatmul(rewriter, loc, x, weights, groupIds);
    auto flatType = RankedTensorType::get(
        {batch * seq, resultType.getDimSize(2)}, resultType.getElementType());
    Value logits =
        maskGroupColumns(rewriter, loc, y, groupIds, groups, flatType);
    rewriter.replaceOp(op, expandTokens(rewriter, loc, logits, batch, seq));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.dispatch
//===----------------------------------------------------------------------===//

struct DispatchLowering : OpRewritePattern<DispatchOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DispatchOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = collapseTokens(rewriter, loc, op.getX());
    int64_t numTokens = tensorTypeOf(x).getDimSize(0);
    RankedTensorType resultType = op.getResult().getType();
    Type elementType = resultType.getElementType();
    Value result = mapElementwise(
        rewriter, loc, resultType, ValueRange{op.getSlotToken()},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value valid = isInRange(nb, nl, args[0], numTokens);
          Value row = clampedIndex(nb, nl, args[0], numTokens);
          Value column = linalg::IndexOp::create(nb, nl, 1);
          Value value = extractAt(nb, nl, x, {row, column});
          Value zero = constantFloat(nb, nl, elementType, 0.0);
          return arith::SelectOp::create(nb, nl, valid, value, zero);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.experts
//===----------------------------------------------------------------------===//

struct ExpertsLowering : OpRewritePattern<ExpertsOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ExpertsOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value offsets = op.getExpertOffsets();
    int64_t numExperts = tensorTypeOf(offsets).getDimSize(0) - 1;
    int64_t numSlots = tensorTypeOf(op.getTokens()).getDimSize(0);
    Value expertIds =
        buildSlotExperts(rewriter, loc, offsets, numSlots, numExperts);
    SmallVector<Value> lora(op.getLora());
    Value y =
        buildFfnRows(rewriter, loc, op.getActivation() == Activation::swiglu,
                     op.getTokens(), op.getWIn(), op.getWOut(), expertIds, lora,
                     op.getLoraScale().convertToDouble());
    rewriter.replaceOp(op, maskUnassignedSlots(rewriter, loc, y, expertIds));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.combine
//===----------------------------------------------------------------------===//

struct CombineLowering : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = op.getResult().getType();
    int64_t batch = resultType.getDimSize(0), seq = resultType.getDimSize(1);
    int64_t width = resultType.getDimSize(2), numTokens = batch * seq;
    Type elementType = resultType.getElementType();
    Value base =
        op.getResidual()
            ? collapseTokens(rewriter, loc, op.getResidual())
            : createFilled(rewriter, loc, {numTokens, width}, elementType, 0.0);
    Value outputs = op.getExpertOutputs();
    Value slotToken = op.getSlotToken(), slotGate = op.getSlotGate();
    int64_t numSlots = tensorTypeOf(slotToken).getDimSize(0);
    Value zero = constantIndex(rewriter, loc, 0);
    Value one = constantIndex(rewriter, loc, 1);
    auto rowType = RankedTensorType::get({width}, elementType);
    MLIRContext *ctx = rewriter.getContext();

    // Scatter-add in ascending slot order: y[tok] += gate[s] * ys[s].
    auto slots = scf::ForOp::create(
        rewriter, loc, zero, constantIndex(rewriter, loc, numSlots), one,
        ValueRange{base},
        [&](OpBuilder &b, Location loc, Value s, ValueRange iter) {
          Value token = extractAt(b, loc, slotToken, s);
          Value valid = isInRange(b, loc, token, numTokens);
          auto ifOp = scf::IfOp::create(b, loc, iter.getTypes(), valid,
                                        /*withElseRegion=*/true);
          {
            OpBuilder::InsertionGuard guard(b);
            b.setInsertionPointToStart(ifOp.thenBlock());
            Value row = toIndex(b, loc, token);
            Value gate = extractAt(b, loc, slotGate, s);
            SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                               b.getIndexAttr(width)};
            SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
            SmallVector<OpFoldResult> accOffsets = {row, b.getIndexAttr(0)};
            SmallVector<OpFoldResult> inOffsets = {s, b.getIndexAttr(0)};
            Value accRow = tensor::ExtractSliceOp::create(
                b, loc, rowType, iter[0], accOffsets, sizes, strides);
            Value inRow = tensor::ExtractSliceOp::create(
                b, loc, rowType, outputs, inOffsets, sizes, strides);
            AffineMap identity = AffineMap::getMultiDimIdentityMap(1, ctx);
            Value updated =
                linalg::GenericOp::create(
                    b, loc, rowType, ValueRange{inRow}, ValueRange{accRow},
                    ArrayRef<AffineMap>{identity, identity},
                    ArrayRef<utils::IteratorType>{
                        utils::IteratorType::parallel},
                    [&](OpBuilder &nb, Location nl, ValueRange args) {
                      Value product =
                          arith::MulFOp::create(nb, nl, gate, args[0]);
                      linalg::YieldOp::create(
                          nb, nl,
                          arith::AddFOp::create(nb, nl, args[1], product)
                              .getResult());
                    })
                    .getResult(0);
            Value acc = tensor::InsertSliceOp::create(
                b, loc, updated, iter[0], accOffsets, sizes, strides);
            scf::YieldOp::create(b, loc, acc);
            b.setInsertionPointToStart(ifOp.elseBlock());
            scf::YieldOp::create(b, loc, iter);
          }
          scf::YieldOp::create(b, loc, ifOp.getResults());
        });
    rewriter.replaceOp(
        op, expandTokens(rewriter, loc, slots.getResult(0), batch, seq));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.aux_router
//===----------------------------------------------------------------------===//

struct AuxRouterLowering : OpRewritePattern<AuxRouterOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AuxRouterOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = op.getResult().getType();
    int64_t batch = resultType.getDimSize(0), seq = resultType.getDimSize(1);
    auto flatType = RankedTensorType::get(
        {batch * seq, resultType.getDimSize(2)}, resultType.getElementType());
    Value x = collapseTokens(rewriter, loc, op.getX());
    auto silu = [&](Value h) {
      return mapElementwise(
          rewriter, loc, tensorTypeOf(h), ValueRange{h},
          [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
            return scalarSilu(nb, nl, args[0]);
          });
    };

    Value result;
    if (!op.getGroups()) {
      // One router, tied or untied per modality.
      Value modality = op.getModality()
                           ? collapseTokens(rewriter, loc, op.getModality())
                           : Value();
      Value hidden =
          silu(tokenMatmul(rewriter, loc, x, op.getWeights()[0], modality));
      result = tokenMatmul(rewriter, loc, hidden, op.getWeights()[1], modality);
    } else {
      // One router per group: zero-padded stacked weights selected per token.
      SmallVector<ExpertGroupAttr> groups = getExpertGroups(*op.getGroups());
      Value groupIds = buildGroupIds(
          rewriter, loc, collapseTokens(rewriter, loc, op.getModality()),
          groups);
      SmallVector<Value> w1, w2;
      for (auto [index, weight] : llvm::enumerate(op.getWeights()))
        (index % 2 == 0 ? w1 : w2).push_back(weight);
      Value hidden = silu(groupMatmul(rewriter, loc, x, w1, groupIds));
      Value z = groupMatmul(rewriter, loc, hidden, w2, groupIds);
      result = maskGroupColumns(rewriter, loc, z, groupIds, groups, flatType);
    }
    rewriter.replaceOp(op, expandTokens(rewriter, loc, result, batch, seq));
    return success();
  }
};

} // namespace

void moma::populateExpertsToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RouterLowering, AuxRouterLowering, DispatchLowering,
               ExpertsLowering, CombineLowering>(patterns.getContext());
}
