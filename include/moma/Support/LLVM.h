//===- LLVM.h - Import common MLIR and LLVM names into moma -----*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The compiler's code lives in namespace `moma` (the runtime in
/// `moma::runtime`, which never includes this header). This header brings the
/// MLIR and LLVM names that the dialect, pass and front-end headers use
/// unqualified into `moma`, as `circt/Support/LLVM.h` does for CIRCT, so that
/// neither those headers nor the code that includes them need `mlir::` on
/// every type, and no file needs a leading `::` to reach moma's own names.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_SUPPORT_LLVM_H
#define MOMA_SUPPORT_LLVM_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Types.h"
#include "mlir/IR/Value.h"
#include "mlir/Support/LLVM.h"
#include "mlir/Support/LogicalResult.h"

namespace mlir {
class Builder;
class DialectRegistry;
class ImplicitLocOpBuilder;
class MLIRContext;
class ModuleOp;
class OpBuilder;
class OpPassManager;
class Pass;
class PatternRewriter;
class RewritePatternSet;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace moma {

// LLVM's support types, as MLIR itself imports them (mlir/Support/LLVM.h).
using mlir::APFloat;
using mlir::APInt;
using mlir::ArrayRef;
using mlir::DenseMap;
using mlir::DenseSet;
using mlir::failed;
using mlir::failure;
using mlir::FailureOr;
using mlir::function_ref;
using mlir::LogicalResult;
using mlir::MutableArrayRef;
using mlir::SmallVector;
using mlir::SmallVectorImpl;
using mlir::StringRef;
using mlir::succeeded;
using mlir::success;
using mlir::Twine;

// MLIR's core IR classes.
using mlir::ArrayAttr;
using mlir::Attribute;
using mlir::Block;
using mlir::BoolAttr;
using mlir::Builder;
using mlir::DenseElementsAttr;
using mlir::DialectRegistry;
using mlir::FloatAttr;
using mlir::FloatType;
using mlir::ImplicitLocOpBuilder;
using mlir::IndexType;
using mlir::IntegerAttr;
using mlir::IntegerType;
using mlir::Location;
using mlir::MemRefType;
using mlir::MLIRContext;
using mlir::ModuleOp;
using mlir::OpBuilder;
using mlir::Operation;
using mlir::OpOperand;
using mlir::OpPassManager;
using mlir::OpResult;
using mlir::Pass;
using mlir::PatternRewriter;
using mlir::RankedTensorType;
using mlir::Region;
using mlir::RewritePatternSet;
using mlir::ShapedType;
using mlir::StringAttr;
using mlir::Type;
using mlir::TypeRange;
using mlir::Value;
using mlir::ValueRange;

} // namespace moma

#endif // MOMA_SUPPORT_LLVM_H
