//===- GradientUtils.h - Builders of the backward lowerings -----*- C++ -*-===//
//
// The gradients of the FFN's pieces on token (or slot) rows, each weight
// tied or selected per row (per modality slice or per expert): a
// projection `x w + s (x A) B` and the SwiGLU / GELU activation.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_CONVERSION_MOMATOLINALG_GRADIENTUTILS_H
#define PASSES_CONVERSION_MOMATOLINALG_GRADIENTUTILS_H

#include "mlir/IR/Builders.h"
#include "moma/Support/LLVM.h"

namespace moma {

/// `scale * x` element-wise (`x` itself when `scale` is 1).
Value scaleTensor(OpBuilder &b, Location loc, Value x, double scale);

/// The gradients of one projection `y = x w + s (x A) B` (`projectRows`) on
/// rows `x: [T, K]` for the gradient `g: [T, N]` of `y`, each weight tied
/// or selected per row by `selector: [T]` (rows whose selector is outside
/// the weights' slices contribute to no weight gradient; their `dx` reads
/// slice 0 and is the caller's to mask).
struct ProjectionGradients {
  /// `g w^T + s (g B^T) A^T`: `[T, K]`.
  Value dx;
  /// `x^T g`, per slice: the type of `w`.
  Value dw;
  /// `s x^T (g B^T)` and `s (x A)^T g` (null without LoRA).
  Value da, db;
};
ProjectionGradients buildProjectionGradients(OpBuilder &b, Location loc,
                                             Value x, Value g, Value w,
                                             Value selector, Value loraA,
                                             Value loraB, double loraScale);

/// The gradient `du: [T, C]` of the FFN's pre-activations `u: [T, C]` from
/// that of its hidden activation (`buildFfnHidden`), `dh`: SwiGLU
/// (`dh: [T, C/2]`) `du_gate = dh u_up silu'(u_gate)`, `du_up = dh
/// silu(u_gate)`; GELU (`dh: [T, C]`) `du = dh gelu'(u)`.
Value buildFfnHiddenGradient(OpBuilder &b, Location loc, bool swiglu, Value u,
                             Value dh);

} // namespace moma

#endif // PASSES_CONVERSION_MOMATOLINALG_GRADIENTUTILS_H
