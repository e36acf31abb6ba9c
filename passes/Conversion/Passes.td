//===- Passes.td - moma conversion passes ------------------*- tablegen -*-===//

#ifndef MOMA_PASSES_CONVERSION_PASSES_TD
#define MOMA_PASSES_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMomaToLinalg : Pass<"convert-moma-to-linalg", "::mlir::ModuleOp"> {
  let summary = "Lower moma ops to linalg, tensor, arith, math and scf";
  let description = [{
    Rewrites every `moma` op into upstream tensor-level IR with exactly the
    semantics of `dialects/moma/Semantics.md`: matrix products become
    `linalg.matmul` / `linalg.generic` contractions, element-wise work and
    reductions become `linalg.generic`, gathers read with `tensor.extract`,
    and the data-dependent parts of routing (top-k per token, top-capacity
    per expert, prefix sums of expert offsets, scatter-add) become `scf.for`
    loops over tensors. Reductions accumulate in the op's element type, in a
    fixed order (deterministic). Depth regions are inlined between a gather
    and a scatter. The result bufferizes with one-shot bufferization.

    It runs as a partial dialect conversion with the `moma` dialect illegal:
    a moma op that no pattern lowers fails the pass with "failed to legalize
    operation" at that op. Attention, and routing with softmax scores, start
    maxima at -inf and do not lower in float types without infinities
    (`f8E4M3FN`, ...).

    The LM head whose logits only a `moma.cross_entropy` reads (a program
    compiled without a `logits` output) is lowered together with it: a loop
    over vocabulary chunks with an online log-sum-exp (one `scf.for`
    marked `moma.vocab_chunk`, its chunk chosen by the kernel layer's cost
    model for `target`), so that no `[B*L, V]` logits tensor exists.

    Example: `moma-opt model.mlir --convert-moma-to-linalg`.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"x86-64-v3\"",
           "The kernel target (x86-64-v3, x86-64-v4, sm_80, sm_90, sm_90a) "
           "whose cost model chooses the fused LM head's vocabulary chunk">,
    Option<"vocabChunk", "vocab-chunk", "int64_t", /*default=*/"0",
           "The fused LM head's vocabulary chunk instead of the cost "
           "model's (tests and experiments; used only when it divides the "
           "vocabulary; 0: the cost model's)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // MOMA_PASSES_CONVERSION_PASSES_TD
