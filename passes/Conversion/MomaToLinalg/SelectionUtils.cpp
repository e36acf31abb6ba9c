//===- SelectionUtils.cpp - Top-capacity selections as parallel rows ------===//

#include "passes/Conversion/MomaToLinalg/SelectionUtils.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace moma;

/// Bits of a score's part of a key: 32 for floats of at most 32 bits
/// (compared as f32, which holds them exactly), else 64 (f64).
static int64_t scoreBits(Type scoreType) {
  return cast<FloatType>(scoreType).getWidth() <= 32 ? 32 : 64;
}

/// Bits of the tie part of the keys of `count` candidates.
static int64_t tieBits(int64_t count) {
  return llvm::Log2_64_Ceil(std::max<int64_t>(count, 1));
}

int64_t moma::selectionKeyBits(Type scoreType, int64_t count) {
  return scoreBits(scoreType) + tieBits(count);
}

IntegerType moma::selectionKeyType(Type scoreType, int64_t count) {
  return IntegerType::get(scoreType.getContext(),
                          selectionKeyBits(scoreType, count) <= 62 ? 64 : 128);
}

/// An integer constant of `type`.
static Value constantInt(OpBuilder &b, Location loc, Type type,
                         const APInt &value) {
  return arith::ConstantOp::create(b, loc, type, b.getIntegerAttr(type, value));
}
static Value constantInt(OpBuilder &b, Location loc, Type type, int64_t value) {
  return constantInt(b, loc, type,
                     APInt(type.getIntOrFloatBitWidth(), value, true));
}

Value moma::buildSelectionKey(OpBuilder &b, Location loc, Value score,
                              Value index, int64_t count) {
  int64_t bits = scoreBits(score.getType());
  Type floatType = bits == 32 ? b.getF32Type() : score.getType();
  Type intType = b.getIntegerType(bits);
  Type keyType = selectionKeyType(score.getType(), count);
  Value x = bits == 32 ? widenToF32(b, loc, score) : score;
  // -0 ties +0: both get +0's bits.
  Value zero = constantFloat(b, loc, floatType, 0.0);
  Value isZero =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, x, zero);
  x = arith::SelectOp::create(b, loc, isZero, zero, x);
  // The float order as an unsigned order: negative floats invert all bits,
  // the others set the sign bit.
  Value raw = arith::BitcastOp::create(b, loc, intType, x);
  Value negative = cmpi(b, loc, arith::CmpIPredicate::slt, raw,
                        constantInt(b, loc, intType, 0));
  Value inverted =
      arith::XOrIOp::create(b, loc, raw, constantInt(b, loc, intType, -1));
  Value signSet = arith::XOrIOp::create(
      b, loc, raw, constantInt(b, loc, intType, APInt::getSignMask(bits)));
  Value ordered = arith::SelectOp::create(b, loc, negative, inverted, signSet);
  Value wide = arith::ExtUIOp::create(b, loc, keyType, ordered);
  // Ties: the lower index gets the larger key.
  Value tie =
      arith::SubIOp::create(b, loc, constantIndex(b, loc, count - 1), index);
  tie = arith::IndexCastOp::create(b, loc, keyType, tie);
  Value shifted = arith::ShLIOp::create(
      b, loc, wide, constantInt(b, loc, keyType, tieBits(count)));
  return arith::OrIOp::create(b, loc, shifted, tie);
}

Value moma::buildStableRanks(OpBuilder &b, Location loc, Value values,
                             bool acrossBatch) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType type = tensorTypeOf(values);
  int64_t seq = type.getDimSize(1);
  Type i32 = b.getI32Type();
  AffineExpr row, self, other;
  bindDims(ctx, row, self, other);
  // init[b, l] = b * L (across the batch) or 0; then one per position that
  // comes first.
  Value init = createFilledInt(b, loc, type.getShape(), i32, 0);
  if (acrossBatch)
    init = mapElementwise(
        b, loc, tensorTypeOf(init), ValueRange{},
        [&](OpBuilder &nb, Location nl, ValueRange) -> Value {
          Value offset =
              arith::MulIOp::create(nb, nl, linalg::IndexOp::create(nb, nl, 0),
                                    constantIndex(nb, nl, seq));
          return arith::IndexCastOp::create(nb, nl, nb.getI32Type(), offset);
        });
  return linalg::GenericOp::create(
             b, loc, tensorTypeOf(init), ValueRange{values, values},
             ValueRange{init},
             {AffineMap::get(3, 0, {row, self}, ctx),
              AffineMap::get(3, 0, {row, other}, ctx),
              AffineMap::get(3, 0, {row, self}, ctx)},
             {utils::IteratorType::parallel, utils::IteratorType::parallel,
              utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value lower =
                   cmpi(nb, nl, arith::CmpIPredicate::slt, args[1], args[0]);
               Value equal =
                   cmpi(nb, nl, arith::CmpIPredicate::eq, args[1], args[0]);
               Value before = cmpi(nb, nl, arith::CmpIPredicate::ult,
                                   linalg::IndexOp::create(nb, nl, 2),
                                   linalg::IndexOp::create(nb, nl, 1));
               Value first = arith::OrIOp::create(nb, nl, lower,
                                                  andi(nb, nl, equal, before));
               Value one =
                   arith::ExtUIOp::create(nb, nl, nb.getI32Type(), first);
               linalg::YieldOp::create(
                   nb, nl,
                   ValueRange{arith::AddIOp::create(nb, nl, args[2], one)});
             })
      .getResult(0);
}

Value moma::buildTopThresholds(
    OpBuilder &b, Location loc, Value keys, int64_t keyBits,
    function_ref<Value(OpBuilder &, Location, Value row)> capacity) {
  MLIRContext *ctx = b.getContext();
  RankedTensorType keysType = tensorTypeOf(keys);
  int64_t rows = keysType.getDimSize(0), count = keysType.getDimSize(1);
  Type keyType = keysType.getElementType();
  unsigned width = keyType.getIntOrFloatBitWidth();
  Value init = createEmpty(b, loc, {rows}, keyType);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{}, ValueRange{init},
             {AffineMap::getMultiDimIdentityMap(1, ctx)},
             {utils::IteratorType::parallel},
             [&](OpBuilder &nb, Location nl, ValueRange) {
               Value row = linalg::IndexOp::create(nb, nl, 0);
               Value cap = arith::IndexCastOp::create(nb, nl, keyType,
                                                      capacity(nb, nl, row));
               Value zero = constantIndex(nb, nl, 0);
               Value one = constantIndex(nb, nl, 1);
               // From the highest bit down, keep a bit set when at least
               // `cap` keys still reach the prefix with it: the largest
               // threshold that `cap` keys reach.
               auto search = scf::ForOp::create(
                   nb, nl, zero, constantIndex(nb, nl, keyBits), one,
                   ValueRange{constantInt(nb, nl, keyType, 0)},
                   [&](OpBuilder &sb, Location sl, Value i, ValueRange prefix) {
                     Value shift = arith::SubIOp::create(
                         sb, sl, constantIndex(sb, sl, keyBits - 1), i);
                     Value bit = arith::ShLIOp::create(
                         sb, sl, constantInt(sb, sl, keyType, 1),
                         arith::IndexCastOp::create(sb, sl, keyType, shift));
                     Value candidate =
                         arith::OrIOp::create(sb, sl, prefix[0], bit);
                     auto reach = scf::ForOp::create(
                         sb, sl, zero, constantIndex(sb, sl, count), one,
                         ValueRange{constantInt(sb, sl, keyType, 0)},
                         [&](OpBuilder &cb, Location cl, Value n,
                             ValueRange reached) {
                           Value key = extractAt(cb, cl, keys, {row, n});
                           Value reaches =
                               cmpi(cb, cl, arith::CmpIPredicate::uge, key,
                                    candidate);
                           Value add =
                               arith::ExtUIOp::create(cb, cl, keyType, reaches);
                           scf::YieldOp::create(
                               cb, cl,
                               ValueRange{arith::AddIOp::create(
                                   cb, cl, reached[0], add)});
                         });
                     Value enough = cmpi(sb, sl, arith::CmpIPredicate::sge,
                                         reach.getResult(0), cap);
                     scf::YieldOp::create(
                         sb, sl,
                         ValueRange{arith::SelectOp::create(
                             sb, sl, enough, candidate, prefix[0])});
                   });
               // Fewer candidates than `cap` leave the prefix 0: every
               // candidate (key >= 1) is selected. Capacity 0 selects none:
               // no key reaches the largest signed value of its type.
               Value threshold =
                   arith::MaxUIOp::create(nb, nl, search.getResult(0),
                                          constantInt(nb, nl, keyType, 1));
               Value none = cmpi(nb, nl, arith::CmpIPredicate::sle, cap,
                                 constantInt(nb, nl, keyType, 0));
               threshold = arith::SelectOp::create(
                   nb, nl, none,
                   constantInt(nb, nl, keyType,
                               APInt::getSignedMaxValue(width)),
                   threshold);
               linalg::YieldOp::create(nb, nl, threshold);
             })
      .getResult(0);
}
