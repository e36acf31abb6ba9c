//===- ScratchPlanner.h - Placing buffers by lifetime -----------*- C++ -*-===//
//
// The arena planner both back ends share: given buffers with sizes and live
// ranges (positions in a schedule: launches on the GPU, top-level operations
// of the host function on the CPU), assign byte offsets such that buffers
// whose ranges overlap never share bytes.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_SUPPORT_SCRATCHPLANNER_H
#define PASSES_SUPPORT_SCRATCHPLANNER_H

#include "mlir/IR/Types.h"
#include "llvm/ADT/ArrayRef.h"

#include "moma/Support/LLVM.h"
#include <cstddef>
#include <cstdint>

namespace moma {

/// One buffer to place.
struct LiveInterval {
  /// Bytes the buffer needs (0 is placed like 1).
  uint64_t bytes = 0;
  /// Positions of its first and last use, inclusive; a buffer with
  /// first > last is unused and is not placed (its offset stays 0).
  size_t first = 0, last = 0;
  /// Output: the byte offset assigned.
  uint64_t offset = 0;
};

/// Bytes one element of `type` takes in a buffer: 8 for index, the bit
/// width rounded up to bytes for integers and floats (i1 takes a byte), 0
/// for any other type.
uint64_t elementStorageBytes(Type type);

/// Places `intervals` at offsets >= `base`, each a multiple of `alignment`
/// (a power of two) and returns the end of the placed region rounded up to
/// `alignment`. With `reuse`, buffers are taken in order of first use and
/// each gets the lowest gap that fits among the buffers still live at its
/// first use (first fit); without it they are laid out one after the other.
uint64_t planLiveIntervals(llvm::MutableArrayRef<LiveInterval> intervals,
                           uint64_t base, uint64_t alignment, bool reuse);

} // namespace moma

#endif // PASSES_SUPPORT_SCRATCHPLANNER_H
