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
#include "passes/Kernels/CostModel.h"
#include "passes/Kernels/KernelReport.h"

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

/// The loss of one token, `-((logit - max) - log(sum))` as log_softmax
/// computes it (`sum` of `exp(x - max)` over the row), or 0 when its target
/// is ignored (negative).
static Value tokenLoss(OpBuilder &b, Location loc, Value target, Value logit,
                       Value max, Value sum) {
  Value shifted = arith::SubFOp::create(b, loc, logit, max);
  Value logSum = math::LogOp::create(b, loc, sum);
  Value logProb = arith::SubFOp::create(b, loc, shifted, logSum);
  Value loss = arith::NegFOp::create(b, loc, logProb);
  Value valid = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, target,
                                      constantI32(b, loc, 0));
  Value zero = constantFloat(b, loc, logit.getType(), 0.0);
  return arith::SelectOp::create(b, loc, valid, loss, zero);
}

/// The means of cross-entropy from the per-token losses `nll` ([T], 0 for
/// ignored targets): per modality (`perType`, [M]) and over all valid
/// targets (`totalType`, rank 0); a mean over no target is 0.
static std::pair<Value, Value>
buildCrossEntropyMeans(OpBuilder &b, Location loc, Value nll, Value targets,
                       Value modality, RankedTensorType perType,
                       RankedTensorType totalType) {
  Type type = elementTypeOf(nll);
  int64_t numTokens = tensorTypeOf(nll).getDimSize(0);
  int64_t numModalities = perType.getDimSize(0);
  // Per modality: sums and counts over (m, t), reducing t in order.
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type();
  AffineExpr m, t;
  bindDims(ctx, m, t);
  AffineMap byToken = AffineMap::get(2, 0, {t}, ctx);
  AffineMap byModality = AffineMap::get(2, 0, {m}, ctx);
  SmallVector<Value> inits = {createFilled(b, loc, {numModalities}, type, 0.0),
                              createFilledInt(b, loc, {numModalities}, i32, 0)};
  auto perModality = linalg::GenericOp::create(
      b, loc, TypeRange{inits[0].getType(), inits[1].getType()},
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
      b, loc, perType,
      ValueRange{perModality.getResult(0), perModality.getResult(1)},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return castFloat(nb, nl, safeMean(nb, nl, args[0], args[1]),
                         perType.getElementType());
      });

  // Over all targets.
  Value valid = mapElementwise(
      b, loc, RankedTensorType::get({numTokens}, b.getI1Type()),
      ValueRange{targets},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sge, args[0],
                                     constantI32(nb, nl, 0));
      });
  Value sum = reduceToScalar(b, loc, nll);
  Value count = reduceToScalar(b, loc, countOf(b, loc, valid));
  Value total = toRank0(b, loc, safeMean(b, loc, sum, count), totalType);
  return {perLoss, total};
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
          return tokenLoss(nb, nl, args[0], logit, args[1], args[2]);
        });

    auto [perLoss, total] =
        buildCrossEntropyMeans(rewriter, loc, nll, targets, modality, perType,
                               op.getTotal().getType());
    rewriter.replaceOp(op, {perLoss, total});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moma.linear (the LM head) fused with moma.cross_entropy
//===----------------------------------------------------------------------===//

/// The moma.cross_entropy that alone reads the logits of `linear` (a plain
/// `x W`: no bias, LoRA or per-modality weights): directly, or through the
/// f32 -> bf16/f16 -> f32 round trip moma-widen-compute puts between them,
/// whose narrow type (the rounding of the linear's result) goes to
/// `rounding`. Null when there is none.
static CrossEntropyOp lossOfHead(LinearOp linear, Type &rounding) {
  rounding = Type();
  if (linear.getBias() || linear.getModality() || linear.getLoraA() ||
      tensorTypeOf(linear.getWeight()).getRank() != 2 || !linear->hasOneUse())
    return {};
  Operation *user = *linear->user_begin();
  if (auto round = dyn_cast<arith::TruncFOp>(user)) {
    if (!round->hasOneUse())
      return {};
    auto extend = dyn_cast<arith::ExtFOp>(*round->user_begin());
    if (!extend || !extend->hasOneUse())
      return {};
    rounding = elementTypeOf(round.getResult());
    user = *extend->user_begin();
  }
  // The float operand of a cross-entropy is its logits.
  return dyn_cast<CrossEntropyOp>(user);
}

/// The LM head and the cross-entropy of its logits, chunked over the
/// vocabulary with an online log-sum-exp, so that no `[T, V]` logits tensor
/// exists: an `scf.for` over chunks of `Vc` columns (chooseVocabChunk, or
/// the pass's `vocab-chunk` override)
/// computes each chunk's `[T, Vc]` logits (a linalg.matmul on a column slice
/// of the weight), rounds them as the linear's result would be rounded, and
/// updates per row the running maximum `m`, the sum `s` of `exp(x - m)`
/// (rescaled by `exp(m_old - m_new)` when the maximum grows) and the
/// target's logit when it falls in the chunk. Then `nll = -((x_t - m) -
/// log s)` and the means, as the unfused lowering computes them. It matches
/// the linear, which comes first, with a higher benefit than LinearLowering,
/// and lowers the pair at the cross-entropy.
struct LmHeadCrossEntropyLowering : OpRewritePattern<LinearOp> {
  LmHeadCrossEntropyLowering(MLIRContext *context, const TargetModel &target,
                             int64_t vocabChunk)
      : OpRewritePattern(context, /*benefit=*/2), target(target),
        vocabChunk(vocabChunk) {}

  LogicalResult matchAndRewrite(LinearOp linear,
                                PatternRewriter &rewriter) const override {
    Type rounding;
    CrossEntropyOp loss = lossOfHead(linear, rounding);
    if (!loss)
      return rewriter.notifyMatchFailure(linear, "not an LM head whose only "
                                                 "user is a cross-entropy");
    Operation *extend =
        rounding ? *linear->user_begin()->user_begin() : nullptr;
    Operation *round = rounding ? *linear->user_begin() : nullptr;
    Location headLoc = linear.getLoc(), loc = loss.getLoc();
    rewriter.setInsertionPoint(loss);
    RankedTensorType perType = loss.getPerModality().getType();
    FloatType type = computeType(
        rewriter, {elementTypeOf(loss.getLogits()), perType.getElementType()});
    Value rows = collapseTokens(rewriter, headLoc, linear.getX());
    Value weight = linear.getWeight();
    RankedTensorType weightType = tensorTypeOf(weight);
    int64_t numTokens = tensorTypeOf(rows).getDimSize(0);
    int64_t dModel = weightType.getDimSize(0);
    int64_t vocab = weightType.getDimSize(1);
    int64_t chunk = vocabChunk > 0 && vocab % vocabChunk == 0
                        ? vocabChunk
                        : chooseVocabChunk(target, numTokens, vocab, dModel);
    Value targets = collapseTokens(rewriter, loc, loss.getTargets());
    Value modality = collapseTokens(rewriter, loc, loss.getTargetModality());

    // A chunk's logit as the cross-entropy reads it: the linear's result,
    // rounded to the stored type where the model is narrow, in `type`.
    auto logitOf = [&](OpBuilder &b, Location l, Value z) {
      if (rounding)
        z = arith::TruncFOp::create(b, l, rounding, z);
      return castFloat(b, l, z, type);
    };
    MLIRContext *ctx = rewriter.getContext();
    AffineExpr t, j;
    bindDims(ctx, t, j);
    AffineMap whole = AffineMap::get(2, 0, {t, j}, ctx);
    AffineMap byRow = AffineMap::get(2, 0, {t}, ctx);
    SmallVector<utils::IteratorType> rowReduction = {
        utils::IteratorType::parallel, utils::IteratorType::reduction};
    auto rowType = RankedTensorType::get({numTokens}, type);

    // Every running value is updated in place (its state is the update's
    // destination, read as the body's last argument), so that the loop's
    // state bufferizes to the same three buffers in every chunk.
    AffineMap row = AffineMap::get(1, 0, {t}, ctx);
    auto update =
        [&](OpBuilder &b, Location l, ValueRange inputs, Value state,
            function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
          SmallVector<AffineMap> maps(inputs.size() + 1, row);
          return linalg::GenericOp::create(
                     b, l, rowType, inputs, ValueRange{state}, maps,
                     ArrayRef<utils::IteratorType>{
                         utils::IteratorType::parallel},
                     [&](OpBuilder &nb, Location nl, ValueRange args) {
                       linalg::YieldOp::create(nb, nl, fn(nb, nl, args));
                     })
              .getResult(0);
        };
    auto step = [&](OpBuilder &b, Location l, Value offset,
                    ValueRange state) -> SmallVector<Value> {
      Value slice = tensor::ExtractSliceOp::create(
          b, headLoc, weight, ArrayRef<OpFoldResult>{b.getIndexAttr(0), offset},
          ArrayRef<OpFoldResult>{b.getIndexAttr(dModel), b.getIndexAttr(chunk)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
      Value block = tokenMatmul(b, headLoc, rows, slice, Value());
      // The chunk's row maximum, in column order.
      Value chunkMax =
          linalg::GenericOp::create(
              b, l, rowType, ValueRange{block},
              ValueRange{
                  createFilled(b, l, {numTokens}, type,
                               -std::numeric_limits<double>::infinity())},
              ArrayRef<AffineMap>{whole, byRow}, rowReduction,
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                Value x = logitOf(nb, nl, args[0]);
                linalg::YieldOp::create(
                    nb, nl,
                    arith::MaximumFOp::create(nb, nl, x, args[1]).getResult());
              })
              .getResult(0);
      // s exp(m_old - m_new), m_new = max(m_old, chunk max); 0 while no
      // term was added (m_old still -inf).
      Value rescaled =
          update(b, l, ValueRange{state[0], chunkMax}, state[1],
                 [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
                   Value max =
                       arith::MaximumFOp::create(nb, nl, args[0], args[1]);
                   Value shift = arith::SubFOp::create(nb, nl, args[0], max);
                   Value scaled = arith::MulFOp::create(
                       nb, nl, args[2], math::ExpOp::create(nb, nl, shift));
                   Value zero = constantFloat(nb, nl, type, 0.0);
                   Value none = arith::CmpFOp::create(
                       nb, nl, arith::CmpFPredicate::OEQ, args[2], zero);
                   return arith::SelectOp::create(nb, nl, none, zero, scaled);
                 });
      Value max =
          update(b, l, ValueRange{chunkMax}, state[0],
                 [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
                   return arith::MaximumFOp::create(nb, nl, args[1], args[0]);
                 });
      // Then the chunk's exp(x - m_new), added in column order.
      Value sum =
          linalg::GenericOp::create(
              b, l, rowType, ValueRange{block, max}, ValueRange{rescaled},
              ArrayRef<AffineMap>{whole, byRow, byRow}, rowReduction,
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                Value x = logitOf(nb, nl, args[0]);
                Value shifted = arith::SubFOp::create(nb, nl, x, args[1]);
                Value term = math::ExpOp::create(nb, nl, shifted);
                linalg::YieldOp::create(
                    nb, nl,
                    arith::AddFOp::create(nb, nl, args[2], term).getResult());
              })
              .getResult(0);
      // The target's logit, where its column is in this chunk.
      Value picked =
          update(b, l, ValueRange{targets}, state[2],
                 [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
                   Value token = linalg::IndexOp::create(nb, nl, 0);
                   Value column = clampedIndex(nb, nl, args[0], vocab);
                   Value local = arith::SubIOp::create(nb, nl, column, offset);
                   Value in = andi(nb, nl,
                                   cmpi(nb, nl, arith::CmpIPredicate::sge,
                                        local, constantIndex(nb, nl, 0)),
                                   cmpi(nb, nl, arith::CmpIPredicate::slt,
                                        local, constantIndex(nb, nl, chunk)));
                   Value safe = arith::SelectOp::create(
                       nb, nl, in, local, constantIndex(nb, nl, 0));
                   Value x = tensor::ExtractOp::create(nb, nl, block,
                                                       ValueRange{token, safe});
                   return arith::SelectOp::create(nb, nl, in,
                                                  logitOf(nb, nl, x), args[1]);
                 });
      return {max, sum, picked};
    };

    SmallVector<Value> inits = {
        createFilled(rewriter, loc, {numTokens}, type,
                     -std::numeric_limits<double>::infinity()),
        createFilled(rewriter, loc, {numTokens}, type, 0.0),
        createFilled(rewriter, loc, {numTokens}, type, 0.0)};
    auto loop = scf::ForOp::create(
        rewriter, loc, constantIndex(rewriter, loc, 0),
        constantIndex(rewriter, loc, vocab),
        constantIndex(rewriter, loc, chunk), inits,
        [&](OpBuilder &b, Location l, Value offset, ValueRange state) {
          scf::YieldOp::create(b, l, step(b, l, offset, state));
        });
    loop->setAttr(kVocabChunkAttrName, rewriter.getI64IntegerAttr(chunk));

    SmallVector<Value> final = {targets};
    llvm::append_range(final, loop.getResults());
    Value nll = mapElementwise(
        rewriter, loc, rowType, final,
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return tokenLoss(nb, nl, args[0], args[3], args[1], args[2]);
        });
    auto [perLoss, total] =
        buildCrossEntropyMeans(rewriter, loc, nll, targets, modality, perType,
                               loss.getTotal().getType());
    rewriter.replaceOp(loss, {perLoss, total});
    if (extend) {
      rewriter.eraseOp(extend);
      rewriter.eraseOp(round);
    }
    rewriter.eraseOp(linear);
    return success();
  }

private:
  TargetModel target;
  int64_t vocabChunk;
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
    FloatType type = computeType(rewriter, {elementTypeOf(op.getLogits())});
    Value logits = castTensor(rewriter, loc, op.getLogits(), type);
    Value targets = castTensor(rewriter, loc, op.getTargets(), type);
    RankedTensorType shape = tensorTypeOf(logits);

    // Binary cross-entropy with logits over the entries with t >= 0, in
    // the stable form max(z, 0) - t z + log1p(exp(-|z|)): exp never
    // overflows, and no probability near 1 is rounded.
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
        rewriter, loc, shape, ValueRange{logits, targets},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value z = args[0], t = args[1];
          Value positive = arith::MaximumFOp::create(
              nb, nl, z, constantFloat(nb, nl, type, 0.0));
          Value linear = arith::SubFOp::create(
              nb, nl, positive, arith::MulFOp::create(nb, nl, t, z));
          Value decay = math::ExpOp::create(
              nb, nl,
              arith::NegFOp::create(nb, nl, math::AbsFOp::create(nb, nl, z)));
          return arith::AddFOp::create(nb, nl, linear,
                                       math::Log1pOp::create(nb, nl, decay));
        });
    Value sum = reduceToScalar(rewriter, loc,
                               maskedValues(rewriter, loc, terms, counted));
    Value count =
        reduceToScalar(rewriter, loc, countOf(rewriter, loc, counted));
    // 0 without counted entries.
    Value loss = safeMean(rewriter, loc, sum, count);
    rewriter.replaceOp(op,
                       toRank0(rewriter, loc, loss, op.getResult().getType()));
    return success();
  }
};

} // namespace

void moma::populateLmHeadLossPatterns(RewritePatternSet &patterns,
                                      const TargetModel &target,
                                      int64_t vocabChunk) {
  patterns.add<LmHeadCrossEntropyLowering>(patterns.getContext(), target,
                                           vocabChunk);
}

void moma::populateLossesToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<CrossEntropyLowering, LoadBalancingLossLowering,
               RouterZLossLowering, AuxRouterLossLowering>(
      patterns.getContext());
}
