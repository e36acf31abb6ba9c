//===- SplitFunctions.cpp - Functions with many parallel loops, in parts --===//
//
// Implements `moma-cpu-split-functions` (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SetVector.h"

namespace moma {
#define GEN_PASS_DEF_MOMACPUSPLITFUNCTIONS
#include "passes/CPU/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

/// Whether a part may rebuild `value` instead of receiving it: a function
/// argument, or the result of a side-effect-free op without regions whose
/// operands are rebuildable too.
bool isRebuildable(Value value, func::FuncOp func) {
  if (auto arg = dyn_cast<BlockArgument>(value))
    return arg.getOwner()->getParentOp() == func.getOperation();
  Operation *def = value.getDefiningOp();
  if (def->getNumRegions() != 0 || !isMemoryEffectFree(def))
    return false;
  return llvm::all_of(def->getOperands(),
                      [&](Value v) { return isRebuildable(v, func); });
}

/// Rebuilds `value` (rebuildable) at the builder's point in the part.
Value rebuild(OpBuilder &b, Value value, IRMapping &mapping) {
  if (Value mapped = mapping.lookupOrNull(value))
    return mapped;
  Operation *def = value.getDefiningOp();
  for (Value operand : def->getOperands())
    rebuild(b, operand, mapping);
  Operation *clone = b.clone(*def, mapping);
  return clone->getResult(cast<OpResult>(value).getResultNumber());
}

struct SplitFunctionsPass
    : moma::impl::MomaCpuSplitFunctionsBase<SplitFunctionsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (maxParallelLoops <= 0)
      return;
    SmallVector<func::FuncOp> funcs(getOperation().getOps<func::FuncOp>());
    for (func::FuncOp func : funcs)
      if (!func.isExternal() && func.getBody().hasOneBlock())
        split(func);
  }

  void split(func::FuncOp func) {
    Block &body = func.getBody().front();
    // Runs of top-level ops, cut after an op where every value defined so
    // far that is used later is rebuildable or a scalar; the scalars
    // (`crossing[k]` after part k) are returned by the part and passed on.
    SmallVector<SmallVector<Operation *>> parts(1);
    SmallVector<SmallVector<Value>> crossing;
    int64_t loops = 0;
    llvm::SetVector<Value> live; // non-rebuildable values defined so far
    for (Operation &op : body.without_terminator()) {
      parts.back().push_back(&op);
      op.walk([&](scf::ParallelOp) { ++loops; });
      for (Value result : op.getResults())
        if (!isRebuildable(result, func))
          live.insert(result);
      if (loops < maxParallelLoops)
        continue;
      live.remove_if([&](Value v) {
        return llvm::all_of(v.getUsers(), [&](Operation *user) {
          Operation *top = body.findAncestorOpInBlock(*user);
          return top == &op || top->isBeforeInBlock(&op);
        });
      });
      if (!llvm::all_of(
              live, [](Value v) { return v.getType().isIntOrIndexOrFloat(); }))
        continue;
      crossing.emplace_back(live.begin(), live.end());
      parts.emplace_back();
      loops = 0;
    }
    if (parts.back().empty()) {
      parts.pop_back();
      crossing.pop_back();
    }
    if (parts.size() < 2)
      return;
    crossing.emplace_back(); // nothing crosses out of the last part

    OpBuilder moduleBuilder(func);
    moduleBuilder.setInsertionPointAfter(func);
    SmallVector<func::FuncOp> partFuncs;
    for (auto [index, ops] : llvm::enumerate(parts)) {
      ArrayRef<Value> in =
          index ? ArrayRef<Value>(crossing[index - 1]) : ArrayRef<Value>();
      ArrayRef<Value> out = crossing[index];
      SmallVector<Type> inputs(func.getArgumentTypes());
      for (Value v : in)
        inputs.push_back(v.getType());
      SmallVector<Type> results;
      for (Value v : out)
        results.push_back(v.getType());
      std::string name = (func.getSymName() + ".part" + Twine(index)).str();
      auto part = func::FuncOp::create(
          moduleBuilder, func.getLoc(), name,
          FunctionType::get(&getContext(), inputs, results));
      part.setPrivate();
      partFuncs.push_back(part);
      Block *entry = part.addEntryBlock();
      OpBuilder b = OpBuilder::atBlockBegin(entry);
      // The part's ops, with what they read from the function's body
      // mapped to the part's arguments, rebuilt, or mapped to the copies
      // made earlier in the part.
      IRMapping mapping;
      for (auto [from, to] :
           llvm::zip(func.getArguments(), entry->getArguments()))
        mapping.map(from, to);
      for (auto [i, v] : llvm::enumerate(in))
        mapping.map(v, entry->getArgument(func.getNumArguments() + i));
      for (Operation *op : ops) {
        op->walk([&](Operation *inner) {
          for (Value operand : inner->getOperands())
            if (!mapping.contains(operand) && operand.getParentBlock() == &body)
              rebuild(b, operand, mapping);
        });
        b.clone(*op, mapping);
      }
      SmallVector<Value> returned;
      for (Value v : out)
        returned.push_back(mapping.lookup(v));
      func::ReturnOp::create(b, func.getLoc(), returned);
      moduleBuilder.setInsertionPointAfter(part);
    }
    // The function calls its parts in order, threading the scalars.
    Operation *terminator = body.getTerminator();
    OpBuilder callBuilder(terminator);
    llvm::SmallPtrSet<Operation *, 16> calls;
    SmallVector<Value> carried;
    for (func::FuncOp part : partFuncs) {
      SmallVector<Value> operands(func.getArguments());
      operands.append(carried.begin(), carried.end());
      auto call =
          func::CallOp::create(callBuilder, func.getLoc(), part, operands);
      calls.insert(call);
      carried.assign(call.getResults().begin(), call.getResults().end());
    }
    for (Operation &op :
         llvm::make_early_inc_range(llvm::reverse(body.getOperations())))
      if (&op != terminator && !calls.contains(&op)) {
        op.dropAllUses();
        op.erase();
      }
  }
};

} // namespace
