//===- Passes.h - moma GPU mapping passes -----------------------*- C++ -*-===//
//
// Declares the passes of passes/GPU/ (bufferized loops to GPU launches) and
// their registration.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_GPU_PASSES_H
#define PASSES_GPU_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "moma/Support/LLVM.h"

namespace moma {

#define GEN_PASS_DECL
#include "passes/GPU/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/GPU/Passes.h.inc"

} // namespace moma

#endif // PASSES_GPU_PASSES_H
