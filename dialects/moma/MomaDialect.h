//===- MomaDialect.h - The moma dialect -------------------------*- C++ -*-===//
//
// Declares the moma dialect class.
//
//===----------------------------------------------------------------------===//

#ifndef DIALECTS_MOMA_MOMADIALECT_H
#define DIALECTS_MOMA_MOMADIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"
#include "moma/Support/LLVM.h"

#include "dialects/moma/MomaDialect.h.inc"

#endif // DIALECTS_MOMA_MOMADIALECT_H
