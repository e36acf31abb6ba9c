//===- TrainStep.cpp - One optimizer step from a gradients function -------===//
//
// Implements `moma-train-step` (see Passes.td): @forward, differentiated by
// moma-autodiff, becomes the function of one training step: its body once
// per micro-batch on row slices of the inputs, the losses and gradients
// averaged, and one moma.adamw over every weight.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaOps.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

namespace moma {
#define GEN_PASS_DEF_MOMATRAINSTEP
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

static constexpr StringLiteral kGradientPrefix =
    MomaDialect::getGradientOutputPrefix();

namespace {

/// What one result of the gradients function becomes in the train step.
enum class ResultKind { Mean, Last, Dropped };

struct TrainStepPass : moma::impl::MomaTrainStepBase<TrainStepPass> {
  using MomaTrainStepBase::MomaTrainStepBase;

  void runOnOperation() override;

private:
  LogicalResult checkOptions(func::FuncOp func);
};

/// `x * (1 / count)` element-wise, for a float tensor (the mean of `count`
/// summed micro-batch values); `x` itself when `count` is 1.
Value scaleBy(OpBuilder &b, Location loc, Value x, int64_t count) {
  if (count == 1)
    return x;
  auto type = cast<RankedTensorType>(x.getType());
  auto factor = arith::ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(
          type, b.getFloatAttr(type.getElementType(), 1.0 / double(count))));
  return arith::MulFOp::create(b, loc, x, factor);
}

/// The part of `name` before its last '.' (empty without one) and the part
/// after it, as Python's `str.rpartition` gives them.
std::pair<StringRef, StringRef> rpartition(StringRef name) {
  size_t dot = name.rfind('.');
  if (dot == StringRef::npos)
    return {StringRef(), name};
  return {name.take_front(dot), name.drop_front(dot + 1)};
}

/// Whether the weight named `name` belongs to a normalisation layer
/// (`layers.0.attn_norm.weight`, `final_norm.bias`) or is a bias: the
/// weights AdamW does not decay by default (examples/Training.md). As the
/// reference's `is_norm_or_bias`: a dotless name such as `final_norm` is
/// neither.
bool isNormOrBias(StringRef name) {
  auto [owner, last] = rpartition(name);
  return last == "bias" || rpartition(owner).second.ends_with("norm");
}

/// The name of the layer of `route` from its location
/// (`layers.3.moe.route` gives `layers.3.moe`), or `route#INDEX`.
std::string routeName(RouteOp route, unsigned index) {
  if (auto name = dyn_cast<NameLoc>(route.getLoc())) {
    StringRef text = name.getName().getValue();
    text.consume_back(".route");
    if (!text.empty())
      return text.str();
  }
  return "route#" + std::to_string(index);
}

} // namespace

LogicalResult TrainStepPass::checkOptions(func::FuncOp func) {
  auto fail = [&](const Twine &message) {
    return func.emitError() << "moma-train-step: " << message;
  };
  if (!(lr > 0.0))
    return fail("lr must be > 0");
  if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
    return fail("beta1 and beta2 must be in [0, 1)");
  if (!(eps > 0.0))
    return fail("eps must be > 0");
  if (!(weightDecay >= 0.0))
    return fail("weight-decay must be >= 0");
  if (warmupSteps < 0 || totalSteps < 1)
    return fail("warmup-steps must be >= 0 and total-steps >= 1");
  if (decay != "linear" && decay != "cosine" && decay != "constant")
    return fail("decay must be linear, cosine or constant, not '" + decay +
                "'");
  if (!(finalLrRatio >= 0.0 && finalLrRatio <= 1.0))
    return fail("final-lr-ratio must be in [0, 1]");
  if (!(clipGradNorm >= 0.0))
    return fail("clip-grad-norm must be >= 0 (0: no clipping)");
  if (accumulationSteps < 1)
    return fail("accumulation-steps must be >= 1");
  return success();
}

void TrainStepPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto func = module.lookupSymbol<func::FuncOp>("forward");
  if (!func) {
    module.emitError() << "moma-train-step: the module has no @forward";
    return signalPassFailure();
  }
  if (failed(checkOptions(func)))
    return signalPassFailure();
  if (!func.getBody().hasOneBlock()) {
    func.emitError() << "moma-train-step: @forward must have one block";
    return signalPassFailure();
  }
  MLIRContext *ctx = &getContext();
  const int64_t micro = accumulationSteps;
  StringRef inputAttr = MomaDialect::getInputAttrName();
  StringRef weightAttr = MomaDialect::getWeightAttrName();
  StringRef outputAttr = MomaDialect::getOutputAttrName();

  // The arguments: inputs (stacked micro-batches) and weights.
  SmallVector<unsigned> inputs, weights;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i) {
    if (func.getArgAttr(i, MomaDialect::getStateAttrName()) ||
        (func.getArgAttrOfType<StringAttr>(i, inputAttr) &&
         func.getArgAttrOfType<StringAttr>(i, inputAttr).getValue() ==
             "step")) {
      func.emitError() << "moma-train-step: @forward is already a train step";
      return signalPassFailure();
    }
    if (func.getArgAttrOfType<StringAttr>(i, weightAttr)) {
      weights.push_back(i);
      continue;
    }
    auto type = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    if (!func.getArgAttrOfType<StringAttr>(i, inputAttr) || !type ||
        type.getRank() < 1 || !type.hasStaticShape()) {
      func.emitError() << "moma-train-step: argument #" << i
                       << " must be a named weight or a static input of rank "
                          ">= 1 (its first dimension is the batch)";
      return signalPassFailure();
    }
    inputs.push_back(i);
  }
  // The results: what each becomes, and the gradient of every weight.
  llvm::StringMap<unsigned> gradientOf;
  SmallVector<ResultKind> kinds;
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
    auto name = func.getResultAttrOfType<StringAttr>(i, outputAttr);
    auto type = dyn_cast<RankedTensorType>(func.getResultTypes()[i]);
    if (!name || !type) {
      func.emitError() << "moma-train-step: result #" << i
                       << " is not a named tensor output";
      return signalPassFailure();
    }
    if (name.getValue().starts_with(kGradientPrefix)) {
      gradientOf[name.getValue().drop_front(kGradientPrefix.size())] = i;
      kinds.push_back(ResultKind::Mean);
    } else if (isa<FloatType>(type.getElementType())) {
      kinds.push_back(type.getRank() <= 1 ? ResultKind::Mean
                                          : ResultKind::Dropped);
    } else {
      kinds.push_back(ResultKind::Last);
    }
  }
  SmallVector<unsigned> gradients;
  for (unsigned w : weights) {
    StringRef name =
        func.getArgAttrOfType<StringAttr>(w, weightAttr).getValue();
    auto it = gradientOf.find(name);
    if (it == gradientOf.end()) {
      func.emitError() << "moma-train-step: @forward returns no gradient of "
                          "weight '"
                       << name << "' (run moma-autodiff first)";
      return signalPassFailure();
    }
    gradients.push_back(it->second);
  }
  if (weights.empty()) {
    func.emitError() << "moma-train-step: @forward has no weights to train";
    return signalPassFailure();
  }

  // The new signature: inputs (micro-batches stacked), step, weights, the
  // first moments, the second moments.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  auto named = [&](StringRef attr, const Twine &name) {
    return DictionaryAttr::get(ctx,
                               {NamedAttribute(StringAttr::get(ctx, attr),
                                               StringAttr::get(ctx, name))});
  };
  for (unsigned i : inputs) {
    auto type = cast<RankedTensorType>(func.getArgument(i).getType());
    SmallVector<int64_t> shape(type.getShape());
    shape[0] *= micro;
    argTypes.push_back(RankedTensorType::get(shape, type.getElementType()));
    argAttrs.push_back(func.getArgAttrDict(i));
  }
  argTypes.push_back(RankedTensorType::get({}, IntegerType::get(ctx, 64)));
  argAttrs.push_back(named(inputAttr, "step"));
  for (unsigned w : weights) {
    argTypes.push_back(func.getArgument(w).getType());
    argAttrs.push_back(func.getArgAttrDict(w));
  }
  for (StringRef moment : {"adam.m:", "adam.v:"})
    for (unsigned w : weights) {
      argTypes.push_back(func.getArgument(w).getType());
      argAttrs.push_back(named(
          MomaDialect::getStateAttrName(),
          moment +
              func.getArgAttrOfType<StringAttr>(w, weightAttr).getValue()));
    }

  OpBuilder b(func);
  Location loc = func.getLoc();
  auto step = func::FuncOp::create(b, loc, "forward",
                                   FunctionType::get(ctx, argTypes, {}));
  step.setAllArgAttrs(argAttrs);
  Block *entry = step.addEntryBlock();
  b.setInsertionPointToStart(entry);
  size_t numInputs = inputs.size(), numWeights = weights.size();
  auto stepArg = [&](size_t k) { return entry->getArgument(k); };
  Value stepNumber = stepArg(numInputs);
  auto weightArg = [&](size_t w) { return stepArg(numInputs + 1 + w); };
  auto momentArg = [&](size_t which, size_t w) {
    return stepArg(numInputs + 1 + numWeights * (1 + which) + w);
  };

  // The gradients function once per micro-batch, summed.
  Block &body = func.getBody().front();
  auto terminator = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<Value> sums(func.getNumResults());
  SmallVector<std::pair<std::string, Value>> routes;
  for (int64_t a = 0; a < micro; ++a) {
    IRMapping map;
    for (auto [k, i] : llvm::enumerate(inputs)) {
      Value stacked = stepArg(k);
      if (micro == 1) {
        map.map(func.getArgument(i), stacked);
        continue;
      }
      auto type = cast<RankedTensorType>(func.getArgument(i).getType());
      SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
      offsets[0] = b.getIndexAttr(a * type.getDimSize(0));
      SmallVector<OpFoldResult> sizes,
          strides(type.getRank(), b.getIndexAttr(1));
      for (int64_t d : type.getShape())
        sizes.push_back(b.getIndexAttr(d));
      map.map(func.getArgument(i),
              tensor::ExtractSliceOp::create(b, loc, type, stacked, offsets,
                                             sizes, strides));
    }
    for (auto [k, w] : llvm::enumerate(weights))
      map.map(func.getArgument(w), weightArg(k));
    routes.clear();
    for (Operation &op : body.without_terminator()) {
      Operation *copy = b.clone(op, map);
      auto route = dyn_cast<RouteOp>(copy);
      if (!route)
        continue;
      // A layer recomputed for its backward pass (moma-autodiff
      // recompute=layer) routes again, identically: its forward route,
      // the first in program order, is the one reported.
      std::string name = routeName(route, routes.size());
      if (llvm::none_of(routes, [&](auto &r) { return r.first == name; }))
        routes.emplace_back(name, route.getExpertOffsets());
    }
    for (auto [i, value] : llvm::enumerate(terminator.getOperands())) {
      Value v = map.lookup(value);
      if (kinds[i] == ResultKind::Mean && sums[i])
        v = arith::AddFOp::create(b, loc, sums[i], v);
      sums[i] = v;
    }
  }

  // The update.
  SmallVector<Value> ws, gs, ms, vs;
  SmallVector<double> decays;
  for (size_t k = 0; k < numWeights; ++k) {
    ws.push_back(weightArg(k));
    Value g = scaleBy(b, loc, sums[gradients[k]], micro);
    sums[gradients[k]] = g;
    gs.push_back(g);
    ms.push_back(momentArg(0, k));
    vs.push_back(momentArg(1, k));
    StringRef name =
        func.getArgAttrOfType<StringAttr>(weights[k], weightAttr).getValue();
    decays.push_back(
        !isNormOrBias(name) || decayNormsAndBiases ? double(weightDecay) : 0.0);
  }
  auto element = cast<RankedTensorType>(ws.front().getType()).getElementType();
  auto scalar = RankedTensorType::get({}, element);
  SmallVector<Type> updateTypes;
  for (int copy = 0; copy < 3; ++copy)
    for (Value w : ws)
      updateTypes.push_back(w.getType());
  updateTypes.append({scalar, scalar});
  auto adamw = AdamWOp::create(
      b, loc, updateTypes, ws, gs, ms, vs, stepNumber, b.getF64FloatAttr(lr),
      b.getF64FloatAttr(beta1), b.getF64FloatAttr(beta2),
      b.getF64FloatAttr(eps), b.getI64IntegerAttr(warmupSteps),
      b.getI64IntegerAttr(totalSteps), b.getStringAttr(decay),
      b.getF64FloatAttr(finalLrRatio), b.getDenseF64ArrayAttr(decays),
      clipGradNorm > 0.0 ? b.getF64FloatAttr(clipGradNorm) : FloatAttr());

  // The results: the outputs, then the in-place updates.
  SmallVector<Value> results;
  SmallVector<DictionaryAttr> resultAttrs;
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
    if (kinds[i] == ResultKind::Dropped)
      continue;
    Value v = sums[i];
    bool isGradient = llvm::is_contained(gradients, i);
    if (kinds[i] == ResultKind::Mean && !isGradient)
      v = scaleBy(b, loc, v, micro);
    results.push_back(v);
    resultAttrs.push_back(func.getResultAttrDict(i));
  }
  results.push_back(adamw.getGradNorm());
  resultAttrs.push_back(named(outputAttr, "grad_norm"));
  results.push_back(adamw.getLearningRate());
  resultAttrs.push_back(named(outputAttr, "lr"));
  for (auto &[name, offsets] : routes) {
    results.push_back(offsets);
    resultAttrs.push_back(named(outputAttr, "expert_offsets:" + name));
  }
  for (size_t k = 0; k < numWeights; ++k) {
    results.push_back(adamw.getNewWeights()[k]);
    resultAttrs.push_back(named(
        MomaDialect::getUpdatesAttrName(),
        func.getArgAttrOfType<StringAttr>(weights[k], weightAttr).getValue()));
  }
  for (size_t which = 0; which < 2; ++which)
    for (size_t k = 0; k < numWeights; ++k) {
      results.push_back(which == 0 ? adamw.getNewExpAvg()[k]
                                   : adamw.getNewExpAvgSq()[k]);
      resultAttrs.push_back(
          named(MomaDialect::getUpdatesAttrName(),
                (which == 0 ? "adam.m:" : "adam.v:") +
                    func.getArgAttrOfType<StringAttr>(weights[k], weightAttr)
                        .getValue()));
    }
  func::ReturnOp::create(b, loc, results);
  step.setType(
      FunctionType::get(ctx, argTypes, ValueRange(results).getTypes()));
  step.setAllResultAttrs(resultAttrs);
  func.erase();
}
