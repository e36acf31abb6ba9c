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

//===----------------------------------------------------------------------===//
// Routing: routers, gates, dispatch and combine
//===----------------------------------------------------------------------===//

def Moma_RouterGradOp : Moma_Op<"router_grad", [Pure,
    AllTypesMatch<["x", "dx"]>]> {
  let summary = "Gradient of moma.router with respect to x and the weights";
  let description = [{
    For `logits[t, j] = x[t] . W_g[:, j]` (`g` the group of `modality[t]`,
    `j < E_g`): `dx[t] = sum_{j < E_g} dlogits[t, j] W_g[:, j]` (0 for
    tokens without a group) and `dW_g = sum over the group's tokens of
    x[t]^T dlogits[t, :E_g]`. One gradient per weight, in order.

    ```mlir
    %dx, %dwt, %dwi = moma.router_grad %x, %mod, %dlogits weights(%wt, %wi)
        groups [...] : (...) -> (tensor<2x8x32xf32>, tensor<32x4xf32>,
                                 tensor<32x4xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Moma_TokenIdsTensor:$modality,
                       Moma_TokenColumnsTensor:$dlogits,
                       Variadic<Moma_FloatTensor>:$weights,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_ActivationTensor:$dx,
                      Variadic<Moma_FloatTensor>:$dweights);
  let assemblyFormat = [{
    $x `,` $modality `,` $dlogits `weights` `(` $weights `)` `groups` $groups
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_RouteGradOp : Moma_Op<"route_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "Gradient of moma.route's gates with respect to the logits";
  let description = [{
    The selection is discrete: only the gates carry a gradient. For the plan
    that `moma.route` made from these logits (`slot_token`,
    `expert_offsets`) and the gradient `d_slot_gate` of its gates: slot `s`
    of global expert `e` (local expert `j` of group `g`) adds
    `d_slot_gate[s]` to `dgate[t, j]` for its token `t`. With `renormalize`
    (gates `s_j / S`, `S` the sum of the token's chosen scores)
    `ds_j = (dgate_j - sum_k dgate_k gate_k) / S` over the chosen `j`
    (0 when `S` is 0); otherwise `ds = dgate`. Then through the group's
    score: softmax `dlogits = s (ds - sum_j s_j ds_j)` over `j < E_g`,
    sigmoid `dlogits = ds s (1 - s)`. Tokens without a group and columns
    `j >= E_g` get 0.

    ```mlir
    %dlogits = moma.route_grad %logits, %mod, %tok, %off, %dgate groups [...]
        : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<16xi32>, tensor<9xi32>,
           tensor<16xf32>) -> tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$modality,
                       Moma_SlotTokenTensor:$slot_token,
                       Moma_ExpertOffsetsTensor:$expert_offsets,
                       Moma_SlotGateTensor:$d_slot_gate,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $logits `,` $modality `,` $slot_token `,` $expert_offsets `,`
    $d_slot_gate `groups` $groups attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_CombineGradOp : Moma_Op<"combine_grad", [Pure,
    AllTypesMatch<["expert_outputs", "d_outputs"]>,
    AllTypesMatch<["slot_gate", "d_gate"]>]> {
  let summary = "Gradient of moma.combine: a gated dispatch and the gates'";
  let description = [{
    For `y[t] = residual[t] + sum_{s : slot_token[s] = t} gate[s] ys[s]` and
    its gradient `dy`: `d_outputs[s] = gate[s] dy[slot_token[s]]` (combine's
    transpose, a dispatch scaled by the gates) and
    `d_gate[s] = ys[s] . dy[slot_token[s]]`; empty slots get 0. The
    residual's gradient is `dy` itself.

    ```mlir
    %dys, %dgate = moma.combine_grad %ys, %tok, %gate, %dy
        : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>,
           tensor<2x8x32xf32>) -> (tensor<16x32xf32>, tensor<16xf32>)
    ```
  }];
  let arguments = (ins Moma_SlotRowsTensor:$expert_outputs,
                       Moma_SlotTokenTensor:$slot_token,
                       Moma_SlotGateTensor:$slot_gate,
                       Moma_ActivationTensor:$dy);
  let results = (outs Moma_SlotRowsTensor:$d_outputs,
                      Moma_SlotGateTensor:$d_gate);
  let assemblyFormat = [{
    $expert_outputs `,` $slot_token `,` $slot_gate `,` $dy attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_AuxRouterGradOp : Moma_Op<"aux_router_grad", [Pure,
    AttrSizedOperandSegments, AllTypesMatch<["x", "dx"]>]> {
  let summary = "Gradient of moma.aux_router with respect to x and weights";
  let description = [{
    For the logits `z = silu(x W1) W2` of `moma.aux_router` (same weights,
    `modality` and `groups`) and their gradient `dz`: `u = x W1`,
    `dW2 = silu(u)^T dz`, `du = (dz W2^T) silu'(u)`, `dW1 = x^T du`,
    `dx = du W1^T`; untied weights and groups sum over their own tokens
    (columns `j >= E_g` carry nothing). One gradient per weight, in order.

    ```mlir
    %dx, %dw1, %dw2 = moma.aux_router_grad %x, %dz weights(%w1, %w2)
        : (tensor<2x8x32xf32>, tensor<2x8x1xf32>, tensor<32x16xf32>,
           tensor<16x1xf32>)
        -> (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x1xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Moma_TokenColumnsTensor:$dz,
                       Variadic<Moma_FloatTensor>:$weights,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       OptionalAttr<Moma_ExpertGroupArrayAttr>:$groups);
  let results = (outs Moma_ActivationTensor:$dx,
                      Variadic<Moma_FloatTensor>:$dweights);
  let assemblyFormat = [{
    $x `,` $dz `weights` `(` $weights `)` (`modality` $modality^)?
    (`groups` $groups^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Routing losses
//===----------------------------------------------------------------------===//

def Moma_LoadBalancingLossGradOp : Moma_Op<"load_balancing_loss_grad", [Pure,
    AllTypesMatch<["logits", "result"]>,
    AllElementTypesMatch<["logits", "d_loss"]>]> {
  let summary = "Gradient of moma.load_balancing_loss w.r.t. the logits";
  let description = [{
    The counts `f_j` are discrete; the mean scores `P_j` carry the gradient:
    with `n` the number of token-choice groups with tokens,
    `ds[t, j] = d_loss E_g f_j / (n b_g)` for the tokens of such a group,
    then through the group's score as in `moma.route_grad`. Other tokens
    and columns get 0.

    ```mlir
    %dl = moma.load_balancing_loss_grad %logits, %mod, %off, %d groups [...]
        : (tensor<2x8x8xf32>, tensor<2x8xi32>, tensor<9xi32>, tensor<f32>)
        -> tensor<2x8x8xf32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$modality,
                       Moma_ExpertOffsetsTensor:$expert_offsets,
                       Moma_ScalarTensor:$d_loss,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $logits `,` $modality `,` $expert_offsets `,` $d_loss `groups` $groups
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_RouterZLossGradOp : Moma_Op<"router_z_loss_grad", [Pure,
    AllTypesMatch<["logits", "result"]>,
    AllElementTypesMatch<["logits", "d_loss"]>]> {
  let summary = "Gradient of moma.router_z_loss with respect to the logits";
  let description = [{
    `dlogits[t, j] = d_loss * 2 lse_t softmax(logits[t, :E_g])_j / N` for
    the `N` routed tokens (`lse_t` their log-sum-exp), `j < E_g`; 0
    elsewhere.

    ```mlir
    %dl = moma.router_z_loss_grad %logits, %mod, %d groups [...]
        : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<f32>)
        -> tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$modality,
                       Moma_ScalarTensor:$d_loss,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $logits `,` $modality `,` $d_loss `groups` $groups attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_AuxRouterLossGradOp : Moma_Op<"aux_router_loss_grad", [Pure,
    AllTypesMatch<["logits", "targets", "result"]>,
    AllElementTypesMatch<["logits", "d_loss"]>]> {
  let summary = "Gradient of moma.aux_router_loss with respect to the logits";
  let description = [{
    `dz = d_loss (sigmoid(z) - target) / N` for the `N` entries with
    `target >= 0`, 0 for the others. The targets (discrete choices) get
    none.

    ```mlir
    %dz = moma.aux_router_loss_grad %z, %t, %d
        : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<f32>)
        -> tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenColumnsTensor:$targets,
                       Moma_ScalarTensor:$d_loss);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $logits `,` $targets `,` $d_loss attr-dict `:`
    functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Mixture-of-depths
//===----------------------------------------------------------------------===//

def Moma_DepthRouteGradOp : Moma_Op<"depth_route_grad", [Pure,
    AllTypesMatch<["x", "dx"]>, AllTypesMatch<["weight", "dweight"]>]> {
  let summary = "Gradient of moma.depth_route's gates w.r.t. x and the weight";
  let description = [{
    The kept positions are discrete; the gates `r[b, idx[b, k]]`,
    `r = sigmoid(x . w)`, carry the gradient: `dr[b, l] = dgate[b, k]` where
    `indices[b, k] = l` (indices outside `[0, L)` contribute nothing),
    `dz = dr r (1 - r)`, `dx = dz w^T`, `dweight = sum_t x[t]^T dz[t]`.

    ```mlir
    %dx, %dw = moma.depth_route_grad %x, %w, %idx, %dgate
        : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x2xi32>,
           tensor<2x2xf32>) -> (tensor<2x8x32xf32>, tensor<32x1xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x, Moma_FloatTensor:$weight,
                       Moma_KeptIdsTensor:$indices,
                       Moma_KeptGateTensor:$dgate);
  let results = (outs Moma_ActivationTensor:$dx, Moma_FloatTensor:$dweight);
  let assemblyFormat = [{
    $x `,` $weight `,` $indices `,` $dgate attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_DepthBlendGradOp : Moma_Op<"depth_blend_grad", [Pure,
    AllTypesMatch<["kept_x", "kept_out", "d_out", "d_kept_x"]>]> {
  let summary = "Gradient of a depth region's blend into the residual stream";
  let description = [{
    For `moma.depth_region`'s result `y[b, idx[b, k]] = xs + gate (o - xs)`
    (or `= o` without a gate) and its gradient `dy`: with
    `dys[b, k] = dy[b, idx[b, k]]` (0 for empty slots),
    `d_out = gate dys`, `d_kept_x = (1 - gate) dys` and
    `d_gate[b, k] = dys . (o - xs)`; without a gate `d_out = dys`,
    `d_kept_x = 0` and there is no `d_gate`. `kept_x` and `kept_out` are
    the region's `xs` and `o`.

    ```mlir
    %do, %dxs, %dg = moma.depth_blend_grad %dy, %idx, %xs, %o gate %g
        : (tensor<2x8x32xf32>, tensor<2x2xi32>, tensor<2x2x32xf32>,
           tensor<2x2x32xf32>, tensor<2x2xf32>)
        -> (tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$dy,
                       Moma_KeptIdsTensor:$indices,
                       Moma_ActivationTensor:$kept_x,
                       Moma_ActivationTensor:$kept_out,
                       Optional<Moma_KeptGateTensor>:$gate);
  let results = (outs Moma_ActivationTensor:$d_out,
                      Moma_ActivationTensor:$d_kept_x,
                      Optional<Moma_KeptGateTensor>:$d_gate);
  let assemblyFormat = [{
    $dy `,` $indices `,` $kept_x `,` $kept_out (`gate` $gate^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_DepthScatterGradOp : Moma_Op<"depth_scatter_grad", [Pure,
    AllTypesMatch<["dy", "result"]>]> {
  let summary = "Gradient of a depth region's input: kept rows replaced";
  let description = [{
    `dx = dy`, then `dx[b, idx[b, k]] = d_kept_x[b, k]` for every non-empty
    slot: a kept row reaches the region's result only through the body
    and the blend, whose gradient with respect to the kept rows `xs` is
    `d_kept_x`.

    ```mlir
    %dx = moma.depth_scatter_grad %dy, %idx, %dxs
        : (tensor<2x8x32xf32>, tensor<2x2xi32>, tensor<2x2x32xf32>)
        -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$dy,
                       Moma_KeptIdsTensor:$indices,
                       Moma_ActivationTensor:$d_kept_x);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $dy `,` $indices `,` $d_kept_x attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // MOMA_DIALECT_MOMAGRADIENTOPS_TD
