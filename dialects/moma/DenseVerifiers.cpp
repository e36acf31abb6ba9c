//===- DenseVerifiers.cpp - Verifiers of the dense ops --------------------===//
//
// Verifiers and untied-weight interface methods of the dense ops: embed,
// norm, linear, ffn and attention.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "dialects/moma/MomaVerifierUtils.h"

using namespace mlir;
using namespace moma;

//===----------------------------------------------------------------------===//
// EmbedOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyEmbedForm(Operation *op, Value ids, Value table,
                                    StringRef tableName, Value tokens,
                                    StringRef tokensName, Value modality) {
  ArrayRef<int64_t> idShape = tensorType(ids).getShape();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      untiedPrefix(op, modality, idShape[0], idShape[1]);
  if (failed(prefix))
    return failure();
  if (failed(expectShape(op, tableName, table, concat(*prefix, {kAny, kAny}),
                         prefix->empty() ? "[vocab, features]"
                                         : "[modalities, vocab, features]")))
    return failure();
  ArrayRef<int64_t> tableShape = tensorType(table).getShape();
  int64_t vocab = tableShape[tableShape.size() - 2], width = tableShape.back();
  if (failed(expectShape(op, tokensName, tokens,
                         {idShape[0], idShape[1], width},
                         "[batch, sequence, features]")))
    return failure();
  if (std::optional<SmallVector<ModalityAttr>> modalities =
          getDeclaredModalities(op)) {
    for (ModalityAttr modality : *modalities)
      if (modality.getTokenEnd() > vocab)
        return op->emitOpError()
               << "'" << tableName << "' has " << vocab
               << " rows but modality '" << modality.getName().getValue()
               << "' owns token ids up to " << modality.getTokenEnd() - 1;
  }
  return success();
}

LogicalResult EmbedOp::verify() {
  return verifyEmbedForm(*this, getIds(), getTable(), "table", getResult(),
                         "result", getModality());
}

SmallVector<OpOperand *> EmbedOp::getPerModalityOperands() {
  return {&getTableMutable()};
}

//===----------------------------------------------------------------------===//
// NormOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyNormForm(Operation *op, NormKind kind, Value xValue,
                                   Value weight, Value bias, Value modality,
                                   double epsilon) {
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, xValue, modality);
  ArrayRef<int64_t> x = tensorType(xValue).getShape();
  if (failed(prefix))
    return failure();
  StringRef meaning = prefix->empty() ? "[features]" : "[modalities, features]";
  if (failed(
          expectShape(op, "weight", weight, concat(*prefix, {x[2]}), meaning)))
    return failure();
  if (bias) {
    if (kind != NormKind::layer)
      return op->emitOpError() << "'bias' is only allowed with kind 'layer'";
    if (failed(expectShape(op, "bias", bias, concat(*prefix, {x[2]}), meaning)))
      return failure();
  }
  if (!(epsilon > 0.0))
    return op->emitOpError() << "'epsilon' must be > 0, got " << epsilon;
  return expectSameElementType(
      op, {{"x", xValue}, {"weight", weight}, {"bias", bias}});
}

LogicalResult NormOp::verify() {
  return verifyNormForm(*this, getKind(), getX(), getWeight(), getBias(),
                        getModality(), getEpsilon().convertToDouble());
}

SmallVector<OpOperand *> NormOp::getPerModalityOperands() {
  SmallVector<OpOperand *> operands = {&getWeightMutable()};
  for (OpOperand &operand : getBiasMutable())
    operands.push_back(&operand);
  return operands;
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyLinearForm(Operation *op, Value xValue, Value weight,
                                     Value bias, Value loraA, Value loraB,
                                     Value modality, Value result,
                                     StringRef resultName) {
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, xValue, modality);
  ArrayRef<int64_t> x = tensorType(xValue).getShape();
  if (failed(prefix))
    return failure();
  bool untied = !prefix->empty();
  if (failed(expectShape(op, "weight", weight, concat(*prefix, {x[2], kAny}),
                         untied ? "[modalities, in, out]" : "[in, out]")))
    return failure();
  int64_t out = tensorType(weight).getShape().back();
  if (bias && failed(expectShape(op, "bias", bias, concat(*prefix, {out}),
                                 untied ? "[modalities, out]" : "[out]")))
    return failure();
  if (static_cast<bool>(loraA) != static_cast<bool>(loraB))
    return op->emitOpError() << "'lora_a' and 'lora_b' must be given together";
  if (loraA) {
    if (failed(expectShape(op, "lora_a", loraA, concat(*prefix, {x[2], kAny}),
                           untied ? "[modalities, in, rank]" : "[in, rank]")))
      return failure();
    int64_t rank = tensorType(loraA).getShape().back();
    if (rank < 1)
      return op->emitOpError() << "LoRA rank must be >= 1, got " << rank;
    if (failed(expectShape(op, "lora_b", loraB, concat(*prefix, {rank, out}),
                           untied ? "[modalities, rank, out]" : "[rank, out]")))
      return failure();
  }
  if (failed(expectShape(op, resultName, result, {x[0], x[1], out},
                         "[batch, sequence, out]")))
    return failure();
  return expectSameElementType(op, {{"x", xValue},
                                    {"weight", weight},
                                    {"bias", bias},
                                    {"lora_a", loraA},
                                    {"lora_b", loraB},
                                    {resultName, result}});
}

LogicalResult LinearOp::verify() {
  return verifyLinearForm(*this, getX(), getWeight(), getBias(), getLoraA(),
                          getLoraB(), getModality(), getResult(), "result");
}

SmallVector<OpOperand *> LinearOp::getPerModalityOperands() {
  SmallVector<OpOperand *> operands = {&getWeightMutable()};
  for (MutableOperandRange range :
       {getBiasMutable(), getLoraAMutable(), getLoraBMutable()})
    for (OpOperand &operand : range)
      operands.push_back(&operand);
  return operands;
}

//===----------------------------------------------------------------------===//
// FfnOp
//===----------------------------------------------------------------------===//
LogicalResult FfnOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, getX(), getModality());
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(prefix) || failed(verifyFfnWeights(
                            op, getActivation(), *prefix, x[2], getWIn(),
                            getWOut(), prefix->empty() ? "" : "modalities, ")))
    return failure();
  return success();
}

SmallVector<OpOperand *> FfnOp::getPerModalityOperands() {
  return {&getWInMutable(), &getWOutMutable()};
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult moma::verifyAttentionForm(Operation *op, Value xValue, Value wq,
                                        Value wk, Value wv, Value wo,
                                        Value positions, Value modality,
                                        int64_t heads, int64_t kvHeads,
                                        int64_t headDim, double theta) {
  ArrayRef<int64_t> x = tensorType(xValue).getShape();
  if (heads % kvHeads != 0)
    return op->emitOpError()
           << "heads (" << heads << ") must be a multiple of kv_heads ("
           << kvHeads << ")";
  if (!(theta >= 0.0))
    return op->emitOpError()
           << "'rope_theta' must be >= 0 (0 disables RoPE), got " << theta;
  if (theta > 0.0 && headDim % 2 != 0)
    return op->emitOpError() << "RoPE needs an even head_dim, got " << headDim;
  FailureOr<SmallVector<int64_t, 1>> prefix =
      untiedPrefix(op, modality, x[0], x[1]);
  if (failed(prefix))
    return failure();
  std::string lead = prefix->empty() ? "" : "modalities, ";
  if (failed(expectShape(op, "wq", wq, concat(*prefix, {x[2], heads * headDim}),
                         "[" + lead + "features, heads * head_dim]")) ||
      failed(expectShape(op, "wk", wk,
                         concat(*prefix, {x[2], kvHeads * headDim}),
                         "[" + lead + "features, kv_heads * head_dim]")) ||
      failed(expectShape(op, "wv", wv,
                         concat(*prefix, {x[2], kvHeads * headDim}),
                         "[" + lead + "features, kv_heads * head_dim]")) ||
      failed(expectShape(op, "wo", wo, concat(*prefix, {heads * headDim, x[2]}),
                         "[" + lead + "heads * head_dim, features]")))
    return failure();
  if (positions)
    return expectShape(op, "positions", positions, {x[0], x[1]},
                       "[batch, sequence] token positions");
  return success();
}

LogicalResult AttentionOp::verify() {
  return verifyAttentionForm(*this, getX(), getWq(), getWk(), getWv(), getWo(),
                             getPositions(), getModality(), getHeads(),
                             getKvHeads(), getHeadDim(),
                             getRopeTheta().convertToDouble());
}

SmallVector<OpOperand *> AttentionOp::getPerModalityOperands() {
  return {&getWqMutable(), &getWkMutable(), &getWvMutable(), &getWoMutable()};
}
