//===- LoweringUtils.cpp - Shared helpers of the moma lowering ------------===//

#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/Sequence.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace moma;

RankedTensorType moma::tensorTypeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

Type moma::elementTypeOf(Value value) {
  return tensorTypeOf(value).getElementType();
}

bool moma::hasInfinity(Type type) {
  auto floatType = dyn_cast<FloatType>(type);
  return floatType &&
         llvm::APFloat::semanticsHasInf(floatType.getFloatSemantics());
}

Value moma::createEmpty(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                        Type elementType) {
  return tensor::EmptyOp::create(b, loc, shape, elementType);
}

Value moma::constantFloat(OpBuilder &b, Location loc, Type type, double value) {
  auto floatType = cast<FloatType>(type);
  llvm::APFloat apValue(value);
  bool losesInfo = false;
  apValue.convert(floatType.getFloatSemantics(),
                  llvm::APFloat::rmNearestTiesToEven, &losesInfo);
  return arith::ConstantOp::create(b, loc, type, b.getFloatAttr(type, apValue));
}

Value moma::constantI32(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantOp::create(b, loc, b.getI32Type(),
                                   b.getI32IntegerAttr(value));
}

Value moma::constantIndex(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

Value moma::createFilled(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                         Type elementType, double value) {
  Value init = createEmpty(b, loc, shape, elementType);
  Value scalar = constantFloat(b, loc, elementType, value);
  return linalg::FillOp::create(b, loc, scalar, init).getResult(0);
}

Value moma::createFilledInt(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                            Type elementType, int64_t value) {
  Value init = createEmpty(b, loc, shape, elementType);
  Value scalar =
      elementType.isIndex()
          ? constantIndex(b, loc, value)
          : arith::ConstantOp::create(b, loc, elementType,
                                      b.getIntegerAttr(elementType, value))
                .getResult();
  return linalg::FillOp::create(b, loc, scalar, init).getResult(0);
}

Value moma::extractAt(OpBuilder &b, Location loc, Value tensor,
                      ValueRange indices) {
  return tensor::ExtractOp::create(b, loc, tensor, indices);
}

Value moma::insertAt(OpBuilder &b, Location loc, Value scalar, Value tensor,
                     ValueRange indices) {
  return tensor::InsertOp::create(b, loc, scalar, tensor, indices);
}

Value moma::toIndex(OpBuilder &b, Location loc, Value value) {
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), value);
}

Value moma::toI32(OpBuilder &b, Location loc, Value value) {
  return arith::IndexCastOp::create(b, loc, b.getI32Type(), value);
}

Value moma::cmpi(OpBuilder &b, Location loc, arith::CmpIPredicate predicate,
                 Value lhs, Value rhs) {
  return arith::CmpIOp::create(b, loc, predicate, lhs, rhs);
}

Value moma::andi(OpBuilder &b, Location loc, Value lhs, Value rhs) {
  return arith::AndIOp::create(b, loc, lhs, rhs);
}

Value moma::collapseTokens(OpBuilder &b, Location loc, Value x) {
  RankedTensorType type = tensorTypeOf(x);
  SmallVector<ReassociationIndices> reassociation = {{0, 1}};
  for (int64_t dim = 2; dim < type.getRank(); ++dim)
    reassociation.push_back({dim});
  return tensor::CollapseShapeOp::create(b, loc, x, reassociation);
}

Value moma::expandTokens(OpBuilder &b, Location loc, Value x, int64_t batch,
                         int64_t seq) {
  RankedTensorType type = tensorTypeOf(x);
  SmallVector<int64_t> shape = {batch, seq};
  SmallVector<ReassociationIndices> reassociation = {{0, 1}};
  for (int64_t dim = 1; dim < type.getRank(); ++dim) {
    shape.push_back(type.getDimSize(dim));
    reassociation.push_back({dim + 1});
  }
  auto resultType = RankedTensorType::get(shape, type.getElementType());
  return tensor::ExpandShapeOp::create(b, loc, resultType, x, reassociation);
}

Value moma::isInRange(OpBuilder &b, Location loc, Value i32Value,
                      int64_t size) {
  Value low = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, i32Value,
                                    constantI32(b, loc, 0));
  Value high = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                     i32Value, constantI32(b, loc, size));
  return arith::AndIOp::create(b, loc, low, high);
}

Value moma::clampedIndex(OpBuilder &b, Location loc, Value i32Value,
                         int64_t size) {
  Value zero = constantI32(b, loc, 0);
  Value last = constantI32(b, loc, size - 1);
  Value clamped = arith::MaxSIOp::create(b, loc, i32Value, zero);
  clamped = arith::MinSIOp::create(b, loc, clamped, last);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), clamped);
}

Value moma::tokenMatmul(OpBuilder &b, Location loc, Value x, Value w,
                        Value modality) {
  RankedTensorType xType = tensorTypeOf(x), wType = tensorTypeOf(w);
  int64_t rows = xType.getDimSize(0);
  int64_t cols = wType.getShape().back();
  Type elementType = xType.getElementType();
  Value init = createFilled(b, loc, {rows, cols}, elementType, 0.0);
  if (!modality)
    return linalg::MatmulOp::create(b, loc, ValueRange{x, w}, ValueRange{init})
        .getResult(0);

  // Untied: y[t, n] = sum_k x[t, k] * w[m_t, k, n].
  MLIRContext *ctx = b.getContext();
  AffineExpr t, n, k;
  bindDims(ctx, t, n, k);
  SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {t, k}, ctx),
                                 AffineMap::get(3, 0, {t}, ctx),
                                 AffineMap::get(3, 0, {t, n}, ctx)};
  SmallVector<utils::IteratorType> iterators = {utils::IteratorType::parallel,
                                                utils::IteratorType::parallel,
                                                utils::IteratorType::reduction};
  int64_t slices = wType.getDimSize(0);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{x, modality}, ValueRange{init},
             maps, iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value slice = clampedIndex(nb, nl, args[1], slices);
               Value col = linalg::IndexOp::create(nb, nl, 1);
               Value red = linalg::IndexOp::create(nb, nl, 2);
               Value weight = tensor::ExtractOp::create(
                   nb, nl, w, ValueRange{slice, red, col});
               Value product = arith::MulFOp::create(nb, nl, args[0], weight);
               Value sum = arith::AddFOp::create(nb, nl, args[2], product);
               linalg::YieldOp::create(nb, nl, sum);
             })
      .getResult(0);
}

Value moma::transposedTokenMatmul(OpBuilder &b, Location loc, Value g, Value w,
                                  Value modality) {
  RankedTensorType gType = tensorTypeOf(g), wType = tensorTypeOf(w);
  int64_t rows = gType.getDimSize(0);
  int64_t cols = wType.getDimSize(wType.getRank() - 2);
  Value init = createFilled(b, loc, {rows, cols}, gType.getElementType(), 0.0);
  MLIRContext *ctx = b.getContext();
  AffineExpr t, k, n;
  bindDims(ctx, t, k, n);
  SmallVector<utils::IteratorType> iterators = {utils::IteratorType::parallel,
                                                utils::IteratorType::parallel,
                                                utils::IteratorType::reduction};
  AffineMap gMap = AffineMap::get(3, 0, {t, n}, ctx);
  AffineMap outMap = AffineMap::get(3, 0, {t, k}, ctx);
  auto multiplyAdd = [](OpBuilder &nb, Location nl, Value lhs, Value rhs,
                        Value acc) {
    Value product = arith::MulFOp::create(nb, nl, lhs, rhs);
    linalg::YieldOp::create(
        nb, nl, arith::AddFOp::create(nb, nl, acc, product).getResult());
  };
  if (!modality)
    return linalg::GenericOp::create(
               b, loc, init.getType(), ValueRange{g, w}, ValueRange{init},
               {gMap, AffineMap::get(3, 0, {k, n}, ctx), outMap}, iterators,
               [&](OpBuilder &nb, Location nl, ValueRange args) {
                 multiplyAdd(nb, nl, args[0], args[1], args[2]);
               })
        .getResult(0);
  int64_t slices = wType.getDimSize(0);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{g, modality}, ValueRange{init},
             {gMap, AffineMap::get(3, 0, {t}, ctx), outMap}, iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value slice = clampedIndex(nb, nl, args[1], slices);
               Value weight = tensor::ExtractOp::create(
                   nb, nl, w,
                   ValueRange{slice, linalg::IndexOp::create(nb, nl, 1),
                              linalg::IndexOp::create(nb, nl, 2)});
               multiplyAdd(nb, nl, args[0], weight, args[2]);
             })
      .getResult(0);
}

/// The sum over tokens `t` (the last, reduction, dimension of a
/// `linalg.generic` whose leading dimensions index `resultType`) of
/// `term(args)`, where `inputs` are indexed by `inputMaps`; with `modality`
/// (an extra input indexed by t, appended last), dimension 0 is the slice
/// and only its tokens count.
static Value sumOverTokenDim(OpBuilder &b, Location loc, ValueRange inputs,
                             ArrayRef<AffineMap> inputMaps, Value modality,
                             RankedTensorType resultType, ScalarFn term) {
  MLIRContext *ctx = b.getContext();
  int64_t outRank = resultType.getRank(), rank = outRank + 1;
  Value init = createFilled(b, loc, resultType.getShape(),
                            resultType.getElementType(), 0.0);
  SmallVector<Value> operands(inputs);
  SmallVector<AffineMap> maps(inputMaps);
  if (modality) {
    operands.push_back(modality);
    maps.push_back(
        AffineMap::get(rank, 0, {getAffineDimExpr(outRank, ctx)}, ctx));
  }
  // The result is indexed by the leading dimensions.
  maps.push_back(
      AffineMap::getMultiDimIdentityMap(rank, ctx).getMajorSubMap(outRank));
  SmallVector<utils::IteratorType> iterators(outRank,
                                             utils::IteratorType::parallel);
  iterators.push_back(utils::IteratorType::reduction);
  unsigned numInputs = inputs.size();
  return linalg::GenericOp::create(
             b, loc, resultType, operands, ValueRange{init}, maps, iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value value = term(nb, nl, args.take_front(numInputs));
               Value sum = arith::AddFOp::create(nb, nl, args.back(), value);
               if (modality) {
                 // The masked form `select(mine, out + term, out)`, which
                 // the kernel layer maps as a masked contraction.
                 Value slice =
                     toI32(nb, nl, linalg::IndexOp::create(nb, nl, 0));
                 Value mine = cmpi(nb, nl, arith::CmpIPredicate::eq,
                                   args[numInputs], slice);
                 sum = arith::SelectOp::create(nb, nl, mine, sum, args.back());
               }
               linalg::YieldOp::create(nb, nl, sum);
             })
      .getResult(0);
}

Value moma::weightGradient(OpBuilder &b, Location loc, Value a, Value g,
                           Value modality, RankedTensorType resultType) {
  MLIRContext *ctx = b.getContext();
  // Dimensions ([m,] k, n, t).
  unsigned lead = modality ? 1 : 0, rank = lead + 3;
  AffineExpr k = getAffineDimExpr(lead, ctx),
             n = getAffineDimExpr(lead + 1, ctx),
             t = getAffineDimExpr(lead + 2, ctx);
  return sumOverTokenDim(
      b, loc, ValueRange{a, g},
      {AffineMap::get(rank, 0, {t, k}, ctx),
       AffineMap::get(rank, 0, {t, n}, ctx)},
      modality, resultType,
      [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return arith::MulFOp::create(nb, nl, args[0], args[1]);
      });
}

Value moma::sumOverTokens(OpBuilder &b, Location loc, Value rows,
                          Value modality, RankedTensorType resultType) {
  MLIRContext *ctx = b.getContext();
  // Dimensions ([m,] n, t).
  unsigned lead = modality ? 1 : 0, rank = lead + 2;
  AffineExpr n = getAffineDimExpr(lead, ctx),
             t = getAffineDimExpr(lead + 1, ctx);
  return sumOverTokenDim(
      b, loc, ValueRange{rows}, {AffineMap::get(rank, 0, {t, n}, ctx)},
      modality, resultType,
      [](OpBuilder &, Location, ValueRange args) -> Value { return args[0]; });
}

Value moma::addRowBias(OpBuilder &b, Location loc, Value y, Value bias,
                       Value modality) {
  RankedTensorType type = tensorTypeOf(y);
  if (!modality)
    return mapElementwise(
        b, loc, type, ValueRange{y},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          Value col = linalg::IndexOp::create(nb, nl, 1);
          Value value = tensor::ExtractOp::create(nb, nl, bias, col);
          return arith::AddFOp::create(nb, nl, args[0], value);
        });
  int64_t slices = tensorTypeOf(bias).getDimSize(0);
  return mapElementwise(
      b, loc, type, ValueRange{y, modality},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value slice = clampedIndex(nb, nl, args[1], slices);
        Value col = linalg::IndexOp::create(nb, nl, 1);
        Value value =
            tensor::ExtractOp::create(nb, nl, bias, ValueRange{slice, col});
        return arith::AddFOp::create(nb, nl, args[0], value);
      });
}

Value moma::mapElementwise(OpBuilder &b, Location loc,
                           RankedTensorType resultType, ValueRange inputs,
                           ScalarFn fn) {
  MLIRContext *ctx = b.getContext();
  int64_t rank = resultType.getRank();
  SmallVector<AffineMap> maps;
  for (Value input : inputs) {
    // An input of rank r is indexed by the leading dimensions d0 .. d(r-1).
    int64_t inputRank = tensorTypeOf(input).getRank();
    SmallVector<AffineExpr> exprs;
    for (int64_t d = 0; d < inputRank; ++d)
      exprs.push_back(getAffineDimExpr(d, ctx));
    maps.push_back(AffineMap::get(rank, 0, exprs, ctx));
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, ctx));
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  Value init =
      createEmpty(b, loc, resultType.getShape(), resultType.getElementType());
  return linalg::GenericOp::create(
             b, loc, resultType, inputs, ValueRange{init}, maps, iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value result = fn(nb, nl, args.drop_back());
               linalg::YieldOp::create(nb, nl, result);
             })
      .getResult(0);
}

Value moma::reduceLastDim(OpBuilder &b, Location loc, Value x, bool max) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType type = tensorTypeOf(x);
  int64_t rank = type.getRank();
  SmallVector<int64_t> shape(type.getShape().drop_back());
  Type elementType = type.getElementType();
  Value init =
      createFilled(b, loc, shape, elementType,
                   max ? -std::numeric_limits<double>::infinity() : 0.0);
  SmallVector<AffineExpr> outExprs;
  for (int64_t d = 0; d + 1 < rank; ++d)
    outExprs.push_back(getAffineDimExpr(d, ctx));
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, ctx),
                                 AffineMap::get(rank, 0, outExprs, ctx)};
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  iterators.back() = utils::IteratorType::reduction;
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{x}, ValueRange{init}, maps,
             iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value result =
                   max ? arith::MaximumFOp::create(nb, nl, args[0], args[1])
                             .getResult()
                       : arith::AddFOp::create(nb, nl, args[0], args[1])
                             .getResult();
               linalg::YieldOp::create(nb, nl, result);
             })
      .getResult(0);
}

Value moma::widenToF32(OpBuilder &b, Location loc, Value x) {
  auto type = dyn_cast<FloatType>(x.getType());
  if (!type || type.getWidth() >= 32)
    return x;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), x);
}

Value moma::roundTo(OpBuilder &b, Location loc, Value x, Type type) {
  if (x.getType() == type)
    return x;
  return arith::TruncFOp::create(b, loc, type, x);
}

Value moma::scalarSigmoid(OpBuilder &b, Location loc, Value x) {
  Value one = constantFloat(b, loc, x.getType(), 1.0);
  Value negated = arith::NegFOp::create(b, loc, x);
  Value exp = math::ExpOp::create(b, loc, negated);
  Value denominator = arith::AddFOp::create(b, loc, one, exp);
  return arith::DivFOp::create(b, loc, one, denominator);
}

Value moma::scalarSilu(OpBuilder &b, Location loc, Value x) {
  return arith::MulFOp::create(b, loc, x, scalarSigmoid(b, loc, x));
}

Value moma::scalarGelu(OpBuilder &b, Location loc, Value x) {
  Type type = x.getType();
  Value half = constantFloat(b, loc, type, 0.5);
  Value one = constantFloat(b, loc, type, 1.0);
  Value invSqrt2 = constantFloat(b, loc, type, 1.0 / std::sqrt(2.0));
  Value erf =
      math::ErfOp::create(b, loc, arith::MulFOp::create(b, loc, x, invSqrt2));
  Value factor = arith::AddFOp::create(b, loc, one, erf);
  return arith::MulFOp::create(b, loc, arith::MulFOp::create(b, loc, x, half),
                               factor);
}

/// `silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g)))`.
Value moma::scalarSiluDerivative(OpBuilder &b, Location loc, Value g) {
  Value one = constantFloat(b, loc, g.getType(), 1.0);
  Value sig = scalarSigmoid(b, loc, g);
  Value rest = arith::SubFOp::create(b, loc, one, sig);
  Value inner = arith::AddFOp::create(b, loc, one,
                                      arith::MulFOp::create(b, loc, g, rest));
  return arith::MulFOp::create(b, loc, sig, inner);
}

/// `gelu'(u) = (1 + erf(u / sqrt(2))) / 2 + u exp(-u^2 / 2) / sqrt(2 pi)`.
Value moma::scalarGeluDerivative(OpBuilder &b, Location loc, Value u) {
  Type type = u.getType();
  Value half = constantFloat(b, loc, type, 0.5);
  Value one = constantFloat(b, loc, type, 1.0);
  Value cdf = arith::MulFOp::create(
      b, loc, half,
      arith::AddFOp::create(
          b, loc, one,
          math::ErfOp::create(
              b, loc,
              arith::MulFOp::create(
                  b, loc, u,
                  constantFloat(b, loc, type, 1.0 / std::sqrt(2.0))))));
  Value square = arith::MulFOp::create(b, loc, u, u);
  Value density = arith::MulFOp::create(
      b, loc,
      math::ExpOp::create(
          b, loc,
          arith::MulFOp::create(b, loc, square,
                                constantFloat(b, loc, type, -0.5))),
      constantFloat(b, loc, type, 1.0 / std::sqrt(2.0 * M_PI)));
  return arith::AddFOp::create(b, loc, cdf,
                               arith::MulFOp::create(b, loc, u, density));
}

Value moma::addScaled(OpBuilder &b, Location loc, Value x, Value y,
                      double scale) {
  Type elementType = elementTypeOf(x);
  return mapElementwise(
      b, loc, tensorTypeOf(x), ValueRange{x, y},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value factor = constantFloat(nb, nl, elementType, scale);
        Value scaled = arith::MulFOp::create(nb, nl, args[1], factor);
        return arith::AddFOp::create(nb, nl, args[0], scaled);
      });
}

Value moma::projectRows(OpBuilder &b, Location loc, Value x, Value w,
                        Value selector, Value loraA, Value loraB,
                        double loraScale) {
  Value y = tokenMatmul(b, loc, x, w, selector);
  if (!loraA)
    return y;
  Value low = tokenMatmul(b, loc, tokenMatmul(b, loc, x, loraA, selector),
                          loraB, selector);
  return addScaled(b, loc, y, low, loraScale);
}

std::pair<Value, Value> moma::splitColumnHalves(OpBuilder &b, Location loc,
                                                Value u) {
  RankedTensorType type = tensorTypeOf(u);
  int64_t rows = type.getDimSize(0), hidden = type.getDimSize(1) / 2;
  auto halfType = RankedTensorType::get({rows, hidden}, type.getElementType());
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(rows),
                                     b.getIndexAttr(hidden)};
  SmallVector<OpFoldResult> strides = {b.getIndexAttr(1), b.getIndexAttr(1)};
  Value first = tensor::ExtractSliceOp::create(
      b, loc, halfType, u,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)}, sizes,
      strides);
  Value second = tensor::ExtractSliceOp::create(
      b, loc, halfType, u,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(hidden)}, sizes,
      strides);
  return {first, second};
}

Value moma::buildFfnHidden(OpBuilder &b, Location loc, bool swiglu, Value u) {
  if (!swiglu)
    return mapElementwise(
        b, loc, tensorTypeOf(u), ValueRange{u},
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return scalarGelu(nb, nl, args[0]);
        });
  auto [gate, up] = splitColumnHalves(b, loc, u);
  return mapElementwise(
      b, loc, tensorTypeOf(gate), ValueRange{gate, up},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        return arith::MulFOp::create(nb, nl, scalarSilu(nb, nl, args[0]),
                                     args[1]);
      });
}

Value moma::buildFfnRows(OpBuilder &b, Location loc, bool swiglu, Value x,
                         Value wIn, Value wOut, Value modality,
                         ArrayRef<Value> lora, double loraScale) {
  Value aIn = lora.empty() ? Value() : lora[0];
  Value bIn = lora.empty() ? Value() : lora[1];
  Value aOut = lora.empty() ? Value() : lora[2];
  Value bOut = lora.empty() ? Value() : lora[3];
  Value u = projectRows(b, loc, x, wIn, modality, aIn, bIn, loraScale);
  Value hidden = buildFfnHidden(b, loc, swiglu, u);
  return projectRows(b, loc, hidden, wOut, modality, aOut, bOut, loraScale);
}

Value moma::castFloat(OpBuilder &b, Location loc, Value value, Type type) {
  auto from = cast<FloatType>(value.getType());
  auto to = cast<FloatType>(type);
  if (from == to)
    return value;
  if (from.getWidth() < to.getWidth())
    return arith::ExtFOp::create(b, loc, to, value);
  return arith::TruncFOp::create(b, loc, to, value);
}

Value moma::toRank0(OpBuilder &b, Location loc, Value value,
                    RankedTensorType resultType) {
  value = castFloat(b, loc, value, resultType.getElementType());
  return tensor::FromElementsOp::create(b, loc, resultType, ValueRange{value});
}

Value moma::reduceToScalar(OpBuilder &b, Location loc, Value x) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType type = tensorTypeOf(x);
  Type elementType = type.getElementType();
  bool isFloat = isa<FloatType>(elementType);
  Value init = isFloat ? createFilled(b, loc, {}, elementType, 0.0)
                       : createFilledInt(b, loc, {}, elementType, 0);
  int64_t rank = type.getRank();
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, ctx),
                                 AffineMap::get(rank, 0, {}, ctx)};
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::reduction);
  Value sum = linalg::GenericOp::create(
                  b, loc, init.getType(), ValueRange{x}, ValueRange{init}, maps,
                  iterators,
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value result =
                        isFloat
                            ? arith::AddFOp::create(nb, nl, args[1], args[0])
                                  .getResult()
                            : arith::AddIOp::create(nb, nl, args[1], args[0])
                                  .getResult();
                    linalg::YieldOp::create(nb, nl, result);
                  })
                  .getResult(0);
  return tensor::ExtractOp::create(b, loc, sum, ValueRange{});
}

Value moma::selectByKey(OpBuilder &b, Location loc, Value key,
                        ArrayRef<Value> table, Value otherwise) {
  Value result = otherwise;
  for (auto [index, value] : llvm::enumerate(table)) {
    if (value == otherwise)
      continue;
    Value id =
        key.getType().isIndex()
            ? constantIndex(b, loc, index)
            : arith::ConstantOp::create(b, loc, key.getType(),
                                        b.getIntegerAttr(key.getType(), index))
                  .getResult();
    Value match =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, key, id);
    result = arith::SelectOp::create(b, loc, match, value, result);
  }
  return result;
}

/// An integer (or index) constant of `type`.
static Value constantOfType(OpBuilder &b, Location loc, Type type,
                            int64_t value) {
  if (type.isIndex())
    return constantIndex(b, loc, value);
  return arith::ConstantOp::create(b, loc, type, b.getIntegerAttr(type, value));
}

Value moma::selectConstant(OpBuilder &b, Location loc, Value key,
                           ArrayRef<int64_t> table, int64_t otherwise,
                           Type type) {
  // Runs of equal entries share one constant (and need no select when they
  // equal `otherwise`).
  Value fallback = constantOfType(b, loc, type, otherwise);
  SmallVector<Value> values;
  llvm::SmallDenseMap<int64_t, Value> constants;
  constants[otherwise] = fallback;
  for (int64_t value : table) {
    auto [it, inserted] = constants.try_emplace(value, Value());
    if (inserted)
      it->second = constantOfType(b, loc, type, value);
    values.push_back(it->second);
  }
  return selectByKey(b, loc, key, values, fallback);
}

Value moma::buildGroupIds(OpBuilder &b, Location loc, Value modality,
                          ArrayRef<ExpertGroupAttr> groups) {
  RankedTensorType type = tensorTypeOf(modality);
  return mapElementwise(
      b, loc, type, ValueRange{modality},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        // A modality belongs to at most one group (verifier).
        SmallVector<int64_t> table;
        for (auto [index, group] : llvm::enumerate(groups))
          for (int64_t id : group.getModalities()) {
            if (static_cast<int64_t>(table.size()) <= id)
              table.resize(id + 1, -1);
            table[id] = index;
          }
        return selectConstant(nb, nl, args[0], table, -1,
                              type.getElementType());
      });
}

Value moma::isGroupColumn(OpBuilder &b, Location loc, Value group, Value column,
                          ArrayRef<ExpertGroupAttr> groups) {
  SmallVector<int64_t> experts;
  for (ExpertGroupAttr g : groups)
    experts.push_back(g.getExperts());
  // Tokens without a group have no columns.
  Value limit = selectConstant(b, loc, group, experts, 0, b.getIndexType());
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, column,
                               limit);
}

std::pair<Value, Value>
moma::buildGroupSoftmaxStats(OpBuilder &b, Location loc, Value logits,
                             Value groupIds, ArrayRef<ExpertGroupAttr> groups) {
  RankedTensorType type = tensorTypeOf(logits);
  Type elementType = type.getElementType();
  Value masked = mapElementwise(
      b, loc, type, ValueRange{logits, groupIds},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value column = linalg::IndexOp::create(nb, nl, 1);
        Value valid = isGroupColumn(nb, nl, args[1], column, groups);
        Value lowest = constantFloat(nb, nl, elementType,
                                     -std::numeric_limits<double>::infinity());
        return arith::SelectOp::create(nb, nl, valid, args[0], lowest);
      });
  Value rowMax = reduceLastDim(b, loc, masked, /*max=*/true);
  Value exps = mapElementwise(
      b, loc, type, ValueRange{logits, groupIds, rowMax},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value column = linalg::IndexOp::create(nb, nl, 1);
        Value valid = isGroupColumn(nb, nl, args[1], column, groups);
        Value shifted = arith::SubFOp::create(nb, nl, args[0], args[2]);
        Value exp = math::ExpOp::create(nb, nl, shifted);
        Value zero = constantFloat(nb, nl, elementType, 0.0);
        return arith::SelectOp::create(nb, nl, valid, exp, zero);
      });
  return {rowMax, reduceLastDim(b, loc, exps)};
}

Value moma::buildGroupScores(OpBuilder &b, Location loc, Value logits,
                             Value groupIds, ArrayRef<ExpertGroupAttr> groups) {
  RankedTensorType type = tensorTypeOf(logits);
  Type elementType = type.getElementType();
  SmallVector<int64_t> softmax;
  for (ExpertGroupAttr group : groups)
    softmax.push_back(group.getScore() == ScoreFunction::softmax);
  bool anySoftmax = llvm::is_contained(softmax, 1);
  bool anySigmoid = llvm::is_contained(softmax, 0);
  SmallVector<Value> inputs = {logits, groupIds};
  if (anySoftmax) {
    auto [rowMax, rowSum] =
        buildGroupSoftmaxStats(b, loc, logits, groupIds, groups);
    inputs.push_back(rowMax);
    inputs.push_back(rowSum);
  }
  return mapElementwise(
      b, loc, type, inputs,
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value x = args[0], group = args[1];
        Value column = linalg::IndexOp::create(nb, nl, 1);
        Value valid = isGroupColumn(nb, nl, group, column, groups);
        Value score;
        if (anySoftmax) {
          Value shifted = arith::SubFOp::create(nb, nl, x, args[2]);
          Value exp = math::ExpOp::create(nb, nl, shifted);
          score = arith::DivFOp::create(nb, nl, exp, args[3]);
        }
        if (anySigmoid) {
          Value sigmoid = scalarSigmoid(nb, nl, x);
          if (!score) {
            score = sigmoid;
          } else {
            Value isSoftmax =
                selectConstant(nb, nl, group, softmax, 0, nb.getI1Type());
            score = arith::SelectOp::create(nb, nl, isSoftmax, score, sigmoid);
          }
        }
        Value zero = constantFloat(nb, nl, elementType, 0.0);
        return arith::SelectOp::create(nb, nl, valid, score, zero);
      });
}

Value moma::buildCountWhere(OpBuilder &b, Location loc, Value input,
                            int64_t size, ScalarFn predicate) {
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type();
  Value init = createFilledInt(b, loc, {size}, i32, 0);
  AffineExpr i, j;
  bindDims(ctx, i, j);
  SmallVector<AffineMap> maps = {AffineMap::get(2, 0, {j}, ctx),
                                 AffineMap::get(2, 0, {i}, ctx)};
  SmallVector<utils::IteratorType> iterators = {utils::IteratorType::parallel,
                                                utils::IteratorType::reduction};
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{input}, ValueRange{init}, maps,
             iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value one =
                   arith::ExtUIOp::create(nb, nl, i32, predicate(nb, nl, args));
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddIOp::create(nb, nl, args[1], one).getResult());
             })
      .getResult(0);
}

Value moma::buildGroupTokenCounts(OpBuilder &b, Location loc, Value groupIds,
                                  int64_t numGroups) {
  return buildCountWhere(
      b, loc, groupIds, numGroups,
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value index = linalg::IndexOp::create(nb, nl, 0);
        Value group =
            arith::IndexCastOp::create(nb, nl, nb.getI32Type(), index);
        return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, args[0],
                                     group);
      });
}

Value moma::buildSlotExperts(OpBuilder &b, Location loc, Value offsets,
                             int64_t numSlots, int64_t numExperts) {
  // For non-decreasing offsets the expert of slot s is the number of
  // `e' in [1, E)` with `off[e'] <= s`.
  Value counts = buildCountWhere(
      b, loc, offsets, numSlots,
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value slot = toI32(nb, nl, linalg::IndexOp::create(nb, nl, 0));
        Value expert = linalg::IndexOp::create(nb, nl, 1);
        Value interior = andi(nb, nl,
                              cmpi(nb, nl, arith::CmpIPredicate::sge, expert,
                                   constantIndex(nb, nl, 1)),
                              cmpi(nb, nl, arith::CmpIPredicate::slt, expert,
                                   constantIndex(nb, nl, numExperts)));
        Value started = cmpi(nb, nl, arith::CmpIPredicate::sle, args[0], slot);
        return andi(nb, nl, interior, started);
      });
  Value begin = extractAt(b, loc, offsets, constantIndex(b, loc, 0));
  Value end = extractAt(b, loc, offsets, constantIndex(b, loc, numExperts));
  return mapElementwise(
      b, loc, tensorTypeOf(counts), ValueRange{counts},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value slot = toI32(nb, nl, linalg::IndexOp::create(nb, nl, 0));
        Value valid =
            andi(nb, nl, cmpi(nb, nl, arith::CmpIPredicate::sge, slot, begin),
                 cmpi(nb, nl, arith::CmpIPredicate::slt, slot, end));
        return arith::SelectOp::create(nb, nl, valid, args[0],
                                       constantI32(nb, nl, -1));
      });
}

Value moma::maskUnassignedSlots(OpBuilder &b, Location loc, Value rows,
                                Value slotExperts) {
  Type elementType = elementTypeOf(rows);
  return mapElementwise(
      b, loc, tensorTypeOf(rows), ValueRange{rows, slotExperts},
      [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
        Value valid = cmpi(nb, nl, arith::CmpIPredicate::sge, args[1],
                           constantI32(nb, nl, 0));
        Value zero = constantFloat(nb, nl, elementType, 0.0);
        return arith::SelectOp::create(nb, nl, valid, args[0], zero);
      });
}
