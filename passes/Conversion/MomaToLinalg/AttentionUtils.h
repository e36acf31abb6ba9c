//===- AttentionUtils.h - Builders of attention and its grad ----*- C++ -*-===//
//
// The pieces of grouped-query attention that moma.attention and
// moma.attention_grad both build: the projections with RoPE, the masked
// softmax probabilities, and the head contractions over keys, queries or
// the head dimension (the backward pass uses them again on the gradients).
// Query heads are viewed as `[G, R]` (head h = g * R + r uses kv head g).
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_CONVERSION_MOMATOLINALG_ATTENTIONUTILS_H
#define PASSES_CONVERSION_MOMATOLINALG_ATTENTIONUTILS_H

#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

namespace moma {

/// The operands and attributes of one attention (forward or backward);
/// `positions` and `modality` may be null.
struct AttentionForm {
  Value x, wq, wk, wv, positions, modality;
  int64_t heads = 1, kvHeads = 1, headDim = 1;
  double theta = 0.0;
  bool causal = true;
};

/// The form of `op`, a moma.attention or moma.attention_grad.
template <typename AttentionLikeOp>
AttentionForm attentionFormOf(AttentionLikeOp op) {
  AttentionForm form;
  form.x = op.getX();
  form.wq = op.getWq();
  form.wk = op.getWk();
  form.wv = op.getWv();
  form.positions = op.getPositions();
  form.modality = op.getModality();
  form.heads = op.getHeads();
  form.kvHeads = op.getKvHeads();
  form.headDim = op.getHeadDim();
  form.theta = op.getRopeTheta().convertToDouble();
  form.causal = op.getCausal();
  return form;
}

/// What the forward pass computes up to the probabilities.
struct AttentionActivations {
  /// `x` as token rows `[B * L, D]`, and the modality ids `[B * L]` (null
  /// when tied).
  Value rows, modality;
  /// `[B, L]` i32: the given positions or `l`.
  Value positions;
  /// The RoPE tables `[B, L, d/2]` (null without RoPE).
  Value cos, sin;
  /// `q: [B, L, G, R, d]`, `k, v: [B, L, G, d]` (q and k rotated).
  Value q, k, v;
  /// `p: [B, G, R, L, L]`, the softmax over the visible keys, 0 at the
  /// others (an all-zero row for a query without a visible key).
  Value probs;
};

/// Builds the projections, RoPE and the masked softmax of `form`.
AttentionActivations buildAttentionProbs(OpBuilder &b, Location loc,
                                         const AttentionForm &form);

/// Rotate-half RoPE on `x: [B, L, N, d]` with tables `[B, L, d/2]`, or its
/// transpose (the rotation by the opposite angle) when `inverse`.
Value applyRope(OpBuilder &b, Location loc, Value x, Value cos, Value sin,
                bool inverse = false);

/// `r[b, g, r, i, j] = sum_c a[b, i, g, r, c] * c[b, j, g, c]` for
/// `a: [B, L, G, R, d]`, `c: [B, L, G, d]`: the raw scores `q.k`, and the
/// backward's `dp = do.v`.
Value contractHeadDim(OpBuilder &b, Location loc, Value a, Value c);

/// `r[b, i, g, r, c] = sum_j w[b, g, r, i, j] * v[b, j, g, c]` over the keys
/// j visible to query i (`w: [B, G, R, L, L]`, `v: [B, L, G, d]`): the
/// output `p v` and the backward's `dq = ds k`.
Value contractKeys(OpBuilder &b, Location loc, Value w, Value v,
                   Value positions, bool causal);

/// `r[b, j, g, c] = sum_{r, i} w[b, g, r, i, j] * a[b, i, g, r, c]` over the
/// queries i that see key j (`a: [B, L, G, R, d]`): the
/// backward's `dv = p^T do` and `dk = ds^T q`, summed over the R query heads
/// of each kv head.
Value contractQueries(OpBuilder &b, Location loc, Value w, Value a,
                      Value positions, bool causal);

/// Whether key position `pKey` is visible to query position `pQuery` (i32
/// scalars): `pKey >= 0` and, when causal, `pKey <= pQuery`.
Value isVisible(OpBuilder &b, Location loc, Value pKey, Value pQuery,
                bool causal);

/// `tensor.expand_shape` of `x` to `shape` with the given reassociation.
Value expandTo(OpBuilder &b, Location loc, Value x, ArrayRef<int64_t> shape,
               ArrayRef<mlir::ReassociationIndices> reassociation);

/// The map `(d0, ..., d(n-1)) -> (d_dims[0], d_dims[1], ...)`.
mlir::AffineMap dimsMap(MLIRContext *ctx, unsigned numDims,
                        ArrayRef<unsigned> dims);

} // namespace moma

#endif // PASSES_CONVERSION_MOMATOLINALG_ATTENTIONUTILS_H
