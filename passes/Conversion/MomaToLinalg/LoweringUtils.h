//===- LoweringUtils.h - Shared helpers of the moma lowering ----*- C++ -*-===//
//
// Builders the moma-to-linalg patterns share: tensor creation, token
// flattening, (untied) token matmuls, element-wise maps and reductions, and
// the scalar math of activations and scores.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_CONVERSION_MOMATOLINALG_LOWERINGUTILS_H
#define PASSES_CONVERSION_MOMATOLINALG_LOWERINGUTILS_H

#include "dialects/moma/MomaAttrs.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "moma/Support/LLVM.h"

namespace moma {
struct TargetModel;

/// Populate functions, one per file of this directory.
void populateDenseToLinalgPatterns(RewritePatternSet &patterns);
void populateAttentionToLinalgPatterns(RewritePatternSet &patterns);
void populateAttentionGradToLinalgPatterns(RewritePatternSet &patterns);
void populateExpertsToLinalgPatterns(RewritePatternSet &patterns);
void populateRouteToLinalgPatterns(RewritePatternSet &patterns);
void populateDepthToLinalgPatterns(RewritePatternSet &patterns);
void populateLossesToLinalgPatterns(RewritePatternSet &patterns);
void populatePermuteToLinalgPatterns(RewritePatternSet &patterns);
void populateGradientsToLinalgPatterns(RewritePatternSet &patterns);
void populateRoutingGradToLinalgPatterns(RewritePatternSet &patterns);
void populateDepthGradToLinalgPatterns(RewritePatternSet &patterns);
void populateOptimizerToLinalgPatterns(RewritePatternSet &patterns);
void populateExpertsGradToLinalgPatterns(RewritePatternSet &patterns);
/// The LM head fused with the cross-entropy of its logits (when nothing else
/// reads them), its vocabulary chunk chosen for `target`, or `vocabChunk`
/// where that is positive and divides the vocabulary.
void populateLmHeadLossPatterns(RewritePatternSet &patterns,
                                const TargetModel &target, int64_t vocabChunk);

/// The ranked tensor type of `value`.
RankedTensorType tensorTypeOf(Value value);
/// Its element type.
Type elementTypeOf(Value value);

/// Whether the float type `type` has infinities. Lowerings that start a
/// maximum at -inf (attention's row maxima, routing's softmax scores) need
/// one: in a type without infinities (f8E4M3FN, ...) -inf would become NaN
/// and poison every maximum, so their patterns do not apply to such types.
bool hasInfinity(Type type);

/// `tensor.empty` of the given shape.
Value createEmpty(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                  Type elementType);
/// A tensor filled with `value` (`linalg.fill`).
Value createFilled(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                   Type elementType, double value);
/// A tensor filled with the integer `value` (i32 or index element types).
Value createFilledInt(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                      Type elementType, int64_t value);

/// Scalar constants.
Value constantFloat(OpBuilder &b, Location loc, Type type, double value);
Value constantI32(OpBuilder &b, Location loc, int64_t value);
Value constantIndex(OpBuilder &b, Location loc, int64_t value);

/// Scalar tensor access: `tensor.extract` / `tensor.insert` at `indices`.
Value extractAt(OpBuilder &b, Location loc, Value tensor, ValueRange indices);
Value insertAt(OpBuilder &b, Location loc, Value scalar, Value tensor,
               ValueRange indices);
/// `arith.index_cast` of an integer to index, and of an index to i32.
Value toIndex(OpBuilder &b, Location loc, Value value);
Value toI32(OpBuilder &b, Location loc, Value value);
/// `arith.cmpi` and `arith.andi`.
Value cmpi(OpBuilder &b, Location loc, mlir::arith::CmpIPredicate predicate,
           Value lhs, Value rhs);
Value andi(OpBuilder &b, Location loc, Value lhs, Value rhs);

/// `[B, L, ...] -> [B * L, ...]` and back (`tensor.collapse_shape` /
/// `tensor.expand_shape`).
Value collapseTokens(OpBuilder &b, Location loc, Value x);
Value expandTokens(OpBuilder &b, Location loc, Value x, int64_t batch,
                   int64_t seq);

/// `0 <= value < size` for an i32 `value` (an i1): whether a token,
/// position or slot index names a real entry (padding and empty slots use
/// -1; anything else out of range is treated the same).
Value isInRange(OpBuilder &b, Location loc, Value i32Value, int64_t size);

/// Converts an i32 id read from a tensor to an index clamped to
/// `[0, size)`: ids outside the range (padding rows use -1) read row 0
/// instead of out of bounds. Callers rely on Semantics.md, which leaves the
/// values of such rows unspecified.
Value clampedIndex(OpBuilder &b, Location loc, Value i32Value, int64_t size);

/// `y[t, n] = sum_k x[t, k] * w[k, n]` for `x: [T, K]`, `w: [K, N]`
/// (`linalg.matmul`), or, with `modality: [T] i32`, `w: [M, K, N]` and slice
/// `modality[t]` for token t (untied weights).
Value tokenMatmul(OpBuilder &b, Location loc, Value x, Value w, Value modality);

/// `dx[t, k] = sum_n g[t, n] * w[k, n]` for `g: [T, N]`, `w: [K, N]` (the
/// product with the transposed weight that carries gradients back through
/// `tokenMatmul`), or with `modality: [T]` and `w: [M, K, N]` slice
/// `modality[t]` for token t.
Value transposedTokenMatmul(OpBuilder &b, Location loc, Value g, Value w,
                            Value modality);

/// The gradient of `tokenMatmul`'s weight: `dw[k, n] = sum_t a[t, k] *
/// g[t, n]` for `a: [T, K]`, `g: [T, N]`, summed in ascending t, or with
/// `modality: [T]` `dw[m, k, n]` over the tokens of slice m
/// (`resultType` is `[K, N]` or `[M, K, N]`). Untied, it visits every
/// token for every slice (M times the products; the tokens of a slice are
/// not contiguous in general).
Value weightGradient(OpBuilder &b, Location loc, Value a, Value g,
                     Value modality, RankedTensorType resultType);

/// `sum_t rows[t, n]` in ascending t for `rows: [T, N]`: `[N]`, or with
/// `modality: [T]` `[M, N]` per slice (`resultType`). Modality ids outside
/// `[0, M)` contribute nothing.
Value sumOverTokens(OpBuilder &b, Location loc, Value rows, Value modality,
                    RankedTensorType resultType);

/// Adds `bias: [N]` (or `[M, N]` with `modality: [T]`) to every row of
/// `y: [T, N]`.
Value addRowBias(OpBuilder &b, Location loc, Value y, Value bias,
                 Value modality);

/// Body builder of an element-wise map: receives the scalar inputs.
using ScalarFn =
    function_ref<Value(OpBuilder &b, Location loc, ValueRange args)>;

/// `linalg.generic` applying `fn` element-wise to same-shaped `inputs`,
/// producing a tensor of `resultType`. Inputs of lower rank broadcast along
/// their trailing dimensions being absent: an input of rank r < R is indexed
/// by the first r dimensions (so `[B, L]` scales `[B, L, D]` row-wise).
Value mapElementwise(OpBuilder &b, Location loc, RankedTensorType resultType,
                     ValueRange inputs, ScalarFn fn);

/// Sum (or max) over the last dimension: `[..., N] -> [...]`, in order.
Value reduceLastDim(OpBuilder &b, Location loc, Value x, bool max = false);

/// A float scalar narrower than f32 (bf16, f16) extended to f32 (exact);
/// any other value unchanged.
Value widenToF32(OpBuilder &b, Location loc, Value x);
/// `x` rounded to the float type `type` (nearest even) if it differs.
Value roundTo(OpBuilder &b, Location loc, Value x, Type type);

/// Scalar math on a float of any width (computed in that type).
Value scalarSigmoid(OpBuilder &b, Location loc, Value x);
Value scalarSilu(OpBuilder &b, Location loc, Value x);
/// Exact GELU: `x / 2 * (1 + erf(x / sqrt(2)))`.
Value scalarGelu(OpBuilder &b, Location loc, Value x);
/// `silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g)))`.
Value scalarSiluDerivative(OpBuilder &b, Location loc, Value g);
/// `gelu'(u) = (1 + erf(u / sqrt(2))) / 2 + u exp(-u^2 / 2) / sqrt(2 pi)`.
Value scalarGeluDerivative(OpBuilder &b, Location loc, Value u);

/// `x + scale * y` element-wise (same-shaped float tensors).
Value addScaled(OpBuilder &b, Location loc, Value x, Value y, double scale);

/// One projection of the FFN on rows `x: [T, K]`: `x w + scale * (x A) B`,
/// each weight tied (`[K, N]`) or selected per row by `selector: [T]`
/// (`[M, K, N]`, see `tokenMatmul`); without `loraA` just `x w`.
Value projectRows(OpBuilder &b, Location loc, Value x, Value w, Value selector,
                  Value loraA, Value loraB, double loraScale);

/// The FFN's hidden activation of the pre-activations `u: [T, C]`: SwiGLU
/// `silu(u[:, :C/2]) * u[:, C/2:]` (`[T, C/2]`) or exact GELU (`[T, C]`).
Value buildFfnHidden(OpBuilder &b, Location loc, bool swiglu, Value u);

/// The column halves `(u[:, :C/2], u[:, C/2:])` of `u: [T, C]` (SwiGLU's
/// gate and up pre-activations), as `tensor.extract_slice`s.
std::pair<Value, Value> splitColumnHalves(OpBuilder &b, Location loc, Value u);

/// The FFN of Semantics.md on token rows `x: [T, D]`: SwiGLU or GELU with
/// `w_in`/`w_out` (tied, or untied with `modality: [T]`), plus optional LoRA
/// `(A_in, B_in, A_out, B_out)` scaled by `loraScale` (each tied like the
/// weights). Returns `[T, D]`.
Value buildFfnRows(OpBuilder &b, Location loc, bool swiglu, Value x, Value wIn,
                   Value wOut, Value modality, ArrayRef<Value> lora = {},
                   double loraScale = 1.0);

/// The float scalar `value` converted to the float type `type` (extension or
/// truncation, round to nearest even); `value` itself if it has that type.
Value castFloat(OpBuilder &b, Location loc, Value value, Type type);
/// A rank-0 tensor of `resultType` holding the float scalar `value`,
/// converted once (`castFloat`).
Value toRank0(OpBuilder &b, Location loc, Value value,
              RankedTensorType resultType);

/// Sum of all elements of `x` (float or integer), accumulated in row-major
/// order in the element type, returned as a scalar.
Value reduceToScalar(OpBuilder &b, Location loc, Value x);

/// `table[key]` for an integer `key` (i32 or index) in `[0, table.size())`
/// and `otherwise` for any other key, as a chain of `arith.select`s.
Value selectByKey(OpBuilder &b, Location loc, Value key, ArrayRef<Value> table,
                  Value otherwise);
/// The same over integer constants of `type` (an integer or index type).
Value selectConstant(OpBuilder &b, Location loc, Value key,
                     ArrayRef<int64_t> table, int64_t otherwise, Type type);

//===----------------------------------------------------------------------===//
// Expert groups (routing and the routing losses)
//===----------------------------------------------------------------------===//

/// The expert group of every token: `[T] i32`, the index in `groups` of the
/// group serving `modality[t]` (`modality: [T] i32`), or -1 for tokens of
/// modalities without a group and padding rows.
Value buildGroupIds(OpBuilder &b, Location loc, Value modality,
                    ArrayRef<ExpertGroupAttr> groups);

/// `i1` true iff `group` (an i32 group id, possibly -1) is a group and the
/// index `column` is one of its local experts (`column < E_g`).
Value isGroupColumn(OpBuilder &b, Location loc, Value group, Value column,
                    ArrayRef<ExpertGroupAttr> groups);

/// Per-token softmax statistics over the group's `E_g` logits of `logits:
/// [T, E_max]` for `groupIds: [T]`: `(max_j x[t, j], sum_j exp(x[t, j] -
/// max))`, both `[T]`; `(-inf, 0)` for tokens without a group.
std::pair<Value, Value>
buildGroupSoftmaxStats(OpBuilder &b, Location loc, Value logits, Value groupIds,
                       ArrayRef<ExpertGroupAttr> groups);

/// The scores `s[t, j]` of Semantics.md (`moma.route`): softmax over the
/// group's `E_g` logits or element-wise sigmoid, per the group's score
/// function; 0 for `j >= E_g` and tokens without a group. `[T, E_max]`.
Value buildGroupScores(OpBuilder &b, Location loc, Value logits, Value groupIds,
                       ArrayRef<ExpertGroupAttr> groups);

/// `[size] i32`: for every `i < size`, the number of elements `x = input[j]`
/// of the 1-D `input` for which `predicate` holds. `predicate` builds, in the
/// body of a `linalg.generic` over `(i, j)` (`linalg.index` 0 and 1), the i1
/// from `x` (its `args[0]`).
Value buildCountWhere(OpBuilder &b, Location loc, Value input, int64_t size,
                      ScalarFn predicate);

/// `[G] i32`: the number of tokens of every group (`G = numGroups`).
Value buildGroupTokenCounts(OpBuilder &b, Location loc, Value groupIds,
                            int64_t numGroups);

//===----------------------------------------------------------------------===//
// Expert slots (moma.experts and its gradient)
//===----------------------------------------------------------------------===//

/// `[S] i32`: the expert `e` with `off[e] <= s < off[e + 1]` of every slot
/// (`offsets: [E + 1] i32`, non-decreasing), or -1 for slots outside
/// `[off[0], off[E])`. Usable as the `selector` of `tokenMatmul` and
/// friends: -1 reads expert 0 there (callers mask those rows) and
/// contributes to no expert's weight gradient.
Value buildSlotExperts(OpBuilder &b, Location loc, Value offsets,
                       int64_t numSlots, int64_t numExperts);

/// `rows[s]` for slots with an expert (`slotExperts[s] >= 0`), 0 elsewhere
/// (`rows: [S, N]`).
Value maskUnassignedSlots(OpBuilder &b, Location loc, Value rows,
                          Value slotExperts);

} // namespace moma

#endif // PASSES_CONVERSION_MOMATOLINALG_LOWERINGUTILS_H
