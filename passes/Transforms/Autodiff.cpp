//===- Autodiff.cpp - Gradients of the loss with respect to the weights ---===//
//
// Implements `moma-autodiff` (see Passes.td): reverse-mode differentiation
// of a moma function through GradientOpInterface, with the tensor
// arithmetic between moma ops differentiated here.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaOps.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"

namespace moma {
#define GEN_PASS_DEF_MOMAAUTODIFF
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

static constexpr StringLiteral kGradientPrefix =
    MomaDialect::getGradientOutputPrefix();

/// Whether `value` is a float tensor (the values gradients flow through).
static bool isFloatTensor(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && isa<FloatType>(type.getElementType());
}

/// Zeros of the tensor type `type` (`linalg.fill` of an empty tensor, which
/// bufferizes to a fill in place instead of a constant in the binary).
static Value buildZeros(OpBuilder &b, Location loc, RankedTensorType type) {
  Value empty =
      tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  Value zero = arith::ConstantOp::create(
      b, loc, b.getFloatAttr(type.getElementType(), 0.0));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

/// Rebuilds `region` so that it also returns every value of its body
/// (block arguments and op results) as extra results after its own: the
/// backward pass, built after the forward one outside the region, reads
/// them there. Returns the new op; `numExtras` receives the number of
/// extras the region had.
static DepthRegionOp exportBodyValues(DepthRegionOp region,
                                      unsigned &numExtras) {
  Block &body = region.getBody().front();
  auto yield = cast<YieldOp>(body.getTerminator());
  numExtras = region.getExtras().size();
  SmallVector<Value> values(body.getArguments());
  for (Operation &op : body.without_terminator())
    for (Value result : op.getResults())
      if (isa<RankedTensorType>(result.getType()))
        values.push_back(result);
  SmallVector<Type> extraTypes(region.getExtras().getTypes());
  for (Value value : values)
    extraTypes.push_back(value.getType());
  yield.getExtrasMutable().append(values);
  OpBuilder b(region);
  auto rebuilt = DepthRegionOp::create(
      b, region.getLoc(), region.getResult().getType(), extraTypes,
      region.getX(), region.getModality(), region.getIndices(),
      region.getGate(), region.getPositions());
  rebuilt->setDiscardableAttrs(region->getDiscardableAttrDictionary());
  rebuilt.getBody().takeBody(region.getBody());
  for (unsigned i = 0, e = region.getNumResults(); i < e; ++i)
    region->getResult(i).replaceAllUsesWith(rebuilt->getResult(i));
  region.erase();
  return rebuilt;
}

/// The transformer layer `loc` names: N of the model builder's names
/// "layers.N" and "layers.N.…" (looked for through fused and call-site
/// locations).
static std::optional<unsigned> layerOfLocation(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc)) {
    StringRef rest = name.getName().getValue();
    unsigned index;
    if (rest.consume_front("layers.") &&
        !rest.take_until([](char c) { return c == '.'; })
             .getAsInteger(10, index))
      return index;
    return layerOfLocation(name.getChildLoc());
  }
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location inner : fused.getLocations())
      if (std::optional<unsigned> index = layerOfLocation(inner))
        return index;
    return std::nullopt;
  }
  if (auto call = dyn_cast<CallSiteLoc>(loc))
    return layerOfLocation(call.getCallee());
  return std::nullopt;
}

namespace {

/// Gradients of values.
using GradientMap = llvm::DenseMap<Value, Value>;

/// The gradients of one function's values, built at the end of its body.
class GradientBuilder {
public:
  /// With `recomputeLayers`, the backward pass of each transformer layer
  /// recomputes the layer's forward ops from its inputs first and reads
  /// those.
  GradientBuilder(func::FuncOp func, func::ReturnOp ret, bool recomputeLayers)
      : func(func), builder(ret), recomputeLayers(recomputeLayers) {}

  /// Seeds `loss` with 1 and differentiates every op of the body, last
  /// first.
  LogicalResult differentiate(Value loss) {
    auto type = cast<RankedTensorType>(loss.getType());
    gradients[loss] = arith::ConstantOp::create(
        builder, loss.getLoc(),
        DenseElementsAttr::get(
            type, builder.getFloatAttr(type.getElementType(), 1.0)));
    Block &body = func.getBody().front();
    // The ops of each layer, in program order, when layers are recomputed.
    llvm::MapVector<unsigned, SmallVector<Operation *>> layers;
    llvm::DenseMap<Operation *, unsigned> layerOf;
    if (recomputeLayers)
      for (Operation &op : body.without_terminator())
        if (std::optional<unsigned> layer = layerOfLocation(op.getLoc())) {
          layers[*layer].push_back(&op);
          layerOf[&op] = *layer;
        }
    // A region the backward pass reads exports its body's values (a
    // recomputed one on its copy only).
    SmallVector<DepthRegionOp> regions(body.getOps<DepthRegionOp>());
    for (DepthRegionOp region : regions)
      if (!layerOf.contains(region))
        exportRegion(region);
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops)) {
      auto layer = layerOf.find(op);
      if (layer != layerOf.end()) {
        if (!recomputedOf.contains(op))
          recomputeLayer(layers[layer->second]);
        op = recomputedOf.lookup(op);
      }
      if (failed(differentiate(op)))
        return failure();
    }
    eraseUnusedRecomputation();
    return success();
  }

  /// The gradient of `value`, or null when none reaches it.
  Value gradientOf(Value value) const { return gradients.lookup(value); }

  OpBuilder &getBuilder() { return builder; }

private:
  /// Rebuilds `region` with its body's values exported (exportBodyValues)
  /// and returns the new op.
  DepthRegionOp exportRegion(DepthRegionOp region) {
    unsigned numExtras;
    DepthRegionOp rebuilt = exportBodyValues(region, numExtras);
    originalExtras[rebuilt] = numExtras;
    return rebuilt;
  }

  /// Copies `ops` (one layer's forward ops, in program order) at the
  /// builder's point, for the layer's backward pass to differentiate
  /// instead of them. The copies read the layer's inputs (values defined
  /// before the layer) and each other, so that the forward pass's
  /// activations inside the layer die with the forward pass. A float
  /// input computed by an op reaches the copies through a
  /// `bufferization.alloc_tensor` copy of it, which CSE cannot fold:
  /// without it, CSE would merge the recomputed ops with the forward ones.
  void recomputeLayer(ArrayRef<Operation *> ops) {
    llvm::DenseSet<Operation *> inLayer(ops.begin(), ops.end());
    Block *body = ops.front()->getBlock();
    IRMapping copies;
    for (Operation *op : ops) {
      op->walk([&](Operation *nested) {
        for (Value operand : nested->getOperands()) {
          Operation *def = operand.getDefiningOp();
          if (!def || def->getBlock() != body || inLayer.contains(def) ||
              copies.contains(operand) || !isFloatTensor(operand) ||
              isa<arith::ConstantOp>(def))
            continue;
          auto input = bufferization::AllocTensorOp::create(
              builder, operand.getLoc(),
              cast<RankedTensorType>(operand.getType()), ValueRange(), operand);
          copies.map(operand, input.getResult());
          originalOf[input.getResult()] = operand;
          recomputation.push_back(input);
        }
      });
      Operation *copy = builder.clone(*op, copies);
      if (auto region = dyn_cast<DepthRegionOp>(copy))
        copy = exportRegion(region);
      for (auto [result, recomputed] :
           llvm::zip(op->getResults(), copy->getResults())) {
        copies.map(result, recomputed);
        originalOf[recomputed] = result;
      }
      recomputedOf[op] = copy;
      recomputation.push_back(copy);
    }
  }

  /// Erases the recomputed ops no backward op reads, last first.
  void eraseUnusedRecomputation() {
    for (Operation *op : llvm::reverse(recomputation))
      if (op->use_empty() &&
          (isa<bufferization::AllocTensorOp>(op) || isOpTriviallyDead(op)))
        op->erase();
  }

  /// The forward value whose gradient `value` carries: the original of a
  /// recomputed value, else itself.
  Value canonical(Value value) const {
    Value original = originalOf.lookup(value);
    return original ? original : value;
  }

  /// Adds `gradient` to the gradient of `value` in `map`.
  void accumulate(GradientMap &map, Value value, Value gradient) {
    if (!gradient)
      return;
    Value &slot = map[canonical(value)];
    slot = slot ? arith::AddFOp::create(builder, value.getLoc(), slot, gradient)
                      .getResult()
                : gradient;
  }
  void accumulate(Value value, Value gradient) {
    accumulate(gradients, value, gradient);
  }

  /// The gradients of `op`'s operands from those of its results: its rule,
  /// or the arithmetic's.
  LogicalResult buildRule(Operation *op, ArrayRef<Value> resultGradients,
                          MutableArrayRef<Value> operandGradients) {
    if (auto rule = dyn_cast<GradientOpInterface>(op))
      return rule.buildGradients(builder, resultGradients, operandGradients);
    return differentiateArithmetic(op, resultGradients[0], operandGradients);
  }

  /// The gradients of `op`'s results in `map`; false if it has none.
  bool collectResultGradients(Operation *op, const GradientMap &map,
                              SmallVectorImpl<Value> &resultGradients) const {
    bool any = false;
    for (Value result : op->getResults()) {
      resultGradients.push_back(map.lookup(canonical(result)));
      any |= static_cast<bool>(resultGradients.back());
    }
    return any;
  }

  LogicalResult differentiate(Operation *op) {
    if (auto region = dyn_cast<DepthRegionOp>(op))
      return differentiateRegion(region);
    SmallVector<Value> resultGradients;
    if (!collectResultGradients(op, gradients, resultGradients))
      return success();
    SmallVector<Value> operandGradients(op->getNumOperands());
    if (failed(buildRule(op, resultGradients, operandGradients)))
      return failure();
    for (auto [operand, gradient] :
         llvm::zip_equal(op->getOperands(), operandGradients))
      if (gradient && isFloatTensor(operand))
        accumulate(operand, gradient);
    return success();
  }

  /// A mixture-of-depths region: the blend's gradient, then the body's ops
  /// in reverse, each differentiated on a copy built outside the region
  /// whose operands are the values the region exports, then the scatter
  /// of the kept rows' gradient into the region's input.
  LogicalResult differentiateRegion(DepthRegionOp region) {
    SmallVector<Value> resultGradients;
    if (!collectResultGradients(region, gradients, resultGradients))
      return success();
    Location loc = region.getLoc();
    Block &body = region.getBody().front();
    auto yield = cast<YieldOp>(body.getTerminator());
    unsigned numExtras = originalExtras.lookup(region);
    // The region's result for every exported body value.
    IRMapping outside;
    for (auto [index, value] :
         llvm::enumerate(yield.getExtras().drop_front(numExtras)))
      outside.map(value, region.getExtras()[numExtras + index]);
    Value xs = outside.lookup(body.getArgument(0));
    Value dy = resultGradients[0];
    GradientMap inner;
    Value directGradient;
    if (dy) {
      Value o = outside.lookupOrDefault(yield.getValue());
      Value gate = region.getGate();
      auto blend = DepthBlendGradOp::create(
          builder, loc, xs.getType(), xs.getType(),
          gate ? gate.getType() : Type(), dy, region.getIndices(), xs, o, gate);
      accumulate(inner, yield.getValue(), blend.getDOut());
      directGradient = blend.getDKeptX();
      if (gate)
        accumulate(region.getGate(), blend.getDGate());
    }
    for (auto [index, extra] :
         llvm::enumerate(yield.getExtras().take_front(numExtras)))
      if (Value gradient = resultGradients[1 + index])
        if (isFloatTensor(extra))
          accumulate(inner, extra, gradient);

    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops)) {
      SmallVector<Value> opResultGradients;
      if (!collectResultGradients(op, inner, opResultGradients))
        continue;
      if (isa<DepthRegionOp>(op))
        return op->emitOpError()
               << "has no gradient rule inside another moma.depth_region";
      // The rule reads the op's operands: give it a copy outside the region
      // that reads the exported values (and erase the copy after).
      // (Cloning maps the op's results to the copy's: clone with a copy of
      // the map, which keeps the exported results.)
      IRMapping operands = outside;
      Operation *copy = builder.clone(*op, operands);
      SmallVector<Value> operandGradients(op->getNumOperands());
      LogicalResult built =
          buildRule(copy, opResultGradients, operandGradients);
      // A rule that reads the op's own results (the plan of a route) reads
      // the exported ones instead, so the copy computes nothing.
      for (auto [result, copied] :
           llvm::zip_equal(op->getResults(), copy->getResults()))
        if (Value exported = outside.lookupOrNull(result))
          copied.replaceAllUsesWith(exported);
      if (copy->use_empty())
        copy->erase();
      if (failed(built))
        return failure();
      for (auto [operand, gradient] :
           llvm::zip_equal(op->getOperands(), operandGradients)) {
        if (!gradient || !isFloatTensor(operand))
          continue;
        bool local = operand.getParentRegion() == &region.getBody();
        accumulate(local ? inner : gradients, operand, gradient);
      }
    }

    // The kept rows: through the body and directly through the blend.
    Value keptGradient = inner.lookup(body.getArgument(0));
    if (keptGradient && directGradient)
      keptGradient =
          arith::AddFOp::create(builder, loc, keptGradient, directGradient);
    else if (!keptGradient)
      keptGradient = directGradient;
    if (!dy && !keptGradient)
      return success();
    if (!dy)
      dy = buildZeros(builder, loc, region.getResult().getType());
    if (!keptGradient)
      keptGradient =
          buildZeros(builder, loc, cast<RankedTensorType>(xs.getType()));
    accumulate(region.getX(),
               DepthScatterGradOp::create(builder, loc, dy.getType(), dy,
                                          region.getIndices(), keptGradient));
    return success();
  }

  /// The rules of the tensor arithmetic between moma ops.
  LogicalResult differentiateArithmetic(Operation *op, Value dy,
                                        MutableArrayRef<Value> gradients) {
    Location loc = op->getLoc();
    if (op->getNumResults() != 1 || !isFloatTensor(op->getResult(0)))
      return op->emitOpError()
             << "has no gradient rule (moma-autodiff differentiates moma ops "
                "with GradientOpInterface and element-wise tensor "
                "arithmetic)";
    if (isa<arith::AddFOp>(op)) {
      gradients[0] = gradients[1] = dy;
      return success();
    }
    if (isa<arith::SubFOp>(op)) {
      gradients[0] = dy;
      gradients[1] = arith::NegFOp::create(builder, loc, dy);
      return success();
    }
    if (isa<arith::NegFOp>(op)) {
      gradients[0] = arith::NegFOp::create(builder, loc, dy);
      return success();
    }
    if (auto mul = dyn_cast<arith::MulFOp>(op)) {
      if (gradientNeeded(mul.getLhs()))
        gradients[0] = arith::MulFOp::create(builder, loc, dy, mul.getRhs());
      if (gradientNeeded(mul.getRhs()))
        gradients[1] = arith::MulFOp::create(builder, loc, dy, mul.getLhs());
      return success();
    }
    if (auto transpose = dyn_cast<linalg::TransposeOp>(op)) {
      if (!transpose.hasPureTensorSemantics())
        return op->emitOpError() << "has no gradient rule on buffers";
      ArrayRef<int64_t> perm = transpose.getPermutation();
      SmallVector<int64_t> inverse(perm.size());
      for (auto [i, p] : llvm::enumerate(perm))
        inverse[p] = i;
      auto inputType = cast<RankedTensorType>(transpose.getInput().getType());
      Value init = tensor::EmptyOp::create(builder, loc, inputType.getShape(),
                                           inputType.getElementType());
      gradients[0] =
          linalg::TransposeOp::create(builder, loc, dy, init, inverse)
              .getResult()[0];
      return success();
    }
    return op->emitOpError()
           << "has no gradient rule (moma-autodiff differentiates moma ops "
              "with GradientOpInterface and element-wise tensor arithmetic)";
  }

  /// Whether `value` can lead back to a weight (constants cannot).
  static bool gradientNeeded(Value value) {
    return !value.getDefiningOp<arith::ConstantOp>();
  }

  func::FuncOp func;
  OpBuilder builder;
  GradientMap gradients;
  /// The number of extras each rebuilt region had before its exports.
  llvm::DenseMap<Operation *, unsigned> originalExtras;
  /// Whether each layer's backward pass recomputes its forward ops.
  bool recomputeLayers;
  /// Each recomputed forward op's copy.
  llvm::DenseMap<Operation *, Operation *> recomputedOf;
  /// The forward value each recomputed value (or input copy) stands for.
  llvm::DenseMap<Value, Value> originalOf;
  /// The ops recomputation built, in program order.
  SmallVector<Operation *> recomputation;
};

struct AutodiffPass : moma::impl::MomaAutodiffBase<AutodiffPass> {
  using MomaAutodiffBase::MomaAutodiffBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.getSymName() != function || func.isExternal())
      return;
    if (!func.getBody().hasOneBlock())
      return signalFail(func.emitOpError()
                        << "moma-autodiff needs a function of one block");
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    StringRef outputAttr = MomaDialect::getOutputAttrName();

    // The loss: the result named "total".
    Value loss;
    for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
      auto name = func.getResultAttrOfType<StringAttr>(i, outputAttr);
      if (name && name.getValue() == "total")
        loss = ret.getOperand(i);
      if (name && name.getValue().starts_with(kGradientPrefix))
        return signalFail(func.emitOpError()
                          << "already returns gradients (result " << i
                          << " is '" << name.getValue() << "')");
    }
    if (!loss)
      return signalFail(func.emitOpError()
                        << "has no result with " << outputAttr
                        << " = \"total\" to differentiate");
    if (!isFloatTensor(loss) ||
        cast<RankedTensorType>(loss.getType()).getRank() != 0)
      return signalFail(func.emitOpError()
                        << "'total' must be a scalar float tensor");

    if (recompute != "none" && recompute != "layer")
      return signalFail(func.emitOpError()
                        << "moma-autodiff: recompute must be none or layer, "
                           "not '"
                        << recompute << "'");
    GradientBuilder gradients(func, ret, recompute == "layer");
    if (failed(gradients.differentiate(loss)))
      return signalPassFailure();

    // Every weight's gradient becomes a result, in argument order.
    OpBuilder &b = gradients.getBuilder();
    SmallVector<Value> results(ret.getOperands());
    SmallVector<Type> resultTypes(func.getResultTypes());
    SmallVector<StringAttr> names;
    for (BlockArgument arg : func.getArguments()) {
      auto weight = func.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), MomaDialect::getWeightAttrName());
      if (!weight)
        continue;
      if (!isFloatTensor(arg))
        return signalFail(func.emitOpError() << "weight '" << weight.getValue()
                                             << "' is not a float tensor");
      Value gradient = gradients.gradientOf(arg);
      if (!gradient)
        gradient =
            buildZeros(b, arg.getLoc(), cast<RankedTensorType>(arg.getType()));
      results.push_back(gradient);
      resultTypes.push_back(arg.getType());
      names.push_back(b.getStringAttr(kGradientPrefix + weight.getValue()));
    }
    ret->setOperands(results);
    for (auto [type, name] : llvm::zip_equal(
             ArrayRef(resultTypes).drop_front(func.getNumResults()), names))
      (void)func.insertResult(
          func.getNumResults(), type,
          b.getDictionaryAttr(b.getNamedAttr(outputAttr, name)));
  }

private:
  void signalFail(InFlightDiagnostic diag) {
    (void)diag;
    signalPassFailure();
  }
};

} // namespace
