//===- MomaVerifierUtils.h - Checks the moma op verifiers share -*- C++ -*-===//
//
// Shape, element-type, modality and expert-group checks of the op verifiers
// (DenseVerifiers.cpp, RoutingVerifiers.cpp, DepthVerifiers.cpp,
// LossVerifiers.cpp). Ranks, result types equal to an operand's, the
// element types of required operands and positive integer attributes are
// ODS constraints (MomaOps.td); these checks cover what ODS cannot word:
// dimension sizes, optional and variadic operands, modalities and expert
// groups. Every check emits an op error that names the offending operand or
// attribute and the rule it broke, and returns failure.
//
//===----------------------------------------------------------------------===//

#ifndef DIALECTS_MOMA_MOMAVERIFIERUTILS_H
#define DIALECTS_MOMA_MOMAVERIFIERUTILS_H

#include "dialects/moma/MomaOps.h"

#include <string>
#include <utility>

namespace moma {

/// Marks a dimension that may take any size in an expected shape.
inline constexpr int64_t kAny = ShapedType::kDynamic;

/// `[2, ?, 8]`: a shape as the messages print it (kAny as `?`).
std::string shapeString(ArrayRef<int64_t> shape);

/// The ranked tensor type of `value`.
RankedTensorType tensorType(Value value);

/// `lhs` followed by `rhs`.
SmallVector<int64_t> concat(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs);

/// Checks that `value` has rank `expected.size()` and matches `expected`
/// (kAny matches every size). `meaning` explains the dimensions.
LogicalResult expectShape(Operation *op, StringRef name, Value value,
                          ArrayRef<int64_t> expected, StringRef meaning);

/// Checks that every float value shares the element type of the first one
/// (null values, absent optional operands, are skipped).
LogicalResult
expectSameElementType(Operation *op,
                      ArrayRef<std::pair<StringRef, Value>> values);

/// The number of modalities the enclosing module declares.
FailureOr<int64_t> declaredModalityCount(Operation *op);

/// For ops whose weights may be untied: checks the modality ids (`[B, L]`)
/// and returns the leading weight dimensions, `{M}` when untied, `{}` when
/// tied.
FailureOr<SmallVector<int64_t, 1>> untiedPrefix(Operation *op, Value modality,
                                                int64_t batch, int64_t seq);

/// `untiedPrefix` for the modality ids of the activation `x: [B, L, D]`
/// (its rank is an ODS constraint) of an op whose weights may be untied.
FailureOr<SmallVector<int64_t, 1>> verifyUntiedModality(Operation *op, Value x,
                                                        Value modality);

/// Checks the expert groups of an op: at least one, every modality declared,
/// at most one group per modality.
LogicalResult verifyGroups(Operation *op, ArrayAttr groupsAttr);

/// Checks `w_in: prefix + [D, g*F]` and `w_out: prefix + [F, D]` of a
/// SwiGLU (g = 2) or GELU (g = 1) FFN and returns F. `prefixName` names the
/// leading dimensions in the messages (`"modalities, "`, `"experts, "`).
FailureOr<int64_t> verifyFfnWeights(Operation *op, Activation act,
                                    ArrayRef<int64_t> prefix, int64_t width,
                                    Value wIn, Value wOut,
                                    StringRef prefixName);

/// Checks that the `[B, L, E_max]` logits of the ops that read router logits
/// match their `[B, L]` modality ids (both ranks are ODS constraints) and the
/// largest group.
LogicalResult verifyLogits(Operation *op, StringRef name, Value logits,
                           Value modality, ArrayRef<ExpertGroupAttr> groups);

/// The operand checks of the dense ops, shared by each forward op and its
/// gradient op (GradientVerifiers.cpp). `moma.embed`: `ids: [B, L]`, the
/// table (or its gradient) `prefix + [V, D]` and the token rows (result or
/// gradient) `[B, L, D]`, with V covering every declared token range.
LogicalResult verifyEmbedForm(Operation *op, Value ids, Value table,
                              StringRef tableName, Value tokens,
                              StringRef tokensName, Value modality);
/// `moma.norm`'s weight, bias, modality ids and epsilon for `x`.
LogicalResult verifyNormForm(Operation *op, NormKind kind, Value x,
                             Value weight, Value bias, Value modality,
                             double epsilon);
/// `moma.linear`'s weights for `x`, and `result: [B, L, N]`.
LogicalResult verifyLinearForm(Operation *op, Value x, Value weight, Value bias,
                               Value loraA, Value loraB, Value modality,
                               Value result, StringRef resultName);
/// `moma.attention`'s projections, positions, modality ids and attributes.
LogicalResult verifyAttentionForm(Operation *op, Value x, Value wq, Value wk,
                                  Value wv, Value wo, Value positions,
                                  Value modality, int64_t heads,
                                  int64_t kvHeads, int64_t headDim,
                                  double theta);

/// `moma.experts`' stacked weights, offsets and LoRA adapters for the slot
/// rows `tokens`.
LogicalResult verifyExpertsForm(Operation *op, Activation activation,
                                Value tokens, Value offsets, Value wIn,
                                Value wOut, ValueRange lora);

/// `moma.router`'s groups, modality ids and weights for `x`, and the
/// `[B, L, E_max]` logits (or their gradient).
LogicalResult verifyRouterForm(Operation *op, Value x, Value modality,
                               ValueRange weights, ArrayAttr groups,
                               Value logits, StringRef logitsName);
/// `moma.aux_router`'s weights, modality ids and groups for `x`, and its
/// `[B, L, N]` result (or the result's gradient).
LogicalResult verifyAuxRouterForm(Operation *op, Value x, ValueRange weights,
                                  Value modality, ArrayAttr groups,
                                  Value result, StringRef resultName);

/// `moma.cross_entropy`'s targets and target modalities for `logits`, and
/// one loss (or loss gradient) per declared modality.
LogicalResult verifyCrossEntropyForm(Operation *op, Value logits, Value targets,
                                     Value targetModality, Value perModality,
                                     StringRef perModalityName);

} // namespace moma

#endif // DIALECTS_MOMA_MOMAVERIFIERUTILS_H
