//===- Passes.td - moma's CPU mapping passes ---------------*- tablegen -*-===//

#ifndef MOMA_PASSES_CPU_PASSES_TD
#define MOMA_PASSES_CPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def MomaCpuVectorizeContractions
    : Pass<"moma-cpu-vectorize-contractions", "::mlir::func::FuncOp"> {
  let summary = "Map matmul-class linalg ops on buffers to register-blocked "
                "vector loops split across threads";
  let description = [{
    The CPU mapping of the kernel layer's matmul class. It runs on
    bufferized IR and rewrites every contraction it recognises into loops of
    `vector` ops whose tiles come from the cost model
    (`passes/Kernels/CostModel.h`) for the pass's `target`:

    - *Outer-product form*, where the output column dimension `n` is
      contiguous in the weight and the output (`linalg.matmul`, the
      attention projections, the LM head, attention's `P V`): a register
      tile of `mr` rows by `nr` columns, `nr / lanes` vectors per row,
      accumulated over a `kc`-deep slice of K with one FMA per row and
      vector, A broadcast one element at a time; `mc`-row blocks of A are
      reused against one `kc x nr` panel of B. The last panel of a width
      that is not a multiple of `nr` uses masked loads and stores.
    - *Row-selected weights*: the `linalg.generic` that untied-per-modality
      linears, expert groups and grouped experts lower to
      (`y[t, n] += x[t, k] * w[s(t), k, n]`, the slice `s(t)` computed in
      the body from a per-row selector). A register tile whose rows all
      select the same slice runs as above; a tile whose rows differ (a
      boundary between modalities or experts) runs row by row. The slice
      computation is cloned from the op's body, so the meaning is exactly
      the op's.
    - *Dot form*, where the reduction dimension is contiguous in both inputs
      (attention's `Q K^T`): `mr x nr` tiles of vector accumulators along K,
      reduced horizontally at the end.

    Any further dimensions of the op become outer loops. The outer loops
    and the column panels (outer-product form) or row tiles (dot form) form
    one `scf.parallel`, which the CPU pipeline runs on threads (OpenMP) or
    in sequence. The rewritten kernel computes `C += A B` in ascending `k`
    order per element (fused multiply-adds, so results differ from the
    unfused scalar loops by rounding only); the dot form sums lanes in a
    tree. Ops it does not recognise (other element types, non-unit
    innermost strides, other bodies) are left for `convert-linalg-to-loops`.

    Example: `moma-opt --moma-cpu-vectorize-contractions=target=x86-64-v4`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"x86-64-v3\"",
           "The CPU level whose target model chooses the tiles: x86-64-v3 "
           "(AVX2 + FMA) or x86-64-v4 (AVX-512)">,
  ];
}

#endif // MOMA_PASSES_CPU_PASSES_TD
