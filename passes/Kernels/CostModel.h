//===- CostModel.h - Targets and the kernel layer's cost model -*- C++ -*-===//
//
// What the kernel layer knows of a target (vector width and registers, cache
// or shared-memory capacity, peak rate and bandwidth) and the cost model that
// chooses tiles from it. Tiles are a function of the shape and the target,
// never read from a configuration file; passes/Kernels/KernelLayer.md
// states the model.
//
//===----------------------------------------------------------------------===//

#ifndef PASSES_KERNELS_COSTMODEL_H
#define PASSES_KERNELS_COSTMODEL_H

#include "moma/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace moma {

/// The machine a kernel is planned for. The CPU levels are x86-64 feature
/// levels; the numbers are nominal per-core figures of that level's parts,
/// so that a program's tiles do not depend on the machine that compiled it.
struct TargetModel {
  /// "x86-64-v3", "x86-64-v4", "sm_80", "sm_90", ...
  std::string name;
  bool isGpu = false;
  /// Vector registers and their width in bits (CPU); warp-level MMA tiles
  /// are derived from the chip on the GPU.
  unsigned vectorBits = 256;
  unsigned vectorRegisters = 16;
  /// Bytes of the first two cache levels per core (CPU), or of shared memory
  /// per block and L2 (GPU).
  int64_t l1Bytes = 32 * 1024;
  int64_t l2Bytes = 256 * 1024;
  /// Cores (CPU: the ones a program is planned to use; GPU: SMs).
  unsigned cores = 1;
  /// Peak f32 multiply-add rate of the whole target in FLOP/s (an FMA counts
  /// as 2), and the memory bandwidth in bytes/s.
  double peakFlops = 0;
  double bytesPerSecond = 0;
  /// Clock of one core (CPU) or SM (GPU) in Hz: the rate, at one operation
  /// per cycle, of sequential code (a selection loop runs on one thread).
  double clockHertz = 0;

  /// f32 lanes of one vector register.
  unsigned lanes() const { return vectorBits / 32; }

  /// The model of a CPU level ("x86-64-v3": AVX2 + FMA; "x86-64-v4":
  /// AVX-512) or a GPU chip ("sm_80", "sm_90", "sm_90a"); nullopt for a
  /// name it does not know.
  static std::optional<TargetModel> get(StringRef name);
};

/// The names TargetModel::get knows, for diagnostics.
inline constexpr llvm::StringLiteral kKnownTargetNames =
    "x86-64-v3, x86-64-v4, sm_80, sm_90 or sm_90a";

/// A matrix product `C[M, N] += A[M, K] B[K, N]`, possibly with a B chosen
/// per row (untied per modality, grouped experts: `groups` > 1).
struct MatmulShape {
  int64_t m = 0, n = 0, k = 0;
  int64_t groups = 1;
  unsigned elementBits = 32;
  /// The columns come in two halves computed together (SwiGLU's gate and
  /// up, for an epilogue that combines them): a register tile holds `nr / 2`
  /// columns of each half, so `nr` is an even number of vectors.
  bool pairedHalves = false;
};

/// How a matmul-class kernel is tiled. On the CPU: a register tile of `mr`
/// rows by `nr` columns (`nr` a multiple of the vector lanes) accumulated
/// over `kc`-deep slices of K, so that one `kc x nr` panel of B stays in L1
/// while `mc`-row blocks of A stream from L2; threads split the N panels.
struct MatmulTiling {
  int64_t mr = 1, nr = 1, kc = 1, mc = 1;
  /// Estimated seconds at the target's peak: max(compute, memory) time,
  /// with the compute time scaled by the padding the tiles waste.
  double seconds = 0;
  /// FLOPs (2 M N K) and bytes moved (A, B and C once each) of the product.
  double flops = 0, bytes = 0;
};

/// The cost model's tiling of `shape` on `target`.
MatmulTiling chooseMatmulTiling(const TargetModel &target,
                                const MatmulShape &shape);

/// The tiling of a product whose reduction dimension is contiguous in both
/// inputs (`C[M, N] += A[M, K] B[N, K]^T`, attention's scores): `mr` x `nr`
/// vector accumulators along K, reduced across lanes at the end; `kc` is K.
MatmulTiling chooseDotTiling(const TargetModel &target,
                             const MatmulShape &shape);

/// The vocabulary chunk `Vc` of the LM head fused with cross-entropy
/// (`[rows, dModel] x [dModel, vocab]` logits, reduced per row by an online
/// log-sum-exp): a divisor of `vocab`, so that every chunk has one static
/// shape. The f32 logits block the epilogue reads back must fit half of L2:
/// `[mc, Vc]` on the CPU (`mc` of the chunk's matmul tiling), `[rows, Vc]` on
/// the GPU (one thread per output: every row at once). Among the divisors
/// under that bound the largest multiple of the register tile's `nr` (the
/// CPU) or of a warp (32, the GPU) wins, else the largest divisor; when even
/// that is under an eighth of the bound (a vocabulary with no useful
/// divisor), the whole vocabulary is one chunk. KernelLayer.md states it.
int64_t chooseVocabChunk(const TargetModel &target, int64_t rows, int64_t vocab,
                         int64_t dModel);

} // namespace moma

#endif // PASSES_KERNELS_COSTMODEL_H
