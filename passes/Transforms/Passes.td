//===- Passes.td - moma transformation and analysis passes -*- tablegen -*-===//

#ifndef MOMA_PASSES_TRANSFORMS_PASSES_TD
#define MOMA_PASSES_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MomaFlopCount : Pass<"moma-flop-count", "::mlir::ModuleOp"> {
  let summary = "Count FLOPs per token by modality and op kind, and parameters";
  let description = [{
    An analysis over any `moma` IR; it prints a report and leaves the IR
    unchanged. For every function it counts the expected forward FLOPs per
    token of each declared modality, split by op kind (attention
    projections, attention scores, routers, dense FFN, experts, norms, LM
    head, auxiliary routers, other projections), the training FLOPs
    (forward + backward, counted as 3x forward), the FLOPs of the *dense
    baseline of the same width* (every expert group replaced by one dense
    FFN of the expert's size, mixture-of-depths regions run on every token,
    no routers) and the ratio between the two, and the parameters: total,
    embedding, and expected active per token of each modality.

    Counting rules (2 FLOPs per multiply-accumulate):
    - `linear`: `2 K N`, `+ N` with a bias, `+ 2 r (K + N)` with LoRA.
    - `ffn` / one expert slot: `6 D F` (SwiGLU) or `4 D F` (GELU), plus LoRA.
    - `attention`: projections `2 D d (2 H + 2 G)`; scores and the weighted
      sum `4 H d n` with `n` the mean number of visible keys, `(L + 1) / 2`
      when causal over a sequence of `L`, else `L`.
    - `router`: `2 D E_g` for a token of group `g`; `depth_route`: `2 D`.
    - `experts`: a token of modality `m` fills on average `top_k` or
      `capacity` slots of its group (expert-choice capacity `c` gives every
      token `c` experts in expectation).
    - `norm`: `4 D` (RMS) or `7 D` (layer, `+ D` with bias).
    - `aux_router`: `2 D H + 2 H N`.
    - A `depth_region` body counts with the kept fraction `K / L`, and its
      attention sees `K` keys.
    Activation functions, softmax, RoPE, gathers, scatters and losses are
    not counted: they are `O(D)` per token against `O(D F)` matrix work.

    Example: `moma-opt model.mlir --moma-flop-count -o /dev/null`.
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"-\"",
           "Where to write the report ('-' for stdout)">,
  ];
}

def MomaHoistModalityPermutation
    : Pass<"moma-hoist-modality-permutation", "::mlir::func::FuncOp"> {
  let summary = "Run the network in modality-sorted token order";
  let description = [{
    Runs on moma IR, on a function whose arguments carry
    `moma.input = "ids"` / `"modality"` (what the model builder makes).
    At the entry one `moma.modality_sort` orders every batch row stably by
    modality id (rows stay apart, so attention stays per row). The token
    inputs are gathered into that order (`moma.permute`) where the network
    first reads them, and every op downstream runs on modality-sorted
    rows, so per-modality (untied) weights and the modality groups of the
    routers read contiguous runs of rows.

    Exactness: every moma op is defined per token or over explicit
    positions, except the selections whose ties follow token order. The
    pass hands them the original positions (`order`): attention gets them
    as `positions` (RoPE angles and the causal mask are those of the
    unpermuted sequence); expert-choice `moma.route` and `moma.depth_route`
    get them as `positions`, which break score ties as the unpermuted token
    index did; `moma.depth_region` gets them as `positions`, so its body's
    `ps` are the original positions, and inside the body every route and
    depth route breaks ties by `ps` (the body sees its kept tokens in
    modality order, and ties by `(b, ps)` order them as the unpermuted body
    order `(b, k)` did). So the permuted program selects exactly the tokens
    the unpermuted one selects, mixture-of-depths included. What changes is
    only the order of sums over tokens: attention's softmax over keys and
    the means of the losses, which are order-independent up to rounding.

    Where order matters the pass gathers back with `inverse`: every token
    value the function returns, and every token operand of an op it does
    not know. The LM head (a modality-free `moma.linear` whose result is
    returned) runs in sequence order on the un-permuted `[B, L, D]` rows,
    so the `[B, L, V]` logits need no inverse gather and cross-entropy
    reads them with the original targets. Targets are gathered only for a
    cross-entropy whose logits are permuted (a loss-only program).

    A function in which no op selects weights by modality (no untied
    weights, no router or route) is left as it is: sorting would buy
    nothing there and cost the gathers.

    A function it cannot rewrite exactly (a routing plan that would leave
    the permuted program, an attention in a depth region without the
    region's positions, nested depth regions) is left unchanged, with a
    remark.

    Example: `moma-opt model.mlir --moma-hoist-modality-permutation`.
  }];
  let dependentDialects = ["::moma::MomaDialect"];
}

def MomaScratchArena : Pass<"moma-scratch-arena", "::mlir::ModuleOp"> {
  let summary = "Place every temporary buffer in one planned byte arena";
  let description = [{
    Runs on bufferized IR. In every function with a body, one block and no
    callers, each `memref.alloc` of a static shape and identity layout
    becomes a `memref.view` into a new last argument of the function,
    `memref<N x i8> {moma.scratch = N : i64}`, that the caller provides:
    running the function then allocates nothing, and the runtime places
    the arena in the program's memory with the inputs, weights and outputs.

    Offsets are planned by lifetime: a buffer lives from its allocation to
    the last use of it or of any view of it
    (`BufferViewFlowAnalysis`), counted in top-level operations of the
    function (a use inside a loop keeps the buffer live for the whole
    loop), and buffers whose lifetimes do not overlap share bytes (first
    fit in order of allocation; `reuse=false` gives each its own bytes).
    Every offset is a multiple of `alignment` and of the allocation's own
    alignment. Deallocations of placed buffers are erased.

    Left alone: allocations of dynamic shape, non-identity layout or a
    memory space; buffers that leave the function (returned, or passed to
    a call); allocations inside a loop or branch one of whose views
    is carried out of the region (a block argument or a result of an op
    with regions), since every instance would need its own place; and
    allocations inside an `scf.parallel` or `scf.forall`, whose iterations
    run at once on threads and each need their own instance.

    Example: `moma-opt bufferized.mlir --moma-scratch-arena`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
  let options = [
    Option<"alignment", "alignment", "uint64_t", /*default=*/"64",
           "Byte alignment of every buffer in the arena (a power of two)">,
    Option<"reuse", "reuse", "bool", /*default=*/"true",
           "Let buffers whose lifetimes do not overlap share bytes">,
  ];
}

def MomaFuseRowGathers
    : Pass<"moma-fuse-row-gathers", "::mlir::func::FuncOp"> {
  let summary = "Fuse row gathers (dispatch) into the contractions that read "
                "them";
  let description = [{
    Part of the kernel layer, shared by both targets. A *row gather* is an
    all-parallel `linalg.generic` on tensors whose body reads another tensor
    with `tensor.extract` at rows computed from its inputs: `moma.dispatch`
    lowers to one (`tokens[s, d] = x[slot_token[s], d]`, 0 for an empty
    slot). When such a gather has a single use, as an input of a
    contraction (a `linalg.generic` with a reduction, such as the grouped
    expert GEMM), this pass fuses it into the contraction: the gather's
    inputs become the contraction's and its body computes the gathered
    value, so the contraction loads its rows through `slot_token` itself and
    the gathered `[S, D]` copy is never materialised. A loop dimension that
    no operand spans after the fusion (the reduction of a GEMM whose weights
    are read with `tensor.extract`) gets a shape operand, a `tensor.empty`
    the body never reads. The CPU mapping turns the fused load into a gathered
    row load of its register tile; on the GPU each thread reads through the
    index.

    Gathers whose body computes more than index arithmetic, comparisons,
    selects and the extract are not fused: fusing an expensive producer into
    a contraction would recompute it for every output column.

    Example: `moma-opt --moma-fuse-row-gathers`.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MomaAutodiff : Pass<"moma-autodiff", "::mlir::func::FuncOp"> {
  let summary = "Return the gradient of the loss with respect to every weight";
  let description = [{
    Reverse-mode differentiation of a moma function (what the model builder
    makes, optionally after moma-hoist-modality-permutation): the function
    also returns, for every argument with `moma.weight = NAME`, the gradient
    of its result `moma.output = "total"` with respect to that weight, as a
    result `moma.output = "grad:NAME"` of the weight's type (zeros where no
    gradient reaches the weight).

    The backward pass is built after the forward one, in reverse program
    order. Each moma op differentiates itself through
    `GradientOpInterface` (Semantics.md, "Gradients"), mostly by building
    a backward op of its own (`moma.attention_grad`, `moma.ffn_grad`, ...)
    that recomputes what it needs from the forward op's operands. The pass
    itself differentiates the tensor arithmetic between moma ops
    (`arith.addf`, `arith.subf`, `arith.mulf`, `arith.negf`,
    `linalg.transpose`), and a value used several times sums the
    gradients of its uses. Integer values, `moma.stop_gradient` and the
    discrete choices of routing carry no gradient.

    The pass fails with an error at the op when an op on the path to the
    loss has no gradient rule, so a program never silently drops a
    gradient. Only functions named `function` are differentiated.

    With `recompute=layer`, the backward pass of each transformer layer
    (the ops whose location names `layers.N`, as the model builder's do,
    a moma.depth_region included) first copies the layer's forward ops,
    reading the layer's inputs, and differentiates the copies: the rules
    read recomputed values, and only the layers' inputs (and what the
    recomputation shares with the forward pass, such as weight-only
    values) live from the forward pass to the backward one. Routing is
    recomputed from the same inputs, so it makes the same choices, and the
    gradients are bit for bit those of `recompute=none`. A float input
    computed by an op reaches the copies through a
    `bufferization.alloc_tensor` copy (one activation per layer), so that
    CSE cannot merge the recomputation back into the forward pass. On the
    CPU, tiny-moma-t4i4 at batch 2 x 16 has an arena of 1178624 bytes
    without and 1119744 with recomputation, moma-t4i4-d256 at 1 x 256
    270855680 and 258928128 (test/Driver/momac-recompute-arena.test).

    Example: `moma-opt model.mlir --moma-autodiff`,
    `moma-opt model.mlir --moma-autodiff=recompute=layer`.
  }];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The function to differentiate">,
    Option<"recompute", "recompute", "std::string", /*default=*/"\"none\"",
           "Activations of the backward pass: none (kept from the forward "
           "pass) or layer (each layer recomputed from its input)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::moma::MomaDialect"];
}

def MomaTrainStep : Pass<"moma-train-step", "::mlir::ModuleOp"> {
  let summary = "Turn a gradients function into one optimizer step";
  let description = [{
    Rebuilds `@forward`, which must already return the gradients of
    moma-autodiff (`grad:NAME` results), into the function one run of a
    train program executes (examples/Training.md, "Train programs"):

    - its inputs hold `accumulation-steps` micro-batches stacked along the
      first dimension; the body is the gradients function once per
      micro-batch, on row slices of them;
    - the losses (float results of rank 0 or 1) and the gradients are
      averaged over the micro-batches; other float results (logits) are
      dropped;
    - a new input `step` (`tensor<i64>`), and for every weight two arguments
      `moma.state = "adam.m:NAME"` and `"adam.v:NAME"` (AdamW's moments);
    - one `moma.adamw` updates every weight and its moments. Its results are
      returned with `moma.updates = NAME` (the weight or state it replaces,
      which a program writes in place) after the outputs `grad_norm` and
      `lr`;
    - for every `moma.route` of the last micro-batch, an output
      `expert_offsets:LAYER` with its plan's expert offsets (the per-expert
      loads a training log plots).

    Weight decay applies to every weight but those of normalisation layers
    (a name `...norm.weight` or `...norm.bias`) and biases (`....bias`),
    which are decayed only with `decay-norms-and-biases`.

    Example: `moma-opt model.mlir --moma-autodiff
    --moma-train-step="lr=3e-4 total-steps=1000 warmup-steps=100"`.
  }];
  let options = [
    Option<"lr", "lr", "double", /*default=*/"1e-3", "Peak learning rate">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW's beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999",
           "AdamW's beta2">,
    Option<"eps", "eps", "double", /*default=*/"1e-8", "AdamW's epsilon">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.0",
           "Decoupled weight decay">,
    Option<"decayNormsAndBiases", "decay-norms-and-biases", "bool",
           /*default=*/"false", "Decay norm weights and biases too">,
    Option<"warmupSteps", "warmup-steps", "int64_t", /*default=*/"0",
           "Linear warm-up steps">,
    Option<"totalSteps", "total-steps", "int64_t", /*default=*/"1",
           "The step at which the decay reaches the floor">,
    Option<"decay", "decay", "std::string", /*default=*/"\"linear\"",
           "The schedule after warm-up: linear, cosine or constant">,
    Option<"finalLrRatio", "final-lr-ratio", "double", /*default=*/"0.0",
           "The floor of the schedule, a fraction of lr">,
    Option<"clipGradNorm", "clip-grad-norm", "double", /*default=*/"0.0",
           "Global gradient-norm clipping threshold (0: none)">,
    Option<"accumulationSteps", "accumulation-steps", "int64_t",
           /*default=*/"1", "Micro-batches per optimizer step">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect",
                           "::moma::MomaDialect"];
}

def MomaDropInPlaceUpdates
    : Pass<"moma-drop-in-place-updates", "::mlir::func::FuncOp"> {
  let summary = "Drop a bufferized train step's in-place update results";
  let description = [{
    After one-shot bufferization, every result of a train step marked
    `moma.updates = NAME` (moma-train-step) must be the buffer of the
    argument it updates, written in place: the pass checks that and removes
    the result, so that the program's buffers are exactly its inputs,
    weights, state and outputs. A result that bufferization could not write
    in place (it returns another buffer) is an error naming the weight or
    state. (Upstream `drop-equivalent-buffer-results` leaves public
    functions, such as a program's entry, alone.)

    Example: `moma-opt step.mlir --one-shot-bufferize=...
    --moma-drop-in-place-updates`.
  }];
}

def MomaCloneFills : Pass<"moma-clone-fills", "::mlir::func::FuncOp"> {
  let summary = "Give every consumer of a fill a fill of its own";
  let description = [{
    Runs on tensors before bufferization. CSE merges the identical fills
    that initialise the accumulators of every layer (`linalg.fill` of an
    empty tensor: the zeros a matmul accumulates into, the `-inf` of a
    running maximum) into one value with many uses; each use writes its
    operand in place, so one-shot bufferization keeps the filled buffer
    alive for the whole function and copies it before every use but the
    last (in a d_model 256, 4-layer forward, ~21 MB of copies). This pass
    clones the fill, with its empty tensor, before every use but the first
    in the same block: each consumer then fills its own buffer in place,
    and neither the copies nor the long-lived zeros remain. Behaviour is
    unchanged.

    Example: `moma-opt --moma-clone-fills`.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MomaStripAttributes : Pass<"moma-strip-attributes", "::mlir::ModuleOp"> {
  let summary = "Drop moma's discardable attributes once no moma op is left";
  let description = [{
    Removes `moma.modalities` from the module and `moma.input`,
    `moma.weight`, `moma.output` and `moma.scratch` from function arguments
    and results
    (func.func and llvm.func). After lowering they mean nothing, and tools
    that do not load the moma dialect (mlir-translate, mlir-runner) reject
    them. Back ends read the names they need before lowering. The last step
    of `moma-to-cpu`.

    Example: `moma-opt lowered.mlir --moma-strip-attributes`.
  }];
}

def MomaWidenCompute : Pass<"moma-widen-compute", "::mlir::ModuleOp"> {
  let summary = "Compute every moma op on bf16/f16 tensors in f32";
  let description = [{
    The mixed-precision rule of `dialects/moma/Semantics.md`: values are
    stored in the model's dtype, arithmetic runs in f32. Every moma op with
    a float operand or result narrower than f32 (bf16, f16) gets its narrow
    float operands extended to f32 (`arith.extf`, exact), computes in f32
    (so matmuls, attention's `q.k` and `p.v`, norm statistics, softmax,
    log-sum-exp, router scores and every other sum inside the op accumulate
    in f32), and rounds each float result to the stored type once
    (`arith.truncf`, round to nearest even).

    Left alone, because they only move values (their results are exact in
    any type): `embed`, `dispatch`, `stop_gradient`, `route_mask`,
    `depth_mask`; and `depth_region` itself, whose body's ops are widened
    one by one (its gated blend is computed in f32 by its lowering). Ops on
    f32 or f64 are unchanged, so f32 models lower exactly as before.

    Example: `moma-opt model.mlir --moma-widen-compute`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def MomaExpandNarrowFloatCasts
    : Pass<"moma-expand-narrow-float-casts", "::mlir::ModuleOp"> {
  let summary = "Expand f32 <-> bf16/f16 casts into integer arithmetic";
  let description = [{
    `arith.extf` from bf16/f16 to f32 and `arith.truncf` from f32 to
    bf16/f16 (scalars or vectors) become integer and bit-cast operations
    with IEEE round-to-nearest-even (NaN stays NaN, overflow rounds to
    infinity, f16 subnormals are exact), so the CPU code needs no
    conversion routine from a compiler runtime library (`__truncsfbf2`,
    `__truncsfhf2`, `__extendhfsf2`): on a generic x86-64 target LLVM would
    otherwise call them, and the shared object would not load. bf16 uses
    the upstream arith expansion; f16 follows the branch-free scheme of the
    classic `half` conversions (the subnormal cases go through one exact
    f32 addition or subtraction).

    Run after the arithmetic on bf16/f16 has been emulated in f32
    (`arith-emulate-unsupported-floats`), before `convert-arith-to-llvm`.

    Example: `moma-opt loops.mlir --moma-expand-narrow-float-casts`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

#endif // MOMA_PASSES_TRANSFORMS_PASSES_TD
