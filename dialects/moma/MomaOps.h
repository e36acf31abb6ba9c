//===- MomaOps.h - moma operations ------------------------------*- C++ -*-===//
//
// Declares the moma ops, their interfaces and the helpers their verifiers and
// passes share.
//
//===----------------------------------------------------------------------===//

#ifndef DIALECTS_MOMA_MOMAOPS_H
#define DIALECTS_MOMA_MOMAOPS_H

#include "dialects/moma/MomaAttrs.h"
#include "dialects/moma/MomaDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <optional>

#include "dialects/moma/MomaInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/moma/MomaOps.h.inc"

namespace moma {

/// Returns the modalities declared (attribute `moma.modalities`) by the
/// closest enclosing op of `op`, or std::nullopt when none declares them or
/// the declaration is malformed (the module verifier reports that case).
std::optional<llvm::SmallVector<ModalityAttr>>
getDeclaredModalities(Operation *op);

/// Total number of experts over `groups` (the size of the global expert
/// numbering that routing plans use).
int64_t getTotalExperts(llvm::ArrayRef<ExpertGroupAttr> groups);

/// Largest expert count over `groups` (the last dimension of router logits).
int64_t getMaxExperts(llvm::ArrayRef<ExpertGroupAttr> groups);

/// The groups of an `ArrayAttr` known (by its ODS constraint) to hold expert
/// groups.
llvm::SmallVector<ExpertGroupAttr> getExpertGroups(ArrayAttr groups);

} // namespace moma

#endif // DIALECTS_MOMA_MOMAOPS_H
