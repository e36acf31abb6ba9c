//===- OptimizerToLinalg.cpp - Lower moma.adamw ---------------------------===//
//
// Lowers moma.adamw (MomaOptimizerOps.td) to linalg: one reduction per
// gradient accumulating the global sum of squares (in f64), the step's
// scalars (learning rate, clipping factor, bias corrections) in f64 on
// rank-0 values, and one element-wise linalg.generic per weight whose `outs`
// are the weight and its moments themselves, so that one-shot bufferization
// updates them in place when the caller's buffers are writable.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaOps.h"
#include "passes/Conversion/MomaToLinalg/LoweringUtils.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineMap.h"

#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace moma;

namespace {

/// `Σ x²` over every element of `x`, added to the rank-0 f64 `acc`.
Value addSumOfSquares(OpBuilder &b, Location loc, Value x, Value acc) {
  MLIRContext *ctx = b.getContext();
  int64_t rank = tensorTypeOf(x).getRank();
  SmallVector<AffineMap> maps = {AffineMap::getMultiDimIdentityMap(rank, ctx),
                                 AffineMap::get(rank, 0, {}, ctx)};
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::reduction);
  return linalg::GenericOp::create(
             b, loc, acc.getType(), ValueRange{x}, ValueRange{acc}, maps,
             iterators,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value v = args[0];
               if (v.getType() != nb.getF64Type())
                 v = arith::ExtFOp::create(nb, nl, nb.getF64Type(), v);
               Value square = arith::MulFOp::create(nb, nl, v, v);
               Value sum = arith::AddFOp::create(nb, nl, args[1], square);
               linalg::YieldOp::create(nb, nl, sum);
             })
      .getResult(0);
}

/// The f64 scalars of one AdamW step (see moma.adamw's description).
struct StepScalars {
  Value lr, norm, clip, stepSize, bias2Sqrt;
};

Value f64(OpBuilder &b, Location loc, double value) {
  return constantFloat(b, loc, b.getF64Type(), value);
}

/// `lr(s)` of the schedule for the f64 step `s`.
Value scheduledRate(OpBuilder &b, Location loc, AdamWOp op, Value s) {
  double peak = op.getLr().convertToDouble();
  int64_t warmup = op.getWarmupStepsAttr().getInt();
  int64_t total = op.getTotalStepsAttr().getInt();
  double floor = op.getFinalLrRatio().convertToDouble();
  Value peakV = f64(b, loc, peak);
  Value decayed = peakV;
  if (op.getDecay() != "constant") {
    // p = min(1, max(0, s - W) / max(1, T - W))
    Value since = arith::MaximumFOp::create(
        b, loc, arith::SubFOp::create(b, loc, s, f64(b, loc, double(warmup))),
        f64(b, loc, 0.0));
    Value p = arith::MinimumFOp::create(
        b, loc,
        arith::DivFOp::create(
            b, loc, since,
            f64(b, loc, double(std::max<int64_t>(1, total - warmup)))),
        f64(b, loc, 1.0));
    Value shape;
    if (op.getDecay() == "linear") {
      shape = arith::SubFOp::create(b, loc, f64(b, loc, 1.0), p);
    } else {
      Value angle =
          arith::MulFOp::create(b, loc, p, f64(b, loc, llvm::numbers::pi));
      Value cosine = math::CosOp::create(b, loc, angle);
      shape = arith::MulFOp::create(
          b, loc, arith::AddFOp::create(b, loc, f64(b, loc, 1.0), cosine),
          f64(b, loc, 0.5));
    }
    // peak * (f + (1 - f) * shape)
    Value fraction = arith::AddFOp::create(
        b, loc, f64(b, loc, floor),
        arith::MulFOp::create(b, loc, f64(b, loc, 1.0 - floor), shape));
    decayed = arith::MulFOp::create(b, loc, peakV, fraction);
  }
  if (warmup == 0)
    return decayed;
  Value warming = arith::MulFOp::create(
      b, loc, peakV,
      arith::DivFOp::create(b, loc, s, f64(b, loc, double(warmup))));
  Value inWarmup = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE, s,
                                         f64(b, loc, double(warmup)));
  return arith::SelectOp::create(b, loc, inWarmup, warming, decayed);
}

StepScalars buildStepScalars(OpBuilder &b, Location loc, AdamWOp op) {
  StepScalars out;
  Value step = tensor::ExtractOp::create(b, loc, op.getStep(), ValueRange{});
  Value s = arith::SIToFPOp::create(b, loc, b.getF64Type(), step);
  out.lr = scheduledRate(b, loc, op, s);

  Value sumSq = createFilled(b, loc, {}, b.getF64Type(), 0.0);
  for (Value g : op.getGrads())
    sumSq = addSumOfSquares(b, loc, g, sumSq);
  out.norm = math::SqrtOp::create(
      b, loc, tensor::ExtractOp::create(b, loc, sumSq, ValueRange{}));

  out.clip = f64(b, loc, 1.0);
  if (std::optional<APFloat> maxNorm = op.getMaxGradNorm()) {
    // As torch.nn.utils.clip_grad_norm_: c / (n + 1e-6), at most 1.
    Value factor = arith::DivFOp::create(
        b, loc, f64(b, loc, maxNorm->convertToDouble()),
        arith::AddFOp::create(b, loc, out.norm, f64(b, loc, 1e-6)));
    out.clip = arith::MinimumFOp::create(b, loc, factor, f64(b, loc, 1.0));
  }
  auto biasCorrection = [&](double beta) -> Value {
    Value power = math::PowFOp::create(b, loc, f64(b, loc, beta), s);
    return arith::SubFOp::create(b, loc, f64(b, loc, 1.0), power);
  };
  out.stepSize = arith::DivFOp::create(
      b, loc, out.lr, biasCorrection(op.getBeta1().convertToDouble()));
  out.bias2Sqrt = math::SqrtOp::create(
      b, loc, biasCorrection(op.getBeta2().convertToDouble()));
  return out;
}

struct AdamWLowering : OpRewritePattern<AdamWOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AdamWOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    auto scalarType = cast<RankedTensorType>(op.getGradNorm().getType());
    Type element = scalarType.getElementType();
    StepScalars scalars = buildStepScalars(rewriter, loc, op);
    Value clip = toRank0(rewriter, loc, scalars.clip, scalarType);
    Value stepSize = toRank0(rewriter, loc, scalars.stepSize, scalarType);
    Value bias2Sqrt = toRank0(rewriter, loc, scalars.bias2Sqrt, scalarType);

    double beta1 = op.getBeta1().convertToDouble();
    double beta2 = op.getBeta2().convertToDouble();
    double eps = op.getEps().convertToDouble();
    SmallVector<Value> weights, firsts, seconds;
    for (auto [i, decay] : llvm::enumerate(op.getWeightDecay())) {
      // w (1 - lr λ), the decoupled decay factor of this weight.
      Value factor = arith::SubFOp::create(
          rewriter, loc, f64(rewriter, loc, 1.0),
          arith::MulFOp::create(rewriter, loc, scalars.lr,
                                f64(rewriter, loc, decay)));
      Value keep = toRank0(rewriter, loc, factor, scalarType);
      Value w = op.getWeights()[i], g = op.getGrads()[i];
      Value m = op.getExpAvg()[i], v = op.getExpAvgSq()[i];
      auto type = cast<RankedTensorType>(w.getType());
      int64_t rank = type.getRank();
      AffineMap identity = AffineMap::getMultiDimIdentityMap(rank, ctx);
      AffineMap scalar = AffineMap::get(rank, 0, {}, ctx);
      SmallVector<AffineMap> maps = {identity, scalar,   scalar,   scalar,
                                     scalar,   identity, identity, identity};
      SmallVector<utils::IteratorType> iterators(rank,
                                                 utils::IteratorType::parallel);
      auto update = linalg::GenericOp::create(
          rewriter, loc, TypeRange{type, type, type},
          ValueRange{g, clip, stepSize, bias2Sqrt, keep}, ValueRange{w, m, v},
          maps, iterators, [&](OpBuilder &b, Location l, ValueRange args) {
            auto c = [&](double value) {
              return constantFloat(b, l, element, value);
            };
            Value grad = arith::MulFOp::create(b, l, args[0], args[1]);
            Value mNew = arith::AddFOp::create(
                b, l, arith::MulFOp::create(b, l, c(beta1), args[6]),
                arith::MulFOp::create(b, l, c(1.0 - beta1), grad));
            Value vNew = arith::AddFOp::create(
                b, l, arith::MulFOp::create(b, l, c(beta2), args[7]),
                arith::MulFOp::create(b, l, c(1.0 - beta2),
                                      arith::MulFOp::create(b, l, grad, grad)));
            Value denom = arith::AddFOp::create(
                b, l,
                arith::DivFOp::create(b, l, math::SqrtOp::create(b, l, vNew),
                                      args[3]),
                c(eps));
            Value decayed = arith::MulFOp::create(b, l, args[5], args[4]);
            Value wNew = arith::SubFOp::create(
                b, l, decayed,
                arith::MulFOp::create(
                    b, l, args[2], arith::DivFOp::create(b, l, mNew, denom)));
            linalg::YieldOp::create(b, l, ValueRange{wNew, mNew, vNew});
          });
      weights.push_back(update.getResult(0));
      firsts.push_back(update.getResult(1));
      seconds.push_back(update.getResult(2));
    }
    SmallVector<Value> results(weights);
    results.append(firsts);
    results.append(seconds);
    results.push_back(toRank0(rewriter, loc, scalars.norm, scalarType));
    results.push_back(toRank0(rewriter, loc, scalars.lr, scalarType));
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void moma::populateOptimizerToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AdamWLowering>(patterns.getContext());
}
