//===- StripAttributes.cpp - Drop moma's discardable attributes -----------===//
//
// Implements `moma-strip-attributes`: once moma IR is lowered, the module's
// modality declaration and the names on function arguments and results are
// only in the way of tools that do not know the moma dialect.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

namespace moma {
#define GEN_PASS_DEF_MOMASTRIPATTRIBUTES
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {
struct MomaStripAttributes
    : moma::impl::MomaStripAttributesBase<MomaStripAttributes> {
  using Base::Base;

  void runOnOperation() override {
    getOperation()->removeAttr(MomaDialect::getModalitiesAttrName());
    StringRef names[] = {
        MomaDialect::getInputAttrName(), MomaDialect::getWeightAttrName(),
        MomaDialect::getOutputAttrName(), MomaDialect::getScratchAttrName()};
    getOperation().walk([&](FunctionOpInterface func) {
      for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
        for (StringRef name : names)
          func.removeArgAttr(i, name);
      for (unsigned i = 0, e = func.getNumResults(); i < e; ++i)
        for (StringRef name : names)
          func.removeResultAttr(i, StringAttr::get(&getContext(), name));
    });
  }
};
} // namespace
