//===- GradientVerifiers.cpp - Verifiers of the backward ops --------------===//
//
// Verifiers of the ops of MomaGradientOps.td. Each checks the operands it
// shares with its forward op through the forward op's own checks
// (MomaVerifierUtils.h), so a backward op is valid exactly when the forward
// op it differentiates is; result types equal to operand types are ODS
// constraints.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "dialects/moma/MomaVerifierUtils.h"

using namespace mlir;
using namespace moma;

LogicalResult EmbedGradOp::verify() {
  return verifyEmbedForm(*this, getIds(), getResult(), "result", getDy(), "dy",
                         getModality());
}

LogicalResult NormGradOp::verify() {
  return verifyNormForm(*this, getKind(), getX(), getWeight(), Value(),
                        getModality(), getEpsilon().convertToDouble());
}

LogicalResult BiasGradOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, getDy(), getModality());
  if (failed(prefix))
    return failure();
  return expectShape(op, "result", getResult(),
                     concat(*prefix, {getDy().getType().getShape()[2]}),
                     prefix->empty() ? "[features]" : "[modalities, features]");
}

LogicalResult LinearGradOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyLinearForm(op, getX(), getWeight(), Value(), getLoraA(),
                              getLoraB(), getModality(), getDy(), "dy")))
    return failure();
  size_t expected = getLoraA() ? 2 : 0;
  if (getDlora().size() != expected)
    return emitOpError() << "has " << getDlora().size()
                         << " LoRA gradient results, expected " << expected
                         << (expected ? " (dA, dB)" : " (no LoRA operands)");
  if (expected && (getDlora()[0].getType() != getLoraA().getType() ||
                   getDlora()[1].getType() != getLoraB().getType()))
    return emitOpError()
           << "LoRA gradient results must have the types of 'lora_a' and "
              "'lora_b'";
  return success();
}

LogicalResult FfnGradOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, getX(), getModality());
  if (failed(prefix) ||
      failed(verifyFfnWeights(
          op, getActivation(), *prefix, getX().getType().getShape()[2],
          getWIn(), getWOut(), prefix->empty() ? "" : "modalities, ")))
    return failure();
  return expectSameElementType(
      op, {{"x", getX()}, {"w_in", getWIn()}, {"w_out", getWOut()}});
}

LogicalResult AttentionGradOp::verify() {
  if (failed(verifyAttentionForm(*this, getX(), getWq(), getWk(), getWv(),
                                 getWo(), getPositions(), getModality(),
                                 getHeads(), getKvHeads(), getHeadDim(),
                                 getRopeTheta().convertToDouble())))
    return failure();
  return expectSameElementType(*this, {{"x", getX()},
                                       {"wq", getWq()},
                                       {"wk", getWk()},
                                       {"wv", getWv()},
                                       {"wo", getWo()}});
}

LogicalResult CrossEntropyGradOp::verify() {
  return verifyCrossEntropyForm(*this, getLogits(), getTargets(),
                                getTargetModality(), getDPerModality(),
                                "d_per_modality");
}

LogicalResult ExpertsGradOp::verify() {
  if (failed(verifyExpertsForm(*this, getActivation(), getTokens(),
                               getExpertOffsets(), getWIn(), getWOut(),
                               getLora())))
    return failure();
  if (getDlora().size() != getLora().size())
    return emitOpError() << "has " << getDlora().size()
                         << " LoRA gradient results, expected "
                         << getLora().size() << " (one per LoRA operand)";
  for (auto [lora, grad] : llvm::zip_equal(getLora(), getDlora()))
    if (lora.getType() != grad.getType())
      return emitOpError() << "LoRA gradient results must have the types of "
                              "the LoRA operands";
  return success();
}

/// Checks that `gradients` has one result per weight, each of its weight's
/// type.
static LogicalResult verifyWeightGradients(Operation *op, ValueRange weights,
                                           ValueRange gradients) {
  if (gradients.size() != weights.size())
    return op->emitOpError()
           << "has " << gradients.size() << " weight gradients, expected "
           << weights.size() << " (one per weight)";
  for (auto [index, pair] : llvm::enumerate(llvm::zip(weights, gradients)))
    if (std::get<0>(pair).getType() != std::get<1>(pair).getType())
      return op->emitOpError()
             << "weight gradient " << index << " must have the type of weight "
             << index << ", " << std::get<0>(pair).getType();
  return success();
}

LogicalResult RouterGradOp::verify() {
  if (failed(verifyRouterForm(*this, getX(), getModality(), getWeights(),
                              getGroups(), getDlogits(), "dlogits")))
    return failure();
  return verifyWeightGradients(*this, getWeights(), getDweights());
}

LogicalResult RouteGradOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)))
    return failure();
  int64_t slots = getSlotToken().getType().getShape()[0];
  if (failed(
          expectShape(op, "d_slot_gate", getDSlotGate(), {slots}, "[slots]")) ||
      failed(expectShape(op, "expert_offsets", getExpertOffsets(),
                         {getTotalExperts(groups) + 1}, "[total experts + 1]")))
    return failure();
  return expectSameElementType(
      op, {{"logits", getLogits()}, {"d_slot_gate", getDSlotGate()}});
}

LogicalResult CombineGradOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> outputs = getExpertOutputs().getType().getShape();
  if (failed(expectShape(op, "slot_token", getSlotToken(), {outputs[0]},
                         "[slots]")) ||
      failed(expectShape(op, "slot_gate", getSlotGate(), {outputs[0]},
                         "[slots]")) ||
      failed(expectShape(op, "dy", getDy(), {kAny, kAny, outputs[1]},
                         "[batch, sequence, features]")))
    return failure();
  return expectSameElementType(op, {{"expert_outputs", getExpertOutputs()},
                                    {"slot_gate", getSlotGate()},
                                    {"dy", getDy()}});
}

LogicalResult AuxRouterGradOp::verify() {
  if (failed(verifyAuxRouterForm(*this, getX(), getWeights(), getModality(),
                                 getGroupsAttr(), getDz(), "dz")))
    return failure();
  return verifyWeightGradients(*this, getWeights(), getDweights());
}

LogicalResult LoadBalancingLossGradOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)))
    return failure();
  return expectShape(op, "expert_offsets", getExpertOffsets(),
                     {getTotalExperts(groups) + 1}, "[total experts + 1]");
}

LogicalResult RouterZLossGradOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  return verifyLogits(op, "logits", getLogits(), getModality(),
                      getExpertGroups(getGroups()));
}

LogicalResult DepthRouteGradOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(
          expectShape(op, "weight", getWeight(), {x[2], 1}, "[features, 1]")) ||
      failed(expectShape(op, "indices", getIndices(), {x[0], kAny},
                         "[batch, kept]")) ||
      failed(expectShape(op, "dgate", getDgate(),
                         getIndices().getType().getShape(), "[batch, kept]")))
    return failure();
  return expectSameElementType(
      op, {{"x", getX()}, {"weight", getWeight()}, {"dgate", getDgate()}});
}

/// The checks of the depth-region backward ops: `dy: [B, L, D]`,
/// `indices: [B, K]` and the kept rows `kept: [B, K, D]`.
static LogicalResult verifyKeptRows(Operation *op, Value dy, Value indices,
                                    Value kept, StringRef keptName) {
  ArrayRef<int64_t> y = tensorType(dy).getShape();
  if (failed(
          expectShape(op, "indices", indices, {y[0], kAny}, "[batch, kept]")))
    return failure();
  int64_t keptCount = tensorType(indices).getShape()[1];
  if (failed(expectShape(op, keptName, kept, {y[0], keptCount, y[2]},
                         "[batch, kept, features]")))
    return failure();
  return expectSameElementType(op, {{"dy", dy}, {keptName, kept}});
}

LogicalResult DepthBlendGradOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyKeptRows(op, getDy(), getIndices(), getKeptX(), "kept_x")))
    return failure();
  if (static_cast<bool>(getGate()) != static_cast<bool>(getDGate()))
    return emitOpError() << "has a 'd_gate' result exactly when it has a "
                            "'gate' operand";
  if (!getGate())
    return success();
  if (failed(expectShape(op, "gate", getGate(),
                         getIndices().getType().getShape(), "[batch, kept]")))
    return failure();
  if (getDGate().getType() != getGate().getType())
    return emitOpError() << "'d_gate' must have the type of 'gate'";
  return success();
}

LogicalResult DepthScatterGradOp::verify() {
  return verifyKeptRows(*this, getDy(), getIndices(), getDKeptX(), "d_kept_x");
}
