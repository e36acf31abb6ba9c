//===- RouteToLinalg.cpp - Lower routing plans ----------------------------===//
//
// Lowers moma.route (router logits to an expert-major routing plan) and
// moma.route_mask (a plan's selections as a dense mask) to tensor-level
// linalg, tensor, arith, math and scf with the exact meaning of
// Semantics.md. The data-dependent parts (top-k per token, top-capacity per
// expert, the expert-major slot filling) are `scf.for` loops over tensors
// that one-shot bufferization turns into in-place loops.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

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

/// Stacks per-group 2-D weights `[K_g, N_g]` into one zero-padded
/// `[G, max K, max N]` tensor (zero rows and columns contribute nothing).
/// One selection round: the not yet chosen candidate of the largest
/// `score(i)` over `i` in `[0, count)` (ties: the lowest `i`), or -1 when no
/// candidate is left. `candidate(i)` returns an `i1`.
static Value
argmaxLoop(OpBuilder &b, Location loc, Value count, Type floatType,
           function_ref<Value(OpBuilder &, Location, Value)> candidate,
           function_ref<Value(OpBuilder &, Location, Value)> score) {
  Value zero = constantIndex(b, loc, 0), one = constantIndex(b, loc, 1);
  Value none = constantIndex(b, loc, -1);
  Value lowest = constantFloat(b, loc, floatType, 0.0);
  auto scan = scf::ForOp::create(
      b, loc, zero, count, one, ValueRange{none, lowest},
      [&](OpBuilder &nb, Location nl, Value i, ValueRange best) {
        Value value = score(nb, nl, i);
        Value first = cmpi(nb, nl, arith::CmpIPredicate::slt, best[0],
                           constantIndex(nb, nl, 0));
        Value larger = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT,
                                             value, best[1]);
        Value take = andi(nb, nl, candidate(nb, nl, i),
                          arith::OrIOp::create(nb, nl, first, larger));
        scf::YieldOp::create(
            nb, nl,
            ValueRange{arith::SelectOp::create(nb, nl, take, i, best[0]),
                       arith::SelectOp::create(nb, nl, take, value, best[1])});
      });
  return scan.getResult(0);
}

/// Marks `chosen[row, column]` (`i1`) when `found` (an index, -1 for
/// nothing) is not negative; `found` is the row (`rowFound`) or the column.
static Value markChosen(OpBuilder &b, Location loc, Value chosen, Value found,
                        Value fixed, bool rowFound) {
  Value zero = constantIndex(b, loc, 0);
  Value ok = cmpi(b, loc, arith::CmpIPredicate::sge, found, zero);
  Value at = arith::SelectOp::create(b, loc, ok, found, zero);
  SmallVector<Value> indices =
      rowFound ? SmallVector<Value>{at, fixed} : SmallVector<Value>{fixed, at};
  Value old = extractAt(b, loc, chosen, indices);
  return insertAt(b, loc, arith::OrIOp::create(b, loc, old, ok), chosen,
                  indices);
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
                                 tables, numTokens);
    if (!aux && llvm::is_contained(tables.expertChoice, 1))
      chosen = selectExpertChoice(rewriter, loc, chosen, scores, groupIds,
                                  groups, tables, numTokens);

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
  /// The initial choices: with `aux`, expert j of an expert-choice group
  /// takes token t iff `aux[t, j] > 0.5`; otherwise nothing is chosen yet.
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
          Value half = constantFloat(nb, nl, floatType, 0.5);
          Value above = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT,
                                              args[0], half);
          return andi(nb, nl, andi(nb, nl, valid, expertChoice), above);
        });
  }

  /// Token choice: every token of a token-choice group takes, `k` times, its
  /// best expert not yet taken (ties: the lower expert index).
  static Value selectTokenChoice(OpBuilder &b, Location loc, Value chosen,
                                 Value scores, Value groupIds,
                                 const GroupTables &tables, int64_t numTokens) {
    Value zero = constantIndex(b, loc, 0), one = constantIndex(b, loc, 1);
    Type floatType = elementTypeOf(scores);
    auto tokens = scf::ForOp::create(
        b, loc, zero, constantIndex(b, loc, numTokens), one, ValueRange{chosen},
        [&](OpBuilder &b, Location loc, Value t, ValueRange iter) {
          Value group = extractAt(b, loc, groupIds, t);
          Value k =
              selectConstant(b, loc, group, tables.topK, 0, b.getIndexType());
          Value experts = selectConstant(b, loc, group, tables.experts, 0,
                                         b.getIndexType());
          auto rounds = scf::ForOp::create(
              b, loc, zero, k, one, iter,
              [&](OpBuilder &b, Location loc, Value, ValueRange state) {
                Value current = state[0];
                Value best = argmaxLoop(
                    b, loc, experts, floatType,
                    [&](OpBuilder &b, Location loc, Value j) -> Value {
                      Value taken = extractAt(b, loc, current, {t, j});
                      Value trueValue =
                          arith::ConstantIntOp::create(b, loc, 1, 1);
                      return arith::XOrIOp::create(b, loc, taken, trueValue);
                    },
                    [&](OpBuilder &b, Location loc, Value j) -> Value {
                      return extractAt(b, loc, scores, {t, j});
                    });
                scf::YieldOp::create(
                    b, loc,
                    markChosen(b, loc, current, best, t, /*rowFound=*/false));
              });
          scf::YieldOp::create(b, loc, rounds.getResults());
        });
    return tokens.getResult(0);
  }

  /// Expert choice: every expert of an expert-choice group takes, `capacity`
  /// times, the group token of the largest score it has not taken yet (ties:
  /// the lower token index), with `capacity = floor(b_g * c / E_g)` evaluated
  /// in f64 like the reference.
  static Value selectExpertChoice(OpBuilder &b, Location loc, Value chosen,
                                  Value scores, Value groupIds,
                                  ArrayRef<ExpertGroupAttr> groups,
                                  const GroupTables &tables,
                                  int64_t numTokens) {
    Value counts = buildGroupTokenCounts(b, loc, groupIds, groups.size());
    Value zero = constantIndex(b, loc, 0), one = constantIndex(b, loc, 1);
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
    Type floatType = elementTypeOf(scores);
    auto experts = scf::ForOp::create(
        b, loc, zero, constantIndex(b, loc, tables.totalExperts), one,
        ValueRange{chosen},
        [&](OpBuilder &b, Location loc, Value e, ValueRange iter) {
          Value group = groupOfExpert(b, loc, e, tables);
          Value groupI32 = toI32(b, loc, group);
          Value first = selectConstant(b, loc, group, tables.firstExpert, 0,
                                       b.getIndexType());
          Value j = arith::SubIOp::create(b, loc, e, first);
          Value capacity = selectByKey(b, loc, group, capacities, zero);
          auto rounds = scf::ForOp::create(
              b, loc, zero, capacity, one, iter,
              [&](OpBuilder &b, Location loc, Value, ValueRange state) {
                Value current = state[0];
                Value best = argmaxLoop(
                    b, loc, constantIndex(b, loc, numTokens), floatType,
                    [&](OpBuilder &b, Location loc, Value t) -> Value {
                      Value member =
                          cmpi(b, loc, arith::CmpIPredicate::eq,
                               extractAt(b, loc, groupIds, t), groupI32);
                      Value taken = extractAt(b, loc, current, {t, j});
                      Value trueValue =
                          arith::ConstantIntOp::create(b, loc, 1, 1);
                      return andi(
                          b, loc, member,
                          arith::XOrIOp::create(b, loc, taken, trueValue));
                    },
                    [&](OpBuilder &b, Location loc, Value t) -> Value {
                      return extractAt(b, loc, scores, {t, j});
                    });
                scf::YieldOp::create(
                    b, loc,
                    markChosen(b, loc, current, best, j, /*rowFound=*/true));
              });
          scf::YieldOp::create(b, loc, rounds.getResults());
        });
    return experts.getResult(0);
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
