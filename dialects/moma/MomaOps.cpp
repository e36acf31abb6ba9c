//===- MomaOps.cpp - moma operations --------------------------------------===//
//
// Verifiers and interface methods of the moma ops. Every verifier message
// names the offending operand or attribute and the rule it broke.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir;
using namespace moma;

#include "dialects/moma/MomaInterfaces.cpp.inc"

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

std::optional<SmallVector<ModalityAttr>>
moma::getDeclaredModalities(Operation *op) {
  for (Operation *cur = op; cur; cur = cur->getParentOp()) {
    Attribute attr = cur->getAttr(MomaDialect::getModalitiesAttrName());
    if (!attr)
      continue;
    auto array = dyn_cast<ArrayAttr>(attr);
    if (!array)
      return std::nullopt;
    SmallVector<ModalityAttr> result;
    for (Attribute element : array) {
      auto modality = dyn_cast<ModalityAttr>(element);
      if (!modality)
        return std::nullopt;
      result.push_back(modality);
    }
    return result;
  }
  return std::nullopt;
}

SmallVector<ExpertGroupAttr> moma::getExpertGroups(ArrayAttr groups) {
  SmallVector<ExpertGroupAttr> result;
  for (Attribute attr : groups)
    result.push_back(cast<ExpertGroupAttr>(attr));
  return result;
}

int64_t moma::getTotalExperts(ArrayRef<ExpertGroupAttr> groups) {
  int64_t total = 0;
  for (ExpertGroupAttr group : groups)
    total += group.getExperts();
  return total;
}

int64_t moma::getMaxExperts(ArrayRef<ExpertGroupAttr> groups) {
  int64_t largest = 0;
  for (ExpertGroupAttr group : groups)
    largest = std::max(largest, group.getExperts());
  return largest;
}

namespace {
/// Marks a dimension that may take any size in an expected shape.
constexpr int64_t kAny = ShapedType::kDynamic;

std::string shapeString(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "[";
  llvm::interleaveComma(shape, os, [&](int64_t dim) {
    if (dim == kAny)
      os << "?";
    else
      os << dim;
  });
  os << "]";
  return text;
}

RankedTensorType tensorType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

SmallVector<int64_t> concat(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  SmallVector<int64_t> result(lhs);
  result.append(rhs.begin(), rhs.end());
  return result;
}

/// Checks that `value` has rank `expected.size()` and matches `expected`
/// (kAny matches every size). `meaning` explains the dimensions.
LogicalResult expectShape(Operation *op, StringRef name, Value value,
                          ArrayRef<int64_t> expected, StringRef meaning) {
  ArrayRef<int64_t> shape = tensorType(value).getShape();
  bool matches = shape.size() == expected.size();
  for (size_t i = 0; matches && i < shape.size(); ++i)
    matches = expected[i] == kAny || expected[i] == shape[i];
  if (matches)
    return success();
  return op->emitOpError() << "'" << name << "' must have shape "
                           << shapeString(expected) << " (" << meaning
                           << "), found " << shapeString(shape);
}

/// Checks that every float value shares the element type of the first one.
LogicalResult
expectSameElementType(Operation *op,
                      ArrayRef<std::pair<StringRef, Value>> values) {
  Value first;
  StringRef firstName;
  for (auto [name, value] : values) {
    if (!value)
      continue;
    if (!first) {
      first = value;
      firstName = name;
      continue;
    }
    Type expected = tensorType(first).getElementType();
    Type found = tensorType(value).getElementType();
    if (expected != found)
      return op->emitOpError() << "element type of '" << name << "' (" << found
                               << ") must match that of '" << firstName << "' ("
                               << expected << ")";
  }
  return success();
}

/// The number of modalities the enclosing module declares.
FailureOr<int64_t> declaredModalityCount(Operation *op) {
  std::optional<SmallVector<ModalityAttr>> modalities =
      getDeclaredModalities(op);
  if (!modalities)
    return op->emitOpError() << "requires the enclosing module to declare '"
                             << MomaDialect::getModalitiesAttrName() << "'";
  return static_cast<int64_t>(modalities->size());
}

/// For ops whose weights may be untied: checks the modality ids (`[B, L]`)
/// and returns the leading weight dimensions, `{M}` when untied, `{}` when
/// tied.
FailureOr<SmallVector<int64_t, 1>> untiedPrefix(Operation *op, Value modality,
                                                int64_t batch, int64_t seq) {
  if (!modality)
    return SmallVector<int64_t, 1>{};
  if (failed(expectShape(op, "modality", modality, {batch, seq},
                         "[batch, sequence] modality ids")))
    return failure();
  FailureOr<int64_t> count = declaredModalityCount(op);
  if (failed(count))
    return failure();
  return SmallVector<int64_t, 1>{*count};
}

/// Checks an activation `[B, L, D]`.
LogicalResult expectActivation(Operation *op, StringRef name, Value value) {
  if (tensorType(value).getRank() == 3)
    return success();
  return op->emitOpError() << "'" << name
                           << "' must be a rank-3 [batch, sequence, features] "
                           << "tensor, found "
                           << shapeString(tensorType(value).getShape());
}

/// Checks an activation `x: [B, L, D]` and the modality ids of an op whose
/// weights may be untied; returns the leading weight dimensions (`{M}` or
/// `{}`).
FailureOr<SmallVector<int64_t, 1>>
verifyUntiedActivation(Operation *op, Value x, Value modality) {
  if (failed(expectActivation(op, "x", x)))
    return failure();
  ArrayRef<int64_t> shape = tensorType(x).getShape();
  return untiedPrefix(op, modality, shape[0], shape[1]);
}

/// Checks that an op's result has exactly the type of its input `x`.
LogicalResult expectResultTypeOfX(Operation *op, Value x, Value result) {
  if (result.getType() == x.getType())
    return success();
  return op->emitOpError() << "result type " << result.getType()
                           << " must equal the type of 'x' " << x.getType();
}

/// Checks the expert groups of an op: at least one, every modality declared,
/// at most one group per modality.
LogicalResult verifyGroups(Operation *op, ArrayAttr groupsAttr) {
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(groupsAttr);
  if (groups.empty())
    return op->emitOpError() << "requires at least one expert group";
  FailureOr<int64_t> count = declaredModalityCount(op);
  if (failed(count))
    return failure();
  for (auto [index, group] : llvm::enumerate(groups)) {
    for (int64_t modality : group.getModalities()) {
      if (modality >= *count)
        return op->emitOpError()
               << "expert group " << index << " serves modality " << modality
               << ", which the module does not declare (it declares " << *count
               << ")";
      for (size_t prev = 0; prev < index; ++prev)
        if (groups[prev].servesModality(modality))
          return op->emitOpError() << "modality " << modality
                                   << " has more than one expert group (groups "
                                   << prev << " and " << index << ")";
    }
  }
  return success();
}

LogicalResult expectScalar(Operation *op, StringRef name, Value value) {
  return expectShape(op, name, value, {}, "a scalar loss");
}
} // namespace

//===----------------------------------------------------------------------===//
// EmbedOp
//===----------------------------------------------------------------------===//

LogicalResult EmbedOp::verify() {
  Operation *op = getOperation();
  if (failed(expectShape(op, "ids", getIds(), {kAny, kAny},
                         "[batch, sequence] token ids")))
    return failure();
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
                         "[batch, sequence, features]")) ||
      failed(expectSameElementType(
          op, {{"table", getTable()}, {"result", getResult()}})))
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

Value EmbedOp::getModalityIds() { return getModality(); }
SmallVector<OpOperand *> EmbedOp::getPerModalityOperands() {
  return {&getTableMutable()};
}
void EmbedOp::dropModalityIds() { getModalityMutable().clear(); }

//===----------------------------------------------------------------------===//
// NormOp
//===----------------------------------------------------------------------===//

LogicalResult NormOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedActivation(op, getX(), getModality());
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
  if (failed(expectResultTypeOfX(op, getX(), getResult())))
    return failure();
  return expectSameElementType(
      op, {{"x", getX()}, {"weight", getWeight()}, {"bias", getBias()}});
}

Value NormOp::getModalityIds() { return getModality(); }
SmallVector<OpOperand *> NormOp::getPerModalityOperands() {
  SmallVector<OpOperand *> operands = {&getWeightMutable()};
  for (OpOperand &operand : getBiasMutable())
    operands.push_back(&operand);
  return operands;
}
void NormOp::dropModalityIds() { getModalityMutable().clear(); }

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedActivation(op, getX(), getModality());
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

Value LinearOp::getModalityIds() { return getModality(); }
SmallVector<OpOperand *> LinearOp::getPerModalityOperands() {
  SmallVector<OpOperand *> operands = {&getWeightMutable()};
  for (MutableOperandRange range :
       {getBiasMutable(), getLoraAMutable(), getLoraBMutable()})
    for (OpOperand &operand : range)
      operands.push_back(&operand);
  return operands;
}
void LinearOp::dropModalityIds() { getModalityMutable().clear(); }

//===----------------------------------------------------------------------===//
// FfnOp
//===----------------------------------------------------------------------===//

/// Checks `w_in: prefix + [D, g*F]` and `w_out: prefix + [F, D]` of a
/// SwiGLU (g = 2) or GELU (g = 1) FFN and returns F.
static FailureOr<int64_t> verifyFfnWeights(Operation *op, Activation act,
                                           ArrayRef<int64_t> prefix,
                                           int64_t width, Value wIn, Value wOut,
                                           StringRef prefixName) {
  std::string inMeaning =
      (prefixName + "in, " +
       (act == Activation::swiglu ? "2 x hidden" : "hidden"))
          .str();
  if (failed(expectShape(op, "w_in", wIn, concat(prefix, {width, kAny}),
                         "[" + inMeaning + "]")))
    return failure();
  int64_t columns = tensorType(wIn).getShape().back();
  if (act == Activation::swiglu && columns % 2 != 0)
    return op->emitOpError()
           << "swiglu 'w_in' must have an even number of columns (gate half "
              "then up half), found "
           << columns;
  int64_t hidden = act == Activation::swiglu ? columns / 2 : columns;
  if (hidden < 1)
    return op->emitOpError() << "FFN hidden size must be >= 1";
  if (failed(expectShape(op, "w_out", wOut, concat(prefix, {hidden, width}),
                         ("[" + prefixName + "hidden, out]").str())))
    return failure();
  return hidden;
}

LogicalResult FfnOp::verify() {
  Operation *op = getOperation();
  FailureOr<SmallVector<int64_t, 1>> prefix =
      verifyUntiedActivation(op, getX(), getModality());
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(prefix) || failed(verifyFfnWeights(
                            op, getActivation(), *prefix, x[2], getWIn(),
                            getWOut(), prefix->empty() ? "" : "modalities, ")))
    return failure();
  if (failed(expectResultTypeOfX(op, getX(), getResult())))
    return failure();
  return expectSameElementType(
      op, {{"x", getX()}, {"w_in", getWIn()}, {"w_out", getWOut()}});
}

Value FfnOp::getModalityIds() { return getModality(); }
SmallVector<OpOperand *> FfnOp::getPerModalityOperands() {
  return {&getWInMutable(), &getWOutMutable()};
}
void FfnOp::dropModalityIds() { getModalityMutable().clear(); }

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  Operation *op = getOperation();
  if (failed(expectActivation(op, "x", getX())))
    return failure();
  ArrayRef<int64_t> x = getX().getType().getShape();
  int64_t heads = getHeads(), kvHeads = getKvHeads(), headDim = getHeadDim();
  if (heads < 1 || kvHeads < 1 || headDim < 1)
    return emitOpError() << "heads, kv_heads and head_dim must be >= 1, got "
                         << heads << ", " << kvHeads << ", " << headDim;
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
  if (getPositions() &&
      failed(expectShape(op, "positions", getPositions(), {x[0], x[1]},
                         "[batch, sequence] token positions")))
    return failure();
  if (failed(expectResultTypeOfX(op, getX(), getResult())))
    return failure();
  return expectSameElementType(op, {{"x", getX()},
                                    {"wq", getWq()},
                                    {"wk", getWk()},
                                    {"wv", getWv()},
                                    {"wo", getWo()}});
}

Value AttentionOp::getModalityIds() { return getModality(); }
SmallVector<OpOperand *> AttentionOp::getPerModalityOperands() {
  return {&getWqMutable(), &getWkMutable(), &getWvMutable(), &getWoMutable()};
}
void AttentionOp::dropModalityIds() { getModalityMutable().clear(); }

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

/// Checks the `[B, L, E_max]` logits and `[B, L]` modality ids of the ops
/// that read router logits.
static LogicalResult verifyLogits(Operation *op, StringRef name, Value logits,
                                  Value modality,
                                  ArrayRef<ExpertGroupAttr> groups) {
  if (failed(expectShape(op, "modality", modality, {kAny, kAny},
                         "[batch, sequence] modality ids")))
    return failure();
  ArrayRef<int64_t> mod = tensorType(modality).getShape();
  return expectShape(op, name, logits, {mod[0], mod[1], getMaxExperts(groups)},
                     "[batch, sequence, largest expert count]");
}

LogicalResult RouterOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())) ||
      failed(expectActivation(op, "x", getX())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(expectShape(op, "modality", getModality(), {x[0], x[1]},
                         "[batch, sequence] modality ids")))
    return failure();
  if (getWeights().size() != groups.size())
    return emitOpError() << "expects one router weight per expert group ("
                         << groups.size() << "), got " << getWeights().size();
  SmallVector<std::pair<StringRef, Value>> floats = {{"x", getX()}};
  for (auto [index, weight] : llvm::enumerate(getWeights())) {
    std::string name = "weights[" + std::to_string(index) + "]";
    if (failed(expectShape(op, name, weight, {x[2], groups[index].getExperts()},
                           "[features, experts of group " +
                               std::to_string(index) + "]")))
      return failure();
  }
  for (Value weight : getWeights())
    floats.push_back({"weights", weight});
  floats.push_back({"logits", getLogits()});
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)))
    return failure();
  return expectSameElementType(op, floats);
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
      return emitOpError() << "'aux' scores must have the shape of 'logits' "
                           << shapeString(getLogits().getType().getShape())
                           << ", found "
                           << shapeString(getAux().getType().getShape());
    if (llvm::none_of(groups, [](ExpertGroupAttr group) {
          return group.getRouting() == RoutingKind::expert_choice;
        }))
      return emitOpError() << "'aux' scores replace expert_choice selection, "
                              "but no group uses expert_choice";
  }
  if (failed(expectShape(op, "slot_token", getSlotToken(), {kAny}, "[slots]")))
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
  Operation *op = getOperation();
  if (failed(expectActivation(op, "x", getX())) ||
      failed(expectShape(op, "slot_token", getSlotToken(), {kAny}, "[slots]")))
    return failure();
  int64_t slots = getSlotToken().getType().getShape()[0];
  int64_t width = getX().getType().getShape()[2];
  if (failed(expectShape(op, "result", getResult(), {slots, width},
                         "[slots, features]")))
    return failure();
  return expectSameElementType(op, {{"x", getX()}, {"result", getResult()}});
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertsOp::verify() {
  Operation *op = getOperation();
  if (failed(expectShape(op, "tokens", getTokens(), {kAny, kAny},
                         "[slots, features]")))
    return failure();
  ArrayRef<int64_t> tokens = getTokens().getType().getShape();
  if (failed(expectShape(op, "w_in", getWIn(), {kAny, tokens[1], kAny},
                         "[experts, features, hidden columns]")))
    return failure();
  int64_t experts = getWIn().getType().getShape()[0];
  if (experts < 1)
    return emitOpError() << "'w_in' must stack at least one expert";
  FailureOr<int64_t> hidden =
      verifyFfnWeights(op, getActivation(), {experts}, tokens[1], getWIn(),
                       getWOut(), "experts, ");
  if (failed(hidden))
    return failure();
  if (failed(expectShape(op, "expert_offsets", getExpertOffsets(),
                         {experts + 1}, "[experts + 1]")))
    return failure();
  SmallVector<std::pair<StringRef, Value>> floats = {
      {"tokens", getTokens()}, {"w_in", getWIn()}, {"w_out", getWOut()}};
  if (!getLora().empty()) {
    if (getLora().size() != 4)
      return emitOpError() << "expects 0 or 4 LoRA operands (A_in, B_in, "
                              "A_out, B_out), got "
                           << getLora().size();
    int64_t columns = getWIn().getType().getShape()[2];
    Value aIn = getLora()[0], bIn = getLora()[1], aOut = getLora()[2],
          bOut = getLora()[3];
    if (failed(expectShape(op, "lora A_in", aIn, {experts, tokens[1], kAny},
                           "[experts, features, rank]")))
      return failure();
    int64_t rank = tensorType(aIn).getShape()[2];
    if (rank < 1)
      return emitOpError() << "LoRA rank must be >= 1, got " << rank;
    if (failed(expectShape(op, "lora B_in", bIn, {experts, rank, columns},
                           "[experts, rank, hidden columns]")) ||
        failed(expectShape(op, "lora A_out", aOut, {experts, *hidden, rank},
                           "[experts, hidden, rank]")) ||
        failed(expectShape(op, "lora B_out", bOut, {experts, rank, tokens[1]},
                           "[experts, rank, features]")))
      return failure();
    for (Value lora : getLora())
      floats.push_back({"lora", lora});
  }
  if (getResult().getType() != getTokens().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the type of 'tokens' "
                         << getTokens().getType();
  return expectSameElementType(op, floats);
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  Operation *op = getOperation();
  if (failed(expectShape(op, "expert_outputs", getExpertOutputs(), {kAny, kAny},
                         "[slots, features]")))
    return failure();
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
// DepthRouteOp
//===----------------------------------------------------------------------===//

LogicalResult DepthRouteOp::verify() {
  Operation *op = getOperation();
  if (failed(expectActivation(op, "x", getX())))
    return failure();
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(
          expectShape(op, "weight", getWeight(), {x[2], 1}, "[features, 1]")))
    return failure();
  double capacity = getCapacityFactor().convertToDouble();
  if (!(capacity > 0.0 && capacity <= 1.0))
    return emitOpError() << "'capacity_factor' must satisfy 0 < c <= 1, got "
                         << capacity;
  int64_t kept;
  if (getAux()) {
    if (failed(expectShape(op, "aux", getAux(), {x[0], x[1], 1},
                           "[batch, sequence, 1] auxiliary scores")))
      return failure();
    kept = x[1];
  } else {
    kept =
        static_cast<int64_t>(std::floor(static_cast<double>(x[1]) * capacity));
    if (kept < 1)
      return emitOpError() << "'capacity_factor' " << capacity
                           << " keeps no token of a sequence of " << x[1];
  }
  StringRef meaning = getAux() ? "[batch, sequence]: with 'aux' every "
                                 "position may be kept"
                               : "[batch, floor(sequence * capacity_factor)]";
  if (failed(expectShape(op, "indices", getIndices(), {x[0], kept}, meaning)) ||
      failed(expectShape(op, "gate", getGate(), {x[0], kept}, meaning)))
    return failure();
  return expectSameElementType(op, {{"x", getX()},
                                    {"weight", getWeight()},
                                    {"aux", getAux()},
                                    {"gate", getGate()}});
}

//===----------------------------------------------------------------------===//
// DepthRegionOp
//===----------------------------------------------------------------------===//

LogicalResult DepthRegionOp::verify() {
  Operation *op = getOperation();
  if (failed(expectActivation(op, "x", getX())))
    return failure();
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(expectShape(op, "modality", getModality(), {x[0], x[1]},
                         "[batch, sequence] modality ids")) ||
      failed(expectShape(op, "indices", getIndices(), {x[0], kAny},
                         "[batch, kept]")))
    return failure();
  int64_t kept = getIndices().getType().getShape()[1];
  if (kept > x[1])
    return emitOpError() << "'indices' keeps " << kept
                         << " tokens per sequence but sequences have " << x[1];
  if (getGate() &&
      failed(expectShape(op, "gate", getGate(), {x[0], kept}, "[batch, kept]")))
    return failure();
  if (failed(expectResultTypeOfX(op, getX(), getResult())))
    return failure();
  return expectSameElementType(op, {{"x", getX()}, {"gate", getGate()}});
}

LogicalResult DepthRegionOp::verifyRegions() {
  Block &body = getBody().front();
  ArrayRef<int64_t> x = getX().getType().getShape();
  int64_t kept = getIndices().getType().getShape()[1];
  Type i32 = IntegerType::get(getContext(), 32);
  SmallVector<Type> expected = {
      RankedTensorType::get({x[0], kept, x[2]},
                            getX().getType().getElementType()),
      RankedTensorType::get({x[0], kept}, i32),
      RankedTensorType::get({x[0], kept}, i32)};
  static const char *const kArgNames[] = {"kept tokens", "their modality ids",
                                          "their positions"};
  if (body.getNumArguments() != expected.size())
    return emitOpError() << "body must take 3 arguments (kept tokens, their "
                            "modality ids, their positions), got "
                         << body.getNumArguments();
  for (auto [index, arg] : llvm::enumerate(body.getArguments()))
    if (arg.getType() != expected[index])
      return emitOpError() << "body argument " << index << " ("
                           << kArgNames[index] << ") must be "
                           << expected[index] << ", got " << arg.getType();
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield)
    return emitOpError() << "body must end with 'moma.yield'";
  if (yield.getValue().getType() != expected[0])
    return yield.emitOpError()
           << "yields " << yield.getValue().getType()
           << " but the depth region's kept tokens are " << expected[0];
  if (yield.getExtras().getTypes() != getExtras().getTypes())
    return yield.emitOpError()
           << "yields extra values of types (" << yield.getExtras().getTypes()
           << ") but the depth region returns (" << getExtras().getTypes()
           << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// ScaleOp
//===----------------------------------------------------------------------===//

LogicalResult ScaleOp::verify() {
  Operation *op = getOperation();
  if (failed(expectActivation(op, "x", getX())))
    return failure();
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(expectShape(op, "scale", getScale(), {x[0], x[1]},
                         "[batch, sequence]")))
    return failure();
  if (failed(expectResultTypeOfX(op, getX(), getResult())))
    return failure();
  return expectSameElementType(op, {{"x", getX()}, {"scale", getScale()}});
}

//===----------------------------------------------------------------------===//
// AuxRouterOp
//===----------------------------------------------------------------------===//

LogicalResult AuxRouterOp::verify() {
  Operation *op = getOperation();
  if (failed(expectActivation(op, "x", getX())))
    return failure();
  ArrayRef<int64_t> x = getX().getType().getShape();
  SmallVector<std::pair<StringRef, Value>> floats = {{"x", getX()}};
  for (Value weight : getWeights())
    floats.push_back({"weights", weight});
  floats.push_back({"result", getResult()});
  if (!getGroups()) {
    if (getWeights().size() != 2)
      return emitOpError() << "expects two weights (W1, W2), got "
                           << getWeights().size();
    FailureOr<SmallVector<int64_t, 1>> prefix =
        untiedPrefix(op, getModality(), x[0], x[1]);
    if (failed(prefix))
      return failure();
    std::string lead = prefix->empty() ? "" : "modalities, ";
    Value w1 = getWeights()[0], w2 = getWeights()[1];
    if (failed(expectShape(op, "W1", w1, concat(*prefix, {x[2], kAny}),
                           "[" + lead + "features, hidden]")))
      return failure();
    int64_t hidden = tensorType(w1).getShape().back();
    if (failed(expectShape(op, "W2", w2, concat(*prefix, {hidden, kAny}),
                           "[" + lead + "hidden, outputs]")))
      return failure();
    int64_t outputs = tensorType(w2).getShape().back();
    if (failed(expectShape(op, "result", getResult(), {x[0], x[1], outputs},
                           "[batch, sequence, outputs]")))
      return failure();
    return expectSameElementType(op, floats);
  }

  if (failed(verifyGroups(op, *getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(*getGroups());
  if (!getModality())
    return emitOpError() << "with 'groups', a 'modality' operand must route "
                            "each token to its group's router";
  if (failed(expectShape(op, "modality", getModality(), {x[0], x[1]},
                         "[batch, sequence] modality ids")))
    return failure();
  if (getWeights().size() != 2 * groups.size())
    return emitOpError() << "expects two weights (W1, W2) per expert group ("
                         << 2 * groups.size() << "), got "
                         << getWeights().size();
  for (auto [index, group] : llvm::enumerate(groups)) {
    Value w1 = getWeights()[2 * index], w2 = getWeights()[2 * index + 1];
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
  if (failed(expectShape(op, "result", getResult(), {x[0], x[1], kAny},
                         "[batch, sequence, outputs]")))
    return failure();
  int64_t columns = getResult().getType().getShape()[2];
  if (columns < getMaxExperts(groups))
    return emitOpError() << "result has " << columns
                         << " columns but the largest group has "
                         << getMaxExperts(groups) << " experts";
  return expectSameElementType(op, floats);
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
void AuxRouterOp::dropModalityIds() { getModalityMutable().clear(); }

//===----------------------------------------------------------------------===//
// RouteMaskOp / DepthMaskOp
//===----------------------------------------------------------------------===//

LogicalResult RouteMaskOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (failed(
          expectShape(op, "slot_token", getSlotToken(), {kAny}, "[slots]")) ||
      failed(expectShape(op, "expert_offsets", getExpertOffsets(),
                         {getTotalExperts(groups) + 1}, "[total experts + 1]")))
    return failure();
  return verifyLogits(op, "result", getResult(), getModality(), groups);
}

LogicalResult DepthMaskOp::verify() {
  Operation *op = getOperation();
  if (failed(expectShape(op, "indices", getIndices(), {kAny, kAny},
                         "[batch, kept]")))
    return failure();
  ArrayRef<int64_t> indices = getIndices().getType().getShape();
  if (failed(expectShape(op, "result", getResult(), {indices[0], kAny, 1},
                         "[batch, sequence, 1]")))
    return failure();
  int64_t seq = getResult().getType().getShape()[1];
  if (indices[1] > seq)
    return emitOpError() << "'indices' keeps " << indices[1]
                         << " tokens per sequence but sequences have " << seq;
  return success();
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

LogicalResult CrossEntropyOp::verify() {
  Operation *op = getOperation();
  if (failed(expectActivation(op, "logits", getLogits())))
    return failure();
  ArrayRef<int64_t> logits = getLogits().getType().getShape();
  if (failed(expectShape(op, "targets", getTargets(), {logits[0], logits[1]},
                         "[batch, sequence] target token ids")) ||
      failed(expectShape(op, "target_modality", getTargetModality(),
                         {logits[0], logits[1]},
                         "[batch, sequence] modality ids of the targets")))
    return failure();
  FailureOr<int64_t> count = declaredModalityCount(op);
  if (failed(count) ||
      failed(expectShape(op, "per_modality", getPerModality(), {*count},
                         "[declared modalities]")) ||
      failed(expectScalar(op, "total", getTotal())))
    return failure();
  return expectSameElementType(
      op, {{"per_modality", getPerModality()}, {"total", getTotal()}});
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
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)) ||
      failed(expectShape(op, "expert_offsets", getExpertOffsets(),
                         {getTotalExperts(groups) + 1},
                         "[total experts + 1]")) ||
      failed(expectScalar(op, "result", getResult())))
    return failure();
  return expectSameElementType(
      op, {{"logits", getLogits()}, {"result", getResult()}});
}

LogicalResult RouterZLossOp::verify() {
  Operation *op = getOperation();
  if (failed(verifyGroups(op, getGroups())))
    return failure();
  SmallVector<ExpertGroupAttr> groups = getExpertGroups(getGroups());
  if (failed(verifyLogits(op, "logits", getLogits(), getModality(), groups)) ||
      failed(expectScalar(op, "result", getResult())))
    return failure();
  return expectSameElementType(
      op, {{"logits", getLogits()}, {"result", getResult()}});
}

LogicalResult AuxRouterLossOp::verify() {
  Operation *op = getOperation();
  if (getTargets().getType().getShape() != getScores().getType().getShape())
    return emitOpError() << "'targets' must have the shape of 'scores' "
                         << shapeString(getScores().getType().getShape())
                         << ", found "
                         << shapeString(getTargets().getType().getShape());
  if (failed(expectScalar(op, "result", getResult())))
    return failure();
  return expectSameElementType(op, {{"scores", getScores()},
                                    {"targets", getTargets()},
                                    {"result", getResult()}});
}

#define GET_OP_CLASSES
#include "dialects/moma/MomaOps.cpp.inc"
