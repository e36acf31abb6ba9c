//===- LossesToLinalg.cpp - Lower the moma training losses ----------------===//
//
// Lowers moma.cross_entropy, moma.load_balancing_loss, moma.router_z_loss and
// moma.aux_router_loss to linalg reductions with exactly the meaning of
// Semantics.md. Every loss is computed in at least f32 (narrower operands are
// extended first) and returned as a rank-0 tensor (`per_modality` of
// cross-entropy as `[M]`). Means over an empty set are 0.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/IR/AffineMap.h"

using namespace mlir;
using namespace moma;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// The type a loss accumulates in: the widest of `types` and f32.
static FloatType computeType(OpBuilder &b, ArrayRef<Type> types) {
  FloatType widest = b.getF32Type();
  for (Type type : types)
    if (auto floatType = dyn_cast<FloatType>(type))
      if (floatType.getWidth() > widest.getWidth())
        widest = floatType;
  return widest;
}

/// Converts the float scalar `value` to `type` (extension or truncation).
static Value castFloat(OpBuilder &b, Location loc, Value value, Type type) {
  auto from = cast<FloatType>(value.getType());
  auto to = cast<FloatType>(type);
  if (from == to)
    return value;
  if (from.getWidth() < to.getWidth())
    return arith::ExtFOp::create(b, loc, to, value);
  return arith::TruncFOp::create(b, loc, to, value);
}

/// `x` with its elements converted to `type` (no-op when they already are).
static Value castTensor(OpBuilder &b, Location loc, Value x, Type type) {
  RankedTensorType xType = tensorTypeOf(x);
  if (xType.getElementType() == type)
    return x;
  return mapElementwise(
      b, loc, RankedTensorType::get(xType.getShape(), type), ValueRange{x},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return castFloat(nb, nl, args[0], type);
      });
}

/// `sum / count` (`count` an i32), or 0 when `count` is 0.
static Value safeMean(OpBuilder &b, Location loc, Value sum, Value count) {
  Type type = sum.getType();
  Value zero = constantFloat(b, loc, type, 0.0);
  Value some = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, count,
                                     constantI32(b, loc, 0));
  Value denominator = arith::SIToFPOp::create(b, loc, type, count);
  Value mean = arith::DivFOp::create(b, loc, sum, denominator);
  return arith::SelectOp::create(b, loc, some, mean, zero);
}

/// A rank-0 tensor of `resultType` holding `value` (converted).
static Value toRank0(OpBuilder &b, Location loc, Value value,
                     RankedTensorType resultType) {
  value = castFloat(b, loc, value, resultType.getElementType());
  return tensor::FromElementsOp::create(b, loc, resultType, ValueRange{value});
}

/// The `i1` mask `mask` as 0/1 i32 (for counts).
static Value countOf(OpBuilder &b, Location loc, Value mask) {
  RankedTensorType type = tensorTypeOf(mask);
  return mapElementwise(
      b, loc, RankedTensorType::get(type.getShape(), b.getI32Type()),
      ValueRange{mask},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return arith::ExtUIOp::create(nb, nl, nb.getI32Type(), args[0]);
      });
}

/// `x` where `mask`, 0 elsewhere (same shapes).
static Value maskedValues(OpBuilder &b, Location loc, Value x, Value mask) {
  Type type = elementTypeOf(x);
  return mapElementwise(
      b, loc, tensorTypeOf(x), ValueRange{x, mask},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value zero = constantFloat(nb, nl, type, 0.0);
        return arith::SelectOp::create(nb, nl, args[1], args[0], zero);
      });
}

namespace {

//===----------------------------------------------------------------------===//
// moma.cross_entropy
//===----------------------------------------------------------------------===//

struct CrossEntropyLowering : OpRewritePattern<CrossEntropyOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CrossEntropyOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType perType = op.getPerModality().getType();
    int64_t numModalities = perType.getDimSize(0);
    FloatType type = computeType(
        rewriter, {elementTypeOf(op.getLogits()), perType.getElementType()});
    Value logits = castTensor(
        rewriter, loc, collapseTokens(rewriter, loc, op.getLogits()), type);
    Value targets = collapseTokens(rewriter, loc, op.getTargets());
    Value modality = collapseTokens(rewriter, loc, op.getTargetModality());
    RankedTensorType logitsType = tensorTypeOf(logits);
    int64_t numTokens = logitsType.getDimSize(0);
    int64_t vocab = logitsType.getDimSize(1);

    // nll[t] = -((x[t, target] - max) - log(sum exp(x - max))), as
    // log_softmax computes it; 0 for ignored targets.
    Value rowMax = reduceLastDim(rewriter, loc, logits, /*max=*/true);
    Value exps = mapElementwise(
        rewriter, loc, logitsType, ValueRange{logits, rowMax},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value shifted = arith::SubFOp::create(nb, nl, args[0], args[1]);
          return math::ExpOp::create(nb, nl, shifted);
        });
    Value rowSum = reduceLastDim(rewriter, loc, exps);
    auto tokenType = RankedTensorType::get({numTokens}, type);
    Value nll = mapElementwise(
        rewriter, loc, tokenType, ValueRange{targets, rowMax, rowSum},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value token = linalg::IndexOp::create(nb, nl, 0);
          Value column = clampedIndex(nb, nl, args[0], vocab);
          Value logit = tensor::ExtractOp::create(nb, nl, logits,
                                                  ValueRange{token, column});
          Value shifted = arith::SubFOp::create(nb, nl, logit, args[1]);
          Value logSum = math::LogOp::create(nb, nl, args[2]);
          Value logProb = arith::SubFOp::create(nb, nl, shifted, logSum);
          Value loss = arith::NegFOp::create(nb, nl, logProb);
          Value valid = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge,
                                              args[0], constantI32(nb, nl, 0));
          Value zero = constantFloat(nb, nl, type, 0.0);
          return arith::SelectOp::create(nb, nl, valid, loss, zero);
        });

    // Per modality: sums and counts over (m, t), reducing t in order.
    MLIRContext *ctx = rewriter.getContext();
    Type i32 = rewriter.getI32Type();
    AffineExpr m, t;
    bindDims(ctx, m, t);
    AffineMap byToken = AffineMap::get(2, 0, {t}, ctx);
    AffineMap byModality = AffineMap::get(2, 0, {m}, ctx);
    SmallVector<Value> inits = {
        createFilled(rewriter, loc, {numModalities}, type, 0.0),
        createFilledInt(rewriter, loc, {numModalities}, i32, 0)};
    auto perModality = linalg::GenericOp::create(
        rewriter, loc, TypeRange{inits[0].getType(), inits[1].getType()},
        ValueRange{nll, targets, modality}, inits,
        ArrayRef<AffineMap>{byToken, byToken, byToken, byModality, byModality},
        ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                      utils::IteratorType::reduction},
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value id = arith::IndexCastOp::create(
              nb, nl, i32, linalg::IndexOp::create(nb, nl, 0));
          Value valid = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge,
                                              args[1], constantI32(nb, nl, 0));
          Value match = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq,
                                              args[2], id);
          Value counted = arith::AndIOp::create(nb, nl, valid, match);
          Value zero = constantFloat(nb, nl, type, 0.0);
          Value term = arith::SelectOp::create(nb, nl, counted, args[0], zero);
          Value sum = arith::AddFOp::create(nb, nl, args[3], term);
          Value one = arith::ExtUIOp::create(nb, nl, i32, counted);
          Value count = arith::AddIOp::create(nb, nl, args[4], one);
          linalg::YieldOp::create(nb, nl, ValueRange{sum, count});
        });
    Value perLoss = mapElementwise(
        rewriter, loc, perType,
        ValueRange{perModality.getResult(0), perModality.getResult(1)},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return castFloat(nb, nl, safeMean(nb, nl, args[0], args[1]),
                           perType.getElementType());
        });

    // Over all targets.
    Value valid = mapElementwise(
        rewriter, loc, RankedTensorType::get({numTokens}, rewriter.getI1Type()),
        ValueRange{targets},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge,
                                       args[0], constantI32(nb, nl, 0));
        });
    Value sum = reduceToScalar(rewriter, loc, nll);
    Value count = reduceToScalar(rewriter, loc, countOf(rewriter, loc, valid));
    Value total = toRank0(rewriter, loc, safeMean(rewriter, loc, sum, count),
                          op.getTotal().getType());
    rewriter.replaceOp(op, {perLoss, total});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.load_balancing_loss
//===----------------------------------------------------------------------===//

struct LoadBalancingLossLowering : OpRewritePattern<LoadBalancingLossOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LoadBalancingLossOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    int64_t numGroups = groups.size();
    FloatType type = computeType(rewriter, {elementTypeOf(op.getLogits())});
    Value logits = castTensor(
        rewriter, loc, collapseTokens(rewriter, loc, op.getLogits()), type);
    int64_t maxExperts = tensorTypeOf(logits).getDimSize(1);
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    Value scores = buildGroupScores(rewriter, loc, logits, groupIds, groups);
    Value counts = buildGroupTokenCounts(rewriter, loc, groupIds, numGroups);

    // columnSums[g, j] = sum of s[t, j] over the tokens of group g.
    MLIRContext *ctx = rewriter.getContext();
    AffineExpr g, j, t;
    bindDims(ctx, g, j, t);
    Value init =
        createFilled(rewriter, loc, {numGroups, maxExperts}, type, 0.0);
    Type i32 = rewriter.getI32Type();
    Value columnSums =
        linalg::GenericOp::create(
            rewriter, loc, init.getType(), ValueRange{scores, groupIds},
            ValueRange{init},
            ArrayRef<AffineMap>{AffineMap::get(3, 0, {t, j}, ctx),
                                AffineMap::get(3, 0, {t}, ctx),
                                AffineMap::get(3, 0, {g, j}, ctx)},
            ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                          utils::IteratorType::parallel,
                                          utils::IteratorType::reduction},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value id = arith::IndexCastOp::create(
                  nb, nl, i32, linalg::IndexOp::create(nb, nl, 0));
              Value member = arith::CmpIOp::create(
                  nb, nl, arith::CmpIPredicate::eq, args[1], id);
              Value zero = constantFloat(nb, nl, type, 0.0);
              Value term =
                  arith::SelectOp::create(nb, nl, member, args[0], zero);
              linalg::YieldOp::create(
                  nb, nl,
                  arith::AddFOp::create(nb, nl, args[2], term).getResult());
            })
            .getResult(0);

    // For every token-choice group with tokens: E_g * sum_j f_j P_j.
    Value offsets = op.getExpertOffsets();
    Value zero = constantFloat(rewriter, loc, type, 0.0);
    Value sum = zero;
    Value used = constantI32(rewriter, loc, 0);
    Value c0 = constantIndex(rewriter, loc, 0);
    Value c1 = constantIndex(rewriter, loc, 1);
    int64_t firstExpert = 0;
    for (auto [index, group] : llvm::enumerate(groups)) {
      int64_t first = firstExpert;
      firstExpert += group.getExperts();
      if (group.getRouting() != RoutingKind::token_choice)
        continue;
      Value groupIndex = constantIndex(rewriter, loc, index);
      Value tokens = tensor::ExtractOp::create(rewriter, loc, counts,
                                               ValueRange{groupIndex});
      Value tokensF = arith::SIToFPOp::create(rewriter, loc, type, tokens);
      Value assignments = arith::SIToFPOp::create(
          rewriter, loc, type,
          arith::MulIOp::create(rewriter, loc, tokens,
                                constantI32(rewriter, loc, group.getTopK())));
      auto experts = scf::ForOp::create(
          rewriter, loc, c0, constantIndex(rewriter, loc, group.getExperts()),
          c1, ValueRange{zero},
          [&](OpBuilder &b, Location nl, Value local, ValueRange acc) {
            Value expert = arith::AddIOp::create(b, nl, local,
                                                 constantIndex(b, nl, first));
            Value next = arith::AddIOp::create(b, nl, expert, c1);
            Value begin =
                tensor::ExtractOp::create(b, nl, offsets, ValueRange{expert});
            Value end =
                tensor::ExtractOp::create(b, nl, offsets, ValueRange{next});
            Value count = arith::SIToFPOp::create(
                b, nl, type, arith::SubIOp::create(b, nl, end, begin));
            Value fraction = arith::DivFOp::create(b, nl, count, assignments);
            Value columnSum = tensor::ExtractOp::create(
                b, nl, columnSums, ValueRange{groupIndex, local});
            Value meanScore = arith::DivFOp::create(b, nl, columnSum, tokensF);
            Value product = arith::MulFOp::create(b, nl, fraction, meanScore);
            scf::YieldOp::create(
                b, nl,
                arith::AddFOp::create(b, nl, acc[0], product).getResult());
          });
      Value value = arith::MulFOp::create(
          rewriter, loc,
          constantFloat(rewriter, loc, type,
                        static_cast<double>(group.getExperts())),
          experts.getResult(0));
      Value has =
          arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::sgt,
                                tokens, constantI32(rewriter, loc, 0));
      sum = arith::SelectOp::create(
          rewriter, loc, has, arith::AddFOp::create(rewriter, loc, sum, value),
          sum);
      used = arith::SelectOp::create(
          rewriter, loc, has,
          arith::AddIOp::create(rewriter, loc, used,
                                constantI32(rewriter, loc, 1)),
          used);
    }
    rewriter.replaceOp(op, toRank0(rewriter, loc,
                                   safeMean(rewriter, loc, sum, used),
                                   op.getResult().getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.router_z_loss
//===----------------------------------------------------------------------===//

struct RouterZLossLowering : OpRewritePattern<RouterZLossOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouterZLossOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(op.getGroups());
    FloatType type = computeType(rewriter, {elementTypeOf(op.getLogits())});
    Value logits = castTensor(
        rewriter, loc, collapseTokens(rewriter, loc, op.getLogits()), type);
    int64_t numTokens = tensorTypeOf(logits).getDimSize(0);
    Value groupIds = buildGroupIds(
        rewriter, loc, collapseTokens(rewriter, loc, op.getModality()), groups);
    auto [rowMax, rowSum] =
        buildGroupSoftmaxStats(rewriter, loc, logits, groupIds, groups);

    // logsumexp = log(sum exp(x - max)) + max, squared, for routed tokens.
    Value squares = mapElementwise(
        rewriter, loc, RankedTensorType::get({numTokens}, type),
        ValueRange{rowMax, rowSum, groupIds},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value logSum = math::LogOp::create(nb, nl, args[1]);
          Value lse = arith::AddFOp::create(nb, nl, logSum, args[0]);
          Value square = arith::MulFOp::create(nb, nl, lse, lse);
          Value routed =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge, args[2],
                                    constantI32(nb, nl, 0));
          Value zero = constantFloat(nb, nl, type, 0.0);
          return arith::SelectOp::create(nb, nl, routed, square, zero);
        });
    Value routed = mapElementwise(
        rewriter, loc,
        RankedTensorType::get({numTokens}, rewriter.getI32Type()),
        ValueRange{groupIds},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value member =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge, args[0],
                                    constantI32(nb, nl, 0));
          return arith::ExtUIOp::create(nb, nl, nb.getI32Type(), member);
        });
    Value sum = reduceToScalar(rewriter, loc, squares);
    Value count = reduceToScalar(rewriter, loc, routed);
    rewriter.replaceOp(op, toRank0(rewriter, loc,
                                   safeMean(rewriter, loc, sum, count),
                                   op.getResult().getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.aux_router_loss
//===----------------------------------------------------------------------===//

struct AuxRouterLossLowering : OpRewritePattern<AuxRouterLossOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AuxRouterLossOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    FloatType type = computeType(rewriter, {elementTypeOf(op.getScores())});
    Value scores = castTensor(rewriter, loc, op.getScores(), type);
    Value targets = castTensor(rewriter, loc, op.getTargets(), type);
    RankedTensorType shape = tensorTypeOf(scores);

    // t log q + (1 - t) log(1 - q), q = clamp(p, 1e-7, 1 - 1e-7), over the
    // entries with t >= 0.
    Value counted = mapElementwise(
        rewriter, loc,
        RankedTensorType::get(shape.getShape(), rewriter.getI1Type()),
        ValueRange{targets},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGE,
                                       args[0],
                                       constantFloat(nb, nl, type, 0.0));
        });
    Value terms = mapElementwise(
        rewriter, loc, shape, ValueRange{scores, targets},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value one = constantFloat(nb, nl, type, 1.0);
          Value low = constantFloat(nb, nl, type, 1e-7);
          Value high = constantFloat(nb, nl, type, 1.0 - 1e-7);
          Value q = arith::MinimumFOp::create(
              nb, nl, arith::MaximumFOp::create(nb, nl, args[0], low), high);
          Value t = args[1];
          Value hit =
              arith::MulFOp::create(nb, nl, t, math::LogOp::create(nb, nl, q));
          Value miss = arith::MulFOp::create(
              nb, nl, arith::SubFOp::create(nb, nl, one, t),
              math::LogOp::create(nb, nl,
                                  arith::SubFOp::create(nb, nl, one, q)));
          return arith::AddFOp::create(nb, nl, hit, miss);
        });
    Value sum = reduceToScalar(rewriter, loc,
                               maskedValues(rewriter, loc, terms, counted));
    Value count =
        reduceToScalar(rewriter, loc, countOf(rewriter, loc, counted));
    // -(sum / count) == (-sum) / count; 0 (not -0) without counted entries.
    Value loss = safeMean(rewriter, loc,
                          arith::NegFOp::create(rewriter, loc, sum), count);
    rewriter.replaceOp(op,
                       toRank0(rewriter, loc, loss, op.getResult().getType()));
    return success();
  }
};

} // namespace

void moma::populateLossesToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<CrossEntropyLowering, LoadBalancingLossLowering,
               RouterZLossLowering, AuxRouterLossLowering>(
      patterns.getContext());
}
