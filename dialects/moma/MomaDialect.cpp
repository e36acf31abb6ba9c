//===- MomaDialect.cpp - The moma dialect ---------------------------------===//
//
// Registers the moma ops and attributes and verifies the module-level
// declaration of modalities.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaAttrs.h"
#include "dialects/moma/MomaOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
using namespace moma;

#include "dialects/moma/MomaDialect.cpp.inc"

namespace {
/// Prints expert groups, which routing ops repeat, through aliases
/// (`#group = #moma.expert_group<...>`).
struct MomaOpAsmInterface : OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;

  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    if (isa<ExpertGroupAttr>(attr)) {
      os << "group";
      return AliasResult::OverridableAlias;
    }
    return AliasResult::NoAlias;
  }
};
} // namespace

void MomaDialect::initialize() {
  registerAttributes();
  addInterfaces<MomaOpAsmInterface>();
  addOperations<
#define GET_OP_LIST
#include "dialects/moma/MomaOps.cpp.inc"
      >();
}

/// Checks `moma.modalities`: an array of #moma.modality with ids 0, 1, ...
/// in order, unique names and disjoint token ranges, on a builtin.module.
static LogicalResult verifyModalities(Operation *op, Attribute value) {
  if (!isa<ModuleOp>(op))
    return op->emitError() << "'" << MomaDialect::getModalitiesAttrName()
                           << "' may only be declared on a builtin.module";
  auto array = dyn_cast<ArrayAttr>(value);
  if (!array)
    return op->emitError() << "'" << MomaDialect::getModalitiesAttrName()
                           << "' must be an array of #moma.modality";
  if (array.empty())
    return op->emitError() << "'" << MomaDialect::getModalitiesAttrName()
                           << "' must declare at least one modality";
  llvm::StringSet<> names;
  SmallVector<ModalityAttr> mods;
  for (auto [index, element] : llvm::enumerate(array)) {
    auto modality = dyn_cast<ModalityAttr>(element);
    if (!modality)
      return op->emitError()
             << "'" << MomaDialect::getModalitiesAttrName() << "' entry "
             << index << " is not a #moma.modality";
    if (modality.getId() != static_cast<int64_t>(index))
      return op->emitError()
             << "modality '" << modality.getName().getValue() << "' has id "
             << modality.getId() << " but is entry " << index
             << " of the declaration (ids must be 0, 1, ... in order)";
    if (!names.insert(modality.getName().getValue()).second)
      return op->emitError()
             << "modality name '" << modality.getName().getValue()
             << "' is declared twice";
    for (ModalityAttr other : mods) {
      if (modality.getTokenBegin() < other.getTokenEnd() &&
          other.getTokenBegin() < modality.getTokenEnd())
        return op->emitError()
               << "token ranges of modalities '" << other.getName().getValue()
               << "' and '" << modality.getName().getValue() << "' overlap";
    }
    mods.push_back(modality);
  }
  return success();
}

LogicalResult MomaDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  if (attr.getName() == getModalitiesAttrName())
    return verifyModalities(op, attr.getValue());
  if (attr.getName() == getKernelTargetAttrName()) {
    if (!isa<ModuleOp>(op) || !isa<StringAttr>(attr.getValue()))
      return op->emitError() << "'" << getKernelTargetAttrName()
                             << "' must be a string on a module";
    return success();
  }
  if (attr.getName() == getKernelAttrName()) {
    auto plan = dyn_cast<DictionaryAttr>(attr.getValue());
    if (!plan || !plan.getAs<IntegerAttr>("id") ||
        !plan.getAs<StringAttr>("class") || !plan.getAs<StringAttr>("role"))
      return op->emitError() << "'" << getKernelAttrName()
                             << "' must be a dictionary with an integer 'id' "
                                "and string 'class' and 'role'";
    return success();
  }
  if (attr.getName() == getVocabChunkAttrName()) {
    auto chunk = dyn_cast<IntegerAttr>(attr.getValue());
    if (op->getName().getStringRef() != "scf.for" || !chunk ||
        chunk.getValue().getSExtValue() <= 0)
      return op->emitError() << "'" << getVocabChunkAttrName()
                             << "' must be a positive integer on an scf.for";
    return success();
  }
  return op->emitError() << "unknown moma attribute '"
                         << attr.getName().getValue() << "'";
}

/// `moma.input` / `moma.weight` / `moma.output` name what a function argument
/// or result is to the runtime: a non-empty string.
static LogicalResult verifyNameAttr(Operation *op, NamedAttribute attr,
                                    ArrayRef<StringRef> allowed,
                                    StringRef where) {
  if (!llvm::is_contained(allowed, attr.getName().getValue()))
    return op->emitError() << "unknown moma " << where << " attribute '"
                           << attr.getName().getValue() << "'";
  auto name = dyn_cast<StringAttr>(attr.getValue());
  if (!name || name.getValue().empty())
    return op->emitError() << "'" << attr.getName().getValue()
                           << "' must be a non-empty string";
  return success();
}

LogicalResult MomaDialect::verifyRegionArgAttribute(Operation *op, unsigned,
                                                    unsigned,
                                                    NamedAttribute attr) {
  // moma-scratch-arena's argument: the arena's size in bytes.
  if (attr.getName() == getScratchAttrName()) {
    auto bytes = dyn_cast<IntegerAttr>(attr.getValue());
    if (!bytes || !bytes.getType().isInteger(64) || bytes.getInt() < 0)
      return op->emitError() << "'" << getScratchAttrName()
                             << "' must be a non-negative i64 byte count";
    return success();
  }
  // After buffer-results-to-out-params, outputs are arguments too.
  return verifyNameAttr(op, attr,
                        {getInputAttrName(), getWeightAttrName(),
                         getStateAttrName(), getOutputAttrName()},
                        "argument");
}

LogicalResult MomaDialect::verifyRegionResultAttribute(Operation *op, unsigned,
                                                       unsigned,
                                                       NamedAttribute attr) {
  return verifyNameAttr(op, attr, {getOutputAttrName(), getUpdatesAttrName()},
                        "result");
}
