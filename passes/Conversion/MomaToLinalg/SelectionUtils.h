//===- SelectionUtils.h - Top-capacity selections as parallel rows -*- C++
//-*-===//
//
// The selections of routing (expert choice: each expert's top-capacity
// tokens) and of mixture-of-depths (each sequence's top-K positions) as one
// row-parallel `linalg.generic` each: every candidate gets an integer key
// whose order is the selection order of Semantics.md (a larger score first,
// ties: the lower index first), and every row finds, by a binary search
// over the key bits, the threshold its `capacity` largest keys reach. A
// candidate is selected iff its key reaches its row's threshold. The work
// per row is (32 + log2 N) passes over its N keys, instead of one argmax
// scan per selected candidate or an N x N rank count.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_CONVERSION_MOMATOLINALG_SELECTIONUTILS_H
#define PASSES_CONVERSION_MOMATOLINALG_SELECTIONUTILS_H

#include "mlir/IR/Builders.h"
#include "moma/Support/LLVM.h"

namespace moma {

/// Bits of the selection keys of `count` candidates with scores of float
/// type `scoreType`: 32 for the score (f32, which holds narrower floats
/// exactly; 64 for f64), and `ceil(log2 count)` for the tie.
int64_t selectionKeyBits(Type scoreType, int64_t count);

/// The integer type of those keys: i64 when they have at most 62 bits (f32
/// scores of up to 2^30 candidates), else i128; either way the largest
/// signed value of the type is above every key.
IntegerType selectionKeyType(Type scoreType, int64_t count);

/// The selection key (of `selectionKeyType`, in `[1, 2^selectionKeyBits)`
/// for a score that is not NaN) of candidate `index` (an index in `[0,
/// count)`) with float `score`: keys order like `(score, -index)`, so a
/// larger key is selected first; -0 and +0 tie. Distinct candidates have
/// distinct keys. Key 0 is left to callers for "not a candidate".
Value buildSelectionKey(OpBuilder &b, Location loc, Value score, Value index,
                        int64_t count);

/// The stable ascending rank of every entry of `values: [B, L] i32` in its
/// row, as `[B, L] i32`: the number of `j` with `values[b, j] <
/// values[b, l]`, or equal and `j < l`, plus `b * L` when `acrossBatch`.
/// The ranks of a row are a permutation of `[0, L)` (or of `b * L + [0,
/// L)`) and order its entries as `(b, values[b, l], l)` does. One
/// `linalg.generic` of `B * L * L` comparisons, parallel over the entries.
///
/// modality_sort's `inverse` is the ranks of the modality ids. A selection
/// whose ties follow the `positions` operand (the positions of the
/// unpermuted program, Semantics.md "Token order") takes the ranks of the
/// positions as the tie index of buildSelectionKey: they break ties as
/// `(b, positions[b, l])` does and stay in `[0, count)` whatever the range
/// of the positions (a depth region's body holds positions of the enclosing
/// sequence, and -1 for its padding rows), so the keys are no wider than
/// with the row index.
Value buildStableRanks(OpBuilder &b, Location loc, Value values,
                       bool acrossBatch);

/// Per row `r` of `keys: [R, N]` (selection keys of `keyBits` bits, 0
/// for non-candidates): the threshold `th[r]` (`[R] i64`) that exactly the
/// `capacity(r)` largest keys of the row reach (every candidate when it has
/// fewer; none when the capacity is 0), of the keys' type. `capacity` builds an
/// index from the row (an index) inside the body of the row-parallel
/// `linalg.generic`.
Value buildTopThresholds(
    OpBuilder &b, Location loc, Value keys, int64_t keyBits,
    function_ref<Value(OpBuilder &, Location, Value row)> capacity);

} // namespace moma

#endif // PASSES_CONVERSION_MOMATOLINALG_SELECTIONUTILS_H
