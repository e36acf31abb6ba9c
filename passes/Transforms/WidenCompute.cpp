//===- WidenCompute.cpp - moma ops on bf16/f16 compute in f32 -------------===//
//
// Implements `moma-widen-compute`, the mixed-precision rule of Semantics.md:
// a moma op on bf16 or f16 tensors reads its float operands as f32, computes
// (and accumulates) in f32, and rounds each float result once to the stored
// type.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace moma {
#define GEN_PASS_DEF_MOMAWIDENCOMPUTE
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

/// `type` with its element type replaced by f32 if it is a tensor of a float
/// narrower than f32; a null type otherwise.
static RankedTensorType widenedType(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return {};
  auto element = dyn_cast<FloatType>(tensor.getElementType());
  if (!element || element.getWidth() >= 32)
    return {};
  return tensor.clone(Float32Type::get(type.getContext()));
}

/// Ops that only move values (a result element is a copy of an operand
/// element or a constant) and the region op whose body ops are widened on
/// their own.
static bool keepsStoredType(Operation *op) {
  return isa<EmbedOp, DispatchOp, StopGradientOp, RouteMaskOp, DepthMaskOp,
             DepthRegionOp, YieldOp>(op);
}

/// Extends the narrow float operands of `op` to f32, retypes its narrow
/// float results to f32 and rounds them back for their users.
static void widen(Operation *op) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  for (OpOperand &operand : op->getOpOperands())
    if (RankedTensorType wide = widenedType(operand.get().getType()))
      operand.set(arith::ExtFOp::create(b, loc, wide, operand.get()));
  b.setInsertionPointAfter(op);
  for (OpResult result : op->getResults()) {
    Type stored = result.getType();
    RankedTensorType wide = widenedType(stored);
    if (!wide)
      continue;
    result.setType(wide);
    auto rounded = arith::TruncFOp::create(b, loc, stored, result);
    result.replaceAllUsesExcept(rounded, rounded);
  }
}

namespace {
struct MomaWidenCompute : moma::impl::MomaWidenComputeBase<MomaWidenCompute> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (!isa<MomaDialect>(op->getDialect()) || keepsStoredType(op))
        return;
      auto narrow = [](Type type) { return bool(widenedType(type)); };
      if (llvm::any_of(op->getOperandTypes(), narrow) ||
          llvm::any_of(op->getResultTypes(), narrow))
        ops.push_back(op);
    });
    for (Operation *op : ops)
      widen(op);
  }
};
} // namespace
