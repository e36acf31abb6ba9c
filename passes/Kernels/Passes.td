//===- Passes.td - the kernel layer's passes ----------------*- tablegen -*-===//

#ifndef MOMA_PASSES_KERNELS_PASSES_TD
#define MOMA_PASSES_KERNELS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MomaKernelPlan : Pass<"moma-kernel-plan", "::mlir::ModuleOp"> {
  let summary = "Assign every computation to one kernel class and cost it";
  let description = [{
    Runs on the linalg-on-tensors IR that `convert-moma-to-linalg` (and
    `convert-elementwise-to-linalg`) leave. Every computation at the top
    level of a function body (a linalg op, or a loop or branch of `scf` on
    tensors) joins exactly one kernel of one class:

    - `matmul`: a contraction (`linalg.matmul`, a contraction
      `linalg.generic`) or the row-selected weight product of untied and
      grouped weights (a `[T, N, K]` generic reading `w[m_t, k, n]`);
    - `attention`: the non-projection reductions lowered from
      `moma.attention` (scores, row maxima, sums, probabilities times values);
    - `row_reduction`: other float reductions, and `scf` loops whose every
      write lands in the row of the outer loop's index (token-choice top-k);
    - `selection`: integer reductions (counts, prefix sums) and `scf` loops
      that write rows chosen by data (expert-choice top-capacity, MoD
      top-K, the scatters of combine);
    - `elementwise`: an all-parallel linalg op joins the kernel of its latest
      producer (an epilogue, or a fused loop when that kernel is itself
      element-wise), else the kernel of a consumer (a prologue: the fill of
      an accumulator), else it starts a fused element-wise loop.

    Provenance comes from the locations `convert-moma-to-linalg` records
    (the moma op each op lowers). Tiles come from the cost model only
    (passes/Kernels/CostModel.h, stated in passes/Kernels/KernelLayer.md).

    Every member gets a discardable `moma.kernel` dictionary: `id`, `class`
    and `role` (`root`, `prologue`, `epilogue`, `fused`); the root also gets
    `moma_ops` (the moma ops fused into the kernel), `tiles` (matmul:
    `mr`, `nr`, `kc`, `mc`), `launch` (CPU: the threads' work items; GPU:
    grid and block of today's one-thread-per-element mapping), `work` (CPU:
    what a work item is: `N-panels`, `rows` or `threads`), `flops`,
    `bytes` and `seconds` (estimated at the target's peak). The module gets
    `moma.kernel_target`.

    Example: `moma-opt lowered.mlir --moma-kernel-plan=target=sm_90`.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"x86-64-v3\"",
           "The target model: x86-64-v3, x86-64-v4, sm_80, sm_90 or sm_90a">,
  ];
}

#endif // MOMA_PASSES_KERNELS_PASSES_TD
