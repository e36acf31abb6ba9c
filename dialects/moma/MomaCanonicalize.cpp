//===- MomaCanonicalize.cpp - moma canonicalisation patterns --------------===//
//
// Canonicalisations that are exact (they never change a non-padding value):
//  - untied weights over a single modality become plain (tied) weights;
//  - a routed FFN whose groups all have one expert with a unit gate and that
//    route every token is the per-modality dense FFN (and, with one modality,
//    the plain dense FFN);
//  - a mixture-of-depths region that keeps every token is the plain block;
//  - attention positions that equal the default 0..L-1 are dropped.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace moma;

namespace {

/// Untied weights over one modality (leading dimension 1) are tied weights:
/// collapse the leading dimension and drop the modality operand.
struct TieSingleModality : OpInterfaceRewritePattern<UntiedOpInterface> {
  using OpInterfaceRewritePattern::OpInterfaceRewritePattern;

  LogicalResult matchAndRewrite(UntiedOpInterface op,
                                PatternRewriter &rewriter) const override {
    if (!op.isUntied())
      return rewriter.notifyMatchFailure(op, "weights are tied");
    SmallVector<OpOperand *> operands = op.getPerModalityOperands();
    for (OpOperand *operand : operands) {
      auto type = cast<RankedTensorType>(operand->get().getType());
      if (type.getRank() < 2 || type.getDimSize(0) != 1)
        return rewriter.notifyMatchFailure(op, "more than one modality");
    }
    SmallVector<Value> collapsed;
    for (OpOperand *operand : operands) {
      auto type = cast<RankedTensorType>(operand->get().getType());
      SmallVector<ReassociationIndices> reassociation = {{0, 1}};
      for (int64_t dim = 2; dim < type.getRank(); ++dim)
        reassociation.push_back({dim});
      collapsed.push_back(tensor::CollapseShapeOp::create(
          rewriter, op->getLoc(), operand->get(), reassociation));
    }
    rewriter.modifyOpInPlace(op, [&] {
      for (auto [operand, value] : llvm::zip(operands, collapsed))
        operand->set(value);
      op.dropModalityIds();
    });
    return success();
  }
};

/// True when every token of `group` lands in exactly one slot with gate 1:
/// one expert, a softmax score (softmax over one logit is exactly 1), and
/// either token choice (top_k is then 1) or expert choice with capacity 1
/// (the only expert takes all b tokens).
bool routesEveryTokenWithUnitGate(ExpertGroupAttr group) {
  if (group.getExperts() != 1 || group.getScore() != ScoreFunction::softmax)
    return false;
  return group.getRouting() == RoutingKind::token_choice ||
         group.getCapacityFactor() == 1.0;
}

/// combine(experts(dispatch(x, plan)), plan) where every group has a single
/// expert with a unit gate and the groups serve modalities 0..M-1 in order is
/// `ffn(x) modality %mod` (+ residual): the stacked expert weights are then
/// exactly the per-modality weights.
struct SingleExpertGroupsToFfn : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    auto experts = combine.getExpertOutputs().getDefiningOp<ExpertsOp>();
    if (!experts || !experts.getLora().empty())
      return rewriter.notifyMatchFailure(combine, "not fed by plain experts");
    auto dispatch = experts.getTokens().getDefiningOp<DispatchOp>();
    auto route = combine.getSlotToken().getDefiningOp<RouteOp>();
    if (!dispatch || !route || route.getAux() ||
        dispatch.getSlotToken() != route.getSlotToken() ||
        combine.getSlotGate() != route.getSlotGate() ||
        experts.getExpertOffsets() != route.getExpertOffsets())
      return rewriter.notifyMatchFailure(combine, "not one routing plan");
    std::optional<SmallVector<ModalityAttr>> modalities =
        getDeclaredModalities(combine);
    SmallVector<ExpertGroupAttr> groups = getExpertGroups(route.getGroups());
    if (!modalities || groups.size() != modalities->size())
      return rewriter.notifyMatchFailure(combine, "a modality has no group");
    for (auto [index, group] : llvm::enumerate(groups))
      if (group.getModalities() !=
              ArrayRef<int64_t>{static_cast<int64_t>(index)} ||
          !routesEveryTokenWithUnitGate(group))
        return rewriter.notifyMatchFailure(combine, "not single-expert groups");
    Value x = dispatch.getX();
    if (x.getType() != combine.getType())
      return rewriter.notifyMatchFailure(combine, "token shapes differ");

    Value dense =
        FfnOp::create(rewriter, combine.getLoc(), experts.getActivation(), x,
                      experts.getWIn(), experts.getWOut(), route.getModality());
    if (Value residual = combine.getResidual())
      dense =
          arith::AddFOp::create(rewriter, combine.getLoc(), residual, dense);
    rewriter.replaceOp(combine, dense);
    return success();
  }
};

/// The tensor<B x L x i32> holding 0..L-1 in every row.
Value createPositions(PatternRewriter &rewriter, Location loc,
                      RankedTensorType type) {
  SmallVector<int32_t> values;
  values.reserve(type.getNumElements());
  for (int64_t row = 0; row < type.getDimSize(0); ++row)
    for (int64_t col = 0; col < type.getDimSize(1); ++col)
      values.push_back(static_cast<int32_t>(col));
  return arith::ConstantOp::create(
      rewriter, loc, type, DenseIntElementsAttr::get(type, ArrayRef(values)));
}

/// A depth region whose indices come from a depth router that keeps every
/// position (capacity 1, so the indices are 0..L-1 in order) is the plain
/// block: inline the body on all tokens, then apply the gate if any.
struct FullCapacityDepthRegion : OpRewritePattern<DepthRegionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DepthRegionOp region,
                                PatternRewriter &rewriter) const override {
    auto route = region.getIndices().getDefiningOp<DepthRouteOp>();
    if (!route || route.getAux())
      return rewriter.notifyMatchFailure(region, "selection is not static");
    auto indicesType = region.getIndices().getType();
    RankedTensorType xType = region.getX().getType();
    if (indicesType.getDimSize(1) != xType.getDimSize(1))
      return rewriter.notifyMatchFailure(region, "keeps a subset");

    Location loc = region.getLoc();
    Block &body = region.getBody().front();
    // The body's positions: the region's, else 0..L-1.
    Value positions = region.getPositions();
    if (!positions && body.getArgument(2).use_empty())
      positions = region.getModality(); // Same type; only a placeholder.
    else if (!positions)
      positions = createPositions(rewriter, loc, indicesType);
    auto yield = cast<YieldOp>(body.getTerminator());
    Value output = yield.getValue();
    SmallVector<Value> extras(yield.getExtras());
    rewriter.inlineBlockBefore(
        &body, region, {region.getX(), region.getModality(), positions});
    rewriter.eraseOp(yield);
    if (Value gate = region.getGate()) {
      // x + gate * (o - x): mixture-of-depths' gated residual branch.
      Value branch =
          arith::SubFOp::create(rewriter, loc, output, region.getX());
      Value scaled = ScaleOp::create(rewriter, loc, branch, gate);
      output = arith::AddFOp::create(rewriter, loc, region.getX(), scaled);
    }
    extras.insert(extras.begin(), output);
    rewriter.replaceOp(region, extras);
    return success();
  }
};

/// Positions equal to 0..L-1 in every row are the default: drop them.
struct DropDefaultPositions : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    Value positions = op.getPositions();
    DenseIntElementsAttr values;
    if (!positions || !matchPattern(positions, m_Constant(&values)))
      return rewriter.notifyMatchFailure(op, "positions are not constant");
    int64_t seq = cast<RankedTensorType>(positions.getType()).getDimSize(1);
    int64_t index = 0;
    for (const APInt &value : values.getValues<APInt>()) {
      if (value.getSExtValue() != index % seq)
        return rewriter.notifyMatchFailure(op, "positions are not 0..L-1");
      ++index;
    }
    rewriter.modifyOpInPlace(op, [&] { op.getPositionsMutable().clear(); });
    return success();
  }
};

} // namespace

void MomaDialect::getCanonicalizationPatterns(
    RewritePatternSet &results) const {
  results.add<TieSingleModality>(getContext());
}

void CombineOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                            MLIRContext *context) {
  results.add<SingleExpertGroupsToFfn>(context);
}

void DepthRegionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                MLIRContext *context) {
  results.add<FullCapacityDepthRegion>(context);
}

void AttentionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<DropDefaultPositions>(context);
}
