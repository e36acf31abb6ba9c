//===- Passes.h - moma's CPU mapping passes ---------------------*- C++ -*-===//

#ifndef PASSES_CPU_PASSES_H
#define PASSES_CPU_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

#include "moma/Support/LLVM.h"
#include <memory>

namespace moma {

#define GEN_PASS_DECL
#include "passes/CPU/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/CPU/Passes.h.inc"

} // namespace moma

#endif // PASSES_CPU_PASSES_H
