//===- HoistModalityPermutation.cpp - Run the network in modality order ---===//
//
// Implements `moma-hoist-modality-permutation` (see Passes.td): one stable
// modality sort per batch row at the entry, the token inputs gathered into
// that order where the network first reads them, the original positions
// handed to every op whose result depends on token order, and the inverse
// permutation only where a value leaves the permuted program.
//
//===----------------------------------------------------------------------===//

#include "passes/Transforms/Passes.h"

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/TypeSwitch.h"

#include <optional>

namespace moma {
#define GEN_PASS_DEF_MOMAHOISTMODALITYPERMUTATION
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

/// What a value of the permuted program is.
enum class Layout {
  /// Rows in modality order, `[B, L, ...]`: un-permuted by a gather.
  Token,
  /// Refers to tokens by their permuted index (routing plans, kept indices,
  /// slot rows): it has no cheap inverse, so it must not leave the program.
  Plan,
  /// Order-independent (losses).
  Free,
};

/// The operands of `op` that hold one row per token (`[B, L, ...]`), or
/// none when `op` is not an op the pass knows to be exact in any token
/// order (given the original positions).
std::optional<SmallVector<OpOperand *>> tokenOperands(Operation *op) {
  auto collect = [](std::initializer_list<MutableOperandRange> ranges) {
    SmallVector<OpOperand *> operands;
    for (const MutableOperandRange &range : ranges)
      for (OpOperand &operand : range)
        operands.push_back(&operand);
    return operands;
  };
  using Result = std::optional<SmallVector<OpOperand *>>;
  return llvm::TypeSwitch<Operation *, Result>(op)
      .Case([&](EmbedOp o) {
        return collect({o.getIdsMutable(), o.getModalityMutable()});
      })
      .Case([&](NormOp o) {
        return collect({o.getXMutable(), o.getModalityMutable()});
      })
      .Case([&](LinearOp o) {
        return collect({o.getXMutable(), o.getModalityMutable()});
      })
      .Case([&](FfnOp o) {
        return collect({o.getXMutable(), o.getModalityMutable()});
      })
      .Case([&](AttentionOp o) {
        return collect(
            {o.getXMutable(), o.getPositionsMutable(), o.getModalityMutable()});
      })
      .Case([&](RouterOp o) {
        return collect({o.getXMutable(), o.getModalityMutable()});
      })
      .Case([&](RouteOp o) {
        return collect({o.getLogitsMutable(), o.getModalityMutable(),
                        o.getAuxMutable(), o.getPositionsMutable()});
      })
      .Case([&](DispatchOp o) { return collect({o.getXMutable()}); })
      .Case([&](ExpertsOp) { return collect({}); })
      .Case([&](CombineOp o) { return collect({o.getResidualMutable()}); })
      .Case([&](DepthRouteOp o) {
        return collect(
            {o.getXMutable(), o.getAuxMutable(), o.getPositionsMutable()});
      })
      .Case([&](DepthRegionOp o) {
        return collect(
            {o.getXMutable(), o.getModalityMutable(), o.getPositionsMutable()});
      })
      .Case([&](ScaleOp o) {
        return collect({o.getXMutable(), o.getScaleMutable()});
      })
      .Case([&](AuxRouterOp o) {
        return collect({o.getXMutable(), o.getModalityMutable()});
      })
      .Case([&](StopGradientOp o) { return collect({o.getInputMutable()}); })
      .Case([&](RouteMaskOp o) { return collect({o.getModalityMutable()}); })
      .Case([&](DepthMaskOp) { return collect({}); })
      .Case([&](CrossEntropyOp o) {
        return collect({o.getLogitsMutable(), o.getTargetsMutable(),
                        o.getTargetModalityMutable()});
      })
      .Case([&](LoadBalancingLossOp o) {
        return collect({o.getLogitsMutable(), o.getModalityMutable()});
      })
      .Case([&](RouterZLossOp o) {
        return collect({o.getLogitsMutable(), o.getModalityMutable()});
      })
      .Case([&](AuxRouterLossOp o) {
        return collect({o.getLogitsMutable(), o.getTargetsMutable()});
      })
      .Default([&](Operation *other) -> Result {
        // Element-wise arithmetic (residual adds, loss arithmetic): token
        // rows when its operands have them.
        if (!other->hasTrait<OpTrait::Elementwise>() ||
            other->getNumResults() != 1 ||
            !isa<RankedTensorType>(other->getResult(0).getType()))
          return std::nullopt;
        if (cast<RankedTensorType>(other->getResult(0).getType()).getRank() < 2)
          return collect({});
        SmallVector<OpOperand *> operands;
        for (OpOperand &operand : other->getOpOperands())
          operands.push_back(&operand);
        return operands;
      });
}

/// The layout of result `index` of `op`, which runs permuted.
Layout resultLayout(Operation *op, unsigned index, Layout inputLayout) {
  if (isa<RouteOp, DepthRouteOp, DispatchOp, ExpertsOp>(op))
    return Layout::Plan;
  if (isa<CrossEntropyOp, LoadBalancingLossOp, RouterZLossOp, AuxRouterLossOp>(
          op))
    return Layout::Free;
  if (isa<StopGradientOp>(op))
    return inputLayout;
  auto type = cast<RankedTensorType>(op->getResult(index).getType());
  if (isa<DepthRegionOp>(op) && index > 0)
    return type.getRank() == 0 ? Layout::Free : Layout::Plan;
  return type.getRank() >= 2 ? Layout::Token : Layout::Free;
}

/// Rewrites one function (see the pass description).
class Hoister {
public:
  explicit Hoister(func::FuncOp func) : func(func) {}

  /// Rewrites the function in place; on failure, reports why and leaves
  /// the IR partly rewritten (the caller works on a copy).
  LogicalResult run();

private:
  /// `value` (sequence order) gathered into modality order, once.
  Value toSorted(Value value);
  /// `value` (modality order) gathered back into sequence order, once.
  Value toSequence(Value value);
  Value gatherAfterDef(Value value, Value by, DenseMap<Value, Value> &memo);
  LogicalResult permuteOp(Operation *op, ArrayRef<OpOperand *> tokens);
  LogicalResult leavePermuted(Operation *op);
  LogicalResult permuteBody(DepthRegionOp region);
  /// A modality-free projection whose result the function returns (the LM
  /// head): it runs in sequence order, so that its wide result needs no
  /// inverse permutation and the loss reads it with the original targets.
  static bool isSequenceOrderHead(Operation *op);

  func::FuncOp func;
  Value order, inverse;
  DenseMap<Value, Layout> permuted;
  DenseMap<Value, Value> sortedOf, sequenceOf;
  /// The gathers this pass inserted.
  DenseSet<Operation *> gathers;
};

Value Hoister::gatherAfterDef(Value value, Value by,
                              DenseMap<Value, Value> &memo) {
  auto it = memo.find(value);
  if (it != memo.end())
    return it->second;
  OpBuilder b(func.getContext());
  if (Operation *def = value.getDefiningOp())
    b.setInsertionPointAfter(def);
  else
    b.setInsertionPointAfter(order.getDefiningOp());
  auto gathered =
      PermuteOp::create(b, value.getLoc(), value.getType(), value, by);
  gathers.insert(gathered);
  memo[value] = gathered;
  return gathered;
}

Value Hoister::toSorted(Value value) {
  Value sorted = gatherAfterDef(value, order, sortedOf);
  permuted[sorted] = Layout::Token;
  return sorted;
}

Value Hoister::toSequence(Value value) {
  return gatherAfterDef(value, inverse, sequenceOf);
}

bool Hoister::isSequenceOrderHead(Operation *op) {
  auto linear = dyn_cast<LinearOp>(op);
  return linear && !linear.getModality() &&
         llvm::any_of(linear->getUsers(), [](Operation *user) {
           return isa<func::ReturnOp>(user);
         });
}

/// An op that stays in sequence order: its permuted token operands are
/// gathered back; a routing plan cannot be.
LogicalResult Hoister::leavePermuted(Operation *op) {
  for (OpOperand &operand : op->getOpOperands()) {
    auto it = permuted.find(operand.get());
    if (it == permuted.end() || it->second == Layout::Free)
      continue;
    if (it->second == Layout::Plan)
      return op->emitRemark("moma-hoist-modality-permutation: this op reads "
                            "a token-order-dependent value it cannot "
                            "un-permute; the function is left unchanged");
    operand.set(toSequence(operand.get()));
  }
  bool captures = false;
  for (Region &region : op->getRegions())
    visitUsedValuesDefinedAbove(region, region, [&](OpOperand *operand) {
      captures |= permuted.contains(operand->get());
    });
  if (captures)
    return op->emitRemark("moma-hoist-modality-permutation: a region reads a "
                          "permuted value; the function is left unchanged");
  return success();
}

/// The body of a permuted depth region sees its kept tokens in modality
/// order and their original positions as `ps`; its order-dependent
/// selections break ties by `ps`.
LogicalResult Hoister::permuteBody(DepthRegionOp region) {
  Block &body = region.getBody().front();
  Value ps = body.getArgument(2);
  for (Operation &op : body) {
    LogicalResult result =
        llvm::TypeSwitch<Operation *, LogicalResult>(&op)
            .Case([&](AttentionOp attention) -> LogicalResult {
              if (attention.getPositions() == ps)
                return success();
              return attention.emitRemark(
                  "moma-hoist-modality-permutation: attention in a depth "
                  "region must use the region's positions; the function is "
                  "left unchanged");
            })
            .Case([&](RouteOp route) {
              if (!route.getPositions())
                route.getPositionsMutable().assign(ps);
              return success(route.getPositions() == ps);
            })
            .Case([&](DepthRouteOp route) {
              if (!route.getPositions())
                route.getPositionsMutable().assign(ps);
              return success(route.getPositions() == ps);
            })
            .Case([&](DepthRegionOp nested) -> LogicalResult {
              return nested.emitRemark(
                  "moma-hoist-modality-permutation: nested depth regions are "
                  "not supported; the function is left unchanged");
            })
            .Default([](Operation *) { return success(); });
    if (failed(result))
      return failure();
  }
  bool captures = false;
  visitUsedValuesDefinedAbove(region.getBody(), region.getBody(),
                              [&](OpOperand *operand) {
                                captures |= permuted.contains(operand->get());
                              });
  if (captures)
    return region.emitRemark("moma-hoist-modality-permutation: the region "
                             "body reads a permuted value from outside; the "
                             "function is left unchanged");
  return success();
}

/// Runs `op` in modality order: token operands still in sequence order are
/// gathered, and the original positions are given to the ops whose result
/// depends on token order.
LogicalResult Hoister::permuteOp(Operation *op, ArrayRef<OpOperand *> tokens) {
  Layout inputLayout = Layout::Free;
  for (OpOperand *operand : tokens) {
    auto it = permuted.find(operand->get());
    if (it == permuted.end())
      operand->set(toSorted(operand->get()));
    else if (it->second == Layout::Plan)
      return op->emitRemark("moma-hoist-modality-permutation: a token operand "
                            "holds a routing plan; the function is left "
                            "unchanged");
    inputLayout = Layout::Token;
  }
  if (auto attention = dyn_cast<AttentionOp>(op);
      attention && !attention.getPositions())
    attention.getPositionsMutable().assign(order);
  if (auto route = dyn_cast<RouteOp>(op); route && !route.getPositions())
    route.getPositionsMutable().assign(order);
  if (auto route = dyn_cast<DepthRouteOp>(op); route && !route.getPositions())
    route.getPositionsMutable().assign(order);
  if (auto region = dyn_cast<DepthRegionOp>(op)) {
    if (!region.getPositions())
      region.getPositionsMutable().assign(order);
    if (failed(permuteBody(region)))
      return failure();
  }
  if (isa<StopGradientOp>(op)) {
    auto it = permuted.find(op->getOperand(0));
    if (it != permuted.end())
      inputLayout = it->second;
  }
  for (OpResult result : op->getResults())
    permuted[result] = resultLayout(op, result.getResultNumber(), inputLayout);
  return success();
}

/// Whether sorting pays: some op selects weights by modality (untied
/// weights, per-group routers and routes). A network whose weights are all
/// shared would only pay for the gathers.
static bool selectsByModality(func::FuncOp func) {
  WalkResult found = func.walk([](Operation *op) {
    bool selects =
        llvm::TypeSwitch<Operation *, bool>(op)
            .Case<RouterOp, RouteOp>([](auto) { return true; })
            .Case<EmbedOp, NormOp, LinearOp, FfnOp, AttentionOp, AuxRouterOp>(
                [](auto o) { return static_cast<bool>(o.getModality()); })
            .Default([](Operation *) { return false; });
    return selects ? WalkResult::interrupt() : WalkResult::advance();
  });
  return found.wasInterrupted();
}

LogicalResult Hoister::run() {
  if (!func.getBody().hasOneBlock() || !selectsByModality(func))
    return success();
  Block &entry = func.getBody().front();
  Value modality;
  DenseSet<Value> starts;
  for (BlockArgument arg : func.getArguments()) {
    auto name =
        func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "moma.input");
    if (name && (name.getValue() == "ids" || name.getValue() == "modality"))
      starts.insert(arg);
    if (name && name.getValue() == "modality")
      modality = arg;
  }
  if (!modality)
    return success();

  OpBuilder b(func.getContext());
  b.setInsertionPointToStart(&entry);
  auto sort = ModalitySortOp::create(b, modality.getLoc(), modality.getType(),
                                     modality.getType(), modality);
  order = sort.getOrder();
  inverse = sort.getInverse();
  permuted[order] = Layout::Token;

  for (Operation &op : llvm::make_early_inc_range(entry)) {
    if (&op == sort.getOperation() || gathers.contains(&op))
      continue;
    std::optional<SmallVector<OpOperand *>> tokens = tokenOperands(&op);
    if (!tokens || isSequenceOrderHead(&op)) {
      if (failed(leavePermuted(&op)))
        return failure();
      continue;
    }
    // The op runs permuted if it reads a value of the permuted program or
    // the token ids or modalities (where the network starts); other inputs
    // (targets) are gathered only for an op that runs permuted anyway.
    bool runsPermuted = llvm::any_of(op.getOperands(), [&](Value value) {
      return permuted.contains(value) || starts.contains(value);
    });
    if (runsPermuted && failed(permuteOp(&op, *tokens)))
      return failure();
  }
  if (sort->use_empty())
    sort.erase();
  return success();
}

struct HoistModalityPermutation
    : moma::impl::MomaHoistModalityPermutationBase<HoistModalityPermutation> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    // Rewrite a copy; keep it only if the whole function could be permuted.
    OwningOpRef<func::FuncOp> copy(func.clone());
    if (failed(Hoister(*copy).run()))
      return;
    func.getBody().takeBody(copy->getBody());
  }
};

} // namespace
