//===- GradientRules.cpp - The gradient rules of the moma ops -------------===//
//
// GradientOpInterface for the forward ops (Semantics.md, "Gradients"): each
// rule builds the backward op of MomaGradientOps.td that differentiates it,
// or, for the ops that only move values, the forward op that moves the
// gradient back. moma-autodiff calls them in reverse program order.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace moma;

/// Stores `gradient` as the gradient of `operand`.
static void setGradient(MutableArrayRef<Value> gradients, OpOperand &operand,
                        Value gradient) {
  gradients[operand.getOperandNumber()] = gradient;
}

/// The same for an optional operand, when it is present.
static void setGradient(MutableArrayRef<Value> gradients,
                        MutableOperandRange operand, Value gradient) {
  if (!operand.empty())
    setGradient(gradients, operand[0], gradient);
}

/// `gradient`, or zeros of `type` (a small splat constant) when it is null:
/// the backward ops that take the gradients of several results need all.
static Value orZeros(OpBuilder &b, Location loc, Value gradient, Type type) {
  if (gradient)
    return gradient;
  auto tensor = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(tensor,
                             b.getFloatAttr(tensor.getElementType(), 0.0)));
}

LogicalResult EmbedOp::buildGradients(OpBuilder &b,
                                      ArrayRef<Value> resultGradients,
                                      MutableArrayRef<Value> operandGradients) {
  Value table = EmbedGradOp::create(b, getLoc(), getTable().getType(), getIds(),
                                    resultGradients[0], getModality());
  setGradient(operandGradients, getTableMutable(), table);
  return success();
}

LogicalResult NormOp::buildGradients(OpBuilder &b,
                                     ArrayRef<Value> resultGradients,
                                     MutableArrayRef<Value> operandGradients) {
  Value dy = resultGradients[0];
  auto grad = NormGradOp::create(
      b, getLoc(), getX().getType(), getWeight().getType(), getKindAttr(),
      getX(), getWeight(), dy, getModality(), getEpsilonAttr());
  setGradient(operandGradients, getXMutable(), grad.getDx());
  setGradient(operandGradients, getWeightMutable(), grad.getDweight());
  if (getBias())
    setGradient(operandGradients, getBiasMutable(),
                BiasGradOp::create(b, getLoc(), getBias().getType(), dy,
                                   getModality()));
  return success();
}

LogicalResult
LinearOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                         MutableArrayRef<Value> operandGradients) {
  Value dy = resultGradients[0];
  SmallVector<Type> loraTypes;
  if (getLoraA())
    loraTypes = {getLoraA().getType(), getLoraB().getType()};
  auto grad =
      LinearGradOp::create(b, getLoc(), getX().getType(), getWeight().getType(),
                           loraTypes, getX(), getWeight(), dy, getLoraA(),
                           getLoraB(), getModality(), getLoraScaleAttr());
  setGradient(operandGradients, getXMutable(), grad.getDx());
  setGradient(operandGradients, getWeightMutable(), grad.getDweight());
  if (getLoraA()) {
    setGradient(operandGradients, getLoraAMutable(), grad.getDlora()[0]);
    setGradient(operandGradients, getLoraBMutable(), grad.getDlora()[1]);
  }
  if (getBias())
    setGradient(operandGradients, getBiasMutable(),
                BiasGradOp::create(b, getLoc(), getBias().getType(), dy,
                                   getModality()));
  return success();
}

LogicalResult FfnOp::buildGradients(OpBuilder &b,
                                    ArrayRef<Value> resultGradients,
                                    MutableArrayRef<Value> operandGradients) {
  auto grad =
      FfnGradOp::create(b, getLoc(), getX().getType(), getWIn().getType(),
                        getWOut().getType(), getActivationAttr(), getX(),
                        getWIn(), getWOut(), resultGradients[0], getModality());
  setGradient(operandGradients, getXMutable(), grad.getDx());
  setGradient(operandGradients, getWInMutable(), grad.getDwIn());
  setGradient(operandGradients, getWOutMutable(), grad.getDwOut());
  return success();
}

LogicalResult
AttentionOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                            MutableArrayRef<Value> operandGradients) {
  auto grad = AttentionGradOp::create(
      b, getLoc(), getX().getType(), getWq().getType(), getWk().getType(),
      getWv().getType(), getWo().getType(), getX(), getWq(), getWk(), getWv(),
      getWo(), resultGradients[0], getPositions(), getModality(),
      getHeadsAttr(), getKvHeadsAttr(), getHeadDimAttr(), getRopeThetaAttr(),
      getCausalAttr());
  setGradient(operandGradients, getXMutable(), grad.getDx());
  setGradient(operandGradients, getWqMutable(), grad.getDwq());
  setGradient(operandGradients, getWkMutable(), grad.getDwk());
  setGradient(operandGradients, getWvMutable(), grad.getDwv());
  setGradient(operandGradients, getWoMutable(), grad.getDwo());
  return success();
}

LogicalResult
StopGradientOp::buildGradients(OpBuilder &, ArrayRef<Value>,
                               MutableArrayRef<Value> operandGradients) {
  // No gradient flows through: the operand's stays null.
  (void)operandGradients;
  return success();
}

LogicalResult
PermuteOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                          MutableArrayRef<Value> operandGradients) {
  // `y[b, k] = x[b, order[b, k]]` with `order` a permutation of every row
  // moves gradients back with its inverse. moma.modality_sort gives both.
  auto sort = getOrder().getDefiningOp<ModalitySortOp>();
  if (!sort)
    return emitOpError()
           << "has no gradient rule for an 'order' that does not come from "
              "moma.modality_sort (the gradient of a gather that may repeat "
              "or drop tokens is a scatter-add)";
  Value back =
      getOrder() == sort.getOrder() ? sort.getInverse() : sort.getOrder();
  setGradient(operandGradients, getInputMutable(),
              PermuteOp::create(b, getLoc(), getInput().getType(),
                                resultGradients[0], back));
  return success();
}

LogicalResult
CrossEntropyOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                               MutableArrayRef<Value> operandGradients) {
  Location loc = getLoc();
  Value perModality =
      orZeros(b, loc, resultGradients[0], getPerModality().getType());
  Value total = orZeros(b, loc, resultGradients[1], getTotal().getType());
  setGradient(operandGradients, getLogitsMutable(),
              CrossEntropyGradOp::create(
                  b, loc, getLogits().getType(), getLogits(), getTargets(),
                  getTargetModality(), perModality, total));
  return success();
}

LogicalResult
ExpertsOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                          MutableArrayRef<Value> operandGradients) {
  SmallVector<Type> loraTypes(getLora().getTypes());
  auto grad = ExpertsGradOp::create(
      b, getLoc(), getTokens().getType(), getWIn().getType(),
      getWOut().getType(), loraTypes, getActivationAttr(), getTokens(),
      getExpertOffsets(), getWIn(), getWOut(), resultGradients[0], getLora(),
      getLoraScaleAttr());
  setGradient(operandGradients, getTokensMutable(), grad.getDtokens());
  setGradient(operandGradients, getWInMutable(), grad.getDwIn());
  setGradient(operandGradients, getWOutMutable(), grad.getDwOut());
  for (auto [operand, gradient] :
       llvm::zip_equal(getLoraMutable(), grad.getDlora()))
    setGradient(operandGradients, operand, gradient);
  return success();
}

LogicalResult
RouterOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                         MutableArrayRef<Value> operandGradients) {
  SmallVector<Type> weightTypes(getWeights().getTypes());
  auto grad = RouterGradOp::create(b, getLoc(), getX().getType(), weightTypes,
                                   getX(), getModality(), resultGradients[0],
                                   getWeights(), getGroupsAttr());
  setGradient(operandGradients, getXMutable(), grad.getDx());
  for (auto [operand, gradient] :
       llvm::zip_equal(getWeightsMutable(), grad.getDweights()))
    setGradient(operandGradients, operand, gradient);
  return success();
}

LogicalResult RouteOp::buildGradients(OpBuilder &b,
                                      ArrayRef<Value> resultGradients,
                                      MutableArrayRef<Value> operandGradients) {
  // Only the gates (result 1) carry a gradient: the choices are discrete.
  if (!resultGradients[1])
    return success();
  setGradient(operandGradients, getLogitsMutable(),
              RouteGradOp::create(b, getLoc(), getLogits().getType(),
                                  getLogits(), getModality(), getSlotToken(),
                                  getExpertOffsets(), resultGradients[1],
                                  getGroupsAttr()));
  return success();
}

LogicalResult
DispatchOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                           MutableArrayRef<Value> operandGradients) {
  // The transpose of a gather is the scatter-add combine does, with unit
  // gates.
  auto slots = cast<RankedTensorType>(getSlotToken().getType());
  auto gateType = RankedTensorType::get(slots.getShape(),
                                        getX().getType().getElementType());
  Value ones = arith::ConstantOp::create(
      b, getLoc(),
      DenseElementsAttr::get(gateType,
                             b.getFloatAttr(gateType.getElementType(), 1.0)));
  setGradient(operandGradients, getXMutable(),
              CombineOp::create(b, getLoc(), getX().getType(),
                                resultGradients[0], getSlotToken(), ones,
                                Value()));
  return success();
}

LogicalResult
CombineOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                          MutableArrayRef<Value> operandGradients) {
  Value dy = resultGradients[0];
  auto grad = CombineGradOp::create(b, getLoc(), getExpertOutputs().getType(),
                                    getSlotGate().getType(), getExpertOutputs(),
                                    getSlotToken(), getSlotGate(), dy);
  setGradient(operandGradients, getExpertOutputsMutable(), grad.getDOutputs());
  setGradient(operandGradients, getSlotGateMutable(), grad.getDGate());
  setGradient(operandGradients, getResidualMutable(), dy);
  return success();
}

LogicalResult
LoadBalancingLossOp::buildGradients(OpBuilder &b,
                                    ArrayRef<Value> resultGradients,
                                    MutableArrayRef<Value> operandGradients) {
  setGradient(operandGradients, getLogitsMutable(),
              LoadBalancingLossGradOp::create(
                  b, getLoc(), getLogits().getType(), getLogits(),
                  getModality(), getExpertOffsets(), resultGradients[0],
                  getGroupsAttr()));
  return success();
}

LogicalResult
RouterZLossOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                              MutableArrayRef<Value> operandGradients) {
  setGradient(operandGradients, getLogitsMutable(),
              RouterZLossGradOp::create(b, getLoc(), getLogits().getType(),
                                        getLogits(), getModality(),
                                        resultGradients[0], getGroupsAttr()));
  return success();
}

LogicalResult
AuxRouterLossOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                                MutableArrayRef<Value> operandGradients) {
  // The targets (discrete choices) get no gradient.
  setGradient(operandGradients, getLogitsMutable(),
              AuxRouterLossGradOp::create(b, getLoc(), getLogits().getType(),
                                          getLogits(), getTargets(),
                                          resultGradients[0]));
  return success();
}

LogicalResult
AuxRouterOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                            MutableArrayRef<Value> operandGradients) {
  SmallVector<Type> weightTypes(getWeights().getTypes());
  auto grad = AuxRouterGradOp::create(
      b, getLoc(), getX().getType(), weightTypes, getX(), resultGradients[0],
      getWeights(), getModality(), getGroupsAttr());
  setGradient(operandGradients, getXMutable(), grad.getDx());
  for (auto [operand, gradient] :
       llvm::zip_equal(getWeightsMutable(), grad.getDweights()))
    setGradient(operandGradients, operand, gradient);
  return success();
}

LogicalResult
DepthRouteOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGradients,
                             MutableArrayRef<Value> operandGradients) {
  // Only the gates (result 1) carry a gradient; the kept positions and the
  // auxiliary scores that may choose them are discrete.
  if (!resultGradients[1])
    return success();
  auto grad = DepthRouteGradOp::create(
      b, getLoc(), getX().getType(), getWeight().getType(), getX(), getWeight(),
      getIndices(), resultGradients[1]);
  setGradient(operandGradients, getXMutable(), grad.getDx());
  setGradient(operandGradients, getWeightMutable(), grad.getDweight());
  return success();
}
