//===- OptimizerOps.cpp - The optimizer ops' syntax and verifiers ---------===//
//
// The custom assembly format and the verifier of moma.adamw
// (MomaOptimizerOps.td). The format writes the weights' types once: the
// gradients, moments and updated tensors have the same types.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace moma;

/// Parses `KEYWORD ( operands )` into `operands`.
static ParseResult
parseOperandGroup(OpAsmParser &parser, StringRef keyword,
                  SmallVectorImpl<OpAsmParser::UnresolvedOperand> &operands) {
  if (parser.parseKeyword(keyword))
    return failure();
  return parser.parseOperandList(operands, OpAsmParser::Delimiter::Paren);
}

ParseResult AdamWOp::parse(OpAsmParser &parser, OperationState &result) {
  OpAsmParser::UnresolvedOperand step;
  SmallVector<OpAsmParser::UnresolvedOperand> groups[4];
  static constexpr StringLiteral kGroups[] = {"weights", "grads", "exp_avg",
                                              "exp_avg_sq"};
  if (parser.parseKeyword("step") || parser.parseOperand(step))
    return failure();
  for (unsigned i = 0; i < 4; ++i)
    if (parseOperandGroup(parser, kGroups[i], groups[i]))
      return failure();
  SmallVector<Type> types;
  Type scalarType;
  llvm::SMLoc typesLoc;
  if (parser.parseOptionalAttrDict(result.attributes) || parser.parseColon() ||
      parser.getCurrentLocation(&typesLoc) || parser.parseTypeList(types) ||
      parser.parseArrow() || parser.parseType(scalarType))
    return failure();
  for (unsigned i = 0; i < 4; ++i) {
    if (groups[i].size() != types.size())
      return parser.emitError(typesLoc)
             << "expected " << groups[i].size() << " types for '" << kGroups[i]
             << "', one per weight, but got " << types.size();
    if (parser.resolveOperands(groups[i], types, typesLoc, result.operands))
      return failure();
  }
  Type stepType = RankedTensorType::get({}, parser.getBuilder().getI64Type());
  if (parser.resolveOperand(step, stepType, result.operands))
    return failure();
  for (unsigned i = 0; i < 3; ++i)
    result.addTypes(types);
  result.addTypes({scalarType, scalarType});
  return success();
}

/// Prints `KEYWORD(operands)`.
static void printOperandGroup(OpAsmPrinter &p, StringRef keyword,
                              ValueRange operands) {
  p << " " << keyword << "(";
  p.printOperands(operands);
  p << ")";
}

void AdamWOp::print(OpAsmPrinter &p) {
  p << " step ";
  p.printOperand(getStep());
  printOperandGroup(p, "weights", getWeights());
  printOperandGroup(p, "grads", getGrads());
  printOperandGroup(p, "exp_avg", getExpAvg());
  printOperandGroup(p, "exp_avg_sq", getExpAvgSq());
  p.printOptionalAttrDict((*this)->getAttrs());
  p << " : ";
  llvm::interleaveComma(getWeights().getTypes(), p);
  p << " -> " << getGradNorm().getType();
}

LogicalResult AdamWOp::verify() {
  Operation *op = getOperation();
  size_t count = getWeights().size();
  if (count == 0)
    return emitOpError("needs at least one weight");
  auto scalarType = cast<RankedTensorType>(getGradNorm().getType());
  if (getLearningRate().getType() != scalarType)
    return emitOpError("'learning_rate' must have the type of 'grad_norm' (")
           << scalarType << "), not " << getLearningRate().getType();
  Type element = scalarType.getElementType();
  if (!element.isF32() && !element.isF64())
    return emitOpError("updates f32 or f64 weights only (the optimizer's "
                       "state of bf16/f16 models is not implemented), not ")
           << element;
  std::pair<StringLiteral, ValueRange> groups[] = {
      {"grads", getGrads()},           {"exp_avg", getExpAvg()},
      {"exp_avg_sq", getExpAvgSq()},   {"new_weights", getNewWeights()},
      {"new_exp_avg", getNewExpAvg()}, {"new_exp_avg_sq", getNewExpAvgSq()}};
  for (size_t i = 0; i < count; ++i) {
    Type type = getWeights()[i].getType();
    if (cast<RankedTensorType>(type).getElementType() != element)
      return emitOpError("weight #")
             << i << " has elements of type "
             << cast<RankedTensorType>(type).getElementType()
             << ", but 'grad_norm' is " << scalarType
             << " (every weight must have its element type)";
    for (auto &[name, values] : groups)
      if (values[i].getType() != type)
        return emitOpError("'")
               << name << "' #" << i << " must have weight #" << i << "'s type "
               << type << ", not " << values[i].getType();
  }
  auto fail = [&](StringRef attr, const Twine &rule) {
    return op->emitOpError("attribute '") << attr << "' " << rule;
  };
  double lr = getLr().convertToDouble();
  if (!(lr > 0.0) || !std::isfinite(lr))
    return fail("lr", "must be a finite number > 0");
  for (auto [name, value] :
       {std::pair<StringRef, double>{"beta1", getBeta1().convertToDouble()},
        {"beta2", getBeta2().convertToDouble()}})
    if (!(value >= 0.0 && value < 1.0))
      return fail(name, "must be in [0, 1)");
  double eps = getEps().convertToDouble();
  if (!(eps > 0.0) || !std::isfinite(eps))
    return fail("eps", "must be a finite number > 0");
  if (getWarmupStepsAttr().getInt() < 0)
    return fail("warmup_steps", "must be >= 0");
  if (getTotalStepsAttr().getInt() < 1)
    return fail("total_steps", "must be >= 1");
  if (getDecay() != "linear" && getDecay() != "cosine" &&
      getDecay() != "constant")
    return fail("decay",
                "must be \"linear\", \"cosine\" or \"constant\", not \"" +
                    getDecay() + "\"");
  double floor = getFinalLrRatio().convertToDouble();
  if (!(floor >= 0.0 && floor <= 1.0))
    return fail("final_lr_ratio", "must be in [0, 1]");
  ArrayRef<double> decay = getWeightDecay();
  if (decay.size() != count)
    return fail("weight_decay", "must have one entry per weight (" +
                                    Twine(count) + "), not " +
                                    Twine(decay.size()));
  for (size_t i = 0; i < count; ++i)
    if (!(decay[i] >= 0.0) || !std::isfinite(decay[i]))
      return fail("weight_decay",
                  "entry #" + Twine(i) + " must be a finite number >= 0");
  if (std::optional<APFloat> clip = getMaxGradNorm()) {
    double c = clip->convertToDouble();
    if (!(c > 0.0) || !std::isfinite(c))
      return fail("max_grad_norm", "must be a finite number > 0");
  }
  return success();
}
