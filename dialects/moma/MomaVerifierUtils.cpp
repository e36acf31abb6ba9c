//===- MomaVerifierUtils.cpp - Checks the moma op verifiers share ---------===//
//
// Shape, element-type, modality and expert-group checks whose messages name
// the offending operand and the rule it broke.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaVerifierUtils.h"

#include "dialects/moma/MomaDialect.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace moma;

std::string moma::shapeString(ArrayRef<int64_t> shape) {
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

RankedTensorType moma::tensorType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

SmallVector<int64_t> moma::concat(ArrayRef<int64_t> lhs,
                                  ArrayRef<int64_t> rhs) {
  SmallVector<int64_t> result(lhs);
  result.append(rhs.begin(), rhs.end());
  return result;
}

LogicalResult moma::expectShape(Operation *op, StringRef name, Value value,
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

LogicalResult
moma::expectSameElementType(Operation *op,
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

FailureOr<int64_t> moma::declaredModalityCount(Operation *op) {
  std::optional<SmallVector<ModalityAttr>> modalities =
      getDeclaredModalities(op);
  if (!modalities)
    return op->emitOpError() << "requires the enclosing module to declare '"
                             << MomaDialect::getModalitiesAttrName() << "'";
  return static_cast<int64_t>(modalities->size());
}

FailureOr<SmallVector<int64_t, 1>>
moma::untiedPrefix(Operation *op, Value modality, int64_t batch, int64_t seq) {
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

FailureOr<SmallVector<int64_t, 1>>
moma::verifyUntiedModality(Operation *op, Value x, Value modality) {
  ArrayRef<int64_t> shape = tensorType(x).getShape();
  return untiedPrefix(op, modality, shape[0], shape[1]);
}

LogicalResult moma::verifyGroups(Operation *op, ArrayAttr groupsAttr) {
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

FailureOr<int64_t> moma::verifyFfnWeights(Operation *op, Activation act,
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

LogicalResult moma::verifyLogits(Operation *op, StringRef name, Value logits,
                                 Value modality,
                                 ArrayRef<ExpertGroupAttr> groups) {
  ArrayRef<int64_t> mod = tensorType(modality).getShape();
  return expectShape(op, name, logits, {mod[0], mod[1], getMaxExperts(groups)},
                     "[batch, sequence, largest expert count]");
}
