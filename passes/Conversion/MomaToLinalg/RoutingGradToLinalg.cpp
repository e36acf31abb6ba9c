//===- RoutingGradToLinalg.cpp - Lower the routing backward ops -----------===//
//
// Patterns for the backward ops of routing and its losses
// (MomaGradientOps.td): moma.router_grad, moma.route_grad,
// moma.combine_grad, moma.aux_router_grad, moma.load_balancing_loss_grad,
// moma.router_z_loss_grad and moma.aux_router_loss_grad. They work on the
// flattened `[B * L, ...]` token rows with the expert-group helpers of
// LoweringUtils.h; the selections are discrete, so every gradient flows
// through the scores (`scoreBackward`). Every sum runs in a fixed order.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

/// A 0/1 float of an i1.
static Value asFloat(OpBuilder &b, Location loc, Value flag, Type type) {
  return arith::SelectOp::create(b, loc, flag, constantFloat(b, loc, type, 1.0),
                                 constantFloat(b, loc, type, 0.0));
}

/// `x` where `keep`, else 0.
static Value keepOrZero(OpBuilder &b, Location loc, Value keep, Value x) {
  return arith::SelectOp::create(b, loc, keep, x,
                                 constantFloat(b, loc, x.getType(), 0.0));
}

/// The i32 `groupIds[t]` equals the constant `group`.
static Value isGroup(OpBuilder &b, Location loc, Value groupId, int64_t group) {
  return cmpi(b, loc, arith::CmpIPredicate::eq, groupId,
              constantI32(b, loc, group));
}

/// The logit gradients from score gradients `ds: [T, E_max]` through each
/// token's group score function: softmax `s (ds - sum_j s_j ds_j)` over the
/// group's columns, sigmoid `ds s (1 - s)`; 0 outside the group's columns.
static Value scoreBackward(OpBuilder &b, Location loc, Value scores, Value ds,
                           Value groupIds, ArrayRef<ExpertGroupAttr> groups) {
  RankedTensorType type = tensorTypeOf(scores);
  SmallVector<int64_t> softmax;
  for (ExpertGroupAttr group : groups)
    softmax.push_back(group.getScore() == ScoreFunction::softmax);
  Value products = mapElementwise(
      b, loc, type, ValueRange{scores, ds, groupIds},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value valid = isGroupColumn(nb, nl, args[2],
                                    linalg::IndexOp::create(nb, nl, 1), groups);
        return keepOrZero(nb, nl, valid,
                          arith::MulFOp::create(nb, nl, args[0], args[1]));
      });
  Value dots = reduceLastDim(b, loc, products);
  return mapElementwise(
      b, loc, type, ValueRange{scores, ds, groupIds, dots},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value s = args[0], d = args[1];
        Value valid = isGroupColumn(nb, nl, args[2],
                                    linalg::IndexOp::create(nb, nl, 1), groups);
        Value isSoftmax =
            cmpi(nb, nl, arith::CmpIPredicate::eq,
                 selectConstant(nb, nl, args[2], softmax, 0, nb.getI32Type()),
                 constantI32(nb, nl, 1));
        Value viaSoftmax = arith::MulFOp::create(
            nb, nl, s, arith::SubFOp::create(nb, nl, d, args[3]));
        Value one = constantFloat(nb, nl, s.getType(), 1.0);
        Value viaSigmoid =
            arith::MulFOp::create(nb, nl, arith::MulFOp::create(nb, nl, d, s),
                                  arith::SubFOp::create(nb, nl, one, s));
        return keepOrZero(
            nb, nl, valid,
            arith::SelectOp::create(nb, nl, isSoftmax, viaSoftmax, viaSigmoid));
      });
}

/// `[T, E_g]`: the first `E_g` columns of `dlogits: [T, E_max]` on the
/// tokens of group `group`, 0 on the others.
static Value groupColumns(OpBuilder &b, Location loc, Value columns,
                          Value groupIds, int64_t group, int64_t experts) {
  RankedTensorType type = tensorTypeOf(columns);
  int64_t rows = type.getDimSize(0);
  auto sliceType =
      RankedTensorType::get({rows, experts}, type.getElementType());
  Value slice = tensor::ExtractSliceOp::create(
      b, loc, sliceType, columns,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(rows), b.getIndexAttr(experts)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  return mapElementwise(
      b, loc, sliceType, ValueRange{slice, groupIds},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return keepOrZero(nb, nl, isGroup(nb, nl, args[1], group), args[0]);
      });
}

/// `d_loss / max(count, 1)`: the factor a mean's gradient gives every
/// counted entry (computed once, outside the element-wise bodies).
static Value meanGradientScale(OpBuilder &b, Location loc, Value dLoss,
                               Value count) {
  return arith::DivFOp::create(
      b, loc, dLoss,
      arith::MaximumFOp::create(b, loc, count,
                                constantFloat(b, loc, count.getType(), 1.0)));
}

/// `[T]` float: 1 for the tokens of some group, 0 for the others.
static Value countRouted(OpBuilder &b, Location loc, Value groupIds,
                         Type type) {
  Value routed = mapElementwise(
      b, loc, RankedTensorType::get(tensorTypeOf(groupIds).getShape(), type),
      ValueRange{groupIds},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return asFloat(nb, nl,
                       cmpi(nb, nl, arith::CmpIPredicate::sge, args[0],
                            constantI32(nb, nl, 0)),
                       type);
      });
  return reduceToScalar(b, loc, routed);
}

namespace {

//===----------------------------------------------------------------------===//
// moma.router_grad
//===----------------------------------------------------------------------===//

/// Per group: the group's logit gradients `dl_g: [T, E_g]` (0 off the
/// group), `dx += dl_g W_g^T` and `dW_g = x^T dl_g`.
struct RouterGradLowering : OpRewritePattern<RouterGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouterGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    RankedTensorType xType = op.getX().getType();
    Value x = collapseTokens(rewriter, loc, op.getX());
    Value dlogits = collapseTokens(rewriter, loc, op.getDlogits());
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    Value dx;
    SmallVector<Value> results;
    for (auto [index, group] : llvm::enumerate(groups)) {
      Value weight = op.getWeights()[index];
      Value dl = groupColumns(rewriter, loc, dlogits, groupIds, index,
                              group.getExperts());
      Value part = transposedTokenMatmul(rewriter, loc, dl, weight, Value());
      dx = dx ? addScaled(rewriter, loc, dx, part, 1.0) : part;
      results.push_back(
          weightGradient(rewriter, loc, x, dl, Value(), tensorTypeOf(weight)));
    }
    results.insert(results.begin(),
                   expandTokens(rewriter, loc, dx, xType.getDimSize(0),
                                xType.getDimSize(1)));
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.route_grad
//===----------------------------------------------------------------------===//

/// Slot gradients to `dgate[t, j]` (expert by expert, each slot range of
/// the plan in order), renormalisation's gradient, then the scores'.
struct RouteGradLowering : OpRewritePattern<RouteGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouteGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getLogits().getType();
    Type elementType = type.getElementType();
    if (!hasInfinity(elementType))
      return rewriter.notifyMatchFailure(op, "needs a type with infinities");
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    int64_t batch = type.getDimSize(0), seq = type.getDimSize(1);
    int64_t numTokens = batch * seq, maxExperts = type.getDimSize(2);
    Value logits = collapseTokens(rewriter, loc, op.getLogits());
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    Value scores = buildGroupScores(rewriter, loc, logits, groupIds, groups);

    // Global expert -> its local column.
    SmallVector<int64_t> localColumn;
    for (ExpertGroupAttr group : groups)
      for (int64_t j = 0; j < group.getExperts(); ++j)
        localColumn.push_back(j);
    int64_t totalExperts = localColumn.size();
    Value slotToken = op.getSlotToken(), offsets = op.getExpertOffsets();
    Value dSlot = op.getDSlotGate();
    Value c0 = constantIndex(rewriter, loc, 0);
    Value c1 = constantIndex(rewriter, loc, 1);
    Value dgateInit =
        createFilled(rewriter, loc, {numTokens, maxExperts}, elementType, 0.0);
    Value chosenInit =
        createFilled(rewriter, loc, {numTokens, maxExperts}, elementType, 0.0);
    auto experts = scf::ForOp::create(
        rewriter, loc, c0, constantIndex(rewriter, loc, totalExperts), c1,
        ValueRange{dgateInit, chosenInit},
        [&](OpBuilder &b, Location l, Value e, ValueRange acc) {
          Value begin = toIndex(b, l, extractAt(b, l, offsets, e));
          Value end = toIndex(
              b, l,
              extractAt(b, l, offsets,
                        arith::AddIOp::create(b, l, e, c1).getResult()));
          Value column =
              selectConstant(b, l, e, localColumn, 0, b.getIndexType());
          auto slots = scf::ForOp::create(
              b, l, begin, end, c1, acc,
              [&](OpBuilder &nb, Location nl, Value s, ValueRange inner) {
                Value token = extractAt(nb, nl, slotToken, s);
                Value valid = isInRange(nb, nl, token, numTokens);
                auto ifOp = scf::IfOp::create(nb, nl, inner.getTypes(), valid,
                                              /*withElseRegion=*/true);
                OpBuilder::InsertionGuard guard(nb);
                nb.setInsertionPointToStart(ifOp.thenBlock());
                Value row = toIndex(nb, nl, token);
                Value sum = arith::AddFOp::create(
                    nb, nl, extractAt(nb, nl, inner[0], {row, column}),
                    extractAt(nb, nl, dSlot, s));
                Value one = constantFloat(nb, nl, elementType, 1.0);
                scf::YieldOp::create(
                    nb, nl,
                    ValueRange{insertAt(nb, nl, sum, inner[0], {row, column}),
                               insertAt(nb, nl, one, inner[1], {row, column})});
                nb.setInsertionPointToStart(ifOp.elseBlock());
                scf::YieldOp::create(nb, nl, inner);
                nb.setInsertionPointAfter(ifOp);
                scf::YieldOp::create(nb, nl, ifOp.getResults());
              });
          scf::YieldOp::create(b, l, slots.getResults());
        });
    Value dgate = experts.getResult(0), chosen = experts.getResult(1);

    Value ds = dgate;
    SmallVector<int64_t> renormalize;
    for (ExpertGroupAttr group : groups)
      renormalize.push_back(group.getRenormalize());
    if (llvm::is_contained(renormalize, 1)) {
      // gate_j = s_j / S over the chosen j: ds_j = (dgate_j - sum_k dgate_k
      // gate_k) / S, with S = sum_k s_k (0 gradient where S is 0).
      auto rowsType = tensorTypeOf(scores);
      Value chosenScores = mapElementwise(
          rewriter, loc, rowsType, ValueRange{scores, chosen},
          [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
            return arith::MulFOp::create(nb, nl, args[0], args[1]);
          });
      Value sums = reduceLastDim(rewriter, loc, chosenScores);
      Value weighted = mapElementwise(
          rewriter, loc, rowsType, ValueRange{dgate, chosenScores},
          [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
            return arith::MulFOp::create(nb, nl, args[0], args[1]);
          });
      Value dots = reduceLastDim(rewriter, loc, weighted);
      ds = mapElementwise(
          rewriter, loc, rowsType,
          ValueRange{dgate, chosen, groupIds, sums, dots},
          [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
            Value renorm = cmpi(nb, nl, arith::CmpIPredicate::eq,
                                selectConstant(nb, nl, args[2], renormalize, 0,
                                               nb.getI32Type()),
                                constantI32(nb, nl, 1));
            Value zero = constantFloat(nb, nl, elementType, 0.0);
            Value positive = arith::CmpFOp::create(
                nb, nl, arith::CmpFPredicate::OGT, args[3], zero);
            // dgate_j - (sum_k dgate_k s_k) / S, over S.
            Value mean = arith::DivFOp::create(nb, nl, args[4], args[3]);
            Value value = arith::DivFOp::create(
                nb, nl, arith::SubFOp::create(nb, nl, args[0], mean), args[3]);
            value = arith::MulFOp::create(nb, nl, value, args[1]);
            value = arith::SelectOp::create(nb, nl, positive, value, zero);
            return arith::SelectOp::create(nb, nl, renorm, value, args[0]);
          });
    }
    Value dlogits = scoreBackward(rewriter, loc, scores, ds, groupIds, groups);
    rewriter.replaceOp(op, expandTokens(rewriter, loc, dlogits, batch, seq));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.combine_grad
//===----------------------------------------------------------------------===//

/// `d_outputs[s] = gate[s] dy[tok[s]]` and `d_gate[s] = ys[s] . dy[tok[s]]`,
/// both gathers of `dy` rows (0 for empty slots).
struct CombineGradLowering : OpRewritePattern<CombineGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value dy = collapseTokens(rewriter, loc, op.getDy());
    int64_t numTokens = tensorTypeOf(dy).getDimSize(0);
    Value ys = op.getExpertOutputs(), tokens = op.getSlotToken();
    Value gates = op.getSlotGate();
    RankedTensorType rowsType = op.getExpertOutputs().getType();
    auto gathered = [&](OpBuilder &nb, Location nl, Value token) {
      Value valid = isInRange(nb, nl, token, numTokens);
      Value row = clampedIndex(nb, nl, token, numTokens);
      Value value = tensor::ExtractOp::create(
          nb, nl, dy, ValueRange{row, linalg::IndexOp::create(nb, nl, 1)});
      return keepOrZero(nb, nl, valid, value);
    };
    Value dOutputs = mapElementwise(
        rewriter, loc, rowsType, ValueRange{tokens, gates},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return arith::MulFOp::create(nb, nl, args[1],
                                       gathered(nb, nl, args[0]));
        });
    Value products = mapElementwise(
        rewriter, loc, rowsType, ValueRange{ys, tokens},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return arith::MulFOp::create(nb, nl, args[0],
                                       gathered(nb, nl, args[1]));
        });
    rewriter.replaceOp(op, {dOutputs, reduceLastDim(rewriter, loc, products)});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.aux_router_grad
//===----------------------------------------------------------------------===//

/// The backward of one two-layer router `z = silu(x W1) W2` on the rows
/// `x`, for `dz` (0 on rows the router does not serve); `modality` selects
/// untied slices. Returns `(dx, dW1, dW2)`.
static std::tuple<Value, Value, Value>
twoLayerBackward(OpBuilder &b, Location loc, Value x, Value dz, Value w1,
                 Value w2, Value modality) {
  Value u = tokenMatmul(b, loc, x, w1, modality);
  RankedTensorType uType = tensorTypeOf(u);
  Value h =
      mapElementwise(b, loc, uType, ValueRange{u},
                     [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
                       return scalarSilu(nb, nl, args[0]);
                     });
  Value dw2 = weightGradient(b, loc, h, dz, modality, tensorTypeOf(w2));
  Value dh = transposedTokenMatmul(b, loc, dz, w2, modality);
  Value du = mapElementwise(
      b, loc, uType, ValueRange{dh, u},
      [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return arith::MulFOp::create(nb, nl, args[0],
                                     scalarSiluDerivative(nb, nl, args[1]));
      });
  Value dw1 = weightGradient(b, loc, x, du, modality, tensorTypeOf(w1));
  return {transposedTokenMatmul(b, loc, du, w1, modality), dw1, dw2};
}

struct AuxRouterGradLowering : OpRewritePattern<AuxRouterGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AuxRouterGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType xType = op.getX().getType();
    Value x = collapseTokens(rewriter, loc, op.getX());
    Value dz = collapseTokens(rewriter, loc, op.getDz());
    Value modality = op.getModality()
                         ? collapseTokens(rewriter, loc, op.getModality())
                         : Value();
    SmallVector<Value> results;
    Value dx;
    if (!op.getGroups()) {
      auto [dxRows, dw1, dw2] =
          twoLayerBackward(rewriter, loc, x, dz, op.getWeights()[0],
                           op.getWeights()[1], modality);
      dx = dxRows;
      results = {dw1, dw2};
    } else {
      SmallVector<ExpertGroupAttr> groups = getExpertGroups(*op.getGroups());
      Value groupIds = buildGroupIds(rewriter, loc, modality, groups);
      for (auto [index, group] : llvm::enumerate(groups)) {
        Value dzGroup = groupColumns(rewriter, loc, dz, groupIds, index,
                                     group.getExperts());
        auto [part, dw1, dw2] = twoLayerBackward(
            rewriter, loc, x, dzGroup, op.getWeights()[2 * index],
            op.getWeights()[2 * index + 1], Value());
        dx = dx ? addScaled(rewriter, loc, dx, part, 1.0) : part;
        results.append({dw1, dw2});
      }
    }
    results.insert(results.begin(),
                   expandTokens(rewriter, loc, dx, xType.getDimSize(0),
                                xType.getDimSize(1)));
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Routing losses
//===----------------------------------------------------------------------===//

/// `ds[t, j] = d_loss E_g f_j / (n b_g)` over the tokens of token-choice
/// groups with tokens, through the scores.
struct LoadBalancingLossGradLowering
    : OpRewritePattern<LoadBalancingLossGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LoadBalancingLossGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getLogits().getType();
    Type elementType = type.getElementType();
    if (!hasInfinity(elementType))
      return rewriter.notifyMatchFailure(op, "needs a type with infinities");
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    int64_t numGroups = groups.size();
    Value logits = collapseTokens(rewriter, loc, op.getLogits());
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    Value scores = buildGroupScores(rewriter, loc, logits, groupIds, groups);
    Value counts = buildGroupTokenCounts(rewriter, loc, groupIds, numGroups);
    Value offsets = op.getExpertOffsets();

    // n: the token-choice groups with tokens.
    Value used = constantFloat(rewriter, loc, elementType, 0.0);
    SmallVector<int64_t> first, topK, tokenChoice, experts;
    int64_t next = 0;
    for (auto [index, group] : llvm::enumerate(groups)) {
      first.push_back(next);
      next += group.getExperts();
      experts.push_back(group.getExperts());
      bool tc = group.getRouting() == RoutingKind::token_choice;
      tokenChoice.push_back(tc);
      topK.push_back(tc ? group.getTopK() : 1);
      if (!tc)
        continue;
      Value tokens =
          extractAt(rewriter, loc, counts, constantIndex(rewriter, loc, index));
      Value has = cmpi(rewriter, loc, arith::CmpIPredicate::sgt, tokens,
                       constantI32(rewriter, loc, 0));
      used = arith::AddFOp::create(rewriter, loc, used,
                                   asFloat(rewriter, loc, has, elementType));
    }
    Value dLoss =
        tensor::ExtractOp::create(rewriter, loc, op.getDLoss(), ValueRange{});
    Value ds = mapElementwise(
        rewriter, loc, tensorTypeOf(scores), ValueRange{groupIds},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value g = args[0];
          Value column = linalg::IndexOp::create(b, l, 1);
          Value valid = isGroupColumn(b, l, g, column, groups);
          Value isTokenChoice =
              cmpi(b, l, arith::CmpIPredicate::eq,
                   selectConstant(b, l, g, tokenChoice, 0, b.getI32Type()),
                   constantI32(b, l, 1));
          valid = andi(b, l, valid, isTokenChoice);
          // The expert's slot count, read at a clamped (valid) index.
          Value expert = arith::AddIOp::create(
              b, l, selectConstant(b, l, g, first, 0, b.getIndexType()),
              column);
          Value lastExpert = constantIndex(b, l, next - 1);
          expert = arith::MinUIOp::create(b, l, expert, lastExpert);
          Value begin = extractAt(b, l, offsets, expert);
          Value end = extractAt(
              b, l, offsets,
              arith::AddIOp::create(b, l, expert, constantIndex(b, l, 1))
                  .getResult());
          Value count = arith::SIToFPOp::create(
              b, l, elementType, arith::SubIOp::create(b, l, end, begin));
          Value groupIndex = toIndex(
              b, l, arith::MaxSIOp::create(b, l, g, constantI32(b, l, 0)));
          Value tokens = arith::SIToFPOp::create(
              b, l, elementType, extractAt(b, l, counts, groupIndex));
          Value k = arith::SIToFPOp::create(
              b, l, elementType,
              selectConstant(b, l, g, topK, 1, b.getI32Type()));
          Value e = arith::SIToFPOp::create(
              b, l, elementType,
              selectConstant(b, l, g, experts, 0, b.getI32Type()));
          // E_g count / (b_g k) / b_g / n, times d_loss.
          Value one = constantFloat(b, l, elementType, 1.0);
          Value safeTokens = arith::MaximumFOp::create(b, l, tokens, one);
          Value safeUsed = arith::MaximumFOp::create(b, l, used, one);
          Value value = arith::MulFOp::create(b, l, e, count);
          value = arith::DivFOp::create(
              b, l, value,
              arith::MulFOp::create(
                  b, l, arith::MulFOp::create(b, l, safeTokens, k),
                  arith::MulFOp::create(b, l, safeTokens, safeUsed)));
          value = arith::MulFOp::create(b, l, value, dLoss);
          return keepOrZero(b, l, valid, value);
        });
    Value dlogits = scoreBackward(rewriter, loc, scores, ds, groupIds, groups);
    rewriter.replaceOp(op,
                       expandTokens(rewriter, loc, dlogits, type.getDimSize(0),
                                    type.getDimSize(1)));
    return success();
  }
};

/// `d_loss 2 lse_t softmax_j / N` on the group columns of routed tokens.
struct RouterZLossGradLowering : OpRewritePattern<RouterZLossGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouterZLossGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getLogits().getType();
    Type elementType = type.getElementType();
    if (!hasInfinity(elementType))
      return rewriter.notifyMatchFailure(op, "needs a type with infinities");
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    Value logits = collapseTokens(rewriter, loc, op.getLogits());
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    auto [rowMax, rowSum] =
        buildGroupSoftmaxStats(rewriter, loc, logits, groupIds, groups);
    Value scale = meanGradientScale(
        rewriter, loc,
        tensor::ExtractOp::create(rewriter, loc, op.getDLoss(), ValueRange{}),
        countRouted(rewriter, loc, groupIds, elementType));
    Value dlogits = mapElementwise(
        rewriter, loc, tensorTypeOf(logits),
        ValueRange{logits, groupIds, rowMax, rowSum},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value valid = isGroupColumn(b, l, args[1],
                                      linalg::IndexOp::create(b, l, 1), groups);
          Value lse = arith::AddFOp::create(b, l, args[2],
                                            math::LogOp::create(b, l, args[3]));
          Value p = arith::DivFOp::create(
              b, l,
              math::ExpOp::create(
                  b, l, arith::SubFOp::create(b, l, args[0], args[2])),
              args[3]);
          Value two = constantFloat(b, l, elementType, 2.0);
          Value value = arith::MulFOp::create(
              b, l, arith::MulFOp::create(b, l, two, lse), p);
          return keepOrZero(b, l, valid,
                            arith::MulFOp::create(b, l, value, scale));
        });
    rewriter.replaceOp(op,
                       expandTokens(rewriter, loc, dlogits, type.getDimSize(0),
                                    type.getDimSize(1)));
    return success();
  }
};

/// `d_loss (sigmoid(z) - t) / N` on the counted entries (`t >= 0`).
struct AuxRouterLossGradLowering : OpRewritePattern<AuxRouterLossGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AuxRouterLossGradOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getLogits().getType();
    Type elementType = type.getElementType();
    Value targets = op.getTargets();
    Value counted = mapElementwise(
        rewriter, loc, type, ValueRange{targets},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          return asFloat(
              b, l,
              arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGE, args[0],
                                    constantFloat(b, l, elementType, 0.0)),
              elementType);
        });
    Value scale = meanGradientScale(
        rewriter, loc,
        tensor::ExtractOp::create(rewriter, loc, op.getDLoss(), ValueRange{}),
        reduceToScalar(rewriter, loc, counted));
    Value dz = mapElementwise(
        rewriter, loc, type, ValueRange{op.getLogits(), targets, counted},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          Value diff = arith::SubFOp::create(b, l, scalarSigmoid(b, l, args[0]),
                                             args[1]);
          return arith::MulFOp::create(
              b, l, arith::MulFOp::create(b, l, diff, scale), args[2]);
        });
    rewriter.replaceOp(op, dz);
    return success();
  }
};

} // namespace

void moma::populateRoutingGradToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RouterGradLowering, RouteGradLowering, CombineGradLowering,
               AuxRouterGradLowering, LoadBalancingLossGradLowering,
               RouterZLossGradLowering, AuxRouterLossGradLowering>(
      patterns.getContext());
}
