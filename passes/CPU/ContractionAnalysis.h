//===- ContractionAnalysis.h - Matmul-class ops the CPU maps ----*- C++ -*-===//
//
// The analysis half of moma-cpu-vectorize-contractions: which linalg ops on
// buffers are contractions `C += A * B` it can map, and how their loops and
// operands are used (Passes.td lists the forms).
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_CPU_CONTRACTIONANALYSIS_H
#define PASSES_CPU_CONTRACTIONANALYSIS_H

#include "passes/Kernels/Epilogues.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include "moma/Support/LLVM.h"

namespace moma {

/// moma.combine's scatter fused into a contraction's epilogue: the loop
/// over slots `s` that adds the epilogue's row `s` into the row of
/// `slot_token[s]` of its output (`update`: `out + addend(in)` on those
/// rows).
struct CombineScatter {
  mlir::scf::ForOp loop;
  mlir::linalg::GenericOp update;
  /// The update's sum and the addend it adds to the output.
  mlir::arith::AddFOp sum;
  Value addend;
  /// A copy of the updated row onto itself that bufferization leaves.
  mlir::memref::CopyOp selfCopy;
  /// The ops between the epilogue and the loop: the output's allocation and
  /// initialisation (the residual), views and scalars.
  SmallVector<Operation *> init;
  /// Whether the epilogue's output buffer has other users, so the kernel
  /// still writes it.
  bool keepOutput = false;
};

/// How the loops of a recognised contraction `C += A * B` are used.
struct Contraction {
  mlir::linalg::LinalgOp op;
  /// The operand buffers; for row-selected weights `b` is the `[G, K, N]`
  /// buffer the body loads from.
  Value a, b, c;
  /// A computed in the body (a fused row gather: `a` is then null), as a
  /// function of side inputs, indices and loads of buffers from above.
  Value aValue;
  /// Operand indexing maps over the loop dimensions (`bMap` unused for
  /// row-selected weights, which index `b` as `[s, k, n]`).
  mlir::AffineMap aMap, bMap, cMap;
  SmallVector<int64_t> sizes;
  unsigned mDim = 0, nDim = 0, kDim = 0;
  SmallVector<unsigned> outerDims;
  /// The dot form: k is contiguous in A and B (else n is contiguous in B
  /// and C: the outer-product form).
  bool dotForm = false;

  /// Row-selected weights: the body value that is the slice index, a
  /// function of side inputs and of the row alone.
  bool rowSelected = false;
  Value slice;
  /// A masked contraction (`yield select(cond, out + x * y, out)`): the
  /// condition, a function of side inputs and of every dimension but n.
  Value condition;
  /// A computed A of the form `select(guard, a, 0.0)` whose guard depends
  /// on neither k nor n (a gather's valid slots: a row-wise guard); null
  /// otherwise.
  mlir::arith::SelectOp aGuard;

  /// The op's inputs, their maps and its body, from which the slice and the
  /// condition are rebuilt: block arguments other than the two factors
  /// ("side inputs") are loaded from their buffers at the tile's indices.
  SmallVector<Value> inputs;
  SmallVector<mlir::AffineMap> inputMaps;
  SmallVector<mlir::BlockArgument> sideArgs;
  Block *body = nullptr;

  /// The element-wise op the kernel applies to its result in registers once
  /// the reduction is done (`matchEpilogue`), writing the op's output; the
  /// kernel still writes C.
  std::optional<Epilogue> epilogue;
  /// The combine that scatters the epilogue's rows (then the epilogue's
  /// output is not written).
  std::optional<CombineScatter> combine;

  int64_t size(unsigned dim) const { return sizes[dim]; }
};

/// Recognises `op` as a contraction the CPU mapping handles, or fails.
FailureOr<Contraction> analyseContraction(mlir::linalg::LinalgOp op);

} // namespace moma

#endif // PASSES_CPU_CONTRACTIONANALYSIS_H
