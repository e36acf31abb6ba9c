//===- ModelBuilder.h - Model definitions to moma IR ------------*- C++ -*-===//
//
// Builds the `moma` IR of a model definition: one function `@forward` that
// takes the token batch and every weight and returns the logits (unless
// asked not to) and losses,
// composed exactly as examples/README.md ("Model semantics") describes.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_FRONTEND_MODELBUILDER_H
#define MOMA_FRONTEND_MODELBUILDER_H

#include "moma/Frontend/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace moma {

/// Static shapes and modes of the program to build.
struct BuildOptions {
  /// Sequences per batch (B) and tokens per sequence (L).
  int64_t batch = 1;
  int64_t seqLen = 4096;
  /// `Batch`: expert-choice and MoD select over the whole batch (training);
  /// `Aux`: the auxiliary routers select causally (inference).
  enum class Routing { Batch, Aux } routing = Routing::Batch;
  /// Whether `@forward` returns the `logits` output. Without it (a
  /// loss-only program) the LM head feeds only the cross-entropy, which the
  /// compiler then fuses with it: the `[B, L, V]` logits never exist.
  bool logitsOutput = true;
  /// Name of the model file, for locations.
  std::string fileName;
};

/// Adds the dialects the built IR uses to `registry`.
void registerModelBuilderDialects(mlir::DialectRegistry &registry);

/// Builds and verifies the module. Invalid options (for example aux
/// routing without auxiliary routers, or a MoD capacity that keeps no token
/// of a sequence this short) are reported as errors naming the option.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
buildModelModule(mlir::MLIRContext &context, const ModelConfig &config,
                 const BuildOptions &options);

} // namespace moma

#endif // MOMA_FRONTEND_MODELBUILDER_H
