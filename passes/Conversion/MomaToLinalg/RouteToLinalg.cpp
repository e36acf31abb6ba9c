//===- RouteToLinalg.cpp - Lower routing plans ----------------------------===//
//
// Lowers moma.route (router logits to an expert-major routing plan) and
// moma.route_mask (a plan's selections as a dense mask) to tensor-level
// linalg, tensor, arith, math and scf with the exact meaning of
// Semantics.md. The selections are parallel: token choice's top-k ranks
// every expert of a token against the others (one `linalg.generic`,
// parallel over tokens and experts), expert choice's top-capacity finds
// one threshold per expert (SelectionUtils.h: parallel over experts). The
// expert-major slot filling and the mask of a plan are `scf.for` loops over
// tensors (O(experts x tokens)) that one-shot bufferization turns into
// in-place loops.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"
#include "passes/Conversion/MomaToLinalg/SelectionUtils.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {
/// Per-group constants of an expert-group list.
struct GroupTables {
  SmallVector<int64_t> experts;      ///< E_g.
  SmallVector<int64_t> firstExpert;  ///< Global number of local expert 0.
  SmallVector<int64_t> topK;         ///< k (token choice), else 0.
  SmallVector<int64_t> expertChoice; ///< 1 for expert-choice groups.
  SmallVector<int64_t> renormalize;  ///< 1 for groups that renormalize.
  int64_t totalExperts = 0;

  explicit GroupTables(ArrayRef<ExpertGroupAttr> groups) {
    for (ExpertGroupAttr group : groups) {
      bool tokenChoice = group.getRouting() == RoutingKind::token_choice;
      experts.push_back(group.getExperts());
      firstExpert.push_back(totalExperts);
      topK.push_back(tokenChoice ? group.getTopK() : 0);
      expertChoice.push_back(!tokenChoice);
      renormalize.push_back(group.getRenormalize());
      totalExperts += group.getExperts();
    }
  }
};
} // namespace

/// The group (index) of global expert `expert` (index): the number of groups
/// after the first whose first expert is at most `expert`.
static Value groupOfExpert(OpBuilder &b, Location loc, Value expert,
                           const GroupTables &tables) {
  Value group = constantIndex(b, loc, 0);
  for (int64_t g = 1, e = tables.firstExpert.size(); g < e; ++g) {
    Value after = cmpi(b, loc, arith::CmpIPredicate::sge, expert,
                       constantIndex(b, loc, tables.firstExpert[g]));
    group =
        arith::SelectOp::create(b, loc, after, constantIndex(b, loc, g), group);
  }
  return group;
}

namespace {

//===----------------------------------------------------------------------===//
// moma.route
//===----------------------------------------------------------------------===//

struct RouteLowering : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    if (!hasInfinity(op.getLogits().getType().getElementType()) &&
        llvm::any_of(groups, [](ExpertGroupAttr group) {
          return group.getScore() == ScoreFunction::softmax;
        }))
      return rewriter.notifyMatchFailure(
          op, "softmax scores start their maxima at -inf, which the element "
              "type lacks");
    GroupTables tables(groups);
    Value logits = collapseTokens(rewriter, loc, op.getLogits());
    Value aux =
        op.getAux() ? collapseTokens(rewriter, loc, op.getAux()) : Value();
    RankedTensorType logitsType = tensorTypeOf(logits);
    Type floatType = logitsType.getElementType();
    int64_t numTokens = logitsType.getDimSize(0);
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    Value scores = buildGroupScores(rewriter, loc, logits, groupIds, groups);

    // chosen[t, j]: local expert j of t's group took token t.
    Value chosen = selectByAux(rewriter, loc, aux, groupIds, groups, tables,
                               logitsType.getShape());
    if (llvm::any_of(tables.topK, [](int64_t k) { return k > 0; }))
      chosen = selectTokenChoice(rewriter, loc, chosen, scores, groupIds,
                                 groups, tables);
    if (!aux && llvm::is_contained(tables.expertChoice, 1))
      chosen = selectExpertChoice(
          rewriter, loc, chosen, scores, groupIds, groups, tables, numTokens,
          op.getPositions()
              ? collapseTokens(rewriter, loc,
                               buildStableRanks(rewriter, loc,
                                                op.getPositions(),
                                                /*acrossBatch=*/true))
              : Value());

    // Gates: the scores of the choices, renormalized per token if asked.
    Value gates = mapElementwise(
        rewriter, loc, logitsType, ValueRange{scores, chosen},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value zero = constantFloat(nb, nl, floatType, 0.0);
          return arith::SelectOp::create(nb, nl, args[1], args[0], zero);
        });
    if (llvm::is_contained(tables.renormalize, 1)) {
      Value totals = reduceLastDim(rewriter, loc, gates);
      gates = mapElementwise(
          rewriter, loc, logitsType, ValueRange{gates, groupIds, totals},
          [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
            Value zero = constantFloat(nb, nl, floatType, 0.0);
            Value one = constantFloat(nb, nl, floatType, 1.0);
            Value positive = arith::CmpFOp::create(
                nb, nl, arith::CmpFPredicate::OGT, args[2], zero);
            Value divisor =
                arith::SelectOp::create(nb, nl, positive, args[2], one);
            Value scaled = arith::DivFOp::create(nb, nl, args[0], divisor);
            Value renormalize = selectConstant(
                nb, nl, args[1], tables.renormalize, 0, nb.getI1Type());
            return arith::SelectOp::create(nb, nl, renormalize, scaled,
                                           args[0]);
          });
    }

    SmallVector<Value> plan =
        fillSlots(rewriter, loc, op, chosen, gates, groupIds, tables);
    rewriter.replaceOp(op, plan);
    return success();
  }

private:
  /// The initial choices: with `aux` (logits), expert j of an expert-choice
  /// group takes token t iff `aux[t, j] > 0`; otherwise nothing is chosen
  /// yet.
  static Value selectByAux(OpBuilder &b, Location loc, Value aux,
                           Value groupIds, ArrayRef<ExpertGroupAttr> groups,
                           const GroupTables &tables, ArrayRef<int64_t> shape) {
    if (!aux) {
      Value init = createEmpty(b, loc, shape, b.getI1Type());
      Value falseValue = arith::ConstantIntOp::create(b, loc, 0, 1);
      return linalg::FillOp::create(b, loc, falseValue, init).getResult(0);
    }
    auto type = RankedTensorType::get(shape, b.getI1Type());
    Type floatType = elementTypeOf(aux);
    return mapElementwise(
        b, loc, type, ValueRange{aux, groupIds},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value column = linalg::IndexOp::create(nb, nl, 1);
          Value valid = isGroupColumn(nb, nl, args[1], column, groups);
          Value expertChoice = selectConstant(
              nb, nl, args[1], tables.expertChoice, 0, nb.getI1Type());
          Value zero = constantFloat(nb, nl, floatType, 0.0);
          Value above = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT,
                                              args[0], zero);
          return andi(nb, nl, andi(nb, nl, valid, expertChoice), above);
        });
  }

  /// Token choice: every token of a token-choice group takes its `k` best
  /// experts (ties: the lower expert index), i.e. expert j iff fewer than
  /// `k` of the group's experts beat it: `rank[t, j] = #{j' < E_g : s[t, j']
  /// > s[t, j] or (s[t, j'] == s[t, j] and j' < j)} < k`. One `linalg.generic`
  /// over (t, j, j'), parallel over the tokens and experts.
  static Value selectTokenChoice(OpBuilder &b, Location loc, Value chosen,
                                 Value scores, Value groupIds,
                                 ArrayRef<ExpertGroupAttr> groups,
                                 const GroupTables &tables) {
    MLIRContext *ctx = b.getContext();
    RankedTensorType type = tensorTypeOf(chosen);
    Type i32 = b.getI32Type();
    AffineExpr t, j, other;
    bindDims(ctx, t, j, other);
    Value ranks =
        linalg::GenericOp::create(
            b, loc, RankedTensorType::get(type.getShape(), i32),
            ValueRange{scores, scores, groupIds},
            ValueRange{createFilledInt(b, loc, type.getShape(), i32, 0)},
            {AffineMap::get(3, 0, {t, j}, ctx),
             AffineMap::get(3, 0, {t, other}, ctx),
             AffineMap::get(3, 0, {t}, ctx), AffineMap::get(3, 0, {t, j}, ctx)},
            {utils::IteratorType::parallel, utils::IteratorType::parallel,
             utils::IteratorType::reduction},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value self = args[0], rival = args[1];
              Value column = linalg::IndexOp::create(nb, nl, 1);
              Value rivalColumn = linalg::IndexOp::create(nb, nl, 2);
              Value greater = arith::CmpFOp::create(
                  nb, nl, arith::CmpFPredicate::OGT, rival, self);
              Value equal = arith::CmpFOp::create(
                  nb, nl, arith::CmpFPredicate::OEQ, rival, self);
              Value lower =
                  cmpi(nb, nl, arith::CmpIPredicate::ult, rivalColumn, column);
              Value beats = arith::OrIOp::create(nb, nl, greater,
                                                 andi(nb, nl, equal, lower));
              beats = andi(nb, nl, beats,
                           isGroupColumn(nb, nl, args[2], rivalColumn, groups));
              Value one = arith::ExtUIOp::create(nb, nl, i32, beats);
              linalg::YieldOp::create(
                  nb, nl,
                  ValueRange{arith::AddIOp::create(nb, nl, args[3], one)});
            })
            .getResult(0);
    return mapElementwise(
        b, loc, type, ValueRange{chosen, groupIds, ranks},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value column = linalg::IndexOp::create(nb, nl, 1);
          Value valid = isGroupColumn(nb, nl, args[1], column, groups);
          Value k = selectConstant(nb, nl, args[1], tables.topK, 0, i32);
          Value inTop = cmpi(nb, nl, arith::CmpIPredicate::slt, args[2], k);
          return arith::OrIOp::create(nb, nl, args[0],
                                      andi(nb, nl, valid, inTop));
        });
  }

  /// Expert choice: every expert of an expert-choice group takes the
  /// `capacity` group tokens of the largest scores (ties: the lower token
  /// index, or with `tieIndices` (buildStableRanks of the positions) the lower
  /// entry), with `capacity = floor(b_g * c / E_g)` evaluated in f64 like the
  /// reference: the tokens whose selection keys reach the expert's threshold
  /// (buildTopThresholds, parallel over the experts).
  static Value selectExpertChoice(OpBuilder &b, Location loc, Value chosen,
                                  Value scores, Value groupIds,
                                  ArrayRef<ExpertGroupAttr> groups,
                                  const GroupTables &tables, int64_t numTokens,
                                  Value tieIndices) {
    Value counts = buildGroupTokenCounts(b, loc, groupIds, groups.size());
    Value zero = constantIndex(b, loc, 0);
    SmallVector<Value> capacities;
    for (auto [index, group] : llvm::enumerate(groups)) {
      if (group.getRouting() != RoutingKind::expert_choice) {
        capacities.push_back(zero);
        continue;
      }
      Type f64 = b.getF64Type();
      Value count = extractAt(b, loc, counts, constantIndex(b, loc, index));
      Value tokens = arith::SIToFPOp::create(b, loc, f64, count);
      Value product = arith::MulFOp::create(
          b, loc, tokens,
          constantFloat(b, loc, f64, group.getCapacityFactor()));
      Value quotient = arith::DivFOp::create(
          b, loc, product,
          constantFloat(b, loc, f64, static_cast<double>(group.getExperts())));
      Value floor = math::FloorOp::create(b, loc, quotient);
      Value capacity = arith::FPToSIOp::create(b, loc, b.getI64Type(), floor);
      capacities.push_back(toIndex(b, loc, capacity));
    }
    // keys[e, t]: token t's selection key for global expert e (0 unless t
    // is of e's group and that group chooses by expert).
    MLIRContext *ctx = b.getContext();
    Type scoreType = elementTypeOf(scores);
    Type keyType = selectionKeyType(scoreType, numTokens);
    int64_t keyBits = selectionKeyBits(scoreType, numTokens);
    auto keysType =
        RankedTensorType::get({tables.totalExperts, numTokens}, keyType);
    AffineExpr e, t;
    bindDims(ctx, e, t);
    Value keys =
        linalg::GenericOp::create(
            b, loc, keysType, ValueRange{groupIds},
            ValueRange{createEmpty(b, loc, keysType.getShape(), keyType)},
            {AffineMap::get(2, 0, {t}, ctx), AffineMap::get(2, 0, {e, t}, ctx)},
            {utils::IteratorType::parallel, utils::IteratorType::parallel},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value expert = linalg::IndexOp::create(nb, nl, 0);
              Value token = linalg::IndexOp::create(nb, nl, 1);
              Value group = groupOfExpert(nb, nl, expert, tables);
              Value member =
                  andi(nb, nl,
                       cmpi(nb, nl, arith::CmpIPredicate::eq, args[0],
                            toI32(nb, nl, group)),
                       selectConstant(nb, nl, group, tables.expertChoice, 0,
                                      nb.getI1Type()));
              Value first = selectConstant(nb, nl, group, tables.firstExpert, 0,
                                           nb.getIndexType());
              Value j = arith::SubIOp::create(nb, nl, expert, first);
              Value tie = tieIndices
                              ? arith::IndexCastOp::create(
                                    nb, nl, nb.getIndexType(),
                                    extractAt(nb, nl, tieIndices, {token}))
                                    .getResult()
                              : token;
              Value key = buildSelectionKey(
                  nb, nl, extractAt(nb, nl, scores, {token, j}), tie,
                  numTokens);
              Value none = arith::ConstantOp::create(
                  nb, nl, keyType, nb.getIntegerAttr(keyType, 0));
              linalg::YieldOp::create(nb, nl,
                                      ValueRange{arith::SelectOp::create(
                                          nb, nl, member, key, none)});
            })
            .getResult(0);
    Value thresholds = buildTopThresholds(
        b, loc, keys, keyBits, [&](OpBuilder &nb, Location nl, Value expert) {
          Value group = groupOfExpert(nb, nl, expert, tables);
          return selectByKey(nb, nl, group, capacities,
                             constantIndex(nb, nl, 0));
        });
    // Expert first[g] + j of token t's group g takes t iff t's key reaches
    // the expert's threshold.
    return mapElementwise(
        b, loc, tensorTypeOf(chosen), ValueRange{chosen, groupIds},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value token = linalg::IndexOp::create(nb, nl, 0);
          Value column = linalg::IndexOp::create(nb, nl, 1);
          Value valid =
              andi(nb, nl, isGroupColumn(nb, nl, args[1], column, groups),
                   selectConstant(nb, nl, args[1], tables.expertChoice, 0,
                                  nb.getI1Type()));
          Value first = selectConstant(nb, nl, args[1], tables.firstExpert, 0,
                                       nb.getIndexType());
          Value expert = arith::SelectOp::create(
              nb, nl, valid, arith::AddIOp::create(nb, nl, first, column),
              constantIndex(nb, nl, 0));
          Value key = extractAt(nb, nl, keys, {expert, token});
          Value threshold = extractAt(nb, nl, thresholds, {expert});
          Value reaches =
              cmpi(nb, nl, arith::CmpIPredicate::uge, key, threshold);
          return arith::OrIOp::create(nb, nl, args[0],
                                      andi(nb, nl, valid, reaches));
        });
  }

  /// The expert-major plan: for every global expert in order, its tokens in
  /// ascending order; offsets are the running slot count. Unused slots keep
  /// token -1 and gate 0.
  static SmallVector<Value> fillSlots(OpBuilder &b, Location loc, RouteOp op,
                                      Value chosen, Value gates, Value groupIds,
                                      const GroupTables &tables) {
    int64_t numSlots = op.getSlotToken().getType().getDimSize(0);
    int64_t numTokens = tensorTypeOf(groupIds).getDimSize(0);
    Value slotToken = createFilledInt(b, loc, {numSlots}, b.getI32Type(), -1);
    Value slotGate =
        createFilled(b, loc, {numSlots}, elementTypeOf(gates), 0.0);
    Value offsets =
        createFilledInt(b, loc, {tables.totalExperts + 1}, b.getI32Type(), 0);
    Value zero = constantIndex(b, loc, 0), one = constantIndex(b, loc, 1);
    Value slots = constantIndex(b, loc, numSlots);
    auto experts = scf::ForOp::create(
        b, loc, zero, constantIndex(b, loc, tables.totalExperts), one,
        ValueRange{zero, slotToken, slotGate, offsets},
        [&](OpBuilder &b, Location loc, Value e, ValueRange iter) {
          Value group = groupOfExpert(b, loc, e, tables);
          Value groupI32 = toI32(b, loc, group);
          Value first = selectConstant(b, loc, group, tables.firstExpert, 0,
                                       b.getIndexType());
          Value j = arith::SubIOp::create(b, loc, e, first);
          Value newOffsets =
              insertAt(b, loc, toI32(b, loc, iter[0]), iter[3], e);
          auto tokens = scf::ForOp::create(
              b, loc, zero, constantIndex(b, loc, numTokens), one,
              iter.take_front(3),
              [&](OpBuilder &b, Location loc, Value t, ValueRange state) {
                Value pos = state[0];
                Value member = cmpi(b, loc, arith::CmpIPredicate::eq,
                                    extractAt(b, loc, groupIds, t), groupI32);
                Value taken = extractAt(b, loc, chosen, {t, j});
                Value room =
                    cmpi(b, loc, arith::CmpIPredicate::slt, pos, slots);
                Value take = andi(b, loc, andi(b, loc, member, taken), room);
                auto ifOp = scf::IfOp::create(b, loc, state.getTypes(), take,
                                              /*withElseRegion=*/true);
                {
                  OpBuilder::InsertionGuard guard(b);
                  b.setInsertionPointToStart(ifOp.thenBlock());
                  Value token =
                      insertAt(b, loc, toI32(b, loc, t), state[1], pos);
                  Value gate = insertAt(
                      b, loc, extractAt(b, loc, gates, {t, j}), state[2], pos);
                  Value next = arith::AddIOp::create(b, loc, pos, one);
                  scf::YieldOp::create(b, loc, ValueRange{next, token, gate});
                  b.setInsertionPointToStart(ifOp.elseBlock());
                  scf::YieldOp::create(b, loc, state);
                }
                scf::YieldOp::create(b, loc, ifOp.getResults());
              });
          SmallVector<Value> results(tokens.getResults());
          results.push_back(newOffsets);
          scf::YieldOp::create(b, loc, results);
        });
    Value count = toI32(b, loc, experts.getResult(0));
    Value finalOffsets = insertAt(b, loc, count, experts.getResult(3),
                                  constantIndex(b, loc, tables.totalExperts));
    return {experts.getResult(1), experts.getResult(2), finalOffsets};
  }
};

//===----------------------------------------------------------------------===//
// moma.route_mask
//===----------------------------------------------------------------------===//

struct RouteMaskLowering : OpRewritePattern<RouteMaskOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouteMaskOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    GroupTables tables(groups);
    RankedTensorType resultType = op.getResult().getType();
    int64_t batch = resultType.getDimSize(0), seq = resultType.getDimSize(1);
    int64_t numTokens = batch * seq;
    Type elementType = resultType.getElementType();
    auto flatType = RankedTensorType::get({numTokens, resultType.getDimSize(2)},
                                          elementType);
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);

    // 0 on the columns of expert-choice groups, -1 (ignored) elsewhere.
    Value mask = mapElementwise(
        rewriter, loc, flatType, ValueRange{groupIds},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value column = linalg::IndexOp::create(nb, nl, 1);
          Value valid = isGroupColumn(nb, nl, args[0], column, groups);
          Value expertChoice = selectConstant(
              nb, nl, args[0], tables.expertChoice, 0, nb.getI1Type());
          return arith::SelectOp::create(
              nb, nl, andi(nb, nl, valid, expertChoice),
              constantFloat(nb, nl, elementType, 0.0),
              constantFloat(nb, nl, elementType, -1.0));
        });

    // 1 where an expert-choice expert's slots name a token of its group.
    if (llvm::is_contained(tables.expertChoice, 1)) {
      Value slotToken = op.getSlotToken(), offsets = op.getExpertOffsets();
      int64_t numSlots = tensorTypeOf(slotToken).getDimSize(0);
      Value zero = constantIndex(rewriter, loc, 0);
      Value one = constantIndex(rewriter, loc, 1);
      auto experts = scf::ForOp::create(
          rewriter, loc, zero,
          constantIndex(rewriter, loc, tables.totalExperts), one,
          ValueRange{mask},
          [&](OpBuilder &b, Location loc, Value e, ValueRange iter) {
            Value group = groupOfExpert(b, loc, e, tables);
            Value groupI32 = toI32(b, loc, group);
            Value first = selectConstant(b, loc, group, tables.firstExpert, 0,
                                         b.getIndexType());
            Value j = arith::SubIOp::create(b, loc, e, first);
            Value expertChoice = selectConstant(
                b, loc, group, tables.expertChoice, 0, b.getI1Type());
            Value next = arith::AddIOp::create(b, loc, e, one);
            // Slots [off[e], off[e+1]) clamped to [0, S]; none for token
            // choice.
            Value slots = constantIndex(b, loc, numSlots);
            auto bound = [&](Value index) -> Value {
              Value value = toIndex(b, loc, extractAt(b, loc, offsets, index));
              value = arith::MaxSIOp::create(b, loc, value, zero);
              return arith::MinSIOp::create(b, loc, value, slots);
            };
            Value lower = bound(e);
            Value upper = arith::SelectOp::create(b, loc, expertChoice,
                                                  bound(next), lower);
            auto slotLoop = scf::ForOp::create(
                b, loc, lower, upper, one, iter,
                [&](OpBuilder &b, Location loc, Value s, ValueRange state) {
                  Value token = extractAt(b, loc, slotToken, s);
                  Value row = clampedIndex(b, loc, token, numTokens);
                  Value member =
                      cmpi(b, loc, arith::CmpIPredicate::eq,
                           extractAt(b, loc, groupIds, row), groupI32);
                  Value valid =
                      andi(b, loc, isInRange(b, loc, token, numTokens), member);
                  Value old = extractAt(b, loc, state[0], {row, j});
                  Value value = arith::SelectOp::create(
                      b, loc, valid, constantFloat(b, loc, elementType, 1.0),
                      old);
                  scf::YieldOp::create(
                      b, loc, insertAt(b, loc, value, state[0], {row, j}));
                });
            scf::YieldOp::create(b, loc, slotLoop.getResults());
          });
      mask = experts.getResult(0);
    }
    rewriter.replaceOp(op, expandTokens(rewriter, loc, mask, batch, seq));
    return success();
  }
};

} // namespace

void moma::populateRouteToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RouteLowering, RouteMaskLowering>(patterns.getContext());
}
