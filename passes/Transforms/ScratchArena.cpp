//===- ScratchArena.cpp - Temporaries as views of one planned arena -------===//
//
// Implements `moma-scratch-arena`: after bufferization, every temporary
// buffer of a function (a memref.alloc of static shape) becomes a
// memref.view into one byte buffer that the caller passes as a new last
// argument, at an offset planned by lifetime, so that running the function
// allocates nothing: the runtime places that buffer in the program's arena.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaDialect.h"
#include "passes/Support/ScratchPlanner.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/Transforms/BufferViewFlowAnalysis.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"

namespace moma {
#define GEN_PASS_DEF_MOMASCRATCHARENA
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

namespace {
/// A temporary the pass places.
struct Temporary {
  memref::AllocOp alloc;
  LiveInterval interval;
  /// The deallocations of the buffer or its views, erased once it lives in
  /// the arena.
  SmallVector<Operation *> deallocs;
};

struct MomaScratchArena : moma::impl::MomaScratchArenaBase<MomaScratchArena> {
  using Base::Base;

  void runOnOperation() override {
    uint64_t align = alignment;
    if (align == 0 || (align & (align - 1)) != 0) {
      getOperation().emitError() << "moma-scratch-arena: alignment " << align
                                 << " is not a power of two";
      return signalPassFailure();
    }
    SymbolTableCollection symbols;
    SymbolUserMap users(symbols, getOperation());
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (!users.getUsers(func).empty()) {
        // A new argument would change the callers' calls.
        func.emitRemark() << "moma-scratch-arena: skipped, the function has "
                             "callers";
        continue;
      }
      if (failed(plan(func)))
        return signalPassFailure();
    }
  }

  LogicalResult plan(func::FuncOp func) {
    Region &body = func.getBody();
    if (!body.hasOneBlock())
      return success(); // After lowering to cf: nothing to plan here.
    Block &block = body.front();
    llvm::DenseMap<Operation *, size_t> position;
    for (auto [index, op] : llvm::enumerate(block))
      position[&op] = index;
    auto topLevel = [&](Operation *op) {
      return position.lookup(block.findAncestorOpInBlock(*op));
    };

    BufferViewFlowAnalysis aliases(func);
    std::vector<Temporary> temporaries;
    func.walk([&](memref::AllocOp alloc) {
      MemRefType type = alloc.getType();
      uint64_t bytes = elementStorageBytes(type.getElementType());
      if (!type.hasStaticShape() || !type.getLayout().isIdentity() ||
          type.getMemorySpace() || bytes == 0)
        return;
      // The iterations of a parallel loop run at once (threads), and each
      // needs its own instance (the CPU mapping's packed weight panels).
      if (alloc->getParentOfType<scf::ParallelOp>() ||
          alloc->getParentOfType<scf::ForallOp>())
        return;
      // The buffer lives at one fixed place of the arena for the whole
      // function, so it must not leave the function (returned, or passed to
      // a call), and an allocation inside a loop or a branch must not
      // outlive its region (a view that is a block argument or a result of
      // an op with regions would carry one iteration's buffer into the
      // next). It lives from the allocation to the last use of any view.
      bool nested = alloc->getBlock() != &block;
      Temporary temporary;
      temporary.alloc = alloc;
      temporary.interval.bytes = bytes * type.getNumElements();
      size_t first = topLevel(alloc), last = first;
      for (Value alias : aliases.resolve(alloc.getResult())) {
        if (nested && (isa<BlockArgument>(alias) ||
                       alias.getDefiningOp()->getNumRegions() != 0))
          return;
        for (Operation *user : alias.getUsers()) {
          if (isa<CallOpInterface>(user) ||
              (user->hasTrait<OpTrait::ReturnLike>() &&
               isa<func::FuncOp>(user->getParentOp())))
            return;
          if (isa<memref::DeallocOp>(user))
            temporary.deallocs.push_back(user);
          else
            last = std::max(last, topLevel(user));
        }
      }
      temporary.interval.first = first;
      temporary.interval.last = last;
      temporaries.push_back(std::move(temporary));
    });
    if (temporaries.empty())
      return success();

    // Offsets: at least as aligned as every allocation asks.
    uint64_t align = alignment;
    for (Temporary &temporary : temporaries)
      if (std::optional<uint64_t> wanted = temporary.alloc.getAlignment())
        align = std::max<uint64_t>(align, *wanted);
    std::vector<LiveInterval> intervals;
    for (const Temporary &temporary : temporaries)
      intervals.push_back(temporary.interval);
    uint64_t size = planLiveIntervals(intervals, 0, align, reuse);

    // The arena argument, then a view of it for each temporary.
    MLIRContext *ctx = &getContext();
    auto arenaType = MemRefType::get({int64_t(size)}, IntegerType::get(ctx, 8));
    unsigned index = func.getNumArguments();
    if (failed(func.insertArgument(
            index, arenaType,
            DictionaryAttr::get(
                ctx,
                {NamedAttribute(
                    StringAttr::get(ctx, MomaDialect::getScratchAttrName()),
                    IntegerAttr::get(IntegerType::get(ctx, 64),
                                     int64_t(size)))}),
            func.getLoc())))
      return func.emitError("moma-scratch-arena: cannot add the arena "
                            "argument");
    Value arena = func.getArgument(index);
    for (auto [temporary, interval] : llvm::zip_equal(temporaries, intervals)) {
      OpBuilder builder(temporary.alloc);
      Value shift = arith::ConstantIndexOp::create(
          builder, temporary.alloc.getLoc(), int64_t(interval.offset));
      Value view = memref::ViewOp::create(builder, temporary.alloc.getLoc(),
                                          temporary.alloc.getType(), arena,
                                          shift, ValueRange());
      temporary.alloc.getResult().replaceAllUsesWith(view);
      for (Operation *dealloc : temporary.deallocs)
        dealloc->erase();
      temporary.alloc.erase();
    }
    return success();
  }
};
} // namespace
