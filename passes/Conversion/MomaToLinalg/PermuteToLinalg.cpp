//===- PermuteToLinalg.cpp - Lower the token-order ops to linalg ----------===//
//
// Patterns for moma.modality_sort and moma.permute (Semantics.md, "Token
// order"):
//
// - modality_sort ranks every position of a row against the others in one
//   `linalg.generic` (buildStableRanks: rank = number of positions with a
//   lower modality id, or an equal id and a lower position: the stable
//   ascending order), which is `inverse`; `order` is its transpose as a
//   permutation, a second generic that sums `j` over the `j` whose rank is `k`.
//   Both are O(L^2) per row and need no scatter, so both targets run them as
//   plain parallel loops.
// - permute is a gather: `tensor.extract` of the source row in a parallel
//   generic.
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

namespace {

/// The maps `(b, l, j) -> (b, l)`, `(b, l, j) -> (b, j)`.
static std::pair<AffineMap, AffineMap> rowPairMaps(MLIRContext *ctx) {
  return {AffineMap::get(
              3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx)}, ctx),
          AffineMap::get(
              3, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(2, ctx)}, ctx)};
}

/// `inverse` as the stable rank of every position, then `order`.
struct ModalitySortLowering : OpRewritePattern<ModalitySortOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ModalitySortOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value modality = op.getModality();
    RankedTensorType type = op.getModality().getType();
    Type i32 = rewriter.getI32Type();
    auto [self, other] = rowPairMaps(ctx);
    SmallVector<IteratorType> iterators = {IteratorType::parallel,
                                           IteratorType::parallel,
                                           IteratorType::reduction};
    Value zeros = createFilledInt(rewriter, loc, type.getShape(), i32, 0);

    // inverse[b, l] = #{j : m[j] < m[l] or (m[j] == m[l] and j < l)}.
    Value inverse =
        buildStableRanks(rewriter, loc, modality, /*acrossBatch=*/false);

    // order[b, k] = the j with inverse[b, j] = k (exactly one: a sum).
    Value order =
        linalg::GenericOp::create(
            rewriter, loc, type, ValueRange{inverse}, ValueRange{zeros},
            {other, self}, iterators,
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value k = arith::IndexCastOp::create(
                  b, l, i32, linalg::IndexOp::create(b, l, 1));
              Value j = arith::IndexCastOp::create(
                  b, l, i32, linalg::IndexOp::create(b, l, 2));
              Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq,
                                                args[0], k);
              Value term =
                  arith::SelectOp::create(b, l, hit, j, constantI32(b, l, 0));
              linalg::YieldOp::create(
                  b, l, ValueRange{arith::AddIOp::create(b, l, args[1], term)});
            })
            .getResult(0);
    rewriter.replaceOp(op, {order, inverse});
    return success();
  }
};

/// `y[b, k, ...] = x[b, order[b, k], ...]`, 0 for an index out of range.
struct PermuteLowering : OpRewritePattern<PermuteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(PermuteOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value input = op.getInput();
    auto type = cast<RankedTensorType>(op.getResult().getType());
    int64_t seq = type.getDimSize(1);
    Type elementType = type.getElementType();
    Value y = mapElementwise(
        rewriter, loc, type, ValueRange{op.getOrder()},
        [&](OpBuilder &b, Location l, ValueRange args) -> Value {
          SmallVector<Value> indices;
          for (int64_t d = 0; d < type.getRank(); ++d)
            indices.push_back(linalg::IndexOp::create(b, l, d));
          indices[1] = clampedIndex(b, l, args[0], seq);
          Value value = tensor::ExtractOp::create(b, l, input, indices);
          Value zero = arith::ConstantOp::create(
              b, l, cast<TypedAttr>(b.getZeroAttr(elementType)));
          return arith::SelectOp::create(b, l, isInRange(b, l, args[0], seq),
                                         value, zero);
        });
    rewriter.replaceOp(op, y);
    return success();
  }
};

} // namespace

void moma::populatePermuteToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<ModalitySortLowering, PermuteLowering>(patterns.getContext());
}
