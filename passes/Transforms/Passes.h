//===- Passes.h - moma transformation and analysis passes -------*- C++ -*-===//

#ifndef PASSES_TRANSFORMS_PASSES_H
#define PASSES_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include "moma/Support/LLVM.h"
#include <memory>

namespace moma {

#define GEN_PASS_DECL
#include "passes/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Transforms/Passes.h.inc"

} // namespace moma

#endif // PASSES_TRANSFORMS_PASSES_H
