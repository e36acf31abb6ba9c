//===- Autodiff.cpp - Gradients of the loss with respect to the weights ---===//
//
// Implements `moma-autodiff` (see Passes.td): reverse-mode differentiation
// of a moma function through GradientOpInterface, with the tensor
// arithmetic between moma ops differentiated here.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "dialects/moma/MomaOps.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/DenseMap.h"

namespace moma {
#define GEN_PASS_DEF_MOMAAUTODIFF
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

/// The prefix of the result names that carry weight gradients.
static constexpr StringLiteral kGradientPrefix = "grad:";

/// Whether `value` is a float tensor (the values gradients flow through).
static bool isFloatTensor(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && isa<FloatType>(type.getElementType());
}

/// Zeros of the tensor type `type` (`linalg.fill` of an empty tensor, which
/// bufferizes to a fill in place instead of a constant in the binary).
static Value buildZeros(OpBuilder &b, Location loc, RankedTensorType type) {
  Value empty =
      tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  Value zero = arith::ConstantOp::create(
      b, loc, b.getFloatAttr(type.getElementType(), 0.0));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

namespace {

/// The gradients of one function's values, built at the end of its body.
class GradientBuilder {
public:
  GradientBuilder(func::FuncOp func, func::ReturnOp ret)
      : func(func), builder(ret) {}

  /// Seeds `loss` with 1 and differentiates every op of the body, last
  /// first.
  LogicalResult differentiate(Value loss) {
    auto type = cast<RankedTensorType>(loss.getType());
    gradients[loss] = arith::ConstantOp::create(
        builder, loss.getLoc(),
        DenseElementsAttr::get(
            type, builder.getFloatAttr(type.getElementType(), 1.0)));
    Block &body = func.getBody().front();
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops))
      if (failed(differentiate(op)))
        return failure();
    return success();
  }

  /// The gradient of `value`, or null when none reaches it.
  Value gradientOf(Value value) const { return gradients.lookup(value); }

  OpBuilder &getBuilder() { return builder; }

private:
  /// Adds `gradient` to the gradient of `value`.
  void accumulate(Value value, Value gradient) {
    if (!gradient)
      return;
    Value &slot = gradients[value];
    slot = slot ? arith::AddFOp::create(builder, value.getLoc(), slot, gradient)
                      .getResult()
                : gradient;
  }

  LogicalResult differentiate(Operation *op) {
    SmallVector<Value> resultGradients;
    bool any = false;
    for (Value result : op->getResults()) {
      resultGradients.push_back(gradientOf(result));
      any |= static_cast<bool>(resultGradients.back());
    }
    if (!any)
      return success();
    SmallVector<Value> operandGradients(op->getNumOperands());
    if (auto rule = dyn_cast<GradientOpInterface>(op)) {
      if (failed(
              rule.buildGradients(builder, resultGradients, operandGradients)))
        return failure();
    } else if (failed(differentiateArithmetic(op, resultGradients[0],
                                              operandGradients))) {
      return failure();
    }
    for (auto [operand, gradient] :
         llvm::zip_equal(op->getOperands(), operandGradients))
      if (gradient && isFloatTensor(operand))
        accumulate(operand, gradient);
    return success();
  }

  /// The rules of the tensor arithmetic between moma ops.
  LogicalResult differentiateArithmetic(Operation *op, Value dy,
                                        MutableArrayRef<Value> gradients) {
    Location loc = op->getLoc();
    if (op->getNumResults() != 1 || !isFloatTensor(op->getResult(0)))
      return op->emitOpError()
             << "has no gradient rule (moma-autodiff differentiates moma ops "
                "with GradientOpInterface and element-wise tensor "
                "arithmetic)";
    if (isa<arith::AddFOp>(op)) {
      gradients[0] = gradients[1] = dy;
      return success();
    }
    if (isa<arith::SubFOp>(op)) {
      gradients[0] = dy;
      gradients[1] = arith::NegFOp::create(builder, loc, dy);
      return success();
    }
    if (isa<arith::NegFOp>(op)) {
      gradients[0] = arith::NegFOp::create(builder, loc, dy);
      return success();
    }
    if (auto mul = dyn_cast<arith::MulFOp>(op)) {
      if (gradientNeeded(mul.getLhs()))
        gradients[0] = arith::MulFOp::create(builder, loc, dy, mul.getRhs());
      if (gradientNeeded(mul.getRhs()))
        gradients[1] = arith::MulFOp::create(builder, loc, dy, mul.getLhs());
      return success();
    }
    if (auto transpose = dyn_cast<linalg::TransposeOp>(op)) {
      if (!transpose.hasPureTensorSemantics())
        return op->emitOpError() << "has no gradient rule on buffers";
      ArrayRef<int64_t> perm = transpose.getPermutation();
      SmallVector<int64_t> inverse(perm.size());
      for (auto [i, p] : llvm::enumerate(perm))
        inverse[p] = i;
      auto inputType = cast<RankedTensorType>(transpose.getInput().getType());
      Value init = tensor::EmptyOp::create(builder, loc, inputType.getShape(),
                                           inputType.getElementType());
      gradients[0] =
          linalg::TransposeOp::create(builder, loc, dy, init, inverse)
              .getResult()[0];
      return success();
    }
    return op->emitOpError()
           << "has no gradient rule (moma-autodiff differentiates moma ops "
              "with GradientOpInterface and element-wise tensor arithmetic)";
  }

  /// Whether `value` can lead back to a weight (constants cannot).
  static bool gradientNeeded(Value value) {
    return !value.getDefiningOp<arith::ConstantOp>();
  }

  func::FuncOp func;
  OpBuilder builder;
  llvm::DenseMap<Value, Value> gradients;
};

struct AutodiffPass : moma::impl::MomaAutodiffBase<AutodiffPass> {
  using MomaAutodiffBase::MomaAutodiffBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.getSymName() != function || func.isExternal())
      return;
    if (!func.getBody().hasOneBlock())
      return signalFail(func.emitOpError()
                        << "moma-autodiff needs a function of one block");
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    StringRef outputAttr = MomaDialect::getOutputAttrName();

    // The loss: the result named "total".
    Value loss;
    for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
      auto name = func.getResultAttrOfType<StringAttr>(i, outputAttr);
      if (name && name.getValue() == "total")
        loss = ret.getOperand(i);
      if (name && name.getValue().starts_with(kGradientPrefix))
        return signalFail(func.emitOpError()
                          << "already returns gradients (result " << i
                          << " is '" << name.getValue() << "')");
    }
    if (!loss)
      return signalFail(func.emitOpError()
                        << "has no result with " << outputAttr
                        << " = \"total\" to differentiate");
    if (!isFloatTensor(loss) ||
        cast<RankedTensorType>(loss.getType()).getRank() != 0)
      return signalFail(func.emitOpError()
                        << "'total' must be a scalar float tensor");

    GradientBuilder gradients(func, ret);
    if (failed(gradients.differentiate(loss)))
      return signalPassFailure();

    // Every weight's gradient becomes a result, in argument order.
    OpBuilder &b = gradients.getBuilder();
    SmallVector<Value> results(ret.getOperands());
    SmallVector<Type> resultTypes(func.getResultTypes());
    SmallVector<StringAttr> names;
    for (BlockArgument arg : func.getArguments()) {
      auto weight = func.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), MomaDialect::getWeightAttrName());
      if (!weight)
        continue;
      if (!isFloatTensor(arg))
        return signalFail(func.emitOpError() << "weight '" << weight.getValue()
                                             << "' is not a float tensor");
      Value gradient = gradients.gradientOf(arg);
      if (!gradient)
        gradient =
            buildZeros(b, arg.getLoc(), cast<RankedTensorType>(arg.getType()));
      results.push_back(gradient);
      resultTypes.push_back(arg.getType());
      names.push_back(b.getStringAttr(kGradientPrefix + weight.getValue()));
    }
    ret->setOperands(results);
    for (auto [type, name] : llvm::zip_equal(
             ArrayRef(resultTypes).drop_front(func.getNumResults()), names))
      func.insertResult(func.getNumResults(), type,
                        b.getDictionaryAttr(b.getNamedAttr(outputAttr, name)));
  }

private:
  void signalFail(InFlightDiagnostic diag) {
    (void)diag;
    signalPassFailure();
  }
};

} // namespace
