//===- GradientUtils.cpp - Builders of the backward lowerings -------------===//

#include "passes/Conversion/MomaToLinalg/GradientUtils.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

using namespace mlir;
using namespace moma;

Value moma::scaleTensor(OpBuilder &b, Location loc, Value x, double scale) {
  if (scale == 1.0)
    return x;
  Type elementType = elementTypeOf(x);
  return mapElementwise(
      b, loc, tensorTypeOf(x), ValueRange{x},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return arith::MulFOp::create(nb, nl, args[0],
                                     constantFloat(nb, nl, elementType, scale));
      });
}

ProjectionGradients moma::buildProjectionGradients(OpBuilder &b, Location loc,
                                                   Value x, Value g, Value w,
                                                   Value selector, Value loraA,
                                                   Value loraB,
                                                   double loraScale) {
  ProjectionGradients grads;
  grads.dx = transposedTokenMatmul(b, loc, g, w, selector);
  grads.dw = weightGradient(b, loc, x, g, selector, tensorTypeOf(w));
  if (!loraA)
    return grads;
  // v = g B^T; dx += s v A^T; dA = s x^T v; dB = s (x A)^T g.
  Value v = transposedTokenMatmul(b, loc, g, loraB, selector);
  grads.dx =
      addScaled(b, loc, grads.dx,
                transposedTokenMatmul(b, loc, v, loraA, selector), loraScale);
  grads.da = scaleTensor(
      b, loc, weightGradient(b, loc, x, v, selector, tensorTypeOf(loraA)),
      loraScale);
  Value xa = tokenMatmul(b, loc, x, loraA, selector);
  grads.db = scaleTensor(
      b, loc, weightGradient(b, loc, xa, g, selector, tensorTypeOf(loraB)),
      loraScale);
  return grads;
}

Value moma::buildFfnHiddenGradient(OpBuilder &b, Location loc, bool swiglu,
                                   Value u, Value dh) {
  RankedTensorType uType = tensorTypeOf(u);
  if (!swiglu)
    return mapElementwise(
        b, loc, uType, ValueRange{dh, u},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return arith::MulFOp::create(nb, nl, args[0],
                                       scalarGeluDerivative(nb, nl, args[1]));
        });
  auto [gate, up] = splitColumnHalves(b, loc, u);
  RankedTensorType halfType = tensorTypeOf(gate);
  Value dGate = mapElementwise(
      b, loc, halfType, ValueRange{dh, gate, up},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value product = arith::MulFOp::create(nb, nl, args[0], args[2]);
        return arith::MulFOp::create(nb, nl, product,
                                     scalarSiluDerivative(nb, nl, args[1]));
      });
  Value dUp =
      mapElementwise(b, loc, halfType, ValueRange{dh, gate},
                     [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
                       return arith::MulFOp::create(
                           nb, nl, args[0], scalarSilu(nb, nl, args[1]));
                     });
  // du = [du_gate | du_up].
  int64_t rows = halfType.getDimSize(0), hidden = halfType.getDimSize(1);
  Value du = createEmpty(b, loc, uType.getShape(), uType.getElementType());
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(rows),
                                     b.getIndexAttr(hidden)};
  SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
  du = tensor::InsertSliceOp::create(
      b, loc, dGate, du,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)}, sizes,
      strides);
  return tensor::InsertSliceOp::create(
      b, loc, dUp, du,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(hidden)}, sizes,
      strides);
}
