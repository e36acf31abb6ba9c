//===- InitAll.h - Register moma's dialects and passes ----------*- C++ -*-===//
//
// One place that lists what the moma tools register: the moma dialect, the
// few upstream dialects its IR and pipelines use, and the passes.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_INITALL_H
#define MOMA_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace moma {

/// Adds the moma dialect and the upstream dialects moma IR uses (func, arith,
/// tensor, linalg) to `registry`.
void registerAllDialects(mlir::DialectRegistry &registry);

/// Registers moma's passes and the upstream passes the tools expose
/// (canonicalize, cse, inliner, ...).
void registerAllPasses();

} // namespace moma

#endif // MOMA_INITALL_H
