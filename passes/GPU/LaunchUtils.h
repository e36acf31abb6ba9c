//===- LaunchUtils.h - Helpers of the GPU mapping passes --------*- C++ -*-===//
//
// What counts as a view of a buffer (and may be recomputed inside a kernel)
// and what counts as a root buffer (which the program's arena provides).
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_GPU_LAUNCHUTILS_H
#define PASSES_GPU_LAUNCHUTILS_H

#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "moma/Support/LLVM.h"

namespace moma {

/// Whether `op` only computes a new view of a buffer (subview,
/// collapse/expand_shape, reinterpret_cast, cast, view): no memory effect,
/// cheap to recompute in every kernel that uses it.
bool isHostViewOp(Operation *op);

/// Whether `value` is a root buffer: a memref argument of the enclosing
/// function or the result of a `memref.alloc` / `memref.alloca` directly in
/// a function body.
bool isRootBuffer(Value value);

} // namespace moma

#endif // PASSES_GPU_LAUNCHUTILS_H
