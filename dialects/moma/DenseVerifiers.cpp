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

LogicalResult EmbedOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> ids = getIds().getType().getShape();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      untiedPrefix(op, getModality(), ids[0], ids[1]);
  if (failed(prefix))
    return failure();
  if (failed(expectShape(op, "table", getTable(), concat(*prefix, {kAny, kAny}),
                         prefix->empty() ? "[vocab, features]"
                                         : "[modalities, vocab, features]")))
    return failure();
  ArrayRef<int64_t> table = getTable().getType().getShape();
  int64_t vocab = table[table.size() - 2], width = table.back();
  if (failed(expectShape(op, "result", getResult(), {ids[0], ids[1], width},
                         "[batch, sequence, features]")))
    return failure();
  if (std::optional<SmallVector<ModalityAttr>> modalities =
          getDeclaredModalities(op)) {
    for (ModalityAttr modality : *modalities)
      if (modality.getTokenEnd() > vocab)
        return emitOpError()
               << "'table' has " << vocab << " rows but modality '"
               << modality.getName().getValue() << "' owns token ids up to "
               << modality.getTokenEnd() - 1;
  }
  return success();
}

SmallVector<OpOperand *> EmbedOp::getPerModalityOperands() {
  return {&getTableMutable()};
}

//===----------------------------------------------------------------------===//
// NormOp
//===----------------------------------------------------------------------===//

LogicalResult NormOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, getX(), getModality());
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(prefix))
    return failure();
  StringRef meaning = prefix->empty() ? "[features]" : "[modalities, features]";
  if (failed(expectShape(op, "weight", getWeight(), concat(*prefix, {x[2]}),
                         meaning)))
    return failure();
  if (getBias()) {
    if (getKind() != NormKind::layer)
      return emitOpError() << "'bias' is only allowed with kind 'layer'";
    if (failed(expectShape(op, "bias", getBias(), concat(*prefix, {x[2]}),
                           meaning)))
      return failure();
  }
  if (!(getEpsilon().convertToDouble() > 0.0))
    return emitOpError() << "'epsilon' must be > 0, got "
                         << getEpsilon().convertToDouble();
  return expectSameElementType(
      op, {{"x", getX()}, {"weight", getWeight()}, {"bias", getBias()}});
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

LogicalResult LinearOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedModality(op, getX(), getModality());
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(prefix))
    return failure();
  bool untied = !prefix->empty();
  if (failed(expectShape(op, "weight", getWeight(),
                         concat(*prefix, {x[2], kAny}),
                         untied ? "[modalities, in, out]" : "[in, out]")))
    return failure();
  int64_t out = getWeight().getType().getShape().back();
  if (getBias() &&
      failed(expectShape(op, "bias", getBias(), concat(*prefix, {out}),
                         untied ? "[modalities, out]" : "[out]")))
    return failure();
  if (static_cast<bool>(getLoraA()) != static_cast<bool>(getLoraB()))
    return emitOpError() << "'lora_a' and 'lora_b' must be given together";
  if (getLoraA()) {
    if (failed(expectShape(op, "lora_a", getLoraA(),
                           concat(*prefix, {x[2], kAny}),
                           untied ? "[modalities, in, rank]" : "[in, rank]")))
      return failure();
    int64_t rank = getLoraA().getType().getShape().back();
    if (rank < 1)
      return emitOpError() << "LoRA rank must be >= 1, got " << rank;
    if (failed(expectShape(op, "lora_b", getLoraB(),
                           concat(*prefix, {rank, out}),
                           untied ? "[modalities, rank, out]" : "[rank, out]")))
      return failure();
  }
  if (failed(expectShape(op, "result", getResult(), {x[0], x[1], out},
                         "[batch, sequence, out]")))
    return failure();
  return expectSameElementType(op, {{"x", getX()},
                                    {"weight", getWeight()},
                                    {"bias", getBias()},
                                    {"lora_a", getLoraA()},
                                    {"lora_b", getLoraB()},
                                    {"result", getResult()}});
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

LogicalResult AttentionOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> x = getX().getType().getShape();
  int64_t heads = getHeads(), kvHeads = getKvHeads(), headDim = getHeadDim();
  if (heads % kvHeads != 0)
    return emitOpError() << "heads (" << heads
                         << ") must be a multiple of kv_heads (" << kvHeads
                         << ")";
  double theta = getRopeTheta().convertToDouble();
  if (!(theta >= 0.0))
    return emitOpError() << "'rope_theta' must be >= 0 (0 disables RoPE), got "
                         << theta;
  if (theta > 0.0 && headDim % 2 != 0)
    return emitOpError() << "RoPE needs an even head_dim, got " << headDim;
  FailureOr<SmallVector<int64_t, 1>> prefix =
      untiedPrefix(op, getModality(), x[0], x[1]);
  if (failed(prefix))
    return failure();
  std::string lead = prefix->empty() ? "" : "modalities, ";
  if (failed(expectShape(op, "wq", getWq(),
                         concat(*prefix, {x[2], heads * headDim}),
                         "[" + lead + "features, heads * head_dim]")) ||
      failed(expectShape(op, "wk", getWk(),
                         concat(*prefix, {x[2], kvHeads * headDim}),
                         "[" + lead + "features, kv_heads * head_dim]")) ||
      failed(expectShape(op, "wv", getWv(),
                         concat(*prefix, {x[2], kvHeads * headDim}),
                         "[" + lead + "features, kv_heads * head_dim]")) ||
      failed(expectShape(op, "wo", getWo(),
                         concat(*prefix, {heads * headDim, x[2]}),
                         "[" + lead + "heads * head_dim, features]")))
    return failure();
  if (getPositions())
    return expectShape(op, "positions", getPositions(), {x[0], x[1]},
                       "[batch, sequence] token positions");
  return success();
}

SmallVector<OpOperand *> AttentionOp::getPerModalityOperands() {
  return {&getWqMutable(), &getWkMutable(), &getWvMutable(), &getWoMutable()};
}
