//===- DropInPlaceUpdates.cpp - Drop a train step's in-place results ------===//
//
// Implements `moma-drop-in-place-updates` (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "passes/Transforms/Passes.h"

#include "llvm/ADT/BitVector.h"

namespace moma {
#define GEN_PASS_DEF_MOMADROPINPLACEUPDATES
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;

namespace {
struct DropInPlaceUpdatesPass
    : moma::impl::MomaDropInPlaceUpdatesBase<DropInPlaceUpdatesPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    StringRef updatesAttr = moma::MomaDialect::getUpdatesAttrName();
    llvm::BitVector dropped(func.getNumResults());
    for (unsigned i = 0, e = func.getNumResults(); i < e; ++i)
      if (func.getResultAttr(i, updatesAttr))
        dropped.set(i);
    if (dropped.none())
      return;
    if (!func.getBody().hasOneBlock()) {
      func.emitError() << "moma-drop-in-place-updates: expected one block";
      return signalPassFailure();
    }
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    for (unsigned i : dropped.set_bits()) {
      StringRef name =
          func.getResultAttrOfType<StringAttr>(i, updatesAttr).getValue();
      auto arg = dyn_cast<BlockArgument>(ret.getOperand(i));
      bool isTarget = false;
      if (arg && arg.getOwner()->isEntryBlock())
        for (StringRef attr : {moma::MomaDialect::getWeightAttrName(),
                               moma::MomaDialect::getStateAttrName()})
          if (auto target =
                  func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), attr))
            isTarget |= target.getValue() == name;
      if (!isTarget) {
        func.emitError() << "moma-drop-in-place-updates: the update of '"
                         << name
                         << "' is not written in place into its argument "
                            "(bufferization gave it another buffer)";
        return signalPassFailure();
      }
    }
    ret->eraseOperands(dropped);
    if (failed(func.eraseResults(dropped)))
      return signalPassFailure();
  }
};
} // namespace
