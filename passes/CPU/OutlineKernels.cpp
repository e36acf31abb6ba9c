//===- OutlineKernels.cpp - Kernels as functions, identical ones shared ---===//
//
// Implements `moma-cpu-outline-kernels` (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/Passes.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

#include <functional>

namespace moma {
#define GEN_PASS_DEF_MOMACPUOUTLINEKERNELS
#include "passes/CPU/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

/// Whether a kernel may receive a value of `type` as an argument: a scalar,
/// or a memref the bare-pointer calling convention can pass (static shape,
/// strides and offset).
bool isPassable(Type type) {
  if (type.isIntOrIndexOrFloat())
    return true;
  auto memref = dyn_cast<BaseMemRefType>(type);
  return memref && LLVMTypeConverter::canConvertToBarePtr(memref);
}

/// Whether the kernel rebuilds `def` instead of receiving its results:
/// a constant, or a side-effect-free op without regions whose results
/// cannot be passed or that reads nothing (a memref.get_global).
bool isRebuilt(Operation *def) {
  if (def->getNumRegions() != 0 || !isMemoryEffectFree(def))
    return false;
  if (def->hasTrait<OpTrait::ConstantLike>() || def->getNumOperands() == 0)
    return true;
  return !llvm::all_of(def->getResultTypes(), isPassable);
}

/// What one top-level op reads from its function's body, split into the
/// values passed to its kernel (in order of first use) and the ops the
/// kernel rebuilds (in block order).
struct KernelInputs {
  llvm::SetVector<Value> arguments;
  SmallVector<Operation *> rebuilt;
};

/// The inputs of the kernel holding `op`, a top-level op of `body`, or
/// failure where some value it reads can neither be passed nor rebuilt.
FailureOr<KernelInputs> collectInputs(Operation *op, Block &body) {
  KernelInputs inputs;
  llvm::SetVector<Operation *> rebuilt;
  bool passable = true;
  std::function<void(Value)> visit = [&](Value value) {
    if (value.getParentBlock() != &body || inputs.arguments.contains(value))
      return;
    Operation *def = value.getDefiningOp();
    if (def && isRebuilt(def)) {
      if (rebuilt.insert(def))
        for (Value operand : def->getOperands())
          visit(operand);
      return;
    }
    if (!isPassable(value.getType()))
      passable = false;
    inputs.arguments.insert(value);
  };
  op->walk<WalkOrder::PreOrder>([&](Operation *inner) {
    for (Value operand : inner->getOperands())
      visit(operand);
  });
  if (!passable || !llvm::all_of(op->getResultTypes(), isPassable))
    return failure();
  inputs.rebuilt.assign(rebuilt.begin(), rebuilt.end());
  llvm::sort(inputs.rebuilt,
             [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return inputs;
}

/// A structural hash of a kernel's body: its ops' names, attributes and
/// types, not which values they use (equal bodies hash equally; unequal
/// ones are told apart by OperationEquivalence).
llvm::hash_code hashBody(func::FuncOp kernel) {
  llvm::hash_code hash = hash_value(kernel.getFunctionType());
  kernel.getBody().walk([&](Operation *op) {
    hash =
        llvm::hash_combine(hash, OperationEquivalence::computeHash(
                                     op, OperationEquivalence::ignoreHashValue,
                                     OperationEquivalence::ignoreHashValue,
                                     OperationEquivalence::IgnoreLocations));
  });
  return hash;
}

struct OutlineKernelsPass
    : moma::impl::MomaCpuOutlineKernelsBase<OutlineKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<func::FuncOp> funcs(getOperation().getOps<func::FuncOp>());
    for (func::FuncOp func : funcs)
      if (!func.isExternal() && func.getBody().hasOneBlock())
        outline(func);
    // A kernel called from several places stays one function in LLVM too.
    for (auto &[kernel, calls] : callCount)
      if (calls > 1)
        kernel->setAttr(
            "passthrough",
            ArrayAttr::get(&getContext(),
                           {StringAttr::get(&getContext(), "noinline")}));
  }

  void outline(func::FuncOp func) {
    Block &body = func.getBody().front();
    OpBuilder moduleBuilder(func);
    moduleBuilder.setInsertionPointAfter(func);
    SmallVector<Operation *> kernels;
    for (Operation &op : body.without_terminator())
      if (op.getNumRegions() != 0 || isa<memref::CopyOp>(op))
        kernels.push_back(&op);
    for (Operation *op : kernels) {
      FailureOr<KernelInputs> inputs = collectInputs(op, body);
      if (failed(inputs))
        continue;
      func::FuncOp kernel = build(func, op, *inputs, moduleBuilder);
      func::FuncOp shared = findEquivalent(kernel);
      if (shared != kernel) {
        kernel.erase();
        kernel = shared;
      } else {
        moduleBuilder.setInsertionPointAfter(kernel);
      }
      ++callCount[kernel];
      OpBuilder b(op);
      auto call = func::CallOp::create(b, op->getLoc(), kernel,
                                       inputs->arguments.getArrayRef());
      op->replaceAllUsesWith(call.getResults());
      op->erase();
    }
  }

  /// A private function `<func>.kernel<i>` holding `op`: its arguments are
  /// `inputs.arguments`, it rebuilds `inputs.rebuilt`, and it returns `op`'s
  /// results.
  func::FuncOp build(func::FuncOp func, Operation *op,
                     const KernelInputs &inputs, OpBuilder &moduleBuilder) {
    SmallVector<Type> argumentTypes;
    for (Value v : inputs.arguments)
      argumentTypes.push_back(v.getType());
    std::string name =
        (func.getSymName() + ".kernel" + Twine(nextIndex[func]++)).str();
    auto kernel = func::FuncOp::create(
        moduleBuilder, op->getLoc(), name,
        FunctionType::get(&getContext(), argumentTypes, op->getResultTypes()));
    kernel.setPrivate();
    Block *entry = kernel.addEntryBlock();
    OpBuilder b = OpBuilder::atBlockBegin(entry);
    IRMapping mapping;
    for (auto [from, to] : llvm::zip(inputs.arguments, entry->getArguments()))
      mapping.map(from, to);
    for (Operation *def : inputs.rebuilt)
      b.clone(*def, mapping);
    Operation *clone = b.clone(*op, mapping);
    func::ReturnOp::create(b, op->getLoc(), clone->getResults());
    return kernel;
  }

  /// An earlier kernel whose body is equivalent to `kernel`'s (same types,
  /// same ops and attributes, same uses of the arguments), or `kernel`
  /// itself, which is then remembered for the kernels that follow.
  func::FuncOp findEquivalent(func::FuncOp kernel) {
    SmallVector<func::FuncOp> &bucket = byHash[hashBody(kernel)];
    for (func::FuncOp earlier : bucket)
      if (earlier.getFunctionType() == kernel.getFunctionType() &&
          OperationEquivalence::isRegionEquivalentTo(
              &earlier.getBody(), &kernel.getBody(),
              OperationEquivalence::IgnoreLocations))
        return earlier;
    bucket.push_back(kernel);
    return kernel;
  }

  llvm::DenseMap<llvm::hash_code, SmallVector<func::FuncOp>> byHash;
  llvm::MapVector<Operation *, int64_t> callCount;
  llvm::DenseMap<Operation *, int64_t> nextIndex;
};

} // namespace
