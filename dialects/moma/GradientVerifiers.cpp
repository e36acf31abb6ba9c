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
  Operation *op = getOperation();
  ArrayRef<int64_t> logits = getLogits().getType().getShape();
  if (failed(expectShape(op, "targets", getTargets(), {logits[0], logits[1]},
                         "[batch, sequence] target token ids")) ||
      failed(expectShape(op, "target_modality", getTargetModality(),
                         {logits[0], logits[1]},
                         "[batch, sequence] modality ids of the targets")))
    return failure();
  FailureOr<int64_t> count = declaredModalityCount(op);
  if (failed(count))
    return failure();
  return expectShape(op, "d_per_modality", getDPerModality(), {*count},
                     "[declared modalities]");
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
