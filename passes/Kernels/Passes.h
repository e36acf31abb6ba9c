//===- Passes.h - the kernel layer's passes ---------------------*- C++ -*-===//

#ifndef PASSES_KERNELS_PASSES_H
#define PASSES_KERNELS_PASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include "moma/Support/LLVM.h"
#include <memory>

namespace moma {

#define GEN_PASS_DECL
#include "passes/Kernels/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Kernels/Passes.h.inc"

} // namespace moma

#endif // PASSES_KERNELS_PASSES_H
