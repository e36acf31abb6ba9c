//===- MomaOptimizerOps.td - moma's optimizer operations ---*- tablegen -*-===//
//
// The ops a train program's update is made of (moma-train-step builds them
// after the gradients of moma-autodiff). They lower through
// convert-moma-to-linalg like every other moma op; Semantics.md ("The
// optimizer") and examples/Training.md fix their math.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_DIALECT_MOMAOPTIMIZEROPS_TD
#define MOMA_DIALECT_MOMAOPTIMIZEROPS_TD

/// A rank-0 i64 tensor: the optimizer's step number.
def Moma_StepTensor : Moma_TensorOfRank<[I64], 0, "step">;

def Moma_AdamWOp : Moma_Op<"adamw", [Pure, SameVariadicOperandSize,
    SameVariadicResultSize]> {
  let summary = "One AdamW step over every weight, with its schedule and "
                "global-norm clipping";
  let description = [{
    The whole update of a training step, fused over all weights as
    `torch.optim.AdamW(fused=True)` is: from the step number `s` (from 1),
    the gradients `g_i`, and the first and second moments `m_i`, `v_i` of
    every weight `w_i`, it computes

    - the learning rate `lr(s)`: `lr · s / warmup_steps` during warm-up,
      then `linear`, `cosine` or `constant` decay to `final_lr_ratio · lr`
      at `total_steps` (examples/Training.md gives the formulas);
    - the global norm `n = sqrt(Σ_i Σ g_i²)`, and with `max_grad_norm = c`
      the clipping factor `k = min(1, c / (n + 1e-6))` (1 without it);
    - for every weight, with `g = k g_i` and decay `λ_i =
      weight_decay[i]`: `m' = β1 m + (1 − β1) g`, `v' = β2 v + (1 − β2) g²`,
      `w' = w (1 − lr λ_i) − (lr / (1 − β1^s)) m' / (sqrt(v') /
      sqrt(1 − β2^s) + ε)`.

    The scalars (`lr`, `k`, the bias corrections) are computed in f64 and
    rounded once to the weights' type. Results: the updated weights, first
    moments and second moments (of their operands' types), then `n` and
    `lr(s)`, both before any clipping.

    ```mlir
    %w2, %m2, %v2, %norm, %lr = moma.adamw step %s
        weights(%w) grads(%g) exp_avg(%m) exp_avg_sq(%v)
        {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
         lr = 1.0e-3 : f64, warmup_steps = 10 : i64, total_steps = 100 : i64,
         decay = "cosine", final_lr_ratio = 0.1 : f64,
         weight_decay = array<f64: 0.1>, max_grad_norm = 1.0 : f64}
        : tensor<32x32xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Moma_FloatTensor>:$weights,
                       Variadic<Moma_FloatTensor>:$grads,
                       Variadic<Moma_FloatTensor>:$exp_avg,
                       Variadic<Moma_FloatTensor>:$exp_avg_sq,
                       Moma_StepTensor:$step,
                       F64Attr:$lr, F64Attr:$beta1, F64Attr:$beta2,
                       F64Attr:$eps, I64Attr:$warmup_steps,
                       I64Attr:$total_steps, StrAttr:$decay,
                       F64Attr:$final_lr_ratio,
                       DenseF64ArrayAttr:$weight_decay,
                       OptionalAttr<F64Attr>:$max_grad_norm);
  let results = (outs Variadic<Moma_FloatTensor>:$new_weights,
                      Variadic<Moma_FloatTensor>:$new_exp_avg,
                      Variadic<Moma_FloatTensor>:$new_exp_avg_sq,
                      Moma_ScalarTensor:$grad_norm,
                      Moma_ScalarTensor:$learning_rate);
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
}

#endif // MOMA_DIALECT_MOMAOPTIMIZEROPS_TD
