//===- FlopCount.h - FLOP and parameter accounting of moma IR ---*- C++ -*-===//
//
// The analysis behind `moma-flop-count` and `momac --emit=flops`.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_TRANSFORMS_FLOPCOUNT_H
#define PASSES_TRANSFORMS_FLOPCOUNT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LLVM.h"
#include "llvm/Support/raw_ostream.h"

#include "moma/Support/LLVM.h"
#include <array>
#include <string>
#include <vector>

namespace moma {

/// The op kinds FLOPs are reported by.
enum class FlopKind {
  AttentionProjections,
  AttentionScores,
  Routers,
  Ffn,
  Experts,
  Norms,
  Head,
  AuxRouters,
  OtherProjections,
};
constexpr size_t kNumFlopKinds = 9;

/// Human-readable name of a kind ("attention projections", ...).
StringRef getFlopKindName(FlopKind kind);

/// Expected FLOPs and parameters of one function, per token of each
/// modality.
struct FlopReport {
  std::string function;
  std::vector<std::string> modalities;
  /// forward[kind][m]: forward FLOPs per token of modality m.
  std::array<std::vector<double>, kNumFlopKinds> forward;
  /// Forward FLOPs per token of the dense baseline of the same width.
  std::vector<double> denseForward;
  /// Expected parameters a token of each modality multiplies with.
  std::vector<double> activeParams;
  /// Every parameter, counted once; and those of embedding tables.
  int64_t totalParams = 0;
  int64_t embeddingParams = 0;
  /// Non-embedding parameters by the kind of op that uses them (the
  /// attention projections' kind holds Q/K/V/O).
  std::array<int64_t, kNumFlopKinds> params = {};

  /// Forward FLOPs per token of modality m, over all kinds.
  double totalForward(size_t m) const;
  /// Forward + backward, counted as 3x forward.
  double training(size_t m) const { return 3.0 * totalForward(m); }
  /// Forward FLOPs relative to the dense baseline.
  double ratioToDense(size_t m) const;
  /// Writes the report as an aligned text table.
  void print(llvm::raw_ostream &os) const;
};

/// Counts `func`; fails with a located error when the IR cannot be
/// attributed (for example experts whose plan does not come from a route).
FailureOr<FlopReport> countFlops(mlir::func::FuncOp func);

} // namespace moma

#endif // PASSES_TRANSFORMS_FLOPCOUNT_H
