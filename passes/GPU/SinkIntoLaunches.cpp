//===- SinkIntoLaunches.cpp - The moma-gpu-sink-into-launches pass --------===//
//
// Clones the views, globals and constants a gpu.launch uses into its body,
// so that the outlined kernel takes only root buffers (function arguments
// and allocations, i.e. arena offsets) as arguments.
//
//===----------------------------------------------------------------------===//

#include "passes/GPU/LaunchUtils.h"
#include "passes/GPU/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"

namespace moma {
#define GEN_PASS_DEF_MOMAGPUSINKINTOLAUNCHES
#include "passes/GPU/Passes.h.inc"
} // namespace moma

using namespace mlir;

namespace {
/// Whether a host op may be recomputed inside a kernel.
bool isSinkable(Operation *op) {
  if (moma::isHostViewOp(op) || isa<memref::GetGlobalOp>(op))
    return true;
  return op->getNumRegions() == 0 && isPure(op) &&
         !op->hasTrait<OpTrait::IsTerminator>() &&
         llvm::none_of(op->getResultTypes(), llvm::IsaPred<MemRefType>);
}

/// Returns the value inside the launch that stands for host value `value`,
/// cloning its defining op (and, first, those of its operands) at the
/// builder's insertion point; roots map to themselves.
FailureOr<Value> materialize(Value value, OpBuilder &b, IRMapping &mapping,
                             gpu::LaunchOp launch) {
  if (Value mapped = mapping.lookupOrNull(value))
    return mapped;
  if (moma::isRootBuffer(value))
    return value;
  Operation *def = value.getDefiningOp();
  if (!def || !isSinkable(def)) {
    InFlightDiagnostic diag =
        launch.emitOpError()
        << "would pass a value to its kernel that is not a root buffer (a "
           "function argument or a memref.alloc): ";
    if (def)
      diag << "'" << def->getName() << "' at " << def->getLoc();
    else
      diag << "a block argument of type " << value.getType();
    return failure();
  }
  for (Value operand : def->getOperands())
    if (failed(materialize(operand, b, mapping, launch)))
      return failure();
  Operation *clone = b.clone(*def, mapping);
  for (auto [from, to] :
       llvm::zip_equal(def->getResults(), clone->getResults()))
    mapping.map(from, to);
  return mapping.lookup(value);
}

LogicalResult sink(gpu::LaunchOp launch) {
  Region &body = launch.getBody();
  WalkResult allocs = launch.walk([&](Operation *op) {
    if (isa<memref::AllocOp, memref::AllocaOp, memref::ReallocOp>(op)) {
      op->emitOpError() << "allocates inside a kernel; the moma GPU back end "
                           "needs every buffer allocated in the function "
                           "body (the arena)";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (allocs.wasInterrupted())
    return failure();

  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(body, captured);
  OpBuilder b(launch.getContext());
  b.setInsertionPointToStart(&body.front());
  IRMapping mapping;
  for (Value value : captured) {
    FailureOr<Value> inside = materialize(value, b, mapping, launch);
    if (failed(inside))
      return failure();
    if (*inside != value)
      replaceAllUsesInRegionWith(value, *inside, body);
  }
  return success();
}

struct MomaGpuSinkIntoLaunches
    : moma::impl::MomaGpuSinkIntoLaunchesBase<MomaGpuSinkIntoLaunches> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    SmallVector<gpu::LaunchOp> launches;
    func.walk([&](gpu::LaunchOp launch) { launches.push_back(launch); });
    for (gpu::LaunchOp launch : launches)
      if (failed(sink(launch)))
        return signalPassFailure();
    // Host views, globals and constants without uses are gone with the
    // kernels that needed them; erase them bottom-up.
    if (func.isExternal())
      return;
    Block &entry = func.getBody().front();
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(entry)))
      if (op.use_empty() && isSinkable(&op))
        op.erase();
  }
};
} // namespace
