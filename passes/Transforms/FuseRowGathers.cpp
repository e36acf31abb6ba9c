//===- FuseRowGathers.cpp - Row gathers into their contractions -----------===//
//
// Implements `moma-fuse-row-gathers` (see Passes.td): a cheap row gather
// fused into its single contraction user.
//
//===----------------------------------------------------------------------===//

#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/SmallBitVector.h"

namespace moma {
#define GEN_PASS_DEF_MOMAFUSEROWGATHERS
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

/// An all-parallel generic whose body reads a tensor with tensor.extract and
/// otherwise does only index arithmetic, comparisons and selects.
bool isRowGather(linalg::GenericOp op) {
  if (op.getNumParallelLoops() != op.getNumLoops() || op.getNumDpsInits() != 1)
    return false;
  bool extracts = false;
  for (Operation &inner : op.getBody()->without_terminator()) {
    if (isa<tensor::ExtractOp>(inner)) {
      extracts = true;
      continue;
    }
    if (!isa<linalg::IndexOp, arith::ConstantOp, arith::CmpIOp, arith::AndIOp,
             arith::OrIOp, arith::SelectOp, arith::MaxSIOp, arith::MinSIOp,
             arith::IndexCastOp, arith::AddIOp, arith::SubIOp, arith::MulIOp>(
            inner))
      return false;
  }
  return extracts;
}

/// Rewrites a contraction that reads a row gather's result into one that
/// computes the gathered value itself. Upstream's elementwise fusion cannot
/// do this for the grouped GEMM: once the gathered operand is gone, no
/// operand of the contraction spans its reduction dimension (the weights
/// are read with tensor.extract), so a loop would lose its bound. Such
/// dimensions get a shape operand, a `tensor.empty` the body never reads.
struct FuseGatherIntoContraction : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp consumer,
                                PatternRewriter &rewriter) const override {
    if (consumer.getNumReductionLoops() == 0 ||
        !consumer.hasPureTensorSemantics())
      return failure();
    for (OpOperand *operand : consumer.getDpsInputOperands()) {
      auto producer = operand->get().getDefiningOp<linalg::GenericOp>();
      if (!producer || !producer->hasOneUse() || !isRowGather(producer) ||
          !producer.getIndexingMapsArray().back().isIdentity() ||
          !producer.getBody()->getArguments().back().use_empty())
        continue;
      AffineMap operandMap = consumer.getMatchingIndexingMap(operand);
      if (!operandMap.isProjectedPermutation() ||
          operandMap.getNumResults() != producer.getNumLoops())
        continue;
      fuse(consumer, operand, producer, rewriter);
      return success();
    }
    return failure();
  }

private:
  static void fuse(linalg::GenericOp consumer, OpOperand *operand,
                   linalg::GenericOp producer, PatternRewriter &rewriter) {
    Location loc = consumer.getLoc();
    AffineMap operandMap = consumer.getMatchingIndexingMap(operand);
    unsigned fused = operand->getOperandNumber();
    SmallVector<Value> inputs;
    SmallVector<AffineMap> maps;
    // Where each old block argument of the consumer, and each input block
    // argument of the producer, lands among the new inputs.
    SmallVector<int64_t> consumerArg, producerArg;
    for (OpOperand *input : consumer.getDpsInputOperands()) {
      if (input->getOperandNumber() != fused) {
        consumerArg.push_back(inputs.size());
        inputs.push_back(input->get());
        maps.push_back(consumer.getMatchingIndexingMap(input));
        continue;
      }
      consumerArg.push_back(-1);
      for (OpOperand *inner : producer.getDpsInputOperands()) {
        producerArg.push_back(inputs.size());
        inputs.push_back(inner->get());
        maps.push_back(
            producer.getMatchingIndexingMap(inner).compose(operandMap));
      }
    }
    // Loop dimensions no operand spans any more: a shape operand each.
    SmallVector<int64_t> ranges = consumer.getStaticLoopRanges();
    unsigned numLoops = consumer.getNumLoops();
    llvm::SmallBitVector spanned(numLoops);
    SmallVector<AffineMap> outputMaps;
    for (OpOperand &init : consumer.getDpsInitsMutable())
      outputMaps.push_back(consumer.getMatchingIndexingMap(&init));
    for (AffineMap map : llvm::concat<AffineMap>(maps, outputMaps))
      for (AffineExpr expr : map.getResults())
        if (auto dim = dyn_cast<AffineDimExpr>(expr))
          spanned.set(dim.getPosition());
    SmallVector<unsigned> shapeDims;
    for (unsigned d = 0; d < numLoops; ++d) {
      if (spanned.test(d))
        continue;
      shapeDims.push_back(d);
      inputs.push_back(tensor::EmptyOp::create(
          rewriter, loc, ArrayRef<int64_t>{ranges[d]}, rewriter.getF32Type()));
      maps.push_back(AffineMap::get(numLoops, 0, rewriter.getAffineDimExpr(d),
                                    rewriter.getContext()));
    }
    maps.append(outputMaps.begin(), outputMaps.end());

    auto fusedOp = linalg::GenericOp::create(
        rewriter, loc, consumer.getResultTypes(), inputs,
        consumer.getDpsInits(), maps, consumer.getIteratorTypesArray());
    Block *body = rewriter.createBlock(&fusedOp.getRegion());
    for (Value input : inputs)
      body->addArgument(getElementTypeOrSelf(input.getType()), loc);
    for (Value init : consumer.getDpsInits())
      body->addArgument(getElementTypeOrSelf(init.getType()), loc);
    rewriter.setInsertionPointToStart(body);

    // The gathered value: the producer's body, its indices those of the
    // consumer's dimensions it was read at.
    IRMapping mapping;
    Block *producerBody = producer.getBody();
    for (auto [i, position] : llvm::enumerate(producerArg))
      mapping.map(producerBody->getArgument(i), body->getArgument(position));
    for (Operation &inner : producerBody->without_terminator()) {
      if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
        Value replacement =
            linalg::IndexOp::create(rewriter, index.getLoc(),
                                    operandMap.getDimPosition(index.getDim()));
        mapping.map(index.getResult(), replacement);
        continue;
      }
      rewriter.clone(inner, mapping);
    }
    Value gathered =
        mapping.lookupOrDefault(producerBody->getTerminator()->getOperand(0));

    Block *consumerBody = consumer.getBody();
    unsigned numInputs = consumer.getNumDpsInputs();
    for (unsigned i = 0; i < numInputs; ++i)
      mapping.map(consumerBody->getArgument(i),
                  consumerArg[i] < 0 ? gathered
                                     : body->getArgument(consumerArg[i]));
    for (unsigned i = 0, e = consumer.getNumDpsInits(); i < e; ++i)
      mapping.map(consumerBody->getArgument(numInputs + i),
                  body->getArgument(inputs.size() + i));
    for (Operation &inner : consumerBody->getOperations())
      rewriter.clone(inner, mapping);
    rewriter.replaceOp(consumer, fusedOp.getResults());
    rewriter.eraseOp(producer);
  }
};

struct FuseRowGathersPass
    : moma::impl::MomaFuseRowGathersBase<FuseRowGathersPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseGatherIntoContraction>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
