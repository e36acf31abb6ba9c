//===- RoutingVerifiers.cpp - Verifiers of the mixture-of-experts ops -----===//
//
// Verifiers of the mixture-of-experts ops (router, route, dispatch,
// experts, combine, aux_router, route_mask), the untied-weight interface
// methods of aux_router and the slot count of a routing plan.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "dialects/moma/MomaVerifierUtils.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace moma;

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyRouterForm(Operation *op, Value xValue,
                                     Value modality, ValueRange weights,
                                     ArrayAttr groupsAttr, Value logits,
                                     StringRef logitsName) {
  if (failed(verifyGroups(op, groupsAttr)))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(groupsAttr);
  ArrayRef<int64_t> x = tensorType(xValue).getShape();
  if (failed(expectShape(op, "modality", modality, {x[0], x[1]},
                         "[batch, sequence] modality ids")))
    return failure();
  if (weights.size() != groups.size())
    return op->emitOpError() << "expects one router weight per expert group ("
                             << groups.size() << "), got " << weights.size();
  SmallVector<std::pair<StringRef, Value>> floats = {{"x", xValue}};
  for (auto [index, weight] : llvm::enumerate(weights)) {
    std::string name = "weights[" + std::to_string(index) + "]";
    if (failed(expectShape(op, name, weight, {x[2], groups[index].getExperts()},
                           "[features, experts of group " +
                               std::to_string(index) + "]")))
      return failure();
  }
  for (Value weight : weights)
    floats.push_back({"weights", weight});
  floats.push_back({logitsName, logits});
  if (failed(verifyLogits(op, logitsName, logits, modality, groups)))
    return failure();
  return expectSameElementType(op, floats);
}

LogicalResult RouterOp::verify() {
  return verifyRouterForm(*this, getX(), getModality(), getWeights(),
                          getGroups(), getLogits(), "logits");
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

int64_t RouteOp::getRequiredSlots(ArrayRef<ExpertGroupAttr> groups,
                                  int64_t numTokens, bool withAux) {
  double perToken = 0.0;
  for (ExpertGroupAttr group : groups) {
    double slots = group.getSlotsPerToken();
    if (withAux && group.getRouting() == RoutingKind::expert_choice)
      slots = static_cast<double>(group.getExperts());
    perToken = std::max(perToken, slots);
  }
  return static_cast<int64_t>(
      std::ceil(static_cast<double>(numTokens) * perToken));
}

LogicalResult RouteOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)))
    return failure();
  if (getAux()) {
    if (getAux().getType().getShape() != getLogits().getType().getShape())
      return emitOpError() << "'aux' logits must have the shape of 'logits' "
                           << shapeString(getLogits().getType().getShape())
                           << ", found "
                           << shapeString(getAux().getType().getShape());
    if (llvm::none_of(groups, [](ExpertGroupAttr group) {
          return group.getRouting() == RoutingKind::expert_choice;
        }))
      return emitOpError() << "'aux' logits replace expert_choice selection, "
                              "but no group uses expert_choice";
  }
  ArrayRef<int64_t> logitsShape = getLogits().getType().getShape();
  if (getPositions() &&
      failed(expectShape(op, "positions", getPositions(),
                         {logitsShape[0], logitsShape[1]},
                         "[batch, sequence] token positions")))
    return failure();
  int64_t slots = getSlotToken().getType().getShape()[0];
  if (failed(expectShape(op, "slot_gate", getSlotGate(), {slots}, "[slots]")) ||
      failed(expectShape(op, "expert_offsets", getExpertOffsets(),
                         {getTotalExperts(groups) + 1}, "[total experts + 1]")))
    return failure();
  ArrayRef<int64_t> logits = getLogits().getType().getShape();
  int64_t tokens = logits[0] * logits[1];
  int64_t required =
      getRequiredSlots(groups, tokens, static_cast<bool>(getAux()));
  if (slots < required)
    return emitOpError() << "routing plan has " << slots
                         << " slots but these groups may fill up to "
                         << required << " (" << tokens
                         << " tokens x the largest top_k / capacity"
                         << (getAux() ? ", or experts with 'aux'" : "") << ")";
  return expectSameElementType(op, {{"logits", getLogits()},
                                    {"aux", getAux()},
                                    {"slot_gate", getSlotGate()}});
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  int64_t slots = getSlotToken().getType().getShape()[0];
  int64_t width = getX().getType().getShape()[2];
  return expectShape(getOperation(), "result", getResult(), {slots, width},
                     "[slots, features]");
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyExpertsForm(Operation *op, Activation activation,
                                      Value tokensValue, Value offsets,
                                      Value wIn, Value wOut, ValueRange lora) {
  ArrayRef<int64_t> tokens = tensorType(tokensValue).getShape();
  if (failed(expectShape(op, "w_in", wIn, {kAny, tokens[1], kAny},
                         "[experts, features, hidden columns]")))
    return failure();
  int64_t experts = tensorType(wIn).getShape()[0];
  if (experts < 1)
    return op->emitOpError() << "'w_in' must stack at least one expert";
  FailureOr<int64_t> hidden = verifyFfnWeights(
      op, activation, {experts}, tokens[1], wIn, wOut, "experts, ");
  if (failed(hidden))
    return failure();
  if (failed(expectShape(op, "expert_offsets", offsets, {experts + 1},
                         "[experts + 1]")))
    return failure();
  SmallVector<std::pair<StringRef, Value>> floats = {
      {"tokens", tokensValue}, {"w_in", wIn}, {"w_out", wOut}};
  if (!lora.empty()) {
    if (lora.size() != 4)
      return op->emitOpError() << "expects 0 or 4 LoRA operands (A_in, B_in, "
                                  "A_out, B_out), got "
                               << lora.size();
    int64_t columns = tensorType(wIn).getShape()[2];
    Value aIn = lora[0], bIn = lora[1], aOut = lora[2], bOut = lora[3];
    if (failed(expectShape(op, "lora A_in", aIn, {experts, tokens[1], kAny},
                           "[experts, features, rank]")))
      return failure();
    int64_t rank = tensorType(aIn).getShape()[2];
    if (rank < 1)
      return op->emitOpError() << "LoRA rank must be >= 1, got " << rank;
    if (failed(expectShape(op, "lora B_in", bIn, {experts, rank, columns},
                           "[experts, rank, hidden columns]")) ||
        failed(expectShape(op, "lora A_out", aOut, {experts, *hidden, rank},
                           "[experts, hidden, rank]")) ||
        failed(expectShape(op, "lora B_out", bOut, {experts, rank, tokens[1]},
                           "[experts, rank, features]")))
      return failure();
    for (Value lora : lora)
      floats.push_back({"lora", lora});
  }
  return expectSameElementType(op, floats);
}

LogicalResult ExpertsOp::verify() {
  return verifyExpertsForm(*this, getActivation(), getTokens(),
                           getExpertOffsets(), getWIn(), getWOut(), getLora());
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> outputs = getExpertOutputs().getType().getShape();
  if (failed(expectShape(op, "slot_token", getSlotToken(), {outputs[0]},
                         "[slots]")) ||
      failed(expectShape(op, "slot_gate", getSlotGate(), {outputs[0]},
                         "[slots]")) ||
      failed(expectShape(op, "result", getResult(), {kAny, kAny, outputs[1]},
                         "[batch, sequence, features]")))
    return failure();
  if (getResidual() && getResidual().getType() != getResult().getType())
    return emitOpError() << "'residual' type " << getResidual().getType()
                         << " must equal the result type "
                         << getResult().getType();
  return expectSameElementType(op, {{"expert_outputs", getExpertOutputs()},
                                    {"slot_gate", getSlotGate()},
                                    {"residual", getResidual()},
                                    {"result", getResult()}});
}

//===----------------------------------------------------------------------===//
// AuxRouterOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyAuxRouterForm(Operation *op, Value xValue,
                                        ValueRange weights, Value modality,
                                        ArrayAttr groupsAttr, Value result,
                                        StringRef resultName) {
  ArrayRef<int64_t> x = tensorType(xValue).getShape();
  SmallVector<std::pair<StringRef, Value>> floats = {{"x", xValue}};
  for (Value weight : weights)
    floats.push_back({"weights", weight});
  floats.push_back({resultName, result});
  if (!groupsAttr) {
    if (weights.size() != 2)
      return op->emitOpError()
             << "expects two weights (W1, W2), got " << weights.size();
    FailureOr<SmallVector<int64_t, 1>> prefix =
        untiedPrefix(op, modality, x[0], x[1]);
    if (failed(prefix))
      return failure();
    std::string lead = prefix->empty() ? "" : "modalities, ";
    Value w1 = weights[0], w2 = weights[1];
    if (failed(expectShape(op, "W1", w1, concat(*prefix, {x[2], kAny}),
                           "[" + lead + "features, hidden]")))
      return failure();
    int64_t hidden = tensorType(w1).getShape().back();
    if (failed(expectShape(op, "W2", w2, concat(*prefix, {hidden, kAny}),
                           "[" + lead + "hidden, outputs]")))
      return failure();
    int64_t outputs = tensorType(w2).getShape().back();
    if (failed(expectShape(op, resultName, result, {x[0], x[1], outputs},
                           "[batch, sequence, outputs]")))
      return failure();
    return expectSameElementType(op, floats);
  }

  if (failed(verifyGroups(op, groupsAttr)))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(groupsAttr);
  if (!modality)
    return op->emitOpError()
           << "with 'groups', a 'modality' operand must route "
              "each token to its group's router";
  if (failed(expectShape(op, "modality", modality, {x[0], x[1]},
                         "[batch, sequence] modality ids")))
    return failure();
  if (weights.size() != 2 * groups.size())
    return op->emitOpError()
           << "expects two weights (W1, W2) per expert group ("
           << 2 * groups.size() << "), got " << weights.size();
  for (auto [index, group] : llvm::enumerate(groups)) {
    Value w1 = weights[2 * index], w2 = weights[2 * index + 1];
    std::string g = std::to_string(index);
    if (failed(expectShape(op, "W1 of group " + g, w1, {x[2], kAny},
                           "[features, hidden]")))
      return failure();
    int64_t hidden = tensorType(w1).getShape().back();
    if (failed(expectShape(op, "W2 of group " + g, w2,
                           {hidden, group.getExperts()},
                           "[hidden, experts of group " + g + "]")))
      return failure();
  }
  if (failed(expectShape(op, resultName, result, {x[0], x[1], kAny},
                         "[batch, sequence, outputs]")))
    return failure();
  int64_t columns = tensorType(result).getShape()[2];
  if (columns < getMaxExperts(groups))
    return op->emitOpError()
           << "result has " << columns << " columns but the largest group has "
           << getMaxExperts(groups) << " experts";
  return expectSameElementType(op, floats);
}

LogicalResult AuxRouterOp::verify() {
  return verifyAuxRouterForm(*this, getX(), getWeights(), getModality(),
                             getGroupsAttr(), getResult(), "result");
}

Value AuxRouterOp::getModalityIds() {
  return getGroups() ? Value() : getModality();
}
SmallVector<OpOperand *> AuxRouterOp::getPerModalityOperands() {
  SmallVector<OpOperand *> operands;
  for (OpOperand &operand : getWeightsMutable())
    operands.push_back(&operand);
  return operands;
}

//===----------------------------------------------------------------------===//
// RouteMaskOp
//===----------------------------------------------------------------------===//

LogicalResult RouteMaskOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (failed(expectShape(op, "expert_offsets", getExpertOffsets(),
                         {getTotalExperts(groups) + 1}, "[total experts + 1]")))
    return failure();
  return verifyLogits(op, "result", getResult(), getModality(), groups);
}
