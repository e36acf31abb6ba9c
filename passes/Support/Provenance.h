//===- Provenance.h - Which moma op a lowered op came from ------*- C++ -*-===//
//
// convert-moma-to-linalg records, in the location of every op it creates,
// the moma op that op lowers: the location becomes
// `fused<"moma.<op>">[original]`, so the ops a pattern builds at the moma
// op's location inherit it. Locations are not printed without
// -mlir-print-debuginfo, so lowered IR reads as before; diagnostics still
// point at the original file location. The kernel layer reads it back.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_SUPPORT_PROVENANCE_H
#define PASSES_SUPPORT_PROVENANCE_H

#include "mlir/IR/Location.h"
#include "mlir/IR/Operation.h"
#include "moma/Support/LLVM.h"

#include <optional>
#include <string>

namespace moma {

/// The location `op` (a moma op) gets before it is lowered: its own location
/// fused with its name as metadata. Idempotent.
Location provenanceLocation(Operation *op);

/// What a location says of the moma op an op came from.
struct Provenance {
  /// The moma op's name without the dialect prefix ("linear", "attention").
  StringRef op;
  /// The name the model builder gave the moma op ("layers.0.attn"), or empty
  /// when its location carries none (hand-written IR).
  StringRef name;

  /// `op` alone, or `op(name)`.
  std::string label() const;
};

/// The provenance recorded in `loc`, or nullopt for a location that carries
/// none (an op that was never moma, or a constant the folder rebuilt).
std::optional<Provenance> provenanceOf(Location loc);

} // namespace moma

#endif // PASSES_SUPPORT_PROVENANCE_H
