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
      reused against one `kc x nr` panel of B, which is first copied to a
      contiguous slab (B's rows are a weight row apart, a power-of-two
      stride that would map a panel to a few L1 sets). The slabs, one per
      parallel iteration, are one buffer allocated before the loop, which
      the scratch arena places like any temporary. The last panel of a
      width that is not a multiple of `nr` uses masked loads and stores.
    - *Row-selected weights*: the `linalg.generic` that untied-per-modality
      linears, expert groups and grouped experts lower to
      (`y[t, n] += x[t, k] * w[s(t), k, n]`, the slice `s(t)` computed in
      the body from a per-row selector). A register tile whose rows all
      select the same slice runs as above, the packed panel refilled only
      when the slice changes (slots are expert-major: once per expert); a
      tile whose rows select two slices in two runs (an expert boundary)
      runs as two tiles of those runs; one with more runs (untied rows of
      interleaved modalities) runs row by row from the weight itself. The
      slice computation is cloned from the op's body, so the meaning is
      exactly the op's.
    - *Dot form*, where the reduction dimension is contiguous in both inputs
      (attention's `Q K^T`): the panel of B is packed transposed and the
      tiles run as in the outer-product form. Only an output that is not
      contiguous along `n` keeps `mr x nr` tiles of vector accumulators
      along K, reduced horizontally at the end.

    - *Epilogues*: the element-wise op that consumes a contraction's result
      (`matchEpilogue`, `passes/Kernels/Epilogues.h`: activations, the
      mask of grouped experts, bias, residual adds, scales) runs on the
      accumulators once the last slice of K is in: its body is cloned with
      values that vary along the columns as vectors (reads of the column
      index as vector loads, the rest as scalars) and stored into the op's
      output, and the op is erased. The kernel still writes C. SwiGLU's
      `silu(gate) * up`, which reads C's two column halves, runs on panels
      of one half: each packs the same columns of both halves side by side,
      and a register tile accumulates both, so the epilogue has the gate
      and up values of its columns in registers.
    - *Combine*: when that epilogue (the experts' slot mask) feeds
      `moma.combine`'s scatter loop (`y[tok[s]] += gate[s] * ys[s]` over
      slots `s`), the loop's body is cloned per slot of each register tile
      and updates the token's row in registers; the loop and the `[S, D]`
      expert outputs are gone, and the output's initialisation (the
      residual) moves above the kernel. `combine=deterministic` keeps the
      column panels as the only parallel dimension, so every element sums
      its slots in ascending order, exactly the loop's order;
      `combine=fast` splits the slot blocks across threads too and adds
      with `memref.atomic_rmw`, in an order that varies from run to run.

    Any further dimensions of the op become outer loops. The outer loops
    and the column panels (outer-product form) or row tiles (horizontal dot
    form) form
    one `scf.parallel`, which the CPU pipeline runs on threads (OpenMP) or
    in sequence. The rewritten kernel computes `C += A B` in ascending `k`
    order per element (fused multiply-adds, so results differ from the
    unfused scalar loops by rounding only); the horizontal dot form sums
    lanes in a tree. Ops it does not recognise (other element types, non-unit
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
    Option<"combine", "combine", "std::string", /*default=*/"\"deterministic\"",
           "moma.combine's scatter in the second expert GEMM: deterministic "
           "(threads split the columns; every sum in ascending slot order, "
           "no atomics) or fast (threads split the slots too; atomic adds)">,
  ];
}

def MomaCpuApproximateMath : Pass<"moma-cpu-approximate-math"> {
  let summary = "f32 exp and erf as polynomials the vector units run";
  let description = [{
    Rewrites `math.exp` and `math.erf` on f32 scalars and vectors into
    upstream MLIR's polynomial approximations (arith ops only). The CPU
    has no instruction for either, and without it LLVM calls libm's
    `expf` and `erff` once per element: the softmax of attention and the
    GELU of the FFN epilogues, a fifth of a d_model 256 forward, ran
    scalar in libm. The approximations are accurate to a few ulp (exp)
    and about 1e-7 absolute (erf), far inside the models' 1e-5 tolerance
    against the reference; other element types and other functions are
    left to libm.

    Example: `moma-opt --moma-cpu-approximate-math`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def MomaCpuLimitParallelism
    : Pass<"moma-cpu-limit-parallelism", "::mlir::func::FuncOp"> {
  let summary = "Keep threads for the loops worth them: small and nested "
                "scf.parallel loops run in sequence";
  let description = [{
    Runs after the CPU mapping and linalg's parallel loops, before
    `convert-scf-to-openmp`. Every `scf.parallel` that is not at the top
    level of the function (one inside a sequential loop would fork a thread
    team at every iteration) and every top-level one whose work is below
    `min-work` becomes a nest of `scf.for`. Work is counted as loop-body
    operations executed: an operation counts 1, a loop with static bounds
    its trip count times its body's work. A tile loop whose upper bound is
    clamped, `min(lower + c, n)`, counts its full tile (`c / step` trips),
    so that the tiled (tail-folded) matmuls keep their threads; any other
    dynamic bound counts 1.
    Forking and joining a team costs microseconds, more than a small loop
    runs, and each parallel region is a function LLVM outlines, so fewer of
    them also keep the compile time of large models down.

    Example: `moma-opt --moma-cpu-limit-parallelism=min-work=65536`.
  }];
  let options = [
    Option<"minWork", "min-work", "int64_t", /*default=*/"65536",
           "Loop-body operations a top-level parallel loop must execute to "
           "stay parallel">,
  ];
}

def MomaCpuOutlineKernels
    : Pass<"moma-cpu-outline-kernels", "::mlir::ModuleOp"> {
  let summary = "Move each kernel into a function; identical kernels share one";
  let description = [{
    Runs on the CPU buffers, after the scratch arena. Every top-level
    operation with regions of a function (a kernel: a vectorized
    contraction's `scf.parallel`, a `linalg` op, a loop) moves into a
    private function `<name>.kernel<i>` that the function calls in its
    place. The kernel receives the values it reads from the function's body
    (buffers, views of the arena, scalars) as arguments, in the order it
    first uses them, and rebuilds the constants and the views that no
    argument could carry (a dynamic offset). Its results are returned.

    A kernel structurally equal to an earlier one (the same operations,
    attributes and types, with the same uses of its arguments, locations
    aside) is not kept: its call site calls the earlier one. The layers of a
    model repeat, so the functions left to lower and to compile do not grow
    with depth: compile time stays linear with a small slope. A kernel
    called from several places is marked `no_inline`, so that LLVM keeps
    one copy. An operation a kernel cannot be built for (an input that can
    neither be passed by bare pointer nor rebuilt) stays where it is.
    Behaviour is unchanged.

    Each kernel holds one top-level operation, so no function has more
    than one parallel loop at its top level: the OpenMP translation, which
    scans the enclosing function once per parallel region, stays linear.

    Example: `moma-opt --moma-cpu-outline-kernels`.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

#endif // MOMA_PASSES_CPU_PASSES_TD
