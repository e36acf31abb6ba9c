//===- KernelPlan.cpp - The moma-kernel-plan pass -------------------------===//
//
// Assigns every top-level computation of a function to one kernel of one
// class, fuses element-wise ops into a neighbour, and costs each kernel with
// the target model (passes/Kernels/KernelLayer.md states the rules).
//
//===----------------------------------------------------------------------===//

#include "passes/Kernels/CostModel.h"
#include "passes/Kernels/Epilogues.h"
#include "passes/Kernels/KernelReport.h"
#include "passes/Kernels/Passes.h"
#include "passes/Support/Provenance.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>

namespace moma {
#define GEN_PASS_DEF_MOMAKERNELPLAN
#include "passes/Kernels/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {

/// Threads per block of today's GPU mapping (moma-to-ptx's block-size).
constexpr int64_t kGpuBlock = 256;

/// One kernel: its class, its root (the op that decides the class) and every
/// op fused into it, with its role.
struct Kernel {
  KernelClass kind;
  Operation *root;
  SmallVector<std::pair<Operation *, StringRef>> members;
};

bool isComputation(Operation *op) {
  return isa<linalg::LinalgOp, scf::ForOp, scf::WhileOp, scf::IfOp,
             scf::ParallelOp>(op);
}

/// Follows reshapes and slices back to the op whose data they view.
Operation *producerThroughViews(Value value) {
  Operation *op = value.getDefiningOp();
  while (op && isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp,
                   tensor::ExtractSliceOp, tensor::CastOp>(op))
    op = op->getOperand(0).getDefiningOp();
  return op;
}

/// The op that produced `value` in the same block as `user`, through views.
Operation *computationProducer(Value value, Block *block) {
  Operation *op = producerThroughViews(value);
  if (!op)
    return nullptr;
  op = block->findAncestorOpInBlock(*op);
  return op && isComputation(op) ? op : nullptr;
}

/// The rank-3 tensor the body of `op` reads with tensor.extract, if it is
/// defined outside `op`: the stacked weights of a row-selected matmul.
Value capturedWeights(linalg::GenericOp op) {
  Value found;
  op.getRegion().walk([&](tensor::ExtractOp extract) {
    Value source = extract.getTensor();
    if (!op->isAncestor(source.getParentRegion()->getParentOp()) &&
        cast<RankedTensorType>(source.getType()).getRank() == 3)
      found = source;
  });
  return found;
}

/// `y[t, n] += x[t, k] * w[sel(t), k, n]`: three loops (parallel, parallel,
/// reduction), a body that multiplies and adds, reading stacked weights.
bool isRowSelectedMatmul(linalg::LinalgOp op) {
  auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
  if (!generic || generic.getNumLoops() != 3 || generic.getNumDpsInits() != 1)
    return false;
  auto iterators = generic.getIteratorTypesArray();
  if (iterators[0] != utils::IteratorType::parallel ||
      iterators[1] != utils::IteratorType::parallel ||
      iterators[2] != utils::IteratorType::reduction)
    return false;
  Block &body = generic.getRegion().front();
  bool mul = false, add = false;
  for (Operation &inner : body) {
    mul |= isa<arith::MulFOp>(inner);
    add |= isa<arith::AddFOp>(inner);
  }
  return mul && add && capturedWeights(generic);
}

bool isMatmul(linalg::LinalgOp op) {
  return linalg::isaContractionOpInterface(op) || isRowSelectedMatmul(op);
}

/// The token projections of attention are plain (or row-selected) matmuls
/// of 2-D operands; its other contractions are the scores and the weighted
/// sum over values.
bool isProjection(linalg::LinalgOp op) {
  return isa<linalg::MatmulOp>(op.getOperation()) || isRowSelectedMatmul(op);
}

bool hasReduction(linalg::LinalgOp op) { return op.getNumReductionLoops() > 0; }

/// Whether every `tensor.insert` nested in `loop` writes at an index whose
/// first coordinate is the loop's induction variable: rows are independent.
bool writesOwnRow(scf::ForOp loop) {
  bool own = true, any = false;
  loop.getRegion().walk([&](tensor::InsertOp insert) {
    any = true;
    if (insert.getIndices().empty() ||
        insert.getIndices().front() != loop.getInductionVar())
      own = false;
  });
  return any && own;
}

std::optional<Provenance> provenance(Operation *op) {
  return provenanceOf(op->getLoc());
}

/// The class an op has on its own; element-wise ops are fused afterwards.
KernelClass classify(Operation *op) {
  // The LM head fused with cross-entropy: a matmul with its CE epilogue.
  if (op->hasAttr(kVocabChunkAttrName))
    return KernelClass::Matmul;
  std::optional<Provenance> from = provenance(op);
  bool fromAttention = from && from->op == "attention";
  if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op)) {
    if (fromAttention && hasReduction(linalgOp) && !isProjection(linalgOp))
      return KernelClass::Attention;
    if (isMatmul(linalgOp))
      return KernelClass::Matmul;
    // A loop in the body searches (a selection's per-row threshold): not
    // element-wise work, and not to be fused as a neighbour's prologue.
    bool searches = false;
    op->walk([&](LoopLikeOpInterface) { searches = true; });
    if (!hasReduction(linalgOp))
      return searches ? KernelClass::Selection : KernelClass::Elementwise;
    // Counting (integer) reductions select; float ones reduce rows.
    bool integer = llvm::all_of(linalgOp.getDpsInits(), [](Value init) {
      return isa<IntegerType, IndexType>(getElementTypeOrSelf(init));
    });
    return integer ? KernelClass::Selection : KernelClass::RowReduction;
  }
  if (auto loop = dyn_cast<scf::ForOp>(op))
    return writesOwnRow(loop) ? KernelClass::RowReduction
                              : KernelClass::Selection;
  return KernelClass::Selection;
}

int64_t elementsOf(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped)
    return 1;
  if (!shaped.hasStaticShape())
    return 0;
  return shaped.getNumElements();
}

int64_t bytesOf(Type type) {
  Type element = getElementTypeOrSelf(type);
  int64_t bits = element.isIntOrFloat() ? element.getIntOrFloatBitWidth() : 64;
  return elementsOf(type) * std::max<int64_t>(1, bits / 8);
}

/// Operations a body runs once: float arithmetic for a linalg op (what the
/// FLOP count counts), every op for sequential code.
int64_t bodyOps(Block &body, bool floatOnly) {
  int64_t count = 0;
  for (Operation &op : body) {
    if (op.hasTrait<OpTrait::IsTerminator>() || isa<arith::ConstantOp>(op))
      continue;
    if (!floatOnly) {
      ++count;
      continue;
    }
    if (isa<arith::ArithDialect, math::MathDialect>(op.getDialect()) &&
        llvm::any_of(op.getResultTypes(),
                     [](Type t) { return isa<FloatType>(t); }))
      ++count;
  }
  return count;
}

/// The trip count of an `scf.for` with constant bounds (1 otherwise).
int64_t tripCount(scf::ForOp loop) {
  std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound());
  std::optional<int64_t> ub = getConstantIntValue(loop.getUpperBound());
  std::optional<int64_t> step = getConstantIntValue(loop.getStep());
  if (lb && ub && step && *step > 0)
    return std::max<int64_t>(0, (*ub - *lb + *step - 1) / *step);
  return 1;
}

/// Operations a sequential region runs, nested loops counted by their
/// constant trip counts (a loop of unknown trip count counts once).
int64_t sequentialOps(Region &region) {
  int64_t count = 0;
  for (Block &block : region) {
    count += bodyOps(block, /*floatOnly=*/false);
    for (Operation &op : block) {
      int64_t trips = 1;
      if (auto loop = dyn_cast<scf::ForOp>(op))
        trips = tripCount(loop);
      for (Region &inner : op.getRegions())
        count += trips * sequentialOps(inner);
    }
  }
  return count;
}

int64_t iterationSpace(linalg::LinalgOp op) {
  int64_t size = 1;
  for (int64_t range : op.getStaticLoopRanges())
    size *= ShapedType::isDynamic(range) ? 1 : range;
  return size;
}

int64_t parallelSpace(linalg::LinalgOp op) {
  int64_t size = 1;
  auto iterators = op.getIteratorTypesArray();
  for (auto [range, iterator] : llvm::zip(op.getStaticLoopRanges(), iterators))
    if (iterator == utils::IteratorType::parallel)
      size *= ShapedType::isDynamic(range) ? 1 : range;
  return size;
}

/// The matmul a matmul-class root computes.
MatmulShape matmulShape(linalg::LinalgOp op) {
  MatmulShape shape;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  auto range = [&](unsigned dim) {
    return ShapedType::isDynamic(ranges[dim]) ? int64_t(1) : ranges[dim];
  };
  shape.elementBits =
      getElementTypeOrSelf(op.getDpsInits().front()).getIntOrFloatBitWidth();
  if (isRowSelectedMatmul(op)) {
    shape.m = range(0);
    shape.n = range(1);
    shape.k = range(2);
    shape.groups = cast<RankedTensorType>(
                       capturedWeights(cast<linalg::GenericOp>(op)).getType())
                       .getDimSize(0);
    return shape;
  }
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  shape.m = shape.n = shape.k = 1;
  if (failed(dims))
    return shape;
  int64_t batch = 1;
  for (unsigned d : dims->batch)
    batch *= range(d);
  for (unsigned d : dims->m)
    shape.m *= range(d);
  for (unsigned d : dims->n)
    shape.n *= range(d);
  for (unsigned d : dims->k)
    shape.k *= range(d);
  // A batched product: every batch has its own B; its rows stack in M.
  shape.m *= batch;
  shape.groups = batch;
  return shape;
}

/// The product of a vocabulary-chunk loop (the fused LM head): its one
/// contraction, run once per chunk.
linalg::LinalgOp chunkMatmul(Operation *loop) {
  linalg::LinalgOp found;
  loop->walk([&](linalg::LinalgOp op) {
    if (!found && isMatmul(op))
      found = op;
  });
  return found;
}

/// Plans the kernels of one function body.
class Planner {
public:
  Planner(const TargetModel &target, Block &body)
      : target(target), body(body) {}

  void run() {
    SmallVector<Operation *> ops;
    for (Operation &op : body)
      if (isComputation(&op))
        ops.push_back(&op);

    // Kernels of their own class first, in program order.
    SmallVector<Operation *> elementwise;
    for (Operation *op : ops) {
      KernelClass kind = classify(op);
      if (kind == KernelClass::Elementwise)
        elementwise.push_back(op);
      else
        join(newKernel(kind, op), op, "root");
    }
    // Element-wise ops join their latest producer's kernel (epilogue, or a
    // fused loop), in program order so that chains follow.
    SmallVector<Operation *> pending;
    // A matmul's epilogue is what the code generation fuses into it
    // (matchEpilogue); any other consumer of its result is planned on.
    for (Operation *op : elementwise) {
      std::optional<unsigned> producer = producerKernel(op);
      if (producer && (kernels[*producer].kind != KernelClass::Matmul ||
                       isEpilogueOf(kernels[*producer], op)))
        joinNeighbour(*producer, op, "epilogue");
      else
        pending.push_back(op);
    }
    // The rest (fills, generated index tensors) are a consumer's prologue
    // (latest first, so that chains feeding a kernel follow it) ...
    SmallVector<Operation *> loose;
    for (Operation *op : llvm::reverse(pending)) {
      if (std::optional<unsigned> consumer = consumerKernel(op))
        joinNeighbour(*consumer, op, "prologue");
      else
        loose.push_back(op);
    }
    // ... else a fused element-wise loop, rooted at its first op.
    for (Operation *op : llvm::reverse(loose)) {
      if (std::optional<unsigned> producer = producerKernel(op))
        joinNeighbour(*producer, op, "epilogue");
      else
        join(newKernel(KernelClass::Elementwise, op), op, "root");
    }
    // Kernels in the order of their roots, members in program order.
    llvm::sort(kernels, [](const Kernel &a, const Kernel &b) {
      return a.root->isBeforeInBlock(b.root);
    });
    kernelOf.clear();
    for (auto [index, kernel] : llvm::enumerate(kernels)) {
      llvm::sort(kernel.members, [](const auto &a, const auto &b) {
        return a.first->isBeforeInBlock(b.first);
      });
      for (auto [op, role] : kernel.members)
        kernelOf[op] = index;
    }
  }

  /// Writes the `moma.kernel` attributes; `nextId` numbers kernels across
  /// the module.
  void annotate(int64_t &nextId) {
    Builder b(body.getParentOp()->getContext());
    for (Kernel &kernel : kernels) {
      int64_t id = nextId++;
      StringRef kind = kernelClassName(kernel.kind);
      for (auto [op, role] : kernel.members) {
        SmallVector<NamedAttribute> fields = {
            b.getNamedAttr("id", b.getI64IntegerAttr(id)),
            b.getNamedAttr("class", b.getStringAttr(kind)),
            b.getNamedAttr("role", b.getStringAttr(role))};
        if (op == kernel.root)
          addPlan(b, kernel, fields);
        op->setAttr(kKernelAttrName, b.getDictionaryAttr(fields));
      }
    }
  }

private:
  /// The kernel of the latest computation producing an operand of `op`.
  std::optional<unsigned> producerKernel(Operation *op) {
    Operation *latest = nullptr;
    for (Value operand : op->getOperands())
      if (Operation *producer = computationProducer(operand, &body))
        if (kernelOf.count(producer) &&
            (!latest || latest->isBeforeInBlock(producer)))
          latest = producer;
    if (!latest)
      return std::nullopt;
    return kernelOf[latest];
  }

  /// The kernel of the first computation using a result of `op` (through
  /// views).
  std::optional<unsigned> consumerKernel(Operation *op) {
    std::optional<unsigned> consumer;
    Operation *first = nullptr;
    SmallVector<Value> values(op->getResults());
    while (!values.empty()) {
      Value value = values.pop_back_val();
      for (Operation *user : value.getUsers()) {
        Operation *top = body.findAncestorOpInBlock(*user);
        if (!top)
          continue;
        if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp,
                tensor::ExtractSliceOp, tensor::CastOp>(top)) {
          values.append(top->result_begin(), top->result_end());
          continue;
        }
        if (kernelOf.count(top) && (!first || top->isBeforeInBlock(first))) {
          first = top;
          consumer = kernelOf[top];
        }
      }
    }
    return consumer;
  }

  /// Whether `op` is the epilogue the root of matmul `kernel` fuses (the
  /// fused LM head's chunk loop fuses none).
  static bool isEpilogueOf(const Kernel &kernel, Operation *op) {
    auto root = dyn_cast<linalg::LinalgOp>(kernel.root);
    if (!root)
      return false;
    std::optional<Epilogue> epilogue = matchEpilogue(root);
    return epilogue && epilogue->op == op;
  }

  unsigned newKernel(KernelClass kind, Operation *root) {
    kernels.push_back(Kernel{kind, root, {}});
    return kernels.size() - 1;
  }
  void join(unsigned kernel, Operation *op, StringRef role) {
    kernels[kernel].members.push_back({op, role});
    kernelOf[op] = kernel;
  }
  /// An element-wise op joining an element-wise kernel is part of its
  /// fused loop, not a prologue or epilogue.
  void joinNeighbour(unsigned kernel, Operation *op, StringRef role) {
    join(kernel, op,
         kernels[kernel].kind == KernelClass::Elementwise ? "fused" : role);
  }

  bool inKernel(const Kernel &kernel, Operation *op) {
    if (!op)
      return false;
    op = body.findAncestorOpInBlock(*op);
    auto it = op ? kernelOf.find(op) : kernelOf.end();
    return it != kernelOf.end() && &kernels[it->second] == &kernel;
  }

  /// Bytes a member reads from outside the kernel (operands and tensors its
  /// regions capture) and writes for users outside it.
  double externalBytes(const Kernel &kernel, Operation *op) {
    llvm::SetVector<Value> reads;
    for (Value operand : op->getOperands())
      reads.insert(operand);
    op->walk([&](Operation *inner) {
      for (Value operand : inner->getOperands())
        if (!op->isAncestor(operand.getParentRegion()->getParentOp()))
          reads.insert(operand);
    });
    double bytes = 0;
    for (Value value : reads) {
      if (!isa<ShapedType>(value.getType()))
        continue;
      Operation *producer = producerThroughViews(value);
      // Fresh destinations and data made inside the kernel are not read.
      if (isa_and_nonnull<tensor::EmptyOp>(producer) ||
          inKernel(kernel, producer))
        continue;
      bytes += bytesOf(value.getType());
    }
    for (Value result : op->getResults())
      if (llvm::any_of(result.getUsers(), [&](Operation *user) {
            return !inKernel(kernel, user);
          }))
        bytes += bytesOf(result.getType());
    return bytes;
  }

  static void addTiles(Builder &b, const MatmulTiling &tiling,
                       SmallVector<NamedAttribute> &fields) {
    fields.push_back(b.getNamedAttr(
        "tiles", b.getDictionaryAttr({
                     b.getNamedAttr("mr", b.getI64IntegerAttr(tiling.mr)),
                     b.getNamedAttr("nr", b.getI64IntegerAttr(tiling.nr)),
                     b.getNamedAttr("kc", b.getI64IntegerAttr(tiling.kc)),
                     b.getNamedAttr("mc", b.getI64IntegerAttr(tiling.mc)),
                 })));
  }

  void addPlan(Builder &b, const Kernel &kernel,
               SmallVector<NamedAttribute> &fields) {
    // The moma ops fused into the kernel, in order, each once.
    llvm::SetVector<StringRef> labels;
    SmallVector<std::string> storage;
    for (auto [op, role] : kernel.members) {
      // A vocabulary-chunk loop holds the LM head and its cross-entropy, in
      // that order (walked before the loop itself).
      if (op->hasAttr(kVocabChunkAttrName))
        op->walk<WalkOrder::PreOrder>([&](Operation *inner) {
          if (inner == op)
            return;
          if (std::optional<Provenance> from = provenance(inner))
            storage.push_back(from->label());
        });
      if (std::optional<Provenance> from = provenance(op))
        storage.push_back(from->label());
    }
    SmallVector<Attribute> momaOps;
    llvm::SmallDenseSet<StringRef> seen;
    for (const std::string &label : storage)
      if (seen.insert(label).second)
        momaOps.push_back(b.getStringAttr(label));
    fields.push_back(b.getNamedAttr("moma_ops", b.getArrayAttr(momaOps)));

    double flops = 0, bytes = 0, seconds = 0, memberFlops = 0;
    SmallVector<int64_t> launch;
    for (auto [op, role] : kernel.members) {
      if (op == kernel.root && kernel.kind == KernelClass::Matmul)
        continue;
      bytes += externalBytes(kernel, op);
      if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op))
        memberFlops += double(iterationSpace(linalgOp)) *
                       bodyOps(linalgOp.getBlock()[0], /*floatOnly=*/true);
    }
    auto rootLinalg = dyn_cast<linalg::LinalgOp>(kernel.root);
    // A vocabulary-chunk loop: its matmul runs once per chunk, the CE
    // epilogue's reductions with it; the logits never leave the kernel.
    int64_t chunks = 1;
    bool chunked = kernel.root->hasAttr(kVocabChunkAttrName);
    if (chunked) {
      chunks = tripCount(cast<scf::ForOp>(kernel.root));
      rootLinalg = chunkMatmul(kernel.root);
      kernel.root->walk([&](linalg::LinalgOp inner) {
        if (inner != rootLinalg)
          memberFlops += double(chunks) * double(iterationSpace(inner)) *
                         bodyOps(inner.getBlock()[0], /*floatOnly=*/true);
      });
    }
    if (chunked) {
      // Tiles of one chunk's product; A is read per chunk, B once, no C.
      MatmulShape shape = matmulShape(rootLinalg);
      MatmulTiling tiling = chooseMatmulTiling(target, shape);
      addTiles(b, tiling, fields);
      fields.push_back(b.getNamedAttr(
          "shape", b.getDenseI64ArrayAttr(
                       {shape.m, shape.n * chunks, shape.k, shape.groups})));
      double elementBytes = std::max<int64_t>(1, shape.elementBits / 8);
      flops = tiling.flops * chunks + memberFlops;
      bytes += elementBytes * (double(chunks) * shape.m * shape.k +
                               double(shape.k) * shape.n * chunks);
      seconds =
          std::max(tiling.seconds * chunks, bytes / target.bytesPerSecond) +
          memberFlops / target.peakFlops;
      if (target.isGpu)
        launch = {(shape.m * shape.n + kGpuBlock - 1) / kGpuBlock, kGpuBlock};
      else
        launch = {chunks * ((shape.n + tiling.nr - 1) / tiling.nr)};
    } else if (kernel.kind == KernelClass::Matmul) {
      MatmulShape shape = matmulShape(rootLinalg);
      // A SwiGLU epilogue: the tiles hold both column halves.
      std::optional<Epilogue> epilogue = matchEpilogue(rootLinalg);
      shape.pairedHalves = epilogue && epilogue->pairedInput;
      MatmulTiling tiling = chooseMatmulTiling(target, shape);
      addTiles(b, tiling, fields);
      fields.push_back(b.getNamedAttr(
          "shape",
          b.getDenseI64ArrayAttr({shape.m, shape.n, shape.k, shape.groups})));
      flops = tiling.flops + memberFlops;
      bytes += tiling.bytes;
      // The epilogue's arithmetic adds to the product's time; its bytes
      // count against the bandwidth bound.
      seconds = std::max(tiling.seconds, bytes / target.bytesPerSecond) +
                memberFlops / target.peakFlops;
      if (target.isGpu)
        launch = {(shape.m * shape.n + kGpuBlock - 1) / kGpuBlock, kGpuBlock};
      else if (shape.pairedHalves) // nr / 2 columns of each half a panel
        launch = {(shape.n / 2 + tiling.nr / 2 - 1) / (tiling.nr / 2)};
      else // Threads split the N panels of nr columns.
        launch = {(shape.n + tiling.nr - 1) / tiling.nr};
    } else if (rootLinalg) {
      flops = memberFlops;
      seconds =
          std::max(flops / target.peakFlops, bytes / target.bytesPerSecond);
      int64_t threads = parallelSpace(rootLinalg);
      if (target.isGpu) {
        launch = {(threads + kGpuBlock - 1) / kGpuBlock, kGpuBlock};
      } else {
        // Rows: the parallel space without its innermost loop when that one
        // is parallel (it is the vector dimension).
        SmallVector<int64_t> ranges = rootLinalg.getStaticLoopRanges();
        auto iterators = rootLinalg.getIteratorTypesArray();
        int64_t inner = 1;
        if (!ranges.empty() &&
            iterators.back() == utils::IteratorType::parallel &&
            !ShapedType::isDynamic(ranges.back()))
          inner = ranges.back();
        launch = {std::max<int64_t>(1, threads / std::max<int64_t>(1, inner))};
      }
    } else {
      // Sequential code: one thread, one operation per cycle.
      int64_t ops = 0;
      for (Region &region : kernel.root->getRegions())
        ops += sequentialOps(region);
      flops = memberFlops;
      seconds = std::max(double(ops) / target.clockHertz,
                         bytes / target.bytesPerSecond) +
                memberFlops / target.peakFlops;
      launch =
          target.isGpu ? SmallVector<int64_t>{1, 1} : SmallVector<int64_t>{1};
    }
    fields.push_back(b.getNamedAttr("launch", b.getDenseI64ArrayAttr(launch)));
    if (!target.isGpu)
      fields.push_back(b.getNamedAttr(
          "work",
          b.getStringAttr(kernel.kind == KernelClass::Matmul ? "N-panels"
                          : rootLinalg                       ? "rows"
                                                             : "threads")));
    // Counts are whole numbers: integers print exactly.
    fields.push_back(
        b.getNamedAttr("flops", b.getI64IntegerAttr(std::llround(flops))));
    fields.push_back(
        b.getNamedAttr("bytes", b.getI64IntegerAttr(std::llround(bytes))));
    fields.push_back(b.getNamedAttr("seconds", b.getF64FloatAttr(seconds)));
  }

  const TargetModel &target;
  Block &body;
  SmallVector<Kernel> kernels;
  llvm::DenseMap<Operation *, unsigned> kernelOf;
};

struct MomaKernelPlan : moma::impl::MomaKernelPlanBase<MomaKernelPlan> {
  using Base::Base;

  void runOnOperation() override {
    std::optional<TargetModel> model = TargetModel::get(target);
    if (!model) {
      getOperation().emitError()
          << "moma-kernel-plan: unknown target '" << target << "' (expected "
          << kKnownTargetNames << ")";
      signalPassFailure();
      return;
    }
    ModuleOp module = getOperation();
    module->setAttr(kKernelTargetAttrName,
                    StringAttr::get(&getContext(), model->name));
    int64_t nextId = 0;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      Planner planner(*model, func.getBody().front());
      planner.run();
      planner.annotate(nextId);
    }
  }
};

} // namespace
