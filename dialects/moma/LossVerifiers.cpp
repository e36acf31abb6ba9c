//===- LossVerifiers.cpp - Verifiers of the loss ops ----------------------===//
//
// Verifiers of the loss ops: cross_entropy, load_balancing_loss,
// router_z_loss and aux_router_loss.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "dialects/moma/MomaVerifierUtils.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace moma;

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyCrossEntropyForm(Operation *op, Value logits,
                                           Value targets, Value targetModality,
                                           Value perModality,
                                           StringRef perModalityName) {
  ArrayRef<int64_t> shape = tensorType(logits).getShape();
  if (failed(expectShape(op, "targets", targets, {shape[0], shape[1]},
                         "[batch, sequence] target token ids")) ||
      failed(expectShape(op, "target_modality", targetModality,
                         {shape[0], shape[1]},
                         "[batch, sequence] modality ids of the targets")))
    return failure();
  FailureOr<int64_t> count = declaredModalityCount(op);
  if (failed(count))
    return failure();
  return expectShape(op, perModalityName, perModality, {*count},
                     "[declared modalities]");
}

LogicalResult CrossEntropyOp::verify() {
  return verifyCrossEntropyForm(*this, getLogits(), getTargets(),
                                getTargetModality(), getPerModality(),
                                "per_modality");
}

LogicalResult LoadBalancingLossOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (llvm::none_of(groups, [](ExpertGroupAttr group) {
        return group.getRouting() == RoutingKind::token_choice;
      }))
    return emitOpError() << "needs at least one token_choice group "
                            "(expert_choice groups are balanced by "
                            "construction)";
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)))
    return failure();
  return expectShape(op, "expert_offsets", getExpertOffsets(),
                     {getTotalExperts(groups) + 1}, "[total experts + 1]");
}

LogicalResult RouterZLossOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  return verifyLogits(op, "logits", getLogits(), getModality(),
                      getExpertGroups(getGroups()));
}

LogicalResult AuxRouterLossOp::verify() {
  if (getTargets().getType().getShape() != getLogits().getType().getShape())
    return emitOpError() << "'targets' must have the shape of 'logits' "
                         << shapeString(getLogits().getType().getShape())
                         << ", found "
                         << shapeString(getTargets().getType().getShape());
  return success();
}
