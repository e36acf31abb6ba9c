//===- Epilogues.h - Element-wise consumers a matmul kernel fuses -*- C++
//-*-===//
//
// The kernel layer's rule for which element-wise op runs in a matmul-class
// kernel's epilogue, shared by the kernel plan (on tensors) and the CPU
// mapping (on buffers), so that what the plan reports is what the code does.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_KERNELS_EPILOGUES_H
#define PASSES_KERNELS_EPILOGUES_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"

#include "moma/Support/LLVM.h"

namespace moma {

/// An element-wise op applied to a matmul's result `C` in the epilogue: the
/// op reads `C` (through at most one `expand_shape`) as one of its inputs
/// and is computed per output element once the reduction is done.
struct Epilogue {
  /// The all-parallel `linalg.generic` of one result.
  mlir::linalg::GenericOp op;
  /// Its input operand that reads `C`.
  unsigned input = 0;
  /// SwiGLU's gate·up: the input operand that reads `C`'s second column
  /// half, `pairOffset` columns after the first, which `input` reads (both
  /// with the identity map); the op's loops then span one half.
  std::optional<unsigned> pairedInput;
  int64_t pairOffset = 0;
  /// For every index of `C`, the loop dimensions of `op` it expands to, in
  /// order (`op`'s dimension `i` of group `g` is the `i`-th digit of the
  /// index delinearised by the group's sizes); the identity without a
  /// reshape.
  SmallVector<mlir::ReassociationIndices> groups;
};

/// The element-wise consumer `contraction` (a matmul-class op on tensors or
/// on buffers, one output whose last index is the column dimension) applies
/// in its epilogue, if any:
///
/// - on tensors, the single user of its result (through one single-use
///   `tensor.expand_shape`); on buffers, the next op with memory effects
///   after it, which reads its output buffer (or an `expand_shape` of it)
///   and writes a different one;
/// - an all-parallel `linalg.generic` with one output that it does not read,
///   reading `C` once with the identity map over its loops; `C`'s last
///   index (the columns) maps to one loop, `op`'s last; or reading the two
///   column halves of `C` (slices of every row, unit strides: SwiGLU's gate
///   and up), each once with the identity map, and nothing else of `C`;
/// - a body of element-wise arith and math ops, `linalg.index`, and scalar
///   reads (`tensor.extract`, `memref.load`) of values from above, where
///   the column index is used only as the last index of a read or an input
///   whose map ends with it (so a vector of columns reads contiguously).
std::optional<Epilogue> matchEpilogue(mlir::linalg::LinalgOp contraction);

} // namespace moma

#endif // PASSES_KERNELS_EPILOGUES_H
