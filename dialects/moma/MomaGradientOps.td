//===- MomaGradientOps.td - moma's backward operations -----*- tablegen -*-===//
//
// The backward ops moma-autodiff builds: each computes the gradients of one
// forward op whose math deserves a kernel of its own, from the forward op's
// operands and the gradient of its result (recomputing what it needs, so no
// forward intermediate is kept). They lower through convert-moma-to-linalg
// like every other moma op. Semantics.md ("Gradients") fixes their math.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_DIALECT_MOMAGRADIENTOPS_TD
#define MOMA_DIALECT_MOMAGRADIENTOPS_TD

def Moma_EmbedGradOp : Moma_Op<"embed_grad", [Pure,
    AllElementTypesMatch<["dy", "result"]>]> {
  let summary = "Gradient of moma.embed: scatter-add into the table";
  let description = [{
    The gradient of the table of `moma.embed %ids, %table`:
    `result[v, :] = sum over tokens t with ids[t] = v of dy[t, :]`, summed
    in ascending `t` (untied, with a `modality` operand: `result[m, v, :]`
    over the tokens with `modality[t] = m`). Ids outside `[0, V)` and
    modality ids outside `[0, M)` contribute nothing. The result has the
    table's type.

    ```mlir
    %dtable = moma.embed_grad %ids, %dy
        : (tensor<2x8xi32>, tensor<2x8x32xf32>) -> tensor<128x32xf32>
    ```
  }];
  let arguments = (ins Moma_TokenIdsTensor:$ids, Moma_ActivationTensor:$dy,
                       Optional<Moma_TokenIdsTensor>:$modality);
  let results = (outs Moma_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `,` $dy (`modality` $modality^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_NormGradOp : Moma_Op<"norm_grad", [Pure,
    AllTypesMatch<["x", "dy", "dx"]>, AllTypesMatch<["weight", "dweight"]>]> {
  let summary = "Gradient of moma.norm with respect to its input and weight";
  let description = [{
    For `y = moma.norm kind %x, %weight [bias %b]`, with `xhat` the
    normalised row (`x r` for RMS, `(x - mean(x)) r` for layer norm, `r` the
    reciprocal root of the statistic plus `epsilon`) and `g = dy * weight`:
    `dx = r (g - mean(g xhat) xhat)` (RMS) or
    `dx = r (g - mean(g) - mean(g xhat) xhat)` (layer), and
    `dweight = sum over tokens of dy * xhat` (untied: per modality). The bias
    does not change either; its gradient is `moma.bias_grad %dy`.

    ```mlir
    %dx, %dw = moma.norm_grad rms %x, %w, %dy {epsilon = 1.0e-05 : f64}
        : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<2x8x32xf32>)
        -> (tensor<2x8x32xf32>, tensor<32xf32>)
    ```
  }];
  let arguments = (ins Moma_NormKind:$kind, Moma_ActivationTensor:$x,
                       Moma_FloatTensor:$weight, Moma_ActivationTensor:$dy,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       DefaultValuedAttr<F64Attr, "1.0e-5">:$epsilon);
  let results = (outs Moma_ActivationTensor:$dx, Moma_FloatTensor:$dweight);
  let assemblyFormat = [{
    $kind $x `,` $weight `,` $dy (`modality` $modality^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_BiasGradOp : Moma_Op<"bias_grad", [Pure,
    AllElementTypesMatch<["dy", "result"]>]> {
  let summary = "Gradient of a per-feature bias: the sum over tokens";
  let description = [{
    `result[n] = sum over tokens t of dy[t, n]` in ascending `t` (untied,
    with a `modality` operand: `result[m, n]` over the tokens with
    `modality[t] = m`; other modality ids contribute nothing). The gradient
    of the bias of `moma.linear` and of layer norm.

    ```mlir
    %db = moma.bias_grad %dy : (tensor<2x8x32xf32>) -> tensor<32xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$dy,
                       Optional<Moma_TokenIdsTensor>:$modality);
  let results = (outs Moma_FloatTensor:$result);
  let assemblyFormat = [{
    $dy (`modality` $modality^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_LinearGradOp : Moma_Op<"linear_grad", [Pure, AttrSizedOperandSegments,
    AllTypesMatch<["x", "dx"]>, AllTypesMatch<["weight", "dweight"]>]> {
  let summary = "Gradient of moma.linear with respect to x, W and LoRA";
  let description = [{
    For `y = x W + s (x A) B` (`s = lora_scale`):
    `dx = dy W^T + s (dy B^T) A^T`, `dW = x^T dy` (sums over tokens),
    and with LoRA `dlora = (dA, dB)`, `dA = s x^T (dy B^T)`,
    `dB = s (x A)^T dy`. Untied (with `modality`): token `t` uses and
    contributes to slice `modality[t]` of every weight and gradient. The
    bias's gradient is `moma.bias_grad %dy`.

    ```mlir
    %dx, %dw = moma.linear_grad %x, %w, %dy
        : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<2x8x64xf32>)
        -> (tensor<2x8x32xf32>, tensor<32x64xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x, Moma_FloatTensor:$weight,
                       Moma_ActivationTensor:$dy,
                       Optional<Moma_FloatTensor>:$lora_a,
                       Optional<Moma_FloatTensor>:$lora_b,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       DefaultValuedAttr<F64Attr, "1.0">:$lora_scale);
  let results = (outs Moma_ActivationTensor:$dx, Moma_FloatTensor:$dweight,
                      Variadic<Moma_FloatTensor>:$dlora);
  let assemblyFormat = [{
    $x `,` $weight `,` $dy (`lora` `(` $lora_a^ `,` $lora_b `)`)?
    (`modality` $modality^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_FfnGradOp : Moma_Op<"ffn_grad", [Pure,
    AllTypesMatch<["x", "dy", "dx"]>, AllTypesMatch<["w_in", "dw_in"]>,
    AllTypesMatch<["w_out", "dw_out"]>]> {
  let summary = "Gradient of moma.ffn with respect to x and both weights";
  let description = [{
    Recomputes the hidden activation `h` of `moma.ffn` (`u = x w_in`,
    `h = silu(u_gate) * u_up` or `gelu(u)`), then `dw_out = h^T dy`,
    `dh = dy w_out^T`, `du` through the activation (SwiGLU:
    `du_gate = dh u_up silu'(u_gate)`, `du_up = dh silu(u_gate)`; GELU:
    `du = dh gelu'(u)`), `dw_in = x^T du` and `dx = du w_in^T`. Untied:
    per-modality slices as in `moma.linear_grad`.

    ```mlir
    %dx, %dwi, %dwo = moma.ffn_grad swiglu %x, %wi, %wo, %dy
        : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>,
           tensor<2x8x32xf32>)
        -> (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>)
    ```
  }];
  let arguments = (ins Moma_Activation:$activation, Moma_ActivationTensor:$x,
                       Moma_FloatTensor:$w_in, Moma_FloatTensor:$w_out,
                       Moma_ActivationTensor:$dy,
                       Optional<Moma_TokenIdsTensor>:$modality);
  let results = (outs Moma_ActivationTensor:$dx, Moma_FloatTensor:$dw_in,
                      Moma_FloatTensor:$dw_out);
  let assemblyFormat = [{
    $activation $x `,` $w_in `,` $w_out `,` $dy (`modality` $modality^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_AttentionGradOp : Moma_Op<"attention_grad", [Pure,
    AttrSizedOperandSegments, AllTypesMatch<["x", "dy", "dx"]>,
    AllTypesMatch<["wq", "dwq"]>, AllTypesMatch<["wk", "dwk"]>,
    AllTypesMatch<["wv", "dwv"]>, AllTypesMatch<["wo", "dwo"]>]> {
  let summary = "Gradient of moma.attention with respect to x and Wq/Wk/Wv/Wo";
  let description = [{
    The backward pass of `moma.attention` with the same operands and
    attributes plus `dy`, the gradient of its result. It recomputes `q`,
    `k`, `v` (with RoPE), the probabilities `p = softmax(q.k / sqrt(d))`
    over the visible keys and `o = p v`, then: `dWo = o^T dy`,
    `do = dy Wo^T`, `dv = p^T do`, `dp = do v^T`,
    `ds = p (dp - rowsum(dp p))`, `dq = ds k / sqrt(d)`,
    `dk = ds^T q / sqrt(d)` (query heads sharing a kv head add their
    `dk`, `dv`), RoPE's rotation transposed on `dq` and `dk`,
    `dWq = x^T dq`, `dWk = x^T dk`, `dWv = x^T dv` and
    `dx = dq Wq^T + dk Wk^T + dv Wv^T`. Untied: per-modality slices as in
    `moma.linear_grad`. Padding queries (`positions < 0`) contribute
    nothing.

    ```mlir
    %dx, %dq, %dk, %dv, %do = moma.attention_grad %x, %wq, %wk, %wv, %wo, %dy
        heads 4 kv_heads 2 head_dim 8 {rope_theta = 1.0e+04 : f64}
        : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>,
           tensor<32x16xf32>, tensor<32x32xf32>, tensor<2x8x32xf32>)
        -> (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>,
            tensor<32x16xf32>, tensor<32x32xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x, Moma_FloatTensor:$wq,
                       Moma_FloatTensor:$wk, Moma_FloatTensor:$wv,
                       Moma_FloatTensor:$wo, Moma_ActivationTensor:$dy,
                       Optional<Moma_TokenIdsTensor>:$positions,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       Moma_PositiveI64Attr:$heads,
                       Moma_PositiveI64Attr:$kv_heads,
                       Moma_PositiveI64Attr:$head_dim,
                       DefaultValuedAttr<F64Attr, "0.0">:$rope_theta,
                       DefaultValuedAttr<BoolAttr, "true">:$causal);
  let results = (outs Moma_ActivationTensor:$dx, Moma_FloatTensor:$dwq,
                      Moma_FloatTensor:$dwk, Moma_FloatTensor:$dwv,
                      Moma_FloatTensor:$dwo);
  let assemblyFormat = [{
    $x `,` $wq `,` $wk `,` $wv `,` $wo `,` $dy (`positions` $positions^)?
    (`modality` $modality^)? `heads` $heads `kv_heads` $kv_heads
    `head_dim` $head_dim attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_CrossEntropyGradOp : Moma_Op<"cross_entropy_grad", [Pure,
    AllTypesMatch<["logits", "result"]>,
    AllElementTypesMatch<["logits", "d_per_modality", "d_total"]>]> {
  let summary = "Gradient of moma.cross_entropy with respect to the logits";
  let description = [{
    For the losses of `moma.cross_entropy` and the gradients `d_per_modality`
    and `d_total` of its two results: for a token `t` with a target
    (`targets[t] >= 0`), `result[t, v] = (softmax(logits[t])[v] -
    [v = targets[t]]) * w[t]` with `w[t] = d_total / N +
    d_per_modality[m] / N_m` (`N` all targets, `m = target_modality[t]`,
    `N_m` its targets; the second term only for `m` in `[0, M)`); rows
    without a target are 0.

    ```mlir
    %dlogits = moma.cross_entropy_grad %logits, %tgt, %tmod, %dper, %dtotal
        : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>,
           tensor<2xf32>, tensor<f32>) -> tensor<2x8x128xf32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$targets,
                       Moma_TokenIdsTensor:$target_modality,
                       Moma_ModalityLossTensor:$d_per_modality,
                       Moma_ScalarTensor:$d_total);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $logits `,` $targets `,` $target_modality `,` $d_per_modality `,` $d_total
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_ExpertsGradOp : Moma_Op<"experts_grad", [Pure,
    AllTypesMatch<["tokens", "dy", "dtokens"]>,
    AllTypesMatch<["w_in", "dw_in"]>, AllTypesMatch<["w_out", "dw_out"]>]> {
  let summary = "Gradient of moma.experts: the grouped GEMMs' dX and dW";
  let description = [{
    The backward pass of `moma.experts` over the same ragged expert-major
    slots: slot `s` of expert `e` recomputes `u = x w_in[e]` (plus LoRA)
    and the hidden `h`, and contributes `h^T dy[s]` to `dw_out[e]`,
    `x^T du` to `dw_in[e]` (`du` through the activation as in
    `moma.ffn_grad`), and `dtokens[s] = du w_in[e]^T`; with LoRA
    (`dlora = (dA_in, dB_in, dA_out, dB_out)`) each projection's adapters
    get the gradients of `moma.linear_grad`. Slots outside
    `[off[0], off[E])` get `dtokens = 0` and contribute nothing; an expert
    without slots gets zero gradients. Sums over slots run in ascending
    slot order.

    ```mlir
    %dxs, %dwi, %dwo = moma.experts_grad swiglu %xs, %off, %w_in, %w_out, %dys
        : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>,
           tensor<8x64x32xf32>, tensor<16x32xf32>)
        -> (tensor<16x32xf32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>)
    ```
  }];
  let arguments = (ins Moma_Activation:$activation,
                       Moma_SlotRowsTensor:$tokens,
                       Moma_ExpertOffsetsTensor:$expert_offsets,
                       Moma_ExpertWeightTensor:$w_in,
                       Moma_ExpertWeightTensor:$w_out,
                       Moma_SlotRowsTensor:$dy,
                       Variadic<Moma_ExpertWeightTensor>:$lora,
                       DefaultValuedAttr<F64Attr, "1.0">:$lora_scale);
  let results = (outs Moma_SlotRowsTensor:$dtokens,
                      Moma_ExpertWeightTensor:$dw_in,
                      Moma_ExpertWeightTensor:$dw_out,
                      Variadic<Moma_ExpertWeightTensor>:$dlora);
  let assemblyFormat = [{
    $activation $tokens `,` $expert_offsets `,` $w_in `,` $w_out `,` $dy
    (`lora` `(` $lora^ `)`)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // MOMA_DIALECT_MOMAGRADIENTOPS_TD
