//===- VectorizeContractions.cpp - Matmul-class ops to vector loops -------===//
//
// The CPU mapping of the kernel layer's matmul class (see Passes.td for the
// forms it recognises). A contraction is first analysed into a
// `Contraction`: which loop dimension is the tile's rows (m), columns (n)
// and reduction (k), which are outer loops, and how each operand is indexed.
// The emitter then writes the loop nest with the cost model's tiles.
//
//===----------------------------------------------------------------------===//

#include "passes/CPU/ContractionAnalysis.h"
#include "passes/CPU/Passes.h"
#include "passes/Kernels/CostModel.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

namespace moma {
#define GEN_PASS_DEF_MOMACPUVECTORIZECONTRACTIONS
#include "passes/CPU/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

/// Writes the loops of one contraction.
class Emitter {
public:
  Emitter(Contraction &plan, const TargetModel &target, bool deterministic)
      : plan(plan), target(target), lanes(target.lanes()),
        pair(plan.epilogue && plan.epilogue->pairedInput
                 ? plan.epilogue->pairOffset
                 : 0),
        deterministic(deterministic) {}

  void emit(OpBuilder &b) {
    Location loc = plan.op.getLoc();
    // A dot-form product whose output is contiguous along n runs as the
    // outer-product form over B panels packed transposed.
    if (plan.dotForm && !cContiguousAlongN())
      emitDotForm(b, loc);
    else
      emitOuterForm(b, loc);
  }

private:
  Contraction &plan;
  const TargetModel &target;
  int64_t lanes;
  /// With an epilogue on C's two column halves (SwiGLU), the distance
  /// between them: panels then cover columns [n0, n0 + width) of the first
  /// half and the same columns of the second, packed side by side, and a
  /// register tile holds both; 0 otherwise.
  int64_t pair;
  /// The current panel's `kc x nr` slab, B packed for the k slice (row 0
  /// its first k); micro-kernels read it when told to (`fromPack`).
  Value packed;

  bool cContiguousAlongN() {
    AffineMap map = plan.cMap;
    return map.getDimPosition(map.getNumResults() - 1) == plan.nDim &&
           cast<MemRefType>(plan.c.getType()).areTrailingDimsContiguous(1);
  }
  /// Combine's mode: fixed order without atomics, or atomic adds with the
  /// slot rows split across threads too.
  bool deterministic;

  Value cst(OpBuilder &b, Location loc, int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  VectorType vecType(int64_t width) {
    return VectorType::get({width}, Float32Type::get(plan.op->getContext()));
  }

  /// The operand indices of `map` for loop values `dims` (null: absent).
  SmallVector<Value> indices(AffineMap map, ArrayRef<Value> dims) {
    SmallVector<Value> result;
    for (unsigned r = 0, e = map.getNumResults(); r < e; ++r)
      result.push_back(dims[map.getDimPosition(r)]);
    return result;
  }

  /// The body value `value` (the slice or the condition) at loop indices
  /// `dims`: its computation cloned from the body, side inputs loaded from
  /// their buffers and `linalg.index` replaced by the index.
  Value materialize(OpBuilder &b, Location loc, Value value,
                    ArrayRef<Value> dims, IRMapping &mapping) {
    if (Value mapped = mapping.lookupOrNull(value))
      return mapped;
    if (auto arg = dyn_cast<BlockArgument>(value)) {
      if (arg.getOwner() != plan.body)
        return value;
      unsigned i = arg.getArgNumber();
      Value loaded = memref::LoadOp::create(b, loc, plan.inputs[i],
                                            indices(plan.inputMaps[i], dims));
      mapping.map(value, loaded);
      return loaded;
    }
    Operation *def = value.getDefiningOp();
    if (def->getBlock() != plan.body)
      return value; // from above the op
    if (auto index = dyn_cast<linalg::IndexOp>(def)) {
      mapping.map(value, dims[index.getDim()]);
      return dims[index.getDim()];
    }
    for (Value operand : def->getOperands())
      materialize(b, loc, operand, dims, mapping);
    Operation *clone = b.clone(*def, mapping);
    return clone->getResult(cast<OpResult>(value).getResultNumber());
  }

  /// The slice index of row `row` (row-selected weights).
  Value sliceOf(OpBuilder &b, Location loc, Value row) {
    SmallVector<Value> dims(plan.sizes.size());
    dims[plan.mDim] = row;
    IRMapping mapping;
    return materialize(b, loc, plan.slice, dims, mapping);
  }

  /// A mask of `width` lanes whose first `live` are set.
  Value laneMask(OpBuilder &b, Location loc, int64_t width, int64_t live) {
    SmallVector<bool> bits(width, false);
    for (int64_t i = 0; i < live; ++i)
      bits[i] = true;
    auto type = VectorType::get({width}, b.getI1Type());
    return arith::ConstantOp::create(b, loc,
                                     DenseElementsAttr::get(type, bits));
  }

  Value loadVector(OpBuilder &b, Location loc, Value buffer, ValueRange idx,
                   Value mask) {
    if (!mask)
      return vector::LoadOp::create(b, loc, vecType(lanes), buffer, idx);
    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType(lanes), b.getF32FloatAttr(0)));
    return vector::MaskedLoadOp::create(b, loc, vecType(lanes), buffer, idx,
                                        mask, zero);
  }

  void storeVector(OpBuilder &b, Location loc, Value value, Value buffer,
                   ValueRange idx, Value mask) {
    if (!mask)
      vector::StoreOp::create(b, loc, value, buffer, idx);
    else
      vector::MaskedStoreOp::create(b, loc, buffer, idx, mask, value);
  }

  /// The matmul shape of the plan.
  MatmulShape shapeOf() {
    MatmulShape shape;
    shape.m = plan.size(plan.mDim);
    shape.n = plan.size(plan.nDim);
    shape.k = plan.size(plan.kDim);
    return shape;
  }

  /// One scf.parallel over the outer dimensions and the tiles of `tile`
  /// elements that cover `extent`; `body` gets the loop indices of the outer
  /// dimensions (null elsewhere), the tile's first element and its width
  /// (`tile`, or what is left for the last tile).
  void parallelOverTiles(
      OpBuilder &b, Location loc, int64_t extent, int64_t tile,
      function_ref<void(OpBuilder &, Location, ArrayRef<Value>, Value, int64_t)>
          body) {
    parallelOverTiles(b, loc, extent, tile,
                      [&](OpBuilder &pb, Location ploc, ArrayRef<Value> dims,
                          Value start, int64_t width,
                          Value) { body(pb, ploc, dims, start, width); });
  }

  /// The iterations of `parallelOverTiles(extent, tile)`.
  int64_t parallelIterations(int64_t extent, int64_t tile) {
    int64_t iterations = (extent + tile - 1) / tile;
    for (unsigned d : plan.outerDims)
      iterations *= plan.size(d);
    return iterations;
  }

  /// As above; `body` also gets the iteration's number in
  /// [0, parallelIterations(extent, tile)).
  void
  parallelOverTiles(OpBuilder &b, Location loc, int64_t extent, int64_t tile,
                    function_ref<void(OpBuilder &, Location, ArrayRef<Value>,
                                      Value, int64_t, Value)>
                        body) {
    int64_t tiles = (extent + tile - 1) / tile;
    int64_t tail = extent - (tiles - 1) * tile;
    SmallVector<Value> lower, upper, steps;
    for (unsigned d : plan.outerDims) {
      lower.push_back(cst(b, loc, 0));
      upper.push_back(cst(b, loc, plan.size(d)));
      steps.push_back(cst(b, loc, 1));
    }
    lower.push_back(cst(b, loc, 0));
    upper.push_back(cst(b, loc, tiles));
    steps.push_back(cst(b, loc, 1));
    scf::ParallelOp::create(
        b, loc, lower, upper, steps,
        [&](OpBuilder &pb, Location ploc, ValueRange ivs) {
          SmallVector<Value> dims(plan.sizes.size());
          for (auto [d, iv] : llvm::zip(plan.outerDims, ivs.drop_back()))
            dims[d] = iv;
          Value start =
              arith::MulIOp::create(pb, ploc, ivs.back(), cst(pb, ploc, tile));
          Value iteration = ivs.front();
          for (auto [iv, ub] :
               llvm::zip(ivs.drop_front(), ArrayRef(upper).drop_front()))
            iteration = arith::AddIOp::create(
                pb, ploc, arith::MulIOp::create(pb, ploc, iteration, ub), iv);
          if (tail == tile) {
            body(pb, ploc, dims, start, tile, iteration);
            return;
          }
          Value isLast =
              arith::CmpIOp::create(pb, ploc, arith::CmpIPredicate::eq,
                                    ivs.back(), cst(pb, ploc, tiles - 1));
          scf::IfOp::create(
              pb, ploc, isLast,
              [&](OpBuilder &tb, Location tloc) {
                body(tb, tloc, dims, start, tail, iteration);
                scf::YieldOp::create(tb, tloc);
              },
              [&](OpBuilder &eb, Location eloc) {
                body(eb, eloc, dims, start, tile, iteration);
                scf::YieldOp::create(eb, eloc);
              });
        });
  }

  //===--------------------------------------------------------------------===//
  // Epilogue
  //===--------------------------------------------------------------------===//

  /// The epilogue's loop indices at the indices `cIdx` of C: each index of
  /// C delinearised over the loops of its group.
  SmallVector<Value> epilogueDims(OpBuilder &b, Location loc,
                                  ArrayRef<Value> cIdx) {
    const Epilogue &epilogue = *plan.epilogue;
    linalg::GenericOp op = epilogue.op;
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    SmallVector<Value> dims(ranges.size());
    for (auto [group, index] : llvm::zip_equal(epilogue.groups, cIdx)) {
      Value rest = index;
      for (int64_t d : llvm::reverse(group)) {
        if (d == group.front()) {
          dims[d] = rest;
          break;
        }
        Value size = cst(b, loc, ranges[d]);
        dims[d] = arith::RemUIOp::create(b, loc, rest, size);
        rest = arith::DivUIOp::create(b, loc, rest, size);
      }
    }
    return dims;
  }

  /// Clones the element-wise op `inner` under `mapping`; with `width`
  /// lanes and an operand in `varying`, as an op on vectors (other operands
  /// broadcast, a select's scalar condition kept), its results then varying.
  void cloneVectorized(OpBuilder &b, Operation &inner, IRMapping &mapping,
                       llvm::SmallPtrSetImpl<Value> &varying, int64_t width) {
    if (!width || llvm::none_of(inner.getOperands(),
                                [&](Value v) { return varying.contains(v); })) {
      b.clone(inner, mapping);
      return;
    }
    Location loc = inner.getLoc();
    auto vectorOf = [&](Type type) { return VectorType::get({width}, type); };
    OperationState state(loc, inner.getName());
    for (Value operand : inner.getOperands()) {
      Value mapped = mapping.lookupOrDefault(operand);
      bool keepScalar =
          isa<arith::SelectOp>(inner) && operand == inner.getOperand(0);
      if (!varying.contains(operand) && !keepScalar)
        mapped = vector::BroadcastOp::create(
            b, loc, vectorOf(operand.getType()), mapped);
      state.addOperands(mapped);
    }
    for (Type type : inner.getResultTypes())
      state.addTypes(vectorOf(type));
    state.addAttributes(inner.getAttrs());
    Operation *vectorOp = b.create(state);
    for (auto [from, to] :
         llvm::zip_equal(inner.getResults(), vectorOp->getResults())) {
      mapping.map(from, to);
      varying.insert(from);
    }
  }

  /// Applies the epilogue to `acc`, C's value at `cIdx`: a vector of
  /// `width` columns from `cIdx.back()` (the last `mask`ed), or a scalar
  /// when `width` is 0; `pairedAcc` is C's value `pair` columns further
  /// (paired halves). The op's body is cloned, with values that vary along
  /// the columns as vectors, and the result stored into its output.
  Value emitEpilogue(OpBuilder &b, Location loc, ArrayRef<Value> cIdx,
                     Value acc, int64_t width, Value mask,
                     Value pairedAcc = Value()) {
    linalg::GenericOp op = plan.epilogue->op;
    unsigned nLoop = op.getNumLoops() - 1;
    SmallVector<Value> dims = epilogueDims(b, loc, cIdx);
    Block *body = op.getBody();
    IRMapping mapping;
    llvm::SmallPtrSet<Value, 16> varying, columns;
    auto vectorOf = [&](Type type) { return VectorType::get({width}, type); };
    auto load = [&](Value buffer, ValueRange idx, Type type,
                    bool vector) -> Value {
      if (!vector)
        return memref::LoadOp::create(b, loc, buffer, idx);
      if (!mask)
        return vector::LoadOp::create(b, loc, vectorOf(type), buffer, idx);
      Value zero = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(vectorOf(type), b.getZeroAttr(type)));
      return vector::MaskedLoadOp::create(b, loc, vectorOf(type), buffer, idx,
                                          mask, zero);
    };
    for (OpOperand *input : op.getDpsInputOperands()) {
      BlockArgument arg = body->getArgument(input->getOperandNumber());
      if (input->getOperandNumber() == plan.epilogue->input ||
          input->getOperandNumber() == plan.epilogue->pairedInput) {
        mapping.map(arg, input->getOperandNumber() == plan.epilogue->input
                             ? acc
                             : pairedAcc);
        varying.insert(arg);
        continue;
      }
      if (arg.use_empty())
        continue;
      if (!isa<MemRefType>(input->get().getType())) {
        mapping.map(arg, input->get());
        continue;
      }
      AffineMap map = op.getMatchingIndexingMap(input);
      bool vector = width && map.isFunctionOfDim(nLoop);
      mapping.map(
          arg, load(input->get(), indices(map, dims), arg.getType(), vector));
      if (vector)
        varying.insert(arg);
    }
    for (Operation &inner : body->without_terminator()) {
      if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
        mapping.map(index.getResult(), dims[index.getDim()]);
        if (index.getDim() == nLoop)
          columns.insert(index.getResult());
        continue;
      }
      if (auto read = dyn_cast<memref::LoadOp>(inner)) {
        bool vector = width && !read.getIndices().empty() &&
                      columns.contains(read.getIndices().back());
        SmallVector<Value> idx;
        for (Value index : read.getIndices())
          idx.push_back(mapping.lookupOrDefault(index));
        mapping.map(read.getResult(),
                    load(read.getMemRef(), idx, read.getType(), vector));
        if (vector)
          varying.insert(read.getResult());
        continue;
      }
      cloneVectorized(b, inner, mapping, varying, width);
    }
    Value yielded = body->getTerminator()->getOperand(0);
    Value result = mapping.lookupOrDefault(yielded);
    if (width && !varying.contains(yielded))
      result = vector::BroadcastOp::create(b, loc, vectorOf(result.getType()),
                                           result);
    if (plan.combine && !plan.combine->keepOutput)
      return result; // only scattered, by the caller
    OpOperand *init = op.getDpsInitOperand(0);
    SmallVector<Value> outIdx = indices(op.getMatchingIndexingMap(init), dims);
    if (width)
      storeVector(b, loc, result, init->get(), outIdx, mask);
    else
      memref::StoreOp::create(b, loc, result, init->get(), outIdx);
    return result;
  }

  /// Combine's scatter of slot `row`'s epilogue values `values` (vectors of
  /// columns from `cols`, the last `tailMask`ed): the scatter loop's body
  /// cloned for that slot, its row update restricted to these columns.
  /// Deterministic: vector loads, updates and stores (the caller runs slots
  /// in ascending order per column); fast: atomic adds, lane by lane.
  void emitScatter(OpBuilder &b, Location loc, Value row, ArrayRef<Value> cols,
                   ArrayRef<Value> values, int64_t tailLanes) {
    CombineScatter &combine = *plan.combine;
    IRMapping mapping;
    mapping.map(combine.loop.getInductionVar(), row);
    std::function<void(OpBuilder &, Block &)> cloneBlock = [&](OpBuilder &cb,
                                                               Block &block) {
      for (Operation &inner : block.without_terminator()) {
        if (&inner == combine.selfCopy.getOperation())
          continue;
        if (auto branch = dyn_cast<scf::IfOp>(inner)) {
          scf::IfOp::create(cb, branch.getLoc(),
                            mapping.lookupOrDefault(branch.getCondition()),
                            [&](OpBuilder &tb, Location tloc) {
                              cloneBlock(tb, *branch.thenBlock());
                              scf::YieldOp::create(tb, tloc);
                            });
          continue;
        }
        if (&inner != combine.update.getOperation()) {
          cb.clone(inner, mapping);
          continue;
        }
        Value target =
            mapping.lookupOrDefault(combine.update.getDpsInits().front());
        for (auto [j, col] : llvm::enumerate(cols))
          emitRowUpdate(cb, loc, mapping, target, col, values[j],
                        j + 1 == cols.size() ? tailLanes : lanes);
      }
    };
    cloneBlock(b, *combine.loop.getBody());
  }

  /// `target[col + l] += addend(values[l])` for the `live` first lanes;
  /// `outer` maps the scatter loop's values.
  void emitRowUpdate(OpBuilder &b, Location loc, const IRMapping &outer,
                     Value target, Value col, Value value, int64_t live) {
    Block *body = plan.combine->update.getBody();
    IRMapping mapping = outer;
    llvm::SmallPtrSet<Value, 8> varying;
    Value mask = live == lanes ? Value() : laneMask(b, loc, lanes, live);
    mapping.map(body->getArgument(0), value);
    varying.insert(body->getArgument(0));
    if (deterministic) {
      mapping.map(body->getArgument(1), loadVector(b, loc, target, col, mask));
      varying.insert(body->getArgument(1));
      for (Operation &inner : body->without_terminator())
        cloneVectorized(b, inner, mapping, varying, lanes);
      storeVector(b, loc,
                  mapping.lookupOrDefault(body->getTerminator()->getOperand(0)),
                  target, col, mask);
      return;
    }
    // The addend (the update is `out + addend(in)`), then one atomic add a
    // lane.
    for (Operation &inner : body->without_terminator())
      if (&inner != plan.combine->sum.getOperation())
        cloneVectorized(b, inner, mapping, varying, lanes);
    Value addend = mapping.lookupOrDefault(plan.combine->addend);
    if (!varying.contains(plan.combine->addend))
      addend = vector::BroadcastOp::create(b, loc, vecType(lanes), addend);
    for (int64_t l = 0; l < live; ++l) {
      Value lane = vector::ExtractOp::create(b, loc, addend, l);
      Value at = arith::AddIOp::create(b, loc, col, cst(b, loc, l));
      memref::AtomicRMWOp::create(b, loc, arith::AtomicRMWKind::addf, lane,
                                  target, ValueRange{at});
    }
  }

  //===--------------------------------------------------------------------===//
  // Outer-product form
  //===--------------------------------------------------------------------===//

  void emitOuterForm(OpBuilder &b, Location loc) {
    MatmulShape shape = shapeOf();
    if (plan.rowSelected)
      shape.groups = cast<MemRefType>(plan.b.getType()).getDimSize(0);
    shape.pairedHalves = pair != 0;
    MatmulTiling tiles = chooseMatmulTiling(target, shape);
    int64_t m = plan.size(plan.mDim);
    // The columns the panels walk, and how many a panel takes (of each half
    // with paired halves).
    int64_t columns = pair ? pair : shape.n;
    int64_t panelWidth = pair ? tiles.nr / 2 : tiles.nr;
    // The packed panels: one kc x nr slab per parallel iteration, in one
    // buffer allocated before the loops (which the scratch arena places;
    // inside, every thread would need its own allocation at every run).
    bool fast = plan.combine && !deterministic;
    int64_t panels = parallelIterations(columns, panelWidth);
    int64_t slabs = fast ? panels * parallelIterations(m, tiles.mc) : panels;
    Value slab = memref::AllocOp::create(
        b, loc,
        MemRefType::get({slabs, tiles.kc, tiles.nr},
                        Float32Type::get(b.getContext())),
        ValueRange{}, b.getI64IntegerAttr(64));
    if (fast) {
      // Fast combine: the threads split the mc-row blocks of slots (their
      // scatters add atomically); each block walks the column panels.
      parallelOverTiles(b, loc, m, tiles.mc,
                        [&](OpBuilder &pb, Location ploc, ArrayRef<Value> dims,
                            Value m0, int64_t rows, Value block) {
                          parallelOverTiles(
                              pb, ploc, columns, panelWidth,
                              [&](OpBuilder &nb, Location nloc, ArrayRef<Value>,
                                  Value n0, int64_t width, Value panel) {
                                Value iteration = arith::AddIOp::create(
                                    nb, nloc,
                                    arith::MulIOp::create(
                                        nb, nloc, block, cst(nb, nloc, panels)),
                                    panel);
                                emitPanel(nb, nloc, SmallVector<Value>(dims),
                                          n0, width, tiles, m0, rows, slab,
                                          iteration);
                              });
                        });
    } else {
      // The threads split the outer dimensions and the column panels.
      parallelOverTiles(b, loc, columns, panelWidth,
                        [&](OpBuilder &pb, Location ploc, ArrayRef<Value> dims,
                            Value n0, int64_t width, Value iteration) {
                          emitPanel(pb, ploc, SmallVector<Value>(dims), n0,
                                    width, tiles, cst(pb, ploc, 0), m, slab,
                                    iteration);
                        });
    }
    memref::DeallocOp::create(b, loc, slab);
  }

  /// Columns [n0, n0 + width) of rows [first, first + m): mc-row blocks,
  /// kc-deep slices, mr-row register tiles, then the rows left over.
  void emitPanel(OpBuilder &b, Location loc, SmallVector<Value> dims, Value n0,
                 int64_t width, const MatmulTiling &tiles, Value first,
                 int64_t m, Value slab, Value iteration) {
    int64_t k = plan.size(plan.kDim);
    int64_t mr = tiles.mr, full = m / mr * mr;
    // B's rows are a row of the weight apart: a large power-of-two stride
    // that maps a panel's rows to a few L1 sets. So the panel is copied to
    // a contiguous buffer per k slice and read there by every row tile;
    // with row-selected weights, when a uniform tile selects another slice
    // than the one packed (slots are expert-major: once per expert).
    // The panel's slab of `slab`, row `k - k0` for the k slice from k0.
    SmallVector<OpFoldResult> offsets = {iteration, b.getIndexAttr(0),
                                         b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {
        b.getIndexAttr(1), b.getIndexAttr(tiles.kc), b.getIndexAttr(tiles.nr)};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    auto type = cast<MemRefType>(memref::SubViewOp::inferRankReducedResultType(
        {tiles.kc, tiles.nr}, cast<MemRefType>(slab.getType()), offsets, sizes,
        strides));
    packed =
        memref::SubViewOp::create(b, loc, type, slab, offsets, sizes, strides);
    auto kSlices =
        [&](OpBuilder &b, Location loc,
            function_ref<void(OpBuilder &, Location, Value, Value)> body) {
          scf::ForOp::create(
              b, loc, cst(b, loc, 0), cst(b, loc, k), cst(b, loc, tiles.kc),
              ValueRange{},
              [&](OpBuilder &fb, Location floc, Value k0, ValueRange) {
                Value kEnd = arith::MinSIOp::create(
                    fb, floc,
                    arith::AddIOp::create(fb, floc, k0,
                                          cst(fb, floc, tiles.kc)),
                    cst(fb, floc, k));
                if (!plan.rowSelected)
                  packPanels(fb, floc, dims, Value(), n0, width, k0, kEnd);
                body(fb, floc, k0, kEnd);
                scf::YieldOp::create(fb, floc);
              });
        };
    Value end = arith::AddIOp::create(b, loc, first, cst(b, loc, full));
    if (full > 0) {
      scf::ForOp::create(
          b, loc, first, end, cst(b, loc, tiles.mc), ValueRange{},
          [&](OpBuilder &mb, Location mloc, Value m0, ValueRange) {
            Value mEnd = arith::MinSIOp::create(
                mb, mloc,
                arith::AddIOp::create(mb, mloc, m0, cst(mb, mloc, tiles.mc)),
                end);
            kSlices(mb, mloc,
                    [&](OpBuilder &kb, Location kloc, Value k0, Value kEnd) {
                      // Carries the slice held in `packed` (-1: none).
                      scf::ForOp::create(kb, kloc, m0, mEnd, cst(kb, kloc, mr),
                                         ValueRange{cst(kb, kloc, -1)},
                                         [&](OpBuilder &rb, Location rloc,
                                             Value r0, ValueRange held) {
                                           scf::YieldOp::create(
                                               rb, rloc,
                                               emitTile(rb, rloc, dims, r0, mr,
                                                        n0, width, k0, kEnd,
                                                        held[0]));
                                         });
                    });
            scf::YieldOp::create(mb, mloc);
          });
    }
    if (m > full)
      kSlices(b, loc, [&](OpBuilder &kb, Location kloc, Value k0, Value kEnd) {
        emitTile(kb, kloc, dims, end, m - full, n0, width, k0, kEnd,
                 cst(kb, kloc, -1));
      });
  }

  /// The panel's columns of B into `packed`: [n0, n0 + width) from
  /// column 0, and with paired halves the same columns of the second half
  /// after them (from the next whole vector).
  void packPanels(OpBuilder &b, Location loc, ArrayRef<Value> outerDims,
                  Value slice, Value n0, int64_t width, Value k0, Value kEnd) {
    packPanel(b, loc, outerDims, slice, n0, width, k0, kEnd, 0);
    if (!pair)
      return;
    Value second = arith::AddIOp::create(b, loc, n0, cst(b, loc, pair));
    packPanel(b, loc, outerDims, slice, second, width, k0, kEnd,
              (width + lanes - 1) / lanes * lanes);
  }

  /// Copies B[k0:kEnd, n0:n0 + width] (of slice `slice` for row-selected
  /// weights) into `packed` (row `k - k0`, from column `packColumn`), the
  /// lanes past `width` zero. The outer-product form loads vectors along n;
  /// the dot form (k contiguous in B) transposes element by element.
  void packPanel(OpBuilder &b, Location loc, ArrayRef<Value> outerDims,
                 Value slice, Value n0, int64_t width, Value k0, Value kEnd,
                 int64_t packColumn) {
    int64_t vectors = (width + lanes - 1) / lanes;
    scf::ForOp::create(
        b, loc, k0, kEnd, cst(b, loc, 1), ValueRange{},
        [&](OpBuilder &kb, Location kloc, Value kIv, ValueRange) {
          Value row = arith::SubIOp::create(kb, kloc, kIv, k0);
          SmallVector<Value> dims(outerDims);
          dims[plan.kDim] = kIv;
          if (!plan.dotForm) {
            int64_t tailLanes = width - (vectors - 1) * lanes;
            for (int64_t j = 0; j < vectors; ++j) {
              dims[plan.nDim] =
                  arith::AddIOp::create(kb, kloc, n0, cst(kb, kloc, j * lanes));
              Value mask = j == vectors - 1 && tailLanes != lanes
                               ? laneMask(kb, kloc, lanes, tailLanes)
                               : Value();
              SmallVector<Value> idx =
                  slice ? SmallVector<Value>{slice, kIv, dims[plan.nDim]}
                        : indices(plan.bMap, dims);
              Value v = loadVector(kb, kloc, plan.b, idx, mask);
              vector::StoreOp::create(
                  kb, kloc, v, packed,
                  ValueRange{row, cst(kb, kloc, packColumn + j * lanes)});
            }
          } else {
            Value zero =
                arith::ConstantOp::create(kb, kloc, kb.getF32FloatAttr(0));
            for (int64_t j = 0; j < vectors * lanes; ++j) {
              Value value = zero;
              if (j < width) {
                dims[plan.nDim] =
                    arith::AddIOp::create(kb, kloc, n0, cst(kb, kloc, j));
                value = memref::LoadOp::create(kb, kloc, plan.b,
                                               indices(plan.bMap, dims));
              }
              memref::StoreOp::create(
                  kb, kloc, value, packed,
                  ValueRange{row, cst(kb, kloc, packColumn + j)});
            }
          }
          scf::YieldOp::create(kb, kloc);
        });
  }

  /// Rows [r0, r0 + rows) of a panel over k in [k0, kEnd), given the slice
  /// `held` in `packed`; returns the slice held after it. With row-selected
  /// weights, a tile whose rows select two slices in two runs (an expert
  /// boundary: slots are expert-major) runs as two tiles of those runs,
  /// each from the packed panel; one with more runs (untied rows of
  /// interleaved modalities) runs row by row, reading B in place.
  Value emitTile(OpBuilder &b, Location loc, ArrayRef<Value> dims, Value r0,
                 int64_t rows, Value n0, int64_t width, Value k0, Value kEnd,
                 Value held) {
    if (!plan.rowSelected) {
      emitMicroKernel(b, loc, dims, r0, rows, Value(), true, n0, width, k0,
                      kEnd);
      return held;
    }
    auto rowOf = [&](OpBuilder &b, Location loc, int64_t i) -> Value {
      return i == 0 ? r0
                    : arith::AddIOp::create(b, loc, r0, cst(b, loc, i))
                          .getResult();
    };
    SmallVector<Value> slices;
    for (int64_t i = 0; i < rows; ++i)
      slices.push_back(sliceOf(b, loc, rowOf(b, loc, i)));
    Value first = slices.front(), last = slices.back();
    // Slice changes between neighbouring rows, and the first run's length.
    Value changes = cst(b, loc, 0), run = cst(b, loc, 0);
    for (int64_t i = 0; i < rows; ++i) {
      Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         slices[i], first);
      run = arith::AddIOp::create(
          b, loc, run,
          arith::IndexCastUIOp::create(b, loc, b.getIndexType(), same));
      if (i == 0)
        continue;
      Value differs = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                            slices[i], slices[i - 1]);
      changes = arith::AddIOp::create(
          b, loc, changes,
          arith::IndexCastUIOp::create(b, loc, b.getIndexType(), differs));
    }
    auto packIfStale = [&](OpBuilder &b, Location loc, Value held,
                           Value slice) {
      Value stale =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, held, slice);
      scf::IfOp::create(b, loc, stale, [&](OpBuilder &pb, Location ploc) {
        packPanels(pb, ploc, dims, slice, n0, width, k0, kEnd);
        scf::YieldOp::create(pb, ploc);
      });
    };
    // A tile of the run's `q` first rows (or the `rows - q` after them),
    // for each q the static tile of that many rows.
    auto splitTile = [&](OpBuilder &b, Location loc, bool head) {
      SmallVector<int64_t> cases;
      for (int64_t q = 1; q < rows; ++q)
        cases.push_back(q);
      auto sw = scf::IndexSwitchOp::create(b, loc, TypeRange{}, run, cases,
                                           cases.size());
      {
        OpBuilder::InsertionGuard guard(b);
        b.createBlock(&sw.getDefaultRegion());
        scf::YieldOp::create(b, loc);
      }
      for (auto [region, q] : llvm::zip(sw.getCaseRegions(), cases)) {
        OpBuilder::InsertionGuard guard(b);
        b.createBlock(&region);
        if (head)
          emitMicroKernel(b, loc, dims, r0, q, first, true, n0, width, k0,
                          kEnd);
        else
          emitMicroKernel(b, loc, dims, rowOf(b, loc, q), rows - q, last, true,
                          n0, width, k0, kEnd);
        scf::YieldOp::create(b, loc);
      }
    };
    auto byRuns = [&](OpBuilder &b, Location loc, Value numChanges,
                      function_ref<void(OpBuilder &, Location)> twoRuns,
                      function_ref<void(OpBuilder &, Location)> more) {
      Value two = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        numChanges, cst(b, loc, 1));
      return scf::IfOp::create(
          b, loc, two, [&](OpBuilder &tb, Location tloc) { twoRuns(tb, tloc); },
          [&](OpBuilder &eb, Location eloc) { more(eb, eloc); });
    };
    Value uniform = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                          changes, cst(b, loc, 0));
    auto ifOp = scf::IfOp::create(
        b, loc, uniform,
        [&](OpBuilder &tb, Location tloc) {
          packIfStale(tb, tloc, held, first);
          emitMicroKernel(tb, tloc, dims, r0, rows, first, true, n0, width, k0,
                          kEnd);
          scf::YieldOp::create(tb, tloc, first);
        },
        [&](OpBuilder &eb, Location eloc) {
          scf::IfOp split = byRuns(
              eb, eloc, changes,
              [&](OpBuilder &tb, Location tloc) {
                packIfStale(tb, tloc, held, first);
                splitTile(tb, tloc, /*head=*/true);
                packPanels(tb, tloc, dims, last, n0, width, k0, kEnd);
                splitTile(tb, tloc, /*head=*/false);
                scf::YieldOp::create(tb, tloc, last);
              },
              [&](OpBuilder &fb, Location floc) {
                scf::ForOp::create(
                    fb, floc, cst(fb, floc, 0), cst(fb, floc, rows),
                    cst(fb, floc, 1), ValueRange{},
                    [&](OpBuilder &lb, Location lloc, Value i, ValueRange) {
                      Value row = arith::AddIOp::create(lb, lloc, r0, i);
                      emitMicroKernel(lb, lloc, dims, row, 1,
                                      sliceOf(lb, lloc, row), false, n0, width,
                                      k0, kEnd);
                      scf::YieldOp::create(lb, lloc);
                    });
                scf::YieldOp::create(fb, floc, held);
              });
          scf::YieldOp::create(eb, eloc, split.getResult(0));
        });
    return ifOp.getResult(0);
  }

  /// The register tile: `rows` x ceil(width / lanes) accumulators loaded
  /// from C, one FMA per row and vector for every k, stored back. B comes
  /// from `packed` when `fromPack`, else from its buffer (of `slice`).
  void emitMicroKernel(OpBuilder &b, Location loc, ArrayRef<Value> outerDims,
                       Value r0, int64_t rows, Value slice, bool fromPack,
                       Value n0, int64_t width, Value k0, Value kEnd) {
    // Vectors of one half (paired halves: the second half's follow).
    int64_t halfVectors = (width + lanes - 1) / lanes;
    int64_t vectors = pair ? 2 * halfVectors : halfVectors;
    int64_t tailLanes = width - (halfVectors - 1) * lanes;
    Value tailMask =
        tailLanes == lanes ? Value() : laneMask(b, loc, lanes, tailLanes);
    auto maskOf = [&](int64_t j) {
      return j % halfVectors == halfVectors - 1 ? tailMask : Value();
    };
    SmallVector<Value> rowIdx, colIdx;
    for (int64_t i = 0; i < rows; ++i)
      rowIdx.push_back(
          i == 0
              ? r0
              : arith::AddIOp::create(b, loc, r0, cst(b, loc, i)).getResult());
    for (int64_t j = 0; j < vectors; ++j) {
      int64_t offset = j / halfVectors * pair + j % halfVectors * lanes;
      colIdx.push_back(
          offset == 0 ? n0
                      : arith::AddIOp::create(b, loc, n0, cst(b, loc, offset))
                            .getResult());
    }
    auto cIndices = [&](int64_t i, int64_t j) {
      SmallVector<Value> dims(outerDims);
      dims[plan.mDim] = rowIdx[i];
      dims[plan.nDim] = colIdx[j];
      return indices(plan.cMap, dims);
    };
    SmallVector<Value> acc;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < vectors; ++j)
        acc.push_back(loadVector(b, loc, plan.c, cIndices(i, j), maskOf(j)));

    // The k loop, with A's value in the body `aExpr` (plan.aValue for a
    // computed A).
    auto kLoop = [&](OpBuilder &b, Location loc, Value aExpr) {
      return scf::ForOp::create(
                 b, loc, k0, kEnd, cst(b, loc, 1), acc,
                 [&](OpBuilder &kb, Location kloc, Value kIv, ValueRange iter) {
                   SmallVector<Value> bVectors;
                   for (int64_t j = 0; j < vectors; ++j) {
                     if (fromPack) {
                       Value row = arith::SubIOp::create(kb, kloc, kIv, k0);
                       bVectors.push_back(vector::LoadOp::create(
                           kb, kloc, vecType(lanes), packed,
                           ValueRange{row, cst(kb, kloc, j * lanes)}));
                       continue;
                     }
                     SmallVector<Value> idx;
                     if (plan.rowSelected) {
                       idx = {slice, kIv, colIdx[j]};
                     } else {
                       SmallVector<Value> dims(outerDims);
                       dims[plan.kDim] = kIv;
                       dims[plan.nDim] = colIdx[j];
                       idx = indices(plan.bMap, dims);
                     }
                     bVectors.push_back(
                         loadVector(kb, kloc, plan.b, idx, maskOf(j)));
                   }
                   SmallVector<Value> next;
                   for (int64_t i = 0; i < rows; ++i) {
                     SmallVector<Value> dims(outerDims);
                     dims[plan.mDim] = rowIdx[i];
                     dims[plan.kDim] = kIv;
                     Value a;
                     if (aExpr) {
                       IRMapping mapping;
                       a = materialize(kb, kloc, aExpr, dims, mapping);
                     } else {
                       a = memref::LoadOp::create(kb, kloc, plan.a,
                                                  indices(plan.aMap, dims));
                     }
                     Value splat = vector::BroadcastOp::create(
                         kb, kloc, vecType(lanes), a);
                     Value keep;
                     if (plan.condition) {
                       IRMapping mapping;
                       keep =
                           materialize(kb, kloc, plan.condition, dims, mapping);
                     }
                     for (int64_t j = 0; j < vectors; ++j) {
                       Value acc = iter[i * vectors + j];
                       Value sum = vector::FMAOp::create(kb, kloc, splat,
                                                         bVectors[j], acc);
                       if (keep)
                         sum =
                             arith::SelectOp::create(kb, kloc, keep, sum, acc);
                       next.push_back(sum);
                     }
                   }
                   scf::YieldOp::create(kb, kloc, next);
                 })
          .getResults();
    };
    // Gathered rows whose A is `select(valid(row), a, 0)` (a slot without a
    // token reads zeros): a tile whose rows are all valid runs the loop on
    // `a` alone, without a select, a mask and a guard per row and k.
    ValueRange results;
    if (plan.aGuard) {
      Value all;
      for (int64_t i = 0; i < rows; ++i) {
        SmallVector<Value> dims(outerDims);
        dims[plan.mDim] = rowIdx[i];
        IRMapping mapping;
        Value valid =
            materialize(b, loc, plan.aGuard.getCondition(), dims, mapping);
        all =
            all ? arith::AndIOp::create(b, loc, all, valid).getResult() : valid;
      }
      auto branch = scf::IfOp::create(
          b, loc, all,
          [&](OpBuilder &tb, Location tloc) {
            scf::YieldOp::create(tb, tloc,
                                 kLoop(tb, tloc, plan.aGuard.getTrueValue()));
          },
          [&](OpBuilder &eb, Location eloc) {
            scf::YieldOp::create(eb, eloc, kLoop(eb, eloc, plan.aValue));
          });
      results = branch.getResults();
    } else {
      results = kLoop(b, loc, plan.aValue);
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < vectors; ++j)
        storeVector(b, loc, results[i * vectors + j], plan.c, cIndices(i, j),
                    maskOf(j));
    if (!plan.epilogue)
      return;
    // The epilogue, once the last slice of K is in.
    // With combine, each slot's values are scattered into its token's row
    // (slots in ascending order).
    auto apply = [&](OpBuilder &eb, Location eloc) {
      for (int64_t i = 0; i < rows; ++i) {
        SmallVector<Value> values;
        for (int64_t j = 0; j < halfVectors; ++j)
          values.push_back(emitEpilogue(
              eb, eloc, cIndices(i, j), results[i * vectors + j], lanes,
              maskOf(j),
              pair ? results[i * vectors + halfVectors + j] : Value()));
        if (plan.combine)
          emitScatter(eb, eloc, rowIdx[i], colIdx, values, tailLanes);
      }
    };
    int64_t k = plan.size(plan.kDim);
    if (getConstantIntValue(kEnd) == k) {
      apply(b, loc);
      return;
    }
    Value last = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, kEnd,
                                       cst(b, loc, k));
    scf::IfOp::create(b, loc, last, [&](OpBuilder &tb, Location tloc) {
      apply(tb, tloc);
      scf::YieldOp::create(tb, tloc);
    });
  }

  //===--------------------------------------------------------------------===//
  // Dot form
  //===--------------------------------------------------------------------===//

  void emitDotForm(OpBuilder &b, Location loc) {
    MatmulShape shape = shapeOf();
    MatmulTiling tiles = chooseDotTiling(target, shape);
    // The threads split the outer dimensions and the row tiles.
    parallelOverTiles(
        b, loc, shape.m, tiles.mr,
        [&](OpBuilder &pb, Location ploc, ArrayRef<Value> dims, Value r0,
            int64_t rows) { emitDotRows(pb, ploc, dims, r0, rows, tiles); });
  }

  /// Rows [r0, r0 + rows) against every column, nr columns at a time.
  void emitDotRows(OpBuilder &b, Location loc, ArrayRef<Value> dims, Value r0,
                   int64_t rows, const MatmulTiling &tiles) {
    int64_t n = plan.size(plan.nDim), nr = tiles.nr;
    int64_t full = n / nr * nr;
    if (full > 0)
      scf::ForOp::create(
          b, loc, cst(b, loc, 0), cst(b, loc, full), cst(b, loc, nr),
          ValueRange{},
          [&](OpBuilder &fb, Location floc, Value c0, ValueRange) {
            emitDotTile(fb, floc, dims, r0, rows, c0, nr);
            scf::YieldOp::create(fb, floc);
          });
    if (n > full)
      emitDotTile(b, loc, dims, r0, rows, cst(b, loc, full), n - full);
  }

  /// C[r, c] += sum_k A[r, k] B[c, k] for a rows x cols tile: vector
  /// accumulators along k (the last slice masked), summed across lanes.
  void emitDotTile(OpBuilder &b, Location loc, ArrayRef<Value> outerDims,
                   Value r0, int64_t rows, Value c0, int64_t cols) {
    int64_t k = plan.size(plan.kDim);
    int64_t full = k / lanes * lanes;
    SmallVector<Value> rowIdx, colIdx;
    for (int64_t i = 0; i < rows; ++i)
      rowIdx.push_back(
          arith::AddIOp::create(b, loc, r0, cst(b, loc, i)).getResult());
    for (int64_t j = 0; j < cols; ++j)
      colIdx.push_back(
          arith::AddIOp::create(b, loc, c0, cst(b, loc, j)).getResult());
    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vecType(lanes), b.getF32FloatAttr(0)));
    SmallVector<Value> acc(rows * cols, zero);
    auto step = [&](OpBuilder &kb, Location kloc, Value kIv, ValueRange iter,
                    Value mask) {
      SmallVector<Value> aVectors, bVectors, next;
      for (int64_t i = 0; i < rows; ++i) {
        SmallVector<Value> dims(outerDims);
        dims[plan.mDim] = rowIdx[i];
        dims[plan.kDim] = kIv;
        aVectors.push_back(
            loadVector(kb, kloc, plan.a, indices(plan.aMap, dims), mask));
      }
      for (int64_t j = 0; j < cols; ++j) {
        SmallVector<Value> dims(outerDims);
        dims[plan.nDim] = colIdx[j];
        dims[plan.kDim] = kIv;
        bVectors.push_back(
            loadVector(kb, kloc, plan.b, indices(plan.bMap, dims), mask));
      }
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          next.push_back(vector::FMAOp::create(
              kb, kloc, aVectors[i], bVectors[j], iter[i * cols + j]));
      return next;
    };
    if (full > 0) {
      auto loop = scf::ForOp::create(
          b, loc, cst(b, loc, 0), cst(b, loc, full), cst(b, loc, lanes), acc,
          [&](OpBuilder &kb, Location kloc, Value kIv, ValueRange iter) {
            scf::YieldOp::create(kb, kloc, step(kb, kloc, kIv, iter, Value()));
          });
      acc.assign(loop.getResults().begin(), loop.getResults().end());
    }
    if (k > full)
      acc = step(b, loc, cst(b, loc, full), acc,
                 laneMask(b, loc, lanes, k - full));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        SmallVector<Value> dims(outerDims);
        dims[plan.mDim] = rowIdx[i];
        dims[plan.nDim] = colIdx[j];
        SmallVector<Value> idx = indices(plan.cMap, dims);
        Value init = memref::LoadOp::create(b, loc, plan.c, idx);
        Value sum = vector::ReductionOp::create(
            b, loc, vector::CombiningKind::ADD, acc[i * cols + j], init);
        memref::StoreOp::create(b, loc, sum, plan.c, idx);
        if (plan.epilogue)
          emitEpilogue(b, loc, idx, sum, /*width=*/0, Value());
      }
  }
};

struct VectorizeContractionsPass
    : moma::impl::MomaCpuVectorizeContractionsBase<VectorizeContractionsPass> {
  using MomaCpuVectorizeContractionsBase::MomaCpuVectorizeContractionsBase;

  void runOnOperation() override {
    if (combine != "deterministic" && combine != "fast") {
      emitError(getOperation().getLoc())
          << "moma-cpu-vectorize-contractions: unknown combine mode '"
          << combine << "' (expected deterministic or fast)";
      return signalPassFailure();
    }
    std::optional<TargetModel> model = TargetModel::get(target);
    if (!model || model->isGpu) {
      emitError(getOperation().getLoc())
          << "moma-cpu-vectorize-contractions: unknown CPU target '" << target
          << "' (expected x86-64-v3 or x86-64-v4)";
      return signalPassFailure();
    }
    std::vector<Contraction> plans;
    getOperation().walk([&](linalg::LinalgOp op) {
      FailureOr<Contraction> plan = analyseContraction(op);
      if (succeeded(plan))
        plans.push_back(*plan);
    });
    for (Contraction &plan : plans) {
      // What sits between the product and its epilogue (views, scalars,
      // the epilogue's output allocation: nothing that touches data) moves
      // above the fused kernel, which uses it.
      if (plan.epilogue)
        while (plan.op->getNextNode() != plan.epilogue->op)
          plan.op->getNextNode()->moveBefore(plan.op);
      // So does combine's initialisation of its output (its residual).
      if (plan.combine)
        for (Operation *init : plan.combine->init)
          init->moveBefore(plan.op);
      OpBuilder b(plan.op);
      Emitter(plan, *model, combine == "deterministic").emit(b);
      plan.op->erase();
      if (plan.combine)
        plan.combine->loop->erase();
      if (plan.epilogue)
        plan.epilogue->op->erase();
    }
  }
};

} // namespace
