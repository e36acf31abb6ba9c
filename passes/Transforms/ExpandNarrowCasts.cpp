//===- ExpandNarrowCasts.cpp - f32 <-> bf16/f16 casts as integer ops ------===//
//
// Implements `moma-expand-narrow-float-casts`: bf16 through the upstream
// arith patterns, f16 through the patterns below (round to nearest even,
// exact subnormals, NaN and infinity kept), so that no cast needs a
// compiler-runtime routine.
//
//===----------------------------------------------------------------------===//

#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace moma {
#define GEN_PASS_DEF_MOMAEXPANDNARROWFLOATCASTS
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

/// `type` (a scalar or vector of any element type) with element type
/// `element`.
static Type withElement(Type type, Type element) {
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.clone(element);
  return element;
}

/// Whether the cast `op` goes from (scalars or vectors of) `from` to `to`.
static bool castsBetween(Operation *op, Type from, Type to) {
  return getElementTypeOrSelf(op->getOperand(0).getType()) == from &&
         getElementTypeOrSelf(op->getResult(0).getType()) == to;
}

namespace {
/// Integer constants and operations of one (scalar or vector) shape.
struct Bits {
  OpBuilder &b;
  Location loc;
  Type i32;

  /// An i32 constant of the bit pattern `value`.
  Value c(uint32_t value) const {
    Type element = getElementTypeOrSelf(i32);
    TypedAttr attr = b.getIntegerAttr(element, int32_t(value));
    if (auto vector = dyn_cast<VectorType>(i32))
      attr = SplatElementsAttr::get(vector, attr);
    return arith::ConstantOp::create(b, loc, attr);
  }
  Value andi(Value x, uint32_t mask) const {
    return arith::AndIOp::create(b, loc, x, c(mask));
  }
  Value add(Value x, Value y) const {
    return arith::AddIOp::create(b, loc, x, y);
  }
  Value add(Value x, uint32_t y) const { return add(x, c(y)); }
  Value shl(Value x, uint32_t n) const {
    return arith::ShLIOp::create(b, loc, x, c(n));
  }
  Value shr(Value x, uint32_t n) const {
    return arith::ShRUIOp::create(b, loc, x, c(n));
  }
  Value cmp(arith::CmpIPredicate predicate, Value x, uint32_t y) const {
    return arith::CmpIOp::create(b, loc, predicate, x, c(y));
  }
  Value select(Value condition, Value x, Value y) const {
    return arith::SelectOp::create(b, loc, condition, x, y);
  }
  Value bitcast(Type type, Value x) const {
    return arith::BitcastOp::create(b, loc, type, x);
  }
};

/// `arith.extf` f16 -> f32, exactly: the exponent is rebiased; an infinity
/// or NaN gets the f32 maximum exponent; a subnormal `m * 2^-24` is built as
/// `(2^-14 + m * 2^-24) - 2^-14`, an exact f32 subtraction.
struct ExpandHalfExtF : OpRewritePattern<arith::ExtFOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(arith::ExtFOp op,
                                PatternRewriter &rewriter) const override {
    if (!castsBetween(op, rewriter.getF16Type(), rewriter.getF32Type()))
      return rewriter.notifyMatchFailure(op, "not an f16 -> f32 extension");
    Type in = op.getIn().getType(), out = op.getType();
    Location loc = op.getLoc();
    Bits x{rewriter, loc, withElement(in, rewriter.getI32Type())};
    Value half = x.bitcast(withElement(in, rewriter.getI16Type()), op.getIn());
    Value w = arith::ExtUIOp::create(rewriter, loc, x.i32, half);
    Value sign = x.shl(x.andi(w, 0x8000), 16);
    Value o = x.shl(x.andi(w, 0x7fff), 13);
    Value exponent = x.andi(o, 0x7c00 << 13);
    o = x.add(o, (127 - 15) << 23);
    Value special = x.cmp(arith::CmpIPredicate::eq, exponent, 0x7c00 << 13);
    o = x.select(special, x.add(o, (128 - 16) << 23), o);
    // Subnormal or zero: one more exponent step, then subtract 2^-14.
    Value subnormal = x.cmp(arith::CmpIPredicate::eq, exponent, 0);
    Value lifted = x.bitcast(out, x.add(o, 1 << 23));
    Value magic = x.bitcast(out, x.c(113 << 23));
    Value renormed =
        x.bitcast(x.i32, arith::SubFOp::create(rewriter, loc, lifted, magic));
    o = x.select(subnormal, renormed, o);
    rewriter.replaceOp(
        op, x.bitcast(out, arith::OrIOp::create(rewriter, loc, o, sign)));
    return success();
  }
};

/// `arith.truncf` f32 -> f16 with round to nearest even: magnitudes of
/// 2^16 and above become infinity (NaN the quiet NaN 0x7e00); below 2^-14
/// the f32 addition `|x| + 0.5` rounds to the subnormal grid (its ulp is
/// 2^-24); otherwise the mantissa is rounded by adding `0xfff` plus its
/// lowest kept bit, which carries into the exponent (up to infinity) when
/// it must.
struct ExpandHalfTruncF : OpRewritePattern<arith::TruncFOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(arith::TruncFOp op,
                                PatternRewriter &rewriter) const override {
    if (!castsBetween(op, rewriter.getF32Type(), rewriter.getF16Type()))
      return rewriter.notifyMatchFailure(op, "not an f32 -> f16 truncation");
    Type in = op.getIn().getType(), out = op.getType();
    if (op.getRoundingmodeAttr() &&
        *op.getRoundingmode() != arith::RoundingMode::to_nearest_even)
      return rewriter.notifyMatchFailure(op, "not round to nearest even");
    Location loc = op.getLoc();
    Bits x{rewriter, loc, withElement(in, rewriter.getI32Type())};
    Value u = x.bitcast(x.i32, op.getIn());
    Value sign = x.andi(u, 0x80000000);
    Value a = arith::XOrIOp::create(rewriter, loc, u, sign);
    using P = arith::CmpIPredicate;

    Value nan = x.cmp(P::ugt, a, 0x7f800000);
    Value big = x.select(nan, x.c(0x7e00), x.c(0x7c00));

    Value magic = x.c(126 << 23); // 0.5f
    Value sum = arith::AddFOp::create(rewriter, loc, x.bitcast(in, a),
                                      x.bitcast(in, magic));
    Value small =
        arith::SubIOp::create(rewriter, loc, x.bitcast(x.i32, sum), magic);

    Value odd = x.andi(x.shr(a, 13), 1);
    Value normal =
        x.shr(x.add(x.add(a, uint32_t(-(112 << 23)) + 0xfff), odd), 13);

    Value r = x.select(x.cmp(P::ult, a, 113 << 23), small, normal);
    r = x.select(x.cmp(P::uge, a, 143 << 23), big, r);
    r = arith::OrIOp::create(rewriter, loc, r, x.shr(sign, 16));
    Type i16 = withElement(in, rewriter.getI16Type());
    Value bits = arith::TruncIOp::create(rewriter, loc, i16, r);
    rewriter.replaceOp(op, x.bitcast(out, bits));
    return success();
  }
};

struct MomaExpandNarrowFloatCasts
    : moma::impl::MomaExpandNarrowFloatCastsBase<MomaExpandNarrowFloatCasts> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    arith::populateExpandBFloat16Patterns(patterns);
    patterns.add<ExpandHalfExtF, ExpandHalfTruncF>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
