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

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include "moma/Support/LLVM.h"

namespace moma {

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

  int64_t size(unsigned dim) const { return sizes[dim]; }
};

/// Recognises `op` as a contraction the CPU mapping handles, or fails.
FailureOr<Contraction> analyseContraction(mlir::linalg::LinalgOp op);

} // namespace moma

#endif // PASSES_CPU_CONTRACTIONANALYSIS_H
