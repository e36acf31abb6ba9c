//===- WrapSequential.cpp - The moma-gpu-wrap-sequential pass -------------===//
//
// Moves the host code left after parallel-loop mapping (sequential loop
// nests, stores, loads, arithmetic on loaded values) into single-thread
// gpu.launch ops, so that the host only allocates and launches.
//
//===----------------------------------------------------------------------===//

#include "passes/GPU/LaunchUtils.h"
#include "passes/GPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"

namespace moma {
#define GEN_PASS_DEF_MOMAGPUWRAPSEQUENTIAL
#include "passes/GPU/Passes.h.inc"
} // namespace moma

using namespace mlir;

namespace {
/// Whether `op`, directly in the function body, stays on the host.
bool staysOnHost(Operation *op, const llvm::DenseSet<Operation *> &device) {
  if (isa<gpu::LaunchOp, func::ReturnOp, memref::AllocOp, memref::AllocaOp,
          memref::DeallocOp>(op))
    return true;
  if (moma::isHostViewOp(op) || isa<memref::GetGlobalOp>(op))
    return llvm::none_of(op->getOperands(), [&](Value v) {
      return v.getDefiningOp() && device.contains(v.getDefiningOp());
    });
  // Pure scalar work on host values: launch sizes, constants.
  if (op->getNumRegions() == 0 && isPure(op))
    return llvm::none_of(op->getOperands(), [&](Value v) {
      return !v.getDefiningOp() || device.contains(v.getDefiningOp());
    });
  return false;
}

/// Moves `run` (ops of one block, in order) into a new 1x1x1 gpu.launch
/// placed after the run's last op.
LogicalResult wrap(ArrayRef<Operation *> run) {
  llvm::SmallPtrSet<Operation *, 16> inRun(run.begin(), run.end());
  for (Operation *op : run)
    for (Value result : op->getResults())
      for (Operation *user : result.getUsers()) {
        Operation *top = user;
        while (top->getBlock() != op->getBlock())
          top = top->getParentOp();
        if (!inRun.contains(top))
          return op->emitOpError()
                 << "computes a value on the device that is used after its "
                    "single-thread launch (by '"
                 << user->getName() << "'); moma-gpu-wrap-sequential cannot "
                 << "pass values between launches";
      }
  OpBuilder b(run.back()->getContext());
  b.setInsertionPointAfter(run.back());
  Location loc = run.front()->getLoc();
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto launch = gpu::LaunchOp::create(b, loc, one, one, one, one, one, one);
  Block &body = launch.getBody().front();
  b.setInsertionPointToEnd(&body);
  Operation *terminator = gpu::TerminatorOp::create(b, loc);
  for (Operation *op : run)
    op->moveBefore(terminator);
  return success();
}

/// Splits the function body into maximal runs of device ops; launches and
/// the return end a run.
SmallVector<SmallVector<Operation *>> findRuns(Block &body) {
  llvm::DenseSet<Operation *> device;
  SmallVector<SmallVector<Operation *>> runs;
  SmallVector<Operation *> current;
  for (Operation &op : body) {
    if (!staysOnHost(&op, device)) {
      device.insert(&op);
      current.push_back(&op);
      continue;
    }
    // Launches and the return end a run: the launches keep the program
    // order of all memory effects. Allocations, views, constants and
    // launch-size arithmetic stay on the host without ending it (the launch
    // goes after the run's last op, so they dominate it).
    if (isa<gpu::LaunchOp, func::ReturnOp>(op) && !current.empty()) {
      runs.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty())
    runs.push_back(std::move(current));
  return runs;
}

/// Returns the ancestor of `op` in `body`.
Operation *topLevelAncestor(Operation *op, Block &body) {
  while (op->getBlock() != &body)
    op = op->getParentOp();
  return op;
}

/// Passes the scalars a run computes and later code uses through memory: a
/// rank-0 buffer allocated at the function entry, a store after the
/// definition and a load before each later user (at the start of the
/// launch body when the user is inside a launch). The loads then belong to
/// the runs (or launches) of their users.
LogicalResult spillEscapingValues(Block &body) {
  SmallVector<SmallVector<Operation *>> runs = findRuns(body);
  llvm::DenseMap<Operation *, unsigned> runOf;
  for (auto [index, run] : llvm::enumerate(runs))
    for (Operation *op : run)
      runOf[op] = index;
  OpBuilder b(body.getParentOp()->getContext());
  for (auto [index, run] : llvm::enumerate(runs)) {
    for (Operation *def : run) {
      for (Value result : def->getResults()) {
        SmallVector<OpOperand *> escaping;
        for (OpOperand &use : result.getUses()) {
          Operation *top = topLevelAncestor(use.getOwner(), body);
          auto it = runOf.find(top);
          if (it == runOf.end() || it->second != index)
            escaping.push_back(&use);
        }
        if (escaping.empty())
          continue;
        Type type = result.getType();
        if (!type.isIntOrIndexOrFloat())
          return def->emitOpError()
                 << "computes a " << type
                 << " on the device that later code uses; only scalars can "
                    "be passed between launches";
        Location loc = def->getLoc();
        b.setInsertionPointToStart(&body);
        Value slot = memref::AllocOp::create(b, loc, MemRefType::get({}, type));
        b.setInsertionPointAfter(def);
        memref::StoreOp::create(b, loc, result, slot, ValueRange{});
        llvm::DenseMap<Operation *, Value> loaded;
        for (OpOperand *use : escaping) {
          Operation *top = topLevelAncestor(use->getOwner(), body);
          auto launch = dyn_cast<gpu::LaunchOp>(top);
          if (top == use->getOwner() && (launch || !runOf.count(top)))
            return use->getOwner()->emitOpError()
                   << "uses a value computed on the device (by '"
                   << def->getName() << "') on the host; data-dependent "
                   << "launch sizes and host code are not supported";
          Value &value = loaded[top];
          if (!value) {
            if (launch)
              b.setInsertionPointToStart(&launch.getBody().front());
            else
              b.setInsertionPoint(top);
            value = memref::LoadOp::create(b, loc, slot, ValueRange{});
          }
          use->set(value);
        }
      }
    }
  }
  return success();
}

struct MomaGpuWrapSequential
    : moma::impl::MomaGpuWrapSequentialBase<MomaGpuWrapSequential> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    for (auto dealloc :
         llvm::make_early_inc_range(func.getOps<memref::DeallocOp>()))
      dealloc.erase();
    Block &body = func.getBody().front();
    if (failed(spillEscapingValues(body)))
      return signalPassFailure();
    for (ArrayRef<Operation *> run : findRuns(body))
      if (failed(wrap(run)))
        return signalPassFailure();
  }
};
} // namespace
