//===- Passes.td - moma GPU mapping passes -----------------*- tablegen -*-===//
//
// The moma passes of the moma-to-ptx pipeline that turn bufferized loops
// into GPU launches whose kernels take root buffers.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_PASSES_GPU_PASSES_TD
#define MOMA_PASSES_GPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def MomaGpuUnrollChunkLoops
    : Pass<"moma-gpu-unroll-chunk-loops", "::mlir::func::FuncOp"> {
  let summary = "Unroll the kernel layer's vocabulary-chunk loops";
  let description = [{
    Runs on tensors, before bufferization: every `scf.for` marked
    `moma.vocab_chunk` (the LM head fused with cross-entropy, a loop over
    vocabulary chunks whose trip count is static) is fully unrolled into
    one copy of its body per chunk. The GPU program's host function is a
    static schedule of launches with no host control flow, and a loop of
    launches left there would become one single-thread kernel
    (`moma-gpu-wrap-sequential`); unrolled, every chunk's matmul and
    reductions are parallel kernels, and the buffer planner reuses one
    chunk's logits buffer for the next. Other loops are left alone.

    Example: `moma-opt f.mlir --moma-gpu-unroll-chunk-loops`.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
}


def MomaGpuPrepareLoops : Pass<"moma-gpu-prepare-loops", "::mlir::func::FuncOp"> {
  let summary = "Shape the loops of a bufferized function for GPU mapping";
  let description = [{
    Runs after `convert-linalg-to-parallel-loops` on a host function whose
    body is loops over buffers, and leaves exactly one kind of parallelism
    for the GPU mapping passes to see:

    - every `memref.copy` becomes loads and stores in an `scf.parallel` nest
      over the copied shape (a rank-0 copy: one load and one store), because
      device code cannot call the `memrefCopy` support routine;
    - every `scf.parallel` that is not directly in the function body (inside
      an `scf.for` from routing, an `scf.if`, or another parallel loop)
      becomes a nest of `scf.for` loops: only top-level loops run in
      parallel, nested ones run sequentially inside the thread that reaches
      them;
    - every top-level `scf.parallel` with more than one dimension is
      collapsed into one dimension (row-major, the last dimension fastest),
      so that `scf-parallel-loop-tiling` with one tile size maps consecutive
      threads to consecutive elements (coalesced accesses) whatever the
      loop's rank.

    Parallel loops with reductions are rejected (linalg lowering does not
    create them).

    Example: `moma-opt f.mlir --convert-linalg-to-parallel-loops
    --moma-gpu-prepare-loops`.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def MomaGpuWrapSequential : Pass<"moma-gpu-wrap-sequential", "::mlir::func::FuncOp"> {
  let summary = "Run the host code left after loop mapping in single-thread launches";
  let description = [{
    Runs after `convert-parallel-loops-to-gpu`. Whatever is still computed on
    the host (sequential `scf.for` nests from routing, stores and loads,
    arithmetic on loaded values) would read and write device memory from the
    host, so each maximal run of such top-level ops is moved into a
    `gpu.launch` of one block of one thread, placed where the run's last op
    was. Launches run in program order on one stream, so the order of all
    memory effects is kept.

    These ops stay on the host: `gpu.launch`, `memref.alloc` and `alloca`
    with static shapes, view ops (`subview`, `collapse_shape`,
    `expand_shape`, `reinterpret_cast`, `cast`), `memref.get_global`,
    constants, and pure ops whose operands are all host values (the launch
    sizes). `memref.dealloc` is erased: the arena lives as long as the
    program.

    A scalar computed inside a run and used after it (a count loaded by
    routing code that bounds a later loop) travels through memory: a rank-0
    buffer allocated at the function entry, stored after the definition and
    loaded at the start of each later launch (or run) that uses it. A
    non-scalar value used after its run, and a device value used as a launch
    size, are errors that name the op.

    Example: `moma-opt f.mlir --moma-gpu-wrap-sequential`.
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect"
  ];
}

def MomaGpuSinkIntoLaunches : Pass<"moma-gpu-sink-into-launches", "::mlir::func::FuncOp"> {
  let summary = "Sink views and constants into launches so kernels take root buffers";
  let description = [{
    For every `gpu.launch`, clones into its body the host ops that compute
    the values it uses: memref view ops, `memref.get_global` (kernel
    outlining then copies the global into the GPU module, so constant tables
    live in the PTX), constants and pure scalar ops on them. Afterwards a
    launch captures only *root buffers*: function arguments and
    `memref.alloc` results, which the program's arena provides and which
    the kernel receives as bare pointers. A captured value of any other kind
    is an error that names the op defining it, and so is an allocation inside
    a launch (device code cannot allocate). Host ops left without uses are
    erased.

    Example: `moma-opt f.mlir --moma-gpu-sink-into-launches`.
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect"
  ];
}

def MomaGpuMergeModules : Pass<"moma-gpu-merge-modules", "::mlir::ModuleOp"> {
  let summary = "Merge the outlined GPU modules into one";
  let description = [{
    `gpu-kernel-outlining` creates one `gpu.module` per launch, each holding
    one `gpu.func` (named after the host function in every module) and
    copies of the symbols it uses. This pass moves every kernel into one
    `gpu.module` named by `module-name`, renames each kernel after its old
    module (unique names: `forward_kernel`, `forward_kernel_0`, ...), keeps
    one copy of each other symbol (`memref.global` constants: the copies are
    clones of the same host symbol) and retargets every `gpu.launch_func`.
    One module is compiled once into one PTX text that the driver loads
    once.

    Example: `moma-opt f.mlir --gpu-kernel-outlining --moma-gpu-merge-modules`.
  }];
  let options = [
    Option<"moduleName", "module-name", "std::string", /*default=*/"\"kernels\"",
           "Name of the merged gpu.module">,
  ];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect"
  ];
}

#endif // MOMA_PASSES_GPU_PASSES_TD
