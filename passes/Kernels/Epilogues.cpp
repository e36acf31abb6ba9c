//===- Epilogues.cpp - Element-wise consumers a matmul kernel fuses -------===//
//
// Implements `matchEpilogue` (see Epilogues.h) for ops on tensors and on
// buffers alike.
//
//===----------------------------------------------------------------------===//

#include "passes/Kernels/Epilogues.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;
using namespace moma;

namespace {

/// Whether `value` is `c` or a view of it.
bool viewsOf(Value value, Value c) {
  while (value) {
    if (value == c)
      return true;
    auto view = value.getDefiningOp<ViewLikeOpInterface>();
    if (!view)
      return false;
    value = view.getViewSource();
  }
  return false;
}

/// The first column of `C` that `value` reads, if it is a slice (tensors)
/// or subview (buffers) of all of `C`'s rows and half its columns, with
/// unit strides.
std::optional<int64_t> halfOf(Value value, Value c) {
  auto slice = value.getDefiningOp<OffsetSizeAndStrideOpInterface>();
  if (!slice || !isa<tensor::ExtractSliceOp, memref::SubViewOp>(slice) ||
      slice->getOperand(0) != c)
    return std::nullopt;
  auto cType = cast<ShapedType>(c.getType());
  int64_t rank = cType.getRank();
  if (!cType.hasStaticShape() || rank == 0 ||
      cast<ShapedType>(value.getType()).getRank() != rank ||
      cType.getDimSize(rank - 1) % 2 != 0)
    return std::nullopt;
  int64_t half = cType.getDimSize(rank - 1) / 2;
  for (int64_t d = 0; d < rank; ++d) {
    std::optional<int64_t> offset =
        getConstantIntValue(slice.getMixedOffsets()[d]);
    std::optional<int64_t> size = getConstantIntValue(slice.getMixedSizes()[d]);
    std::optional<int64_t> stride =
        getConstantIntValue(slice.getMixedStrides()[d]);
    if (!offset || !size || stride != 1)
      return std::nullopt;
    bool last = d + 1 == rank;
    if (last ? (*size != half || (*offset != 0 && *offset != half))
             : (*size != cType.getDimSize(d) || *offset != 0))
      return std::nullopt;
    if (last)
      return *offset;
  }
  return std::nullopt;
}

/// The consumer of the result of `contraction` on tensors, and the value of
/// `C` it reads (the result or its single expand_shape; the result itself
/// when the consumer reads its two column halves).
std::pair<linalg::GenericOp, Value> tensorConsumer(linalg::LinalgOp op) {
  Value c = op->getResult(0);
  if (!c.hasOneUse()) {
    // SwiGLU: two halves, each read once by the same op.
    SmallVector<Operation *> users(c.getUsers());
    if (users.size() != 2 || !llvm::all_of(users, [&](Operation *user) {
          return user->getNumResults() == 1 && halfOf(user->getResult(0), c) &&
                 user->getResult(0).hasOneUse() &&
                 *user->getResult(0).getUsers().begin() ==
                     *users[0]->getResult(0).getUsers().begin();
        }))
      return {};
    return {
        dyn_cast<linalg::GenericOp>(*users[0]->getResult(0).getUsers().begin()),
        c};
  }
  Operation *user = *c.getUsers().begin();
  if (auto expand = dyn_cast<tensor::ExpandShapeOp>(user)) {
    c = expand.getResult();
    if (!c.hasOneUse())
      return {};
    user = *c.getUsers().begin();
  }
  return {dyn_cast<linalg::GenericOp>(user), c};
}

/// The consumer of the output buffer of `contraction`: the next op with
/// memory effects, if it is a generic reading the buffer.
std::pair<linalg::GenericOp, Value> bufferConsumer(linalg::LinalgOp op) {
  Value c = op.getDpsInits().front();
  for (Operation *next = op->getNextNode(); next; next = next->getNextNode()) {
    auto generic = dyn_cast<linalg::GenericOp>(next);
    if (!generic) {
      // Views, scalars and fresh allocations touch no data.
      if ((isMemoryEffectFree(next) ||
           hasSingleEffect<MemoryEffects::Allocate>(next)) &&
          next->getNumRegions() == 0)
        continue;
      return {};
    }
    for (OpOperand *input : generic.getDpsInputOperands()) {
      Value value = input->get();
      if (value == c || halfOf(value, c))
        return {generic, c};
      auto expand = value.getDefiningOp<memref::ExpandShapeOp>();
      if (expand && expand.getSrc() == c)
        return {generic, value};
    }
    return {};
  }
  return {};
}

/// Checks the body of `op` (reading `C` as input `input`, column loop
/// `nLoop`): element-wise ops, indices and scalar reads from above, the
/// column index only at the end of a read.
bool hasEpilogueBody(linalg::GenericOp op, unsigned input, unsigned nLoop) {
  Block *body = op.getBody();
  unsigned numInputs = op.getNumDpsInputs();
  if (!body->getArgument(numInputs).use_empty())
    return false;
  // Values that vary along the columns.
  llvm::SmallPtrSet<Value, 16> varying;
  llvm::SmallPtrSet<Value, 4> columnIndex;
  for (unsigned i = 0; i < numInputs; ++i) {
    AffineMap map = op.getMatchingIndexingMap(op.getDpsInputOperand(i));
    if (!map.isProjectedPermutation())
      return false;
    if (i == input || map.isFunctionOfDim(nLoop)) {
      if (map.getNumResults() == 0 ||
          map.getDimPosition(map.getNumResults() - 1) != nLoop)
        return false;
      varying.insert(body->getArgument(i));
    }
  }
  auto isScalar = [](Type type) { return type.isIntOrIndexOrFloat(); };
  for (Operation &inner : body->without_terminator()) {
    if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
      if (index.getDim() == nLoop)
        columnIndex.insert(index.getResult());
      continue;
    }
    if (!llvm::all_of(inner.getResultTypes(), isScalar))
      return false;
    Value source;
    OperandRange indices = inner.getOperands();
    if (auto extract = dyn_cast<tensor::ExtractOp>(inner)) {
      source = extract.getTensor();
      indices = extract.getIndices();
    } else if (auto load = dyn_cast<memref::LoadOp>(inner)) {
      source = load.getMemRef();
      indices = load.getIndices();
    }
    if (source) {
      if (op->isAncestor(source.getParentRegion()->getParentOp()))
        return false;
      for (auto [i, index] : llvm::enumerate(indices)) {
        if (varying.contains(index))
          return false;
        if (columnIndex.contains(index) && i + 1 != indices.size())
          return false;
      }
      if (!indices.empty() && columnIndex.contains(indices.back()))
        varying.insert(inner.getResult(0));
      continue;
    }
    if (inner.getNumRegions() != 0 || !isPure(&inner) ||
        (!OpTrait::hasElementwiseMappableTraits(&inner) &&
         !isa<arith::ConstantOp>(inner)))
      return false;
    bool anyVarying = false;
    for (Value operand : inner.getOperands()) {
      if (columnIndex.contains(operand))
        return false;
      anyVarying |= varying.contains(operand);
    }
    if (anyVarying)
      varying.insert(inner.getResult(0));
  }
  return llvm::none_of(body->getTerminator()->getOperands(),
                       [&](Value v) { return columnIndex.contains(v); });
}

} // namespace

std::optional<Epilogue> moma::matchEpilogue(linalg::LinalgOp contraction) {
  if (contraction.getNumDpsInits() != 1 || contraction->getNumResults() > 1)
    return std::nullopt;
  auto [consumer, read] = contraction.hasPureTensorSemantics()
                              ? tensorConsumer(contraction)
                          : contraction.hasPureBufferSemantics()
                              ? bufferConsumer(contraction)
                              : std::pair<linalg::GenericOp, Value>();
  if (!consumer || consumer.getNumDpsInits() != 1 ||
      consumer->getNumResults() > 1 ||
      consumer.getNumParallelLoops() != consumer.getNumLoops() ||
      !getElementTypeOrSelf(consumer.getDpsInits().front().getType()).isF32())
    return std::nullopt;
  Epilogue epilogue;
  epilogue.op = consumer;
  // C is read once, with the identity map; or its two halves are, once
  // each.
  std::optional<unsigned> whole, first, second;
  for (OpOperand *input : consumer.getDpsInputOperands()) {
    std::optional<int64_t> half = halfOf(input->get(), read);
    if (input->get() != read && !half)
      continue;
    std::optional<unsigned> &slot = !half ? whole : *half == 0 ? first : second;
    if (slot || !consumer.getMatchingIndexingMap(input).isIdentity())
      return std::nullopt;
    slot = input->getOperandNumber();
  }
  if (whole && !first && !second) {
    epilogue.input = *whole;
  } else if (!whole && first && second) {
    epilogue.input = *first;
    epilogue.pairedInput = *second;
    epilogue.pairOffset =
        cast<ShapedType>(read.getType()).getShape().back() / 2;
  } else {
    return std::nullopt;
  }
  // On buffers, nothing else the consumer touches views C.
  Value c = contraction.getDpsInits().front();
  if (contraction.hasPureBufferSemantics())
    for (OpOperand &operand : consumer->getOpOperands())
      if (operand.getOperandNumber() != epilogue.input &&
          operand.getOperandNumber() != epilogue.pairedInput &&
          viewsOf(operand.get(), c))
        return std::nullopt;
  // The index groups of the reshape.
  auto cType = cast<ShapedType>(c.getType());
  if (auto expand = read.getDefiningOp<tensor::ExpandShapeOp>())
    epilogue.groups = expand.getReassociationIndices();
  else if (auto expand = read.getDefiningOp<memref::ExpandShapeOp>())
    epilogue.groups = expand.getReassociationIndices();
  else
    for (int64_t i = 0; i < cType.getRank(); ++i)
      epilogue.groups.push_back({i});
  if (epilogue.groups.empty() || epilogue.groups.back().size() != 1)
    return std::nullopt;
  unsigned nLoop = epilogue.groups.back().front();
  if (nLoop + 1 != consumer.getNumLoops() ||
      !hasEpilogueBody(consumer, epilogue.input, nLoop))
    return std::nullopt;
  // The output's last index is the column loop too.
  AffineMap out =
      consumer.getMatchingIndexingMap(consumer.getDpsInitOperand(0));
  if (!out.isProjectedPermutation() || out.getNumResults() == 0 ||
      out.getDimPosition(out.getNumResults() - 1) != nLoop)
    return std::nullopt;
  return epilogue;
}
