//===- KernelReport.h - Kernel classes and the kernel plan report -*- C++
//-*-===//
//
// The kernel classes moma-kernel-plan assigns, the attributes it writes, and
// the table `momac --emit=kernels` prints from them.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_KERNELS_KERNELREPORT_H
#define PASSES_KERNELS_KERNELREPORT_H

#include "dialects/moma/MomaDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "moma/Support/LLVM.h"
#include "llvm/Support/raw_ostream.h"

namespace moma {

/// The kernel classes of KernelLayer.md.
enum class KernelClass {
  Matmul,
  Attention,
  RowReduction,
  Selection,
  Elementwise
};

/// "matmul", "attention", "row_reduction", "selection", "elementwise".
StringRef kernelClassName(KernelClass kind);

/// The discardable attribute of every planned op (a dictionary), and the
/// module attribute naming the target the plan is for.
inline constexpr llvm::StringLiteral kKernelAttrName =
    MomaDialect::getKernelAttrName();
inline constexpr llvm::StringLiteral kKernelTargetAttrName =
    MomaDialect::getKernelTargetAttrName();
/// The attribute the fused LM head + cross-entropy lowering puts on its loop
/// over vocabulary chunks (an `scf.for` on tensors): the chunk width. The
/// plan reads the loop as one matmul-class kernel; the GPU pipeline unrolls
/// it (its host function is a static launch schedule).
inline constexpr llvm::StringLiteral kVocabChunkAttrName =
    MomaDialect::getVocabChunkAttrName();

/// Prints one line per kernel of a planned module (class, fused moma ops,
/// tiles, launch shape, FLOPs, bytes, estimated time) in aligned columns,
/// and a total line. Fails, with a diagnostic, on a module that
/// moma-kernel-plan did not run on.
LogicalResult printKernelReport(ModuleOp module, llvm::raw_ostream &os);

} // namespace moma

#endif // PASSES_KERNELS_KERNELREPORT_H
