//===- MomaAttrs.h - moma attributes and enums ------------------*- C++ -*-===//
//
// Declares the modality and expert-group attributes and the moma enums.
//
//===----------------------------------------------------------------------===//

#ifndef DIALECTS_MOMA_MOMAATTRS_H
#define DIALECTS_MOMA_MOMAATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"
#include "moma/Support/LLVM.h"
#include "llvm/ADT/APFloat.h"

#include "dialects/moma/MomaEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/moma/MomaAttrs.h.inc"

#endif // DIALECTS_MOMA_MOMAATTRS_H
