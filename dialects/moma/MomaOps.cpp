//===- MomaOps.cpp - moma operations --------------------------------------===//
//
// The op and interface definitions generated from ODS and the helpers the
// ops and passes share. The verifiers live in one file per op family
// (DenseVerifiers.cpp, RoutingVerifiers.cpp, DepthVerifiers.cpp,
// LossVerifiers.cpp); every verifier message names the offending operand or
// attribute and the rule it broke.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace moma;

#include "dialects/moma/MomaInterfaces.cpp.inc"

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

std::optional<SmallVector<ModalityAttr>>
moma::getDeclaredModalities(Operation *op) {
  for (Operation *cur = op; cur; cur = cur->getParentOp()) {
    Attribute attr = cur->getAttr(MomaDialect::getModalitiesAttrName());
    if (!attr)
      continue;
    auto array = dyn_cast<ArrayAttr>(attr);
    if (!array)
      return std::nullopt;
    SmallVector<ModalityAttr> result;
    for (Attribute element : array) {
      auto modality = dyn_cast<ModalityAttr>(element);
      if (!modality)
        return std::nullopt;
      result.push_back(modality);
    }
    return result;
  }
  return std::nullopt;
}

SmallVector<ExpertGroupAttr> moma::getExpertGroups(ArrayAttr groups) {
  SmallVector<ExpertGroupAttr> result;
  for (Attribute attr : groups)
    result.push_back(cast<ExpertGroupAttr>(attr));
  return result;
}

int64_t moma::getTotalExperts(ArrayRef<ExpertGroupAttr> groups) {
  int64_t total = 0;
  for (ExpertGroupAttr group : groups)
    total += group.getExperts();
  return total;
}

int64_t moma::getMaxExperts(ArrayRef<ExpertGroupAttr> groups) {
  int64_t largest = 0;
  for (ExpertGroupAttr group : groups)
    largest = std::max(largest, group.getExperts());
  return largest;
}

#define GET_OP_CLASSES
#include "dialects/moma/MomaOps.cpp.inc"
