//===- MomaOps.td - moma operations ------------------------*- tablegen -*-===//
//
// Tensor-level operations of sparse multimodal transformers. The exact
// numerical semantics of every op is fixed in Semantics.md beside this file.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_DIALECT_MOMAOPS_TD
#define MOMA_DIALECT_MOMAOPS_TD

include "dialects/moma/MomaDialect.td"
include "dialects/moma/MomaAttrs.td"
include "dialects/moma/MomaInterfaces.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

/// Static-shaped floating-point tensor (weights whose rank depends on the
/// op's form, e.g. tied `[K, N]` or untied `[M, K, N]`).
def Moma_FloatTensor : StaticShapeTensorOf<[AnyFloat]>;
/// A static-shaped tensor of fixed rank whose dimensions mean `meaning`; the
/// ODS message names the rank, the meaning and the element types.
class Moma_TensorOfRank<list<Type> elements, int rank, string meaning>
    : RankedTensorOf<elements, [HasStaticShapePred, HasAnyRankOfPred<[rank]>],
                     "statically shaped rank-" # rank # " " # meaning #
                     " tensor">;

/// Activations.
def Moma_ActivationTensor
    : Moma_TensorOfRank<[AnyFloat], 3, "[batch, sequence, features]">;
/// Per-token columns: router logits, scores, masks.
def Moma_TokenColumnsTensor
    : Moma_TensorOfRank<[AnyFloat], 3, "[batch, sequence, columns]">;
/// One float per token (per-token scale factors).
def Moma_TokenFloatTensor
    : Moma_TensorOfRank<[AnyFloat], 2, "[batch, sequence]">;
/// One i32 per token: token ids, modality ids, targets, positions.
def Moma_TokenIdsTensor : Moma_TensorOfRank<[I32], 2, "[batch, sequence]">;
/// Routing plans: the token and the gate of every slot, the expert offsets.
def Moma_SlotTokenTensor : Moma_TensorOfRank<[I32], 1, "[slots]">;
def Moma_SlotGateTensor : Moma_TensorOfRank<[AnyFloat], 1, "[slots]">;
def Moma_ExpertOffsetsTensor
    : Moma_TensorOfRank<[I32], 1, "[experts + 1]">;
/// Token rows in slot order.
def Moma_SlotRowsTensor
    : Moma_TensorOfRank<[AnyFloat], 2, "[slots, features]">;
/// Weights stacked per expert.
def Moma_ExpertWeightTensor
    : Moma_TensorOfRank<[AnyFloat], 3, "[experts, rows, columns]">;
/// Mixture-of-depths selections: kept positions and their gates.
def Moma_KeptIdsTensor : Moma_TensorOfRank<[I32], 2, "[batch, kept]">;
def Moma_KeptGateTensor : Moma_TensorOfRank<[AnyFloat], 2, "[batch, kept]">;
/// A loss.
def Moma_ScalarTensor : Moma_TensorOfRank<[AnyFloat], 0, "scalar">;
/// Per-modality losses.
def Moma_ModalityLossTensor
    : Moma_TensorOfRank<[AnyFloat], 1, "[modalities]">;

/// A positive i64 attribute (head counts and sizes).
def Moma_PositiveI64Attr : ConfinedAttr<I64Attr, [IntPositive]>;

/// An op that may carry per-modality (untied) weights, with the modality ids
/// in its optional `modality` operand.
def Moma_Untied : DeclareOpInterfaceMethods<Moma_UntiedOpInterface>;
/// An op with a gradient rule (moma-autodiff).
def Moma_Differentiable : DeclareOpInterfaceMethods<Moma_GradientOpInterface>;

//===----------------------------------------------------------------------===//
// Embedding, normalisation, projections
//===----------------------------------------------------------------------===//

def Moma_EmbedOp : Moma_Op<"embed", [Moma_Differentiable, Pure, Moma_Untied,
    AllElementTypesMatch<["table", "result"]>]> {
  let summary = "Token embedding lookup";
  let description = [{
    Looks up `table[ids[b, l]]` for every position. The table is `[V, D]`,
    or `[M, V, D]` with a `modality` operand (one table per modality). When
    the module declares modalities, `V` must cover every declared token
    range.

    ```mlir
    %h = moma.embed %ids, %table
        : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_TokenIdsTensor:$ids, Moma_FloatTensor:$table,
                       Optional<Moma_TokenIdsTensor>:$modality);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $ids `,` $table (`modality` $modality^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_NormOp : Moma_Op<"norm", [Moma_Differentiable, Pure, AttrSizedOperandSegments,
                                   Moma_Untied,
                                   AllTypesMatch<["x", "result"]>]> {
  let summary = "RMSNorm or LayerNorm over the feature dimension";
  let description = [{
    `rms`: `y = x / sqrt(mean(x^2) + epsilon) * weight`.
    `layer`: `y = (x - mean(x)) / sqrt(var(x) + epsilon) * weight + bias`
    (biased variance; `bias` is optional and only allowed for `layer`).
    `weight` and `bias` are `[D]`, or `[M, D]` with a `modality` operand
    (MoT untied norms).

    ```mlir
    %y = moma.norm rms %x, %w {epsilon = 1.0e-05 : f64}
        : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_NormKind:$kind, Moma_ActivationTensor:$x,
                       Moma_FloatTensor:$weight,
                       Optional<Moma_FloatTensor>:$bias,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       DefaultValuedAttr<F64Attr, "1.0e-5">:$epsilon);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $kind $x `,` $weight (`bias` $bias^)? (`modality` $modality^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_LinearOp : Moma_Op<"linear", [Moma_Differentiable, Pure, AttrSizedOperandSegments,
                                       Moma_Untied]> {
  let summary = "Affine projection, optionally untied per modality, with LoRA";
  let description = [{
    `y = x W + bias + lora_scale * (x A) B` over the last dimension:
    `x` is `[B, L, K]`, `W` is `[K, N]`, `bias` `[N]`, and the optional LoRA
    adapter (Uni-MoE) is `A: [K, r]`, `B: [r, N]`. With a `modality` operand
    every weight gains a leading `[M]` dimension and token `t` uses slice
    `modality[t]` (Mixture-of-Transformers).

    ```mlir
    %q = moma.linear %x, %w modality %mod
        : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x8xi32>)
        -> tensor<2x8x64xf32>
    %y = moma.linear %x, %w lora(%a, %b) {lora_scale = 2.0 : f64}
        : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<32x4xf32>,
           tensor<4x64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x, Moma_FloatTensor:$weight,
                       Optional<Moma_FloatTensor>:$bias,
                       Optional<Moma_FloatTensor>:$lora_a,
                       Optional<Moma_FloatTensor>:$lora_b,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       DefaultValuedAttr<F64Attr, "1.0">:$lora_scale);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight (`bias` $bias^)? (`lora` `(` $lora_a^ `,` $lora_b `)`)?
    (`modality` $modality^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_FfnOp : Moma_Op<"ffn", [Moma_Differentiable, Pure, Moma_Untied,
    AllTypesMatch<["x", "result"]>,
    AllElementTypesMatch<["x", "w_in", "w_out"]>]> {
  let summary = "Dense feed-forward block (SwiGLU or GELU)";
  let description = [{
    `swiglu`: `w_in` is `[D, 2F]` (gate columns first, then up columns),
    `y = (silu(x w_in[:, :F]) * (x w_in[:, F:])) w_out`.
    `gelu`: `w_in` is `[D, F]`, `y = gelu(x w_in) w_out` (exact erf GELU).
    `w_out` is `[F, D]`. With a `modality` operand both weights gain a
    leading `[M]` dimension (MoT untied FFN).

    ```mlir
    %y = moma.ffn swiglu %x, %w_in, %w_out
        : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>)
        -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_Activation:$activation, Moma_ActivationTensor:$x,
                       Moma_FloatTensor:$w_in, Moma_FloatTensor:$w_out,
                       Optional<Moma_TokenIdsTensor>:$modality);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $activation $x `,` $w_in `,` $w_out (`modality` $modality^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def Moma_AttentionOp : Moma_Op<"attention", [Moma_Differentiable, Pure, AttrSizedOperandSegments,
    Moma_Untied, AllTypesMatch<["x", "result"]>,
    AllElementTypesMatch<["x", "wq", "wk", "wv", "wo"]>]> {
  let summary = "Global multi-head self-attention with GQA and RoPE";
  let description = [{
    Self-attention over the whole mixed-modality sequence with its Q/K/V/O
    projections: `wq: [D, H*d]`, `wk, wv: [D, G*d]`, `wo: [H*d, D]` for
    `heads = H`, `kv_heads = G` (grouped-query attention, `H % G == 0`) and
    `head_dim = d`. With a `modality` operand every projection gains a
    leading `[M]` dimension (Mixture-of-Transformers); attention itself stays
    global. `rope_theta > 0` applies rotary embeddings (rotate-half form) at
    the token positions, which are `positions[b, l]` when given (a
    mixture-of-depths block passes the original positions of the kept
    tokens) and `l` otherwise. With `causal` (the default) a key is visible
    iff its position is at most the query's; keys at negative positions
    (padding) are never visible.

    ```mlir
    %y = moma.attention %x, %wq, %wk, %wv, %wo heads 4 kv_heads 2 head_dim 8
        {rope_theta = 1.0e+04 : f64}
        : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>,
           tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x, Moma_FloatTensor:$wq,
                       Moma_FloatTensor:$wk, Moma_FloatTensor:$wv,
                       Moma_FloatTensor:$wo,
                       Optional<Moma_TokenIdsTensor>:$positions,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       Moma_PositiveI64Attr:$heads,
                       Moma_PositiveI64Attr:$kv_heads,
                       Moma_PositiveI64Attr:$head_dim,
                       DefaultValuedAttr<F64Attr, "0.0">:$rope_theta,
                       DefaultValuedAttr<BoolAttr, "true">:$causal);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $x `,` $wq `,` $wk `,` $wv `,` $wo (`positions` $positions^)?
    (`modality` $modality^)? `heads` $heads `kv_heads` $kv_heads
    `head_dim` $head_dim attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Modality-aware mixture of experts: router, routing plan, dispatch,
// grouped experts, combine
//===----------------------------------------------------------------------===//

def Moma_RouterOp : Moma_Op<"router", [Moma_Differentiable, Pure]> {
  let summary = "Per-modality-group router logits";
  let description = [{
    Computes `logits[t, j] = x[t] . W_g[:, j]` with the router weight of the
    expert group `g` that serves `modality[t]` (hierarchical routing: the
    modality picks the group, the group's router scores its experts). There
    is one weight `[D, E_g]` per group, in group order. The result is
    `[B, L, E_max]` with `E_max` the largest group; entries `j >= E_g` and
    rows of modalities without a group are 0.

    ```mlir
    %logits = moma.router %x, %mod weights(%wt, %wi) groups [
        #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>,
        #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>]
        : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>,
           tensor<32x4xf32>) -> tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Moma_TokenIdsTensor:$modality,
                       Variadic<Moma_FloatTensor>:$weights,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_TokenColumnsTensor:$logits);
  let assemblyFormat = [{
    $x `,` $modality `weights` `(` $weights `)` `groups` $groups attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_RouteOp : Moma_Op<"route", [Moma_Differentiable, Pure, AttrSizedOperandSegments]> {
  let summary = "Modality-grouped routing: logits to an expert-major plan";
  let description = [{
    Turns router logits into a *routing plan* with a static number of slots
    `S`:

    - `slot_token: [S] i32`: the flattened token index (`b * L + l`) each slot
      carries, or `-1` for an empty slot;
    - `slot_gate: [S]`: the gate weight of the slot (0 for empty slots);
    - `expert_offsets: [E_total + 1] i32`: slots `[off[e], off[e+1])` belong
      to expert `e` (experts numbered group by group in `groups` order),
      sorted by ascending token index.

    Each group routes only the tokens of its modality: `token_choice` picks
    the `top_k` best experts per token, `expert_choice` lets every expert pick
    `floor(b_g * capacity / E_g)` tokens out of the `b_g` group tokens of the
    whole batch (balanced by construction). The optional `aux` logits
    (`[B, L, E_max]`, from `moma.aux_router`) replace expert-choice selection
    by the causal rule "expert `j` takes token `t` iff `aux[t, j] > 0`" (the
    predicted probability `sigmoid(aux)` exceeds 1/2) for inference. `S` must be at least `ceil(B * L * m)`, `m` the largest
    `top_k` / `capacity` over the groups (`E_g` for expert-choice groups when
    `aux` is given), so that a plan never overflows.

    The optional `positions` (`[B, L] i32`) are the tokens' positions in
    the unpermuted sequence (moma-hoist-modality-permutation runs the
    network in modality-sorted order): expert-choice ties then go to the
    token of the lower `(b, positions[b, l])` instead of the lower
    `b * L + l`, so that a permuted program selects what the unpermuted one
    does. Token-choice selection does not depend on token order.

    ```mlir
    %tok, %gate, %off = moma.route %logits, %mod groups [
        #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>,
        #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>]
        : (tensor<2x8x4xf32>, tensor<2x8xi32>)
        -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$modality,
                       Optional<Moma_TokenColumnsTensor>:$aux,
                       Optional<Moma_TokenIdsTensor>:$positions,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_SlotTokenTensor:$slot_token,
                      Moma_SlotGateTensor:$slot_gate,
                      Moma_ExpertOffsetsTensor:$expert_offsets);
  let assemblyFormat = [{
    $logits `,` $modality (`aux` $aux^)? (`positions` $positions^)?
    `groups` $groups attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The smallest slot count that can never overflow for these groups and
    /// `numTokens` tokens (see the description).
    static int64_t getRequiredSlots(::llvm::ArrayRef<ExpertGroupAttr> groups,
                                    int64_t numTokens, bool withAux);
  }];
}

def Moma_DispatchOp : Moma_Op<"dispatch", [Moma_Differentiable, Pure,
    AllElementTypesMatch<["x", "result"]>]> {
  let summary = "Gather tokens into expert-major slot order";
  let description = [{
    `y[s] = x[slot_token[s]]` over the flattened tokens of `x: [B, L, D]`;
    empty slots (`-1`) give zero rows. The result `[S, D]` feeds
    `moma.experts`; convert-moma-to-linalg lowers it to a gather
    (`tensor.extract` of the slot's row).

    ```mlir
    %xs = moma.dispatch %x, %tok
        : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Moma_SlotTokenTensor:$slot_token);
  let results = (outs Moma_SlotRowsTensor:$result);
  let assemblyFormat = [{
    $x `,` $slot_token attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_ExpertsOp : Moma_Op<"experts", [Moma_Differentiable, Pure,
    AllTypesMatch<["tokens", "result"]>]> {
  let summary = "Grouped expert FFN over a ragged expert-major slot array";
  let description = [{
    Slot `s` in `[expert_offsets[e], expert_offsets[e+1])` computes the FFN of
    expert `e` on `tokens[s]` (`swiglu` or `gelu`, as in `moma.ffn`), with
    stacked weights `w_in: [E, D, 2F]` (swiglu) or `[E, D, F]` (gelu) and
    `w_out: [E, F, D]`. Slots outside `[off[0], off[E])` give 0. The optional
    LoRA adapters (Uni-MoE) are four stacked tensors
    `A_in: [E, D, r], B_in: [E, r, 2F or F], A_out: [E, F, r], B_out: [E, r, D]`,
    added as `lora_scale * (x A) B` to each projection. Ragged, no padding:
    every slot reads the weights of its own expert.

    ```mlir
    %ys = moma.experts swiglu %xs, %off, %w_in, %w_out
        : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>,
           tensor<8x64x32xf32>) -> tensor<16x32xf32>
    ```
  }];
  let arguments = (ins Moma_Activation:$activation,
                       Moma_SlotRowsTensor:$tokens,
                       Moma_ExpertOffsetsTensor:$expert_offsets,
                       Moma_ExpertWeightTensor:$w_in,
                       Moma_ExpertWeightTensor:$w_out,
                       Variadic<Moma_ExpertWeightTensor>:$lora,
                       DefaultValuedAttr<F64Attr, "1.0">:$lora_scale);
  let results = (outs Moma_SlotRowsTensor:$result);
  let assemblyFormat = [{
    $activation $tokens `,` $expert_offsets `,` $w_in `,` $w_out
    (`lora` `(` $lora^ `)`)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_CombineOp : Moma_Op<"combine", [Moma_Differentiable, Pure]> {
  let summary = "Gate-weighted scatter-add of expert outputs to token order";
  let description = [{
    `y[t] = residual[t] + sum_{s : slot_token[s] = t} slot_gate[s] * ys[s]`,
    summed in ascending slot order (deterministic, no atomics), over the
    flattened tokens of the `[B, L, D]` result. Without `residual` the base
    is 0. Tokens that no expert took keep the base value.

    ```mlir
    %y = moma.combine %ys, %tok, %gate residual %x
        : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>,
           tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_SlotRowsTensor:$expert_outputs,
                       Moma_SlotTokenTensor:$slot_token,
                       Moma_SlotGateTensor:$slot_gate,
                       Optional<Moma_ActivationTensor>:$residual);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $expert_outputs `,` $slot_token `,` $slot_gate (`residual` $residual^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Mixture-of-depths
//===----------------------------------------------------------------------===//

def Moma_DepthRouteOp : Moma_Op<"depth_route", [Moma_Differentiable, Pure,
    AttrSizedOperandSegments]> {
  let summary = "Mixture-of-depths router: keep a fraction of each sequence";
  let description = [{
    Scores every position with `r = sigmoid(x . w)` (`w: [D, 1]`) and keeps,
    per sequence, the `K = floor(L * capacity_factor)` highest-scoring
    positions (ties: lower position first), listed in ascending position
    order (`indices: [B, K] i32`), with their scores as gates
    (`gate: [B, K]`). With `aux` logits (`[B, L, 1]`, from
    `moma.aux_router`, causal inference) it keeps the positions whose logit
    is positive instead: then `K = L` and unused trailing slots hold index
    `-1` and gate 0.

    The optional `positions` (`[B, L] i32`, the positions in the unpermuted
    sequence, see moma-hoist-modality-permutation) break score ties instead
    of `l`: the lower `positions[b, l]` wins. The kept indices are still
    listed in ascending `l`, the order the tokens have in `x`.

    ```mlir
    %idx, %g = moma.depth_route %x, %w {capacity_factor = 2.5e-01 : f64}
        : (tensor<2x8x32xf32>, tensor<32x1xf32>)
        -> (tensor<2x2xi32>, tensor<2x2xf32>)
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x, Moma_FloatTensor:$weight,
                       Optional<Moma_TokenColumnsTensor>:$aux,
                       Optional<Moma_TokenIdsTensor>:$positions,
                       F64Attr:$capacity_factor);
  let results = (outs Moma_KeptIdsTensor:$indices,
                      Moma_KeptGateTensor:$gate);
  let assemblyFormat = [{
    $x `,` $weight (`aux` $aux^)? (`positions` $positions^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_DepthRegionOp : Moma_Op<"depth_region", [
    RecursiveMemoryEffects, SingleBlock, AttrSizedOperandSegments,
    AllTypesMatch<["x", "result"]>]> {
  let summary = "Run a block only on the tokens a depth router kept";
  let description = [{
    Gathers the kept tokens `xs[b, k] = x[b, indices[b, k]]`, their modality
    ids and their original positions, runs the body once on these
    `[B, K, ...]` tensors, and scatters the yielded rows back: kept position
    `p` becomes `o` (ungated) or `xs + gate * (o - xs)` (gated:
    mixture-of-depths' `x + r * f(x)` with the block's residual branch
    `f = o - xs`). All other positions pass through unchanged on the residual
    stream. Empty slots (index `-1`) are padding rows: modality and position
    `-1`, zero input, output discarded. The body may yield extra values after
    the block output (for example the auxiliary losses of an MoE inside the
    block); the region returns them unchanged as its further results.

    The body's positions are `indices` themselves, or with the optional
    `positions` operand (`[B, L] i32`, the positions in the unpermuted
    sequence, see moma-hoist-modality-permutation)
    `positions[b, indices[b, k]]`.

    ```mlir
    %y = moma.depth_region %x, %mod, %idx gate %g
        : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>,
           tensor<2x2xf32>) -> tensor<2x8x32xf32> {
    ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
      %h = moma.attention %xs, %wq, %wk, %wv, %wo positions %ps heads 4
          kv_heads 2 head_dim 8 : (...) -> tensor<2x2x32xf32>
      moma.yield %h : tensor<2x2x32xf32>
    }
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Moma_TokenIdsTensor:$modality,
                       Moma_KeptIdsTensor:$indices,
                       Optional<Moma_KeptGateTensor>:$gate,
                       Optional<Moma_TokenIdsTensor>:$positions);
  let results = (outs Moma_ActivationTensor:$result,
                      Variadic<AnyType>:$extras);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $x `,` $modality `,` $indices (`gate` $gate^)?
    (`positions` $positions^)? attr-dict `:`
    functional-type(operands, results) $body
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let hasCanonicalizer = 1;
}

def Moma_YieldOp : Moma_Op<"yield", [Pure, ReturnLike, Terminator,
                                     HasParent<"DepthRegionOp">]> {
  let summary = "Terminates a depth region with the block's output";
  let description = [{
    Yields the `[B, K, D]` output of the block that a `moma.depth_region`
    runs on its kept tokens, then any extra values the region returns.

    ```mlir
    moma.yield %h : tensor<2x2x32xf32>
    ```
  }];
  let arguments = (ins Moma_FloatTensor:$value, Variadic<AnyType>:$extras);
  let assemblyFormat = [{
    $value (`,` $extras^)? attr-dict `:` type($value) (`,` type($extras)^)?
  }];
}

def Moma_ScaleOp : Moma_Op<"scale", [Pure, AllTypesMatch<["x", "result"]>,
    AllElementTypesMatch<["x", "scale"]>]> {
  let summary = "Scale every token's feature vector by a per-token factor";
  let description = [{
    `y[b, l, :] = scale[b, l] * x[b, l, :]`.

    ```mlir
    %y = moma.scale %x, %s
        : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Moma_TokenFloatTensor:$scale);
  let results = (outs Moma_ActivationTensor:$result);
  let assemblyFormat = [{
    $x `,` $scale attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Auxiliary routers (causal inference for expert-choice and MoD)
//===----------------------------------------------------------------------===//

def Moma_AuxRouterOp : Moma_Op<"aux_router", [Moma_Differentiable, Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<Moma_UntiedOpInterface, ["getModalityIds"]>]> {
  let summary = "Causal auxiliary router: the logits silu(x W1) W2";
  let description = [{
    Predicts, from a token alone, whether the (non-causal) expert-choice or
    mixture-of-depths router of the whole batch would select it, as the
    logits `z = silu(x W1) W2` (MoMa: `W1: [D, D/2]`) of the probability
    `sigmoid(z)`; no sigmoid is applied, so that the loss and the selection
    work on the logits directly.

    - Without `groups`: `weights(W1: [D, H], W2: [H, N])`, the same for every
      token (a mixture-of-depths auxiliary router has `N = 1`). With a
      `modality` operand both gain a leading `[M]` dimension (untied).
    - With `groups` (one auxiliary router per expert group, as MoMa trains
      them): `weights(W1_0, W2_0, W1_1, W2_1, ...)` with `W1_g: [D, H_g]`,
      `W2_g: [H_g, E_g]`, and the `modality` operand routes each token to its
      group's router. The result is `[B, L, N]` with `N` at least the largest
      group; columns `j >= E_g` and tokens outside every group are 0.

    Feed the result to the `aux` operand of `moma.route` / `moma.depth_route`
    at inference (they select where `z > 0`). Its training objective is
    `moma.aux_router_loss` (binary cross-entropy with logits); it reads
    its input through a `moma.stop_gradient`, which marks that this loss must
    not change the main model.

    ```mlir
    %z = moma.aux_router %x weights(%w1, %w2)
        : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x1xf32>)
        -> tensor<2x8x1xf32>
    %q = moma.aux_router %x weights(%a1, %a2, %b1, %b2) modality %mod
        groups [#text, #image] : (...) -> tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Moma_ActivationTensor:$x,
                       Variadic<Moma_FloatTensor>:$weights,
                       Optional<Moma_TokenIdsTensor>:$modality,
                       OptionalAttr<Moma_ExpertGroupArrayAttr>:$groups);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $x `weights` `(` $weights `)` (`modality` $modality^)?
    (`groups` $groups^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_StopGradientOp : Moma_Op<"stop_gradient", [Moma_Differentiable, Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "Identity in the forward pass; blocks gradients";
  let description = [{
    Returns its operand unchanged, and marks a value that gradients must not
    flow through: moma-autodiff sends no gradient to its operand, and the
    PyTorch reference (`tools/moma-reference`) detaches the value here.
    MoMa's auxiliary routers read the residual stream through it, so their
    loss trains only their own weights.

    ```mlir
    %xs = moma.stop_gradient %x : tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Moma_RouteMaskOp : Moma_Op<"route_mask", [Pure]> {
  let summary = "The selections of a routing plan as a dense target mask";
  let description = [{
    `mask[b, l, j]` is 1 where local expert `j` of the token's group took the
    token in the plan, 0 where it did not, and -1 (ignored by
    `moma.aux_router_loss`) for `j >= E_g`, for tokens of modalities without
    a group, and for tokens of token-choice groups (auxiliary routers only
    predict expert-choice selections). This is the training target of the
    auxiliary routers.

    ```mlir
    %t = moma.route_mask %tok, %off, %mod groups [...]
        : (tensor<16xi32>, tensor<9xi32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
    ```
  }];
  let arguments = (ins Moma_SlotTokenTensor:$slot_token,
                       Moma_ExpertOffsetsTensor:$expert_offsets,
                       Moma_TokenIdsTensor:$modality,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $slot_token `,` $expert_offsets `,` $modality `groups` $groups attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_DepthMaskOp : Moma_Op<"depth_mask", [Pure]> {
  let summary = "The positions a depth router kept, as a dense mask";
  let description = [{
    `mask[b, l, 0]` is 1 if `l` is among `indices[b, :]`, else 0: the training
    target of a mixture-of-depths auxiliary router.

    ```mlir
    %t = moma.depth_mask %idx : (tensor<2x2xi32>) -> tensor<2x8x1xf32>
    ```
  }];
  let arguments = (ins Moma_KeptIdsTensor:$indices);
  let results = (outs Moma_TokenColumnsTensor:$result);
  let assemblyFormat = [{
    $indices attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Token order: the hoisted modality permutation
//===----------------------------------------------------------------------===//

def Moma_ModalitySortOp : Moma_Op<"modality_sort", [Pure,
    AllTypesMatch<["modality", "order", "inverse"]>]> {
  let summary = "The modality-sorted order of every batch row";
  let description = [{
    Sorts every row of `modality` stably by ascending modality id:
    `order[b, k]` is the position `l` of the `k`-th token of row `b` in that
    order (ties, equal ids, keep ascending `l`), and `inverse[b, l]` is the
    `k` of position `l`, so `order[b, inverse[b, l]] = l`. The rows stay
    apart: attention stays per row. moma-hoist-modality-permutation
    computes it once per batch and gathers the token inputs with it
    (`moma.permute`).

    ```mlir
    %order, %inverse = moma.modality_sort %mod : tensor<2x8xi32>
    ```
  }];
  let arguments = (ins Moma_TokenIdsTensor:$modality);
  let results = (outs Moma_TokenIdsTensor:$order,
                      Moma_TokenIdsTensor:$inverse);
  let assemblyFormat = "$modality attr-dict `:` type($modality)";
}

def Moma_PermuteOp : Moma_Op<"permute", [Moma_Differentiable, Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "Reorder the tokens of every batch row";
  let description = [{
    `y[b, k, ...] = x[b, order[b, k], ...]` for an `x` of shape
    `[B, L, ...]` (any element type) and `order: [B, L] i32`. An index
    outside `[0, L)` gives 0 (never a read out of bounds). With a
    `moma.modality_sort`'s `order` it puts tokens in modality order, with
    its `inverse` back in sequence order.

    ```mlir
    %ys = moma.permute %x, %order
        : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins StaticShapeTensorOf<[AnyType]>:$input,
                       Moma_TokenIdsTensor:$order);
  let results = (outs StaticShapeTensorOf<[AnyType]>:$result);
  let assemblyFormat = [{
    $input `,` $order attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

def Moma_CrossEntropyOp : Moma_Op<"cross_entropy", [Moma_Differentiable, Pure,
    AllElementTypesMatch<["per_modality", "total"]>]> {
  let summary = "Next-token cross-entropy, per modality and overall";
  let description = [{
    `-log softmax(logits[t])[targets[t]]` averaged over the targets of each
    declared modality (`per_modality: [M]`, 0 for a modality without targets)
    and over all targets (`total`). Targets of `-1` are ignored; the caller
    shifts targets for next-token prediction.

    ```mlir
    %per, %all = moma.cross_entropy %logits, %targets, %tmod
        : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>)
        -> (tensor<2xf32>, tensor<f32>)
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$targets,
                       Moma_TokenIdsTensor:$target_modality);
  let results = (outs Moma_ModalityLossTensor:$per_modality,
                      Moma_ScalarTensor:$total);
  let assemblyFormat = [{
    $logits `,` $targets `,` $target_modality attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_LoadBalancingLossOp : Moma_Op<"load_balancing_loss", [Moma_Differentiable, Pure,
    AllElementTypesMatch<["logits", "result"]>]> {
  let summary = "Switch-style load-balancing loss of token-choice groups";
  let description = [{
    For each token-choice group with tokens: `E_g * sum_j f_j * P_j` where
    `f_j` is expert `j`'s share of the group's `b_g * top_k` assignments
    (from `expert_offsets`) and `P_j` the mean score of expert `j` over the
    group's tokens; the result is the mean over those groups. Expert-choice
    groups are balanced by construction and do not take part.

    ```mlir
    %lb = moma.load_balancing_loss %logits, %mod, %off groups [...]
        : (tensor<2x8x8xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$modality,
                       Moma_ExpertOffsetsTensor:$expert_offsets,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_ScalarTensor:$result);
  let assemblyFormat = [{
    $logits `,` $modality `,` $expert_offsets `groups` $groups attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_RouterZLossOp : Moma_Op<"router_z_loss", [Moma_Differentiable, Pure,
    AllElementTypesMatch<["logits", "result"]>]> {
  let summary = "Router z-loss: mean squared log-sum-exp of router logits";
  let description = [{
    Mean over routed tokens of `logsumexp(logits[t, :E_g])^2` (ST-MoE), 0 when
    no token is routed.

    ```mlir
    %z = moma.router_z_loss %logits, %mod groups [...]
        : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenIdsTensor:$modality,
                       Moma_ExpertGroupArrayAttr:$groups);
  let results = (outs Moma_ScalarTensor:$result);
  let assemblyFormat = [{
    $logits `,` $modality `groups` $groups attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moma_AuxRouterLossOp : Moma_Op<"aux_router_loss", [Moma_Differentiable, Pure,
    AllElementTypesMatch<["logits", "targets", "result"]>]> {
  let summary = "Binary cross-entropy with logits of an auxiliary router";
  let description = [{
    Mean over the entries with `targets >= 0` of the binary cross-entropy
    of `p = sigmoid(z)` against `t`, `-(t log p + (1 - t) log(1 - p))`,
    computed from the logit `z` in the stable form
    `max(z, 0) - t z + log1p(exp(-|z|))` (PyTorch's
    `binary_cross_entropy_with_logits`): no clamping, exact also for a
    saturated router. 0 when no entry counts. Logits come from
    `moma.aux_router`, targets from `moma.route_mask` or `moma.depth_mask`.

    ```mlir
    %l = moma.aux_router_loss %z, %t
        : (tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Moma_TokenColumnsTensor:$logits,
                       Moma_TokenColumnsTensor:$targets);
  let results = (outs Moma_ScalarTensor:$result);
  let assemblyFormat = [{
    $logits `,` $targets attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

include "dialects/moma/MomaGradientOps.td"
include "dialects/moma/MomaOptimizerOps.td"

#endif // MOMA_DIALECT_MOMAOPS_TD
