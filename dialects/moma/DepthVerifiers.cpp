//===- DepthVerifiers.cpp - Verifiers of the mixture-of-depths ops --------===//
//
// Verifiers of the mixture-of-depths ops: depth_route, depth_region (and
// its body), scale and depth_mask, and of permute (the token order).
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "dialects/moma/MomaVerifierUtils.h"

#include <cmath>

using namespace mlir;
using namespace moma;

//===----------------------------------------------------------------------===//
// DepthRouteOp
//===----------------------------------------------------------------------===//

LogicalResult DepthRouteOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(
          expectShape(op, "weight", getWeight(), {x[2], 1}, "[features, 1]")))
    return failure();
  double capacity = getCapacityFactor().convertToDouble();
  if (!(capacity > 0.0 && capacity <= 1.0))
    return emitOpError() << "'capacity_factor' must satisfy 0 < c <= 1, got "
                         << capacity;
  if (getPositions() &&
      failed(expectShape(op, "positions", getPositions(), {x[0], x[1]},
                         "[batch, sequence] token positions")))
    return failure();
  int64_t kept;
  if (getAux()) {
    if (failed(expectShape(op, "aux", getAux(), {x[0], x[1], 1},
                           "[batch, sequence, 1] auxiliary-router logits")))
      return failure();
    kept = x[1];
  } else {
    kept =
        static_cast<int64_t>(std::floor(static_cast<double>(x[1]) * capacity));
    if (kept < 1)
      return emitOpError() << "'capacity_factor' " << capacity
                           << " keeps no token of a sequence of " << x[1];
  }
  StringRef meaning = getAux() ? "[batch, sequence]: with 'aux' every "
                                 "position may be kept"
                               : "[batch, floor(sequence * capacity_factor)]";
  if (failed(expectShape(op, "indices", getIndices(), {x[0], kept}, meaning)) ||
      failed(expectShape(op, "gate", getGate(), {x[0], kept}, meaning)))
    return failure();
  return expectSameElementType(op, {{"x", getX()},
                                    {"weight", getWeight()},
                                    {"aux", getAux()},
                                    {"gate", getGate()}});
}

//===----------------------------------------------------------------------===//
// DepthRegionOp
//===----------------------------------------------------------------------===//

LogicalResult DepthRegionOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> x = getX().getType().getShape();
  if (failed(expectShape(op, "modality", getModality(), {x[0], x[1]},
                         "[batch, sequence] modality ids")) ||
      (getPositions() &&
       failed(expectShape(op, "positions", getPositions(), {x[0], x[1]},
                          "[batch, sequence] token positions"))) ||
      failed(expectShape(op, "indices", getIndices(), {x[0], kAny},
                         "[batch, kept]")))
    return failure();
  int64_t kept = getIndices().getType().getShape()[1];
  if (kept > x[1])
    return emitOpError() << "'indices' keeps " << kept
                         << " tokens per sequence but sequences have " << x[1];
  if (getGate() &&
      failed(expectShape(op, "gate", getGate(), {x[0], kept}, "[batch, kept]")))
    return failure();
  return expectSameElementType(op, {{"x", getX()}, {"gate", getGate()}});
}

LogicalResult DepthRegionOp::verifyRegions() {
  Block &body = getBody().front();
  ArrayRef<int64_t> x = getX().getType().getShape();
  int64_t kept = getIndices().getType().getShape()[1];
  Type i32 = IntegerType::get(getContext(), 32);
  SmallVector<Type> expected = {
      RankedTensorType::get({x[0], kept, x[2]},
                            getX().getType().getElementType()),
      RankedTensorType::get({x[0], kept}, i32),
      RankedTensorType::get({x[0], kept}, i32)};
  static const char *const kArgNames[] = {"kept tokens", "their modality ids",
                                          "their positions"};
  if (body.getNumArguments() != expected.size())
    return emitOpError() << "body must take 3 arguments (kept tokens, their "
                            "modality ids, their positions), got "
                         << body.getNumArguments();
  for (auto [index, arg] : llvm::enumerate(body.getArguments()))
    if (arg.getType() != expected[index])
      return emitOpError() << "body argument " << index << " ("
                           << kArgNames[index] << ") must be "
                           << expected[index] << ", got " << arg.getType();
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield)
    return emitOpError() << "body must end with 'moma.yield'";
  if (yield.getValue().getType() != expected[0])
    return yield.emitOpError()
           << "yields " << yield.getValue().getType()
           << " but the depth region's kept tokens are " << expected[0];
  if (yield.getExtras().getTypes() != getExtras().getTypes())
    return yield.emitOpError()
           << "yields extra values of types (" << yield.getExtras().getTypes()
           << ") but the depth region returns (" << getExtras().getTypes()
           << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// ScaleOp
//===----------------------------------------------------------------------===//

LogicalResult ScaleOp::verify() {
  ArrayRef<int64_t> x = getX().getType().getShape();
  return expectShape(getOperation(), "scale", getScale(), {x[0], x[1]},
                     "[batch, sequence]");
}

//===----------------------------------------------------------------------===//
// DepthMaskOp
//===----------------------------------------------------------------------===//

LogicalResult DepthMaskOp::verify() {
  Operation *op = getOperation();
  ArrayRef<int64_t> indices = getIndices().getType().getShape();
  if (failed(expectShape(op, "result", getResult(), {indices[0], kAny, 1},
                         "[batch, sequence, 1]")))
    return failure();
  int64_t seq = getResult().getType().getShape()[1];
  if (indices[1] > seq)
    return emitOpError() << "'indices' keeps " << indices[1]
                         << " tokens per sequence but sequences have " << seq;
  return success();
}

//===----------------------------------------------------------------------===//
// PermuteOp
//===----------------------------------------------------------------------===//

LogicalResult PermuteOp::verify() {
  ArrayRef<int64_t> x = getInput().getType().getShape();
  if (x.size() < 2)
    return emitOpError() << "reorders the tokens of a [batch, sequence, ...] "
                            "tensor, got rank "
                         << x.size();
  return expectShape(getOperation(), "order", getOrder(), {x[0], x[1]},
                     "[batch, sequence] order");
}
