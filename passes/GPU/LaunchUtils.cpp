//===- LaunchUtils.cpp - Helpers shared by the GPU mapping passes ---------===//

#include "passes/GPU/LaunchUtils.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;

bool moma::isHostViewOp(Operation *op) {
  return isa<memref::SubViewOp, memref::CollapseShapeOp, memref::ExpandShapeOp,
             memref::ReinterpretCastOp, memref::CastOp, memref::ViewOp>(op);
}

bool moma::isRootBuffer(Value value) {
  if (!isa<MemRefType>(value.getType()))
    return false;
  if (auto arg = dyn_cast<BlockArgument>(value))
    return isa<func::FuncOp>(arg.getOwner()->getParentOp());
  Operation *def = value.getDefiningOp();
  return isa<memref::AllocOp, memref::AllocaOp>(def) &&
         isa<func::FuncOp>(def->getParentOp());
}
