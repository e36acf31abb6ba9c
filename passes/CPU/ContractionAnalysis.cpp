//===- ContractionAnalysis.cpp - Matmul-class ops the CPU maps ------------===//
//
// Recognises the contractions moma-cpu-vectorize-contractions maps: the body
// is a (possibly masked) multiply-accumulate whose factors are inputs, a
// weight load at a per-row slice, or a value computed from side inputs (a
// fused row gather); the loop dimensions are then sorted into the register
// tile's rows, columns and reduction, and outer loops.
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/ContractionAnalysis.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;
using namespace moma;

namespace {

bool hasUnitInnerStride(Value buffer) {
  auto type = dyn_cast<MemRefType>(buffer.getType());
  return type && type.getRank() > 0 && type.isLastDimUnitStride();
}

/// The loop dimension `value` is `linalg.index` of, if it is one.
std::optional<unsigned> indexDim(Value value) {
  if (auto index = value.getDefiningOp<linalg::IndexOp>())
    return index.getDim();
  return std::nullopt;
}

/// The loop dimensions `value` (computed in the body of `op`) depends on,
/// through `linalg.index` and the maps of the inputs it reads; nullopt if it
/// reads a block argument not in `sideArgs`, or an op with regions or
/// effects.
std::optional<llvm::SmallBitVector> dimsOf(Value value, linalg::LinalgOp op,
                                           ArrayRef<BlockArgument> sideArgs) {
  Block *body = op.getBlock();
  unsigned numLoops = op.getNumLoops();
  llvm::SmallBitVector dims(numLoops);
  if (auto blockArg = dyn_cast<BlockArgument>(value)) {
    if (blockArg.getOwner() != body)
      return dims;
    if (!llvm::is_contained(sideArgs, blockArg))
      return std::nullopt;
    AffineMap map =
        op.getMatchingIndexingMap(&op->getOpOperand(blockArg.getArgNumber()));
    for (unsigned r = 0; r < map.getNumResults(); ++r)
      dims.set(map.getDimPosition(r));
    return dims;
  }
  Operation *def = value.getDefiningOp();
  if (def->getBlock() != body)
    return dims; // defined above the op
  if (auto index = dyn_cast<linalg::IndexOp>(def)) {
    dims.set(index.getDim());
    return dims;
  }
  // Loads of buffers from above the op (a fused gather's source) are reads
  // of values the op does not write.
  auto load = dyn_cast<memref::LoadOp>(def);
  if (load && op->isAncestor(load.getMemRef().getParentBlock()->getParentOp()))
    return std::nullopt;
  if (!load && (def->getNumRegions() != 0 || !isPure(def)))
    return std::nullopt;
  for (Value operand : def->getOperands()) {
    std::optional<llvm::SmallBitVector> inner = dimsOf(operand, op, sideArgs);
    if (!inner)
      return std::nullopt;
    dims |= *inner;
  }
  return dims;
}

/// The buffer `value` views (through view-like ops).
Value rootOf(Value value) {
  while (auto view = value.getDefiningOp<ViewLikeOpInterface>())
    value = view.getViewSource();
  return value;
}

unsigned lastDimOf(AffineMap map) {
  return map.getDimPosition(map.getNumResults() - 1);
}

/// `value` is `mulf(x, y)`: returns {x, y}.
std::optional<std::pair<Value, Value>> matchMul(Value value) {
  auto mul = value.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return std::nullopt;
  return std::make_pair(mul.getLhs(), mul.getRhs());
}

/// Recognises `op` as a contraction this pass maps, or fails.
FailureOr<Contraction> analyseProduct(linalg::LinalgOp op) {
  Contraction result;
  result.op = op;
  if (!op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() < 2 || op->getNumRegions() != 1)
    return failure();
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.hasStaticShape())
      return failure();
  }
  result.sizes = op.getStaticLoopRanges();
  if (llvm::any_of(result.sizes, ShapedType::isDynamic))
    return failure();
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (!llvm::all_of(maps,
                    [](AffineMap m) { return m.isProjectedPermutation(); }))
    return failure();
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  Block *body = op.getBlock();
  result.body = body;
  for (OpOperand *input : op.getDpsInputOperands()) {
    result.inputs.push_back(input->get());
    result.inputMaps.push_back(op.getMatchingIndexingMap(input));
  }
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  if (yield.getNumOperands() != 1)
    return failure();
  unsigned numInputs = op.getNumDpsInputs();
  BlockArgument out = body->getArgument(numInputs);
  if (!out.getType().isF32())
    return failure();

  // The body: yield(out + x * y), in either operand order, possibly as
  // yield(select(cond, out + x * y, out)).
  Value accumulated = yield.getOperand(0);
  if (auto select = accumulated.getDefiningOp<arith::SelectOp>()) {
    if (select.getFalseValue() != out)
      return failure();
    result.condition = select.getCondition();
    accumulated = select.getTrueValue();
  }
  auto add = accumulated.getDefiningOp<arith::AddFOp>();
  if (!add || (add.getLhs() == out) == (add.getRhs() == out))
    return failure();
  Value product = add.getLhs() == out ? add.getRhs() : add.getLhs();
  std::optional<std::pair<Value, Value>> factors = matchMul(product);
  if (!factors)
    return failure();
  auto [x, y] = *factors;
  auto asInput = [&](Value v) -> std::optional<unsigned> {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner() != body || arg.getArgNumber() >= numInputs)
      return std::nullopt;
    return arg.getArgNumber();
  };
  // A load of weights from above the op at [s, index k, index n].
  auto isWeightLoad = [&](Value v) {
    auto load = v.getDefiningOp<memref::LoadOp>();
    if (!load || load->getBlock() != body || load.getIndices().size() != 3 ||
        !indexDim(load.getIndices()[1]) || !indexDim(load.getIndices()[2]))
      return false;
    Value weights = load.getMemRef();
    return weights.getParentBlock() != body &&
           !op->isAncestor(weights.getParentBlock()->getParentOp());
  };
  // The B factor is an input or a weight load; the A factor an input or a
  // value the body computes (a fused row gather).
  Value aFactor, bFactor;
  if (asInput(x) && asInput(y)) {
    bool xFirst = *asInput(x) < *asInput(y);
    aFactor = xFirst ? x : y;
    bFactor = xFirst ? y : x;
  } else if (isWeightLoad(y) || asInput(y)) {
    aFactor = x;
    bFactor = y;
  } else if (isWeightLoad(x) || asInput(x)) {
    aFactor = y;
    bFactor = x;
  } else {
    return failure();
  }
  result.c = op.getDpsInitOperand(0)->get();
  result.cMap = maps[numInputs];
  SmallVector<BlockArgument> &sideArgs = result.sideArgs;
  for (unsigned i = 0; i < numInputs; ++i)
    if (body->getArgument(i) != aFactor && body->getArgument(i) != bFactor)
      sideArgs.push_back(body->getArgument(i));
  if (std::optional<unsigned> a = asInput(aFactor)) {
    result.a = result.inputs[*a];
    result.aMap = maps[*a];
  } else {
    result.aValue = aFactor;
  }
  if (std::optional<unsigned> b = asInput(bFactor)) {
    result.b = result.inputs[*b];
    result.bMap = maps[*b];
  } else {
    // Row-selected weights.
    auto load = bFactor.getDefiningOp<memref::LoadOp>();
    std::optional<unsigned> k = indexDim(load.getIndices()[1]);
    std::optional<unsigned> n = indexDim(load.getIndices()[2]);
    if (!load.getIndices()[0].getType().isIndex())
      return failure();
    Value weights = load.getMemRef();
    auto weightType = cast<MemRefType>(weights.getType());
    if (!weightType.hasStaticShape() ||
        weightType.getDimSize(1) != result.sizes[*k] ||
        weightType.getDimSize(2) != result.sizes[*n])
      return failure();
    result.rowSelected = true;
    result.b = weights;
    result.slice = load.getIndices()[0];
    result.kDim = *k;
    result.nDim = *n;
    if (iterators[*k] != utils::IteratorType::reduction)
      return failure();
  }
  // Side inputs only feed the slice, the condition and a computed A.
  for (BlockArgument arg : sideArgs)
    for (Operation *user : arg.getUsers())
      if (user == add || user == product.getDefiningOp())
        return failure();
  if ((result.a &&
       !cast<MemRefType>(result.a.getType()).getElementType().isF32()) ||
      !cast<MemRefType>(result.b.getType()).getElementType().isF32() ||
      !aFactor.getType().isF32())
    return failure();
  std::optional<llvm::SmallBitVector> aDims;
  if (result.aValue) {
    aDims = dimsOf(result.aValue, op, sideArgs);
    if (!aDims)
      return failure();
  }

  // Classify the loop dimensions.
  unsigned numLoops = result.sizes.size();
  auto uses = [](AffineMap map, unsigned dim) {
    return map.isFunctionOfDim(dim);
  };
  SmallVector<unsigned> reductions, mCandidates, nCandidates;
  for (unsigned d = 0; d < numLoops; ++d) {
    bool inA = aDims ? aDims->test(d) : uses(result.aMap, d);
    bool inC = uses(result.cMap, d);
    bool inB = result.rowSelected ? (d == result.kDim || d == result.nDim)
                                  : uses(result.bMap, d);
    if (iterators[d] == utils::IteratorType::reduction) {
      if (!inA || !inB || inC)
        return failure();
      reductions.push_back(d);
      continue;
    }
    if (!inC)
      return failure();
    if (inA && !inB)
      mCandidates.push_back(d);
    else if (inB && !inA)
      nCandidates.push_back(d);
    else if (inA && inB)
      result.outerDims.push_back(d);
    else
      result.outerDims.push_back(d); // a broadcast: an outer loop of C only
  }
  if (reductions.size() != 1 || mCandidates.empty() || nCandidates.empty())
    return failure();
  result.kDim = reductions.front();

  // n: the candidate that is C's innermost index if there is one.
  unsigned cLast = result.cMap.getDimPosition(result.cMap.getNumResults() - 1);
  if (!result.rowSelected)
    result.nDim =
        llvm::is_contained(nCandidates, cLast) ? cLast : nCandidates.back();
  else if (!llvm::is_contained(nCandidates, result.nDim))
    return failure();
  // m: the largest candidate (the later one in C among equals).
  result.mDim = mCandidates.front();
  for (unsigned d : mCandidates)
    if (result.sizes[d] >= result.sizes[result.mDim])
      result.mDim = d;
  for (unsigned d : mCandidates)
    if (d != result.mDim)
      result.outerDims.push_back(d);
  for (unsigned d : nCandidates)
    if (d != result.nDim)
      result.outerDims.push_back(d);
  llvm::sort(result.outerDims);

  if (result.aValue) {
    auto select = result.aValue.getDefiningOp<arith::SelectOp>();
    std::optional<llvm::SmallBitVector> dims;
    if (select && select->getBlock() == body &&
        matchPattern(select.getFalseValue(), m_AnyZeroFloat()))
      dims = dimsOf(select.getCondition(), op, sideArgs);
    if (dims && !dims->test(result.kDim) && !dims->test(result.nDim))
      result.aGuard = select;
  }
  if (result.condition) {
    std::optional<llvm::SmallBitVector> dims =
        dimsOf(result.condition, op, sideArgs);
    if (!dims || dims->test(result.nDim))
      return failure();
  }
  if (result.rowSelected) {
    // [T, K] x [G, K, N] -> [T, N], the slice a function of the row.
    std::optional<llvm::SmallBitVector> dims =
        dimsOf(result.slice, op, sideArgs);
    if (!dims || dims->count() > 1 || (dims->any() && !dims->test(result.mDim)))
      return failure();
    if (numLoops != 3 || result.cMap.getDimPosition(1) != result.nDim ||
        !hasUnitInnerStride(result.c) || !hasUnitInnerStride(result.b))
      return failure();
    return result;
  }
  auto lastDim = [](AffineMap map) {
    return map.getDimPosition(map.getNumResults() - 1);
  };
  if (lastDim(result.bMap) == result.nDim &&
      lastDim(result.cMap) == result.nDim && hasUnitInnerStride(result.b) &&
      hasUnitInnerStride(result.c))
    return result;
  if (result.a && lastDim(result.aMap) == result.kDim &&
      lastDim(result.bMap) == result.kDim && hasUnitInnerStride(result.a) &&
      hasUnitInnerStride(result.b) && !result.condition && !result.aValue) {
    result.dotForm = true;
    return result;
  }
  return failure();
}

/// Whether the CPU mapping can apply `epilogue`: every buffer it reads or
/// writes a vector of columns of is contiguous along them, and its body
/// reads no tensors.
bool mapsEpilogue(const Epilogue &epilogue) {
  linalg::GenericOp op = epilogue.op;
  unsigned nLoop = op.getNumLoops() - 1;
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    if (op.getMatchingIndexingMap(&operand).isFunctionOfDim(nLoop) &&
        !hasUnitInnerStride(operand.get()))
      return false;
  }
  WalkResult walk = op.getBody()->walk([&](Operation *inner) {
    if (isa<tensor::ExtractOp>(inner))
      return WalkResult::interrupt();
    if (auto load = dyn_cast<memref::LoadOp>(inner))
      if (!hasUnitInnerStride(load.getMemRef()))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return !walk.wasInterrupted();
}

/// The constant `value` is, if any.
std::optional<int64_t> constantOf(Value value) {
  return getConstantIntValue(value);
}

/// moma.combine's scatter of the rows of `plan`'s epilogue output, on
/// buffers: after the epilogue, ops that initialise the output, then
/// `scf.for %s = 0 to S` whose body (reads, scalar arithmetic, `scf.if`s)
/// updates one row of the output from row `%s` of the epilogue's output.
std::optional<CombineScatter> matchCombine(const Contraction &plan) {
  linalg::GenericOp epilogue = plan.epilogue->op;
  Value ys = epilogue.getDpsInits().front();
  auto ysType = dyn_cast<MemRefType>(ys.getType());
  if (!ysType || ysType.getRank() != 2 || plan.rowSelected == false ||
      !plan.outerDims.empty())
    return std::nullopt;
  int64_t slots = ysType.getDimSize(0), width = ysType.getDimSize(1);
  CombineScatter result;
  auto touchesProduct = [&](Operation *op) {
    return llvm::any_of(op->getOperands(), [&](Value v) {
      return rootOf(v) == rootOf(ys) || rootOf(v) == rootOf(plan.c);
    });
  };
  for (Operation *next = epilogue->getNextNode(); next;
       next = next->getNextNode()) {
    if (auto loop = dyn_cast<scf::ForOp>(next)) {
      result.loop = loop;
      break;
    }
    bool touchesNoData = next->getNumRegions() == 0 &&
                         (isMemoryEffectFree(next) ||
                          hasSingleEffect<MemoryEffects::Allocate>(next));
    if (!touchesNoData &&
        (!isa<memref::CopyOp, linalg::FillOp>(next) || touchesProduct(next)))
      return std::nullopt;
    result.init.push_back(next);
  }
  scf::ForOp loop = result.loop;
  if (!loop || loop.getNumResults() != 0 ||
      constantOf(loop.getLowerBound()) != 0 ||
      constantOf(loop.getUpperBound()) != slots ||
      constantOf(loop.getStep()) != 1 || slots != plan.size(plan.mDim))
    return std::nullopt;
  // The body: one row update, in scf.ifs without else.
  bool valid = true;
  loop.getBody()->walk([&](Operation *op) {
    if (auto branch = dyn_cast<scf::IfOp>(op)) {
      valid &= branch.getNumResults() == 0 && branch.getElseRegion().empty();
      return WalkResult::advance();
    }
    if (auto update = dyn_cast<linalg::GenericOp>(op)) {
      valid &= !result.update;
      result.update = update;
      return WalkResult::skip();
    }
    if (auto copy = dyn_cast<memref::CopyOp>(op)) {
      valid &= !result.selfCopy;
      result.selfCopy = copy;
      return WalkResult::advance();
    }
    valid &= op->getNumRegions() == 0 &&
             (isMemoryEffectFree(op) || isa<memref::LoadOp>(op));
    if (auto load = dyn_cast<memref::LoadOp>(op))
      valid &= rootOf(load.getMemRef()) != rootOf(ys);
    return WalkResult::advance();
  });
  linalg::GenericOp update = result.update;
  if (!valid || !update || update.getNumDpsInputs() != 1 ||
      update.getNumDpsInits() != 1 || update.getNumLoops() != 1 ||
      update.getNumParallelLoops() != 1 ||
      !llvm::all_of(update.getIndexingMapsArray(),
                    [](AffineMap map) { return map.isIdentity(); }))
    return std::nullopt;
  // Row %s of the epilogue's output into a row of another buffer.
  auto in = update.getDpsInputs().front().getDefiningOp<memref::SubViewOp>();
  auto out = update.getDpsInits().front().getDefiningOp<memref::SubViewOp>();
  if (!in || !out || in.getSource() != ys)
    return std::nullopt;
  auto rowAt = [&](memref::SubViewOp view, Value row) {
    SmallVector<OpFoldResult> offsets = view.getMixedOffsets();
    SmallVector<OpFoldResult> sizes = view.getMixedSizes();
    return offsets.size() == 2 && isConstantIntValue(offsets[1], 0) &&
           isConstantIntValue(sizes[0], 1) &&
           isConstantIntValue(sizes[1], width) &&
           (!row || getAsOpFoldResult(row) == offsets[0]) &&
           llvm::all_of(view.getMixedStrides(), [](OpFoldResult s) {
             return isConstantIntValue(s, 1);
           });
  };
  Value target = out.getSource();
  if (!rowAt(in, loop.getInductionVar()) || !rowAt(out, Value()) ||
      llvm::any_of(plan.op->getOperands(),
                   [&](Value v) { return rootOf(v) == rootOf(target); }) ||
      rootOf(target) == rootOf(ys) || !hasUnitInnerStride(target))
    return std::nullopt;
  if (result.selfCopy) {
    auto to = result.selfCopy.getTarget().getDefiningOp<memref::SubViewOp>();
    if (result.selfCopy.getSource() != out.getResult() || !to ||
        to.getSource() != target ||
        to.getMixedOffsets() != out.getMixedOffsets() ||
        to.getMixedSizes() != out.getMixedSizes())
      return std::nullopt;
  }
  // The update: yield(out + addend), the addend element-wise in `in` and
  // values from above.
  Block *body = update.getBody();
  auto sum =
      body->getTerminator()->getOperand(0).getDefiningOp<arith::AddFOp>();
  BlockArgument acc = body->getArgument(1);
  if (!sum || (sum.getLhs() == acc) == (sum.getRhs() == acc))
    return std::nullopt;
  result.sum = sum;
  result.addend = sum.getLhs() == acc ? sum.getRhs() : sum.getLhs();
  for (Operation &inner : body->without_terminator())
    if (!OpTrait::hasElementwiseMappableTraits(&inner) ||
        (&inner != sum.getOperation() &&
         llvm::is_contained(inner.getOperands(), acc)))
      return std::nullopt;
  // The kernel still writes the epilogue's output if anything else uses
  // its buffer.
  for (Operation *user : ys.getUsers())
    if (user != epilogue.getOperation() && user != in.getOperation())
      result.keepOutput = true;
  return result;
}

} // namespace

FailureOr<Contraction> moma::analyseContraction(linalg::LinalgOp op) {
  FailureOr<Contraction> result = analyseProduct(op);
  if (failed(result))
    return failure();
  std::optional<Epilogue> epilogue = matchEpilogue(op);
  if (epilogue && mapsEpilogue(*epilogue) &&
      lastDimOf(result->cMap) == result->nDim) {
    // The epilogue writes no buffer the product reads.
    Value out = epilogue->op.getDpsInits().front();
    // Paired halves (SwiGLU) need both halves in one register tile, which
    // only the outer-product form's panels hold.
    if (llvm::none_of(op->getOperands(),
                      [&](Value v) { return rootOf(v) == rootOf(out); }) &&
        !(epilogue->pairedInput && result->dotForm))
      result->epilogue = epilogue;
  }
  if (result->epilogue && !result->dotForm && !result->epilogue->pairedInput)
    result->combine = matchCombine(*result);
  return result;
}
