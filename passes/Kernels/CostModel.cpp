//===- CostModel.cpp - Targets and the kernel layer's cost model ----------===//
//
// The model is the one KernelLayer.md states: a register tile's throughput is
// bounded by the FMA ports, the load ports and the FMA latency; the cache
// blocks are the largest that fit half of the cache level they live in.
//
//===----------------------------------------------------------------------===//

#include "passes/Kernels/CostModel.h"

#include "llvm/ADT/StringRef.h"

#include <algorithm>
#include <cmath>

using namespace moma;

namespace {

/// Per-core figures of the CPU micro-architecture model: two FMA ports, two
/// load ports, a 4-cycle FMA latency, at a nominal 3 GHz.
constexpr double kCpuHertz = 3.0e9;
constexpr double kFmaPorts = 2, kLoadPorts = 2, kFmaLatency = 4;

TargetModel cpuModel(StringRef name, unsigned vectorBits, unsigned registers,
                     int64_t l2Bytes) {
  TargetModel target;
  target.name = name.str();
  target.vectorBits = vectorBits;
  target.vectorRegisters = registers;
  target.l1Bytes = 32 * 1024;
  target.l2Bytes = l2Bytes;
  target.cores = 1;
  target.peakFlops = kFmaPorts * (vectorBits / 32) * 2 * kCpuHertz;
  target.bytesPerSecond = 15.0e9;
  target.clockHertz = kCpuHertz;
  return target;
}

TargetModel gpuModel(StringRef name, unsigned sms, int64_t sharedBytes,
                     int64_t l2Bytes, double f32Flops, double bandwidth,
                     double boostHertz) {
  TargetModel target;
  target.name = name.str();
  target.isGpu = true;
  target.vectorBits = 32;
  target.vectorRegisters = 255;
  target.l1Bytes = sharedBytes;
  target.l2Bytes = l2Bytes;
  target.cores = sms;
  target.peakFlops = f32Flops;
  target.bytesPerSecond = bandwidth;
  target.clockHertz = boostHertz;
  return target;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The fraction of its peak a register tile of `mr` x `nrVectors` reaches:
/// per k step it issues mr * nrVectors FMAs and mr + nrVectors loads, and an
/// accumulator is updated once per step, so a step lasts at least the FMA
/// latency.
double registerTileEfficiency(int64_t mr, int64_t nrVectors) {
  double fmas = double(mr * nrVectors);
  double cycles =
      std::max({fmas / kFmaPorts, (mr + nrVectors) / kLoadPorts, kFmaLatency});
  return (fmas / kFmaPorts) / cycles;
}

} // namespace

std::optional<TargetModel> TargetModel::get(StringRef name) {
  if (name == "x86-64-v3")
    return cpuModel(name, 256, 16, 256 * 1024);
  if (name == "x86-64-v4")
    return cpuModel(name, 512, 32, 1024 * 1024);
  // A100 (SXM, 40 GB) and H100 (SXM): f32 CUDA-core peaks, HBM bandwidth,
  // boost clocks.
  if (name == "sm_80")
    return gpuModel(name, 108, 164 * 1024, 40 << 20, 19.5e12, 1.555e12, 1.41e9);
  if (name == "sm_90" || name == "sm_90a")
    return gpuModel(name, 132, 228 * 1024, 50 << 20, 66.9e12, 3.35e12, 1.98e9);
  return std::nullopt;
}

/// The product's FLOPs (2 M N K) and bytes (A, every B slice and C once),
/// untiled (1 x 1), timed at the target's peak rate or bandwidth.
static MatmulTiling untiled(const TargetModel &target,
                            const MatmulShape &shape) {
  MatmulTiling tiling;
  int64_t elementBytes = std::max<int64_t>(1, shape.elementBits / 8);
  tiling.flops = 2.0 * double(shape.m) * double(shape.n) * double(shape.k);
  tiling.bytes =
      double(elementBytes) *
      (double(shape.m) * shape.k + double(shape.groups) * shape.k * shape.n +
       double(shape.m) * shape.n);
  tiling.seconds = std::max(tiling.flops / target.peakFlops,
                            tiling.bytes / target.bytesPerSecond);
  return tiling;
}

MatmulTiling moma::chooseMatmulTiling(const TargetModel &target,
                                      const MatmulShape &shape) {
  MatmulTiling best = untiled(target, shape);
  double memorySeconds = best.bytes / target.bytesPerSecond;
  // On the GPU one thread per output element until the tensor-core mapping
  // exists.
  if (target.isGpu || shape.m <= 0 || shape.n <= 0 || shape.k <= 0)
    return best;

  int64_t lanes = target.lanes();
  double bestScore = -1;
  // Paired halves: the tile's columns are split between the two halves,
  // each padded on its own.
  int64_t pieces = shape.pairedHalves ? 2 : 1;
  int64_t extent = shape.n / pieces;
  for (int64_t nrVectors = pieces; nrVectors <= 4; nrVectors += pieces) {
    int64_t nr = nrVectors * lanes;
    // Padding in N (the last panel is masked) wastes lanes.
    double columnUse =
        double(extent) / double(ceilDiv(extent, nr / pieces) * (nr / pieces));
    for (int64_t mr = 1; mr <= 16; ++mr) {
      // Accumulators, the B vectors of one k step and one broadcast A value.
      if (mr * nrVectors + nrVectors + 1 > target.vectorRegisters)
        break;
      // Rows beyond the last full tile run with a tile of the remainder.
      int64_t full = shape.m / mr * mr, rest = shape.m - full;
      double rowEfficiency =
          (full * registerTileEfficiency(mr, nrVectors) +
           (rest ? rest * registerTileEfficiency(rest, nrVectors) : 0)) /
          double(shape.m);
      double score = rowEfficiency * columnUse;
      // Among equals, the tile that loads least per FMA.
      double loadsPerFma = double(mr + nrVectors) / double(mr * nrVectors);
      if (score > bestScore + 1e-9 ||
          (std::abs(score - bestScore) <= 1e-9 &&
           loadsPerFma < double(best.mr + best.nr / lanes) /
                             double(best.mr * (best.nr / lanes)))) {
        bestScore = score;
        best.mr = mr;
        best.nr = nr;
      }
    }
  }
  // One kc x nr panel of B in half of L1; one mc x kc block of A in half of
  // L2. kc is a multiple of 8 (or K itself).
  int64_t elementBytes = std::max<int64_t>(1, shape.elementBits / 8);
  int64_t kc = target.l1Bytes / 2 / (best.nr * elementBytes) / 8 * 8;
  best.kc = std::clamp<int64_t>(kc, 8, shape.k);
  int64_t mc =
      target.l2Bytes / 2 / (best.kc * elementBytes) / best.mr * best.mr;
  // No larger than M rounded up to whole register tiles: mc stays a
  // multiple of mr, so every block but the last holds whole tiles.
  best.mc =
      std::clamp<int64_t>(mc, best.mr, ceilDiv(shape.m, best.mr) * best.mr);
  best.seconds =
      std::max(best.flops / (target.peakFlops * bestScore), memorySeconds);
  return best;
}

MatmulTiling moma::chooseDotTiling(const TargetModel &target,
                                   const MatmulShape &shape) {
  MatmulTiling best = untiled(target, shape);
  double memorySeconds = best.bytes / target.bytesPerSecond;
  if (target.isGpu || shape.m <= 0 || shape.n <= 0 || shape.k <= 0)
    return best;
  int64_t lanes = target.lanes();
  // Lanes of the last k vector that are masked off do no work.
  double laneUse = double(shape.k) / double(ceilDiv(shape.k, lanes) * lanes);
  auto tileUse = [](int64_t extent, int64_t tile) {
    int64_t full = extent / tile * tile, rest = extent - full;
    return std::pair<int64_t, int64_t>(full, rest);
  };
  double bestScore = -1;
  for (int64_t mr = 1; mr <= 8; ++mr)
    for (int64_t nr = 1; nr <= 8; ++nr) {
      // Accumulators plus one k vector of every row and column.
      if (mr * nr + mr + nr > int64_t(target.vectorRegisters))
        continue;
      auto [mFull, mRest] = tileUse(shape.m, mr);
      auto [nFull, nRest] = tileUse(shape.n, nr);
      // Per k vector a rows x cols dot tile issues rows * cols FMAs and
      // rows + cols loads: the register tile's bound.
      auto efficiency = registerTileEfficiency;
      double weighted =
          double(mFull) * nFull * efficiency(mr, nr) +
          (mRest ? double(mRest) * nFull * efficiency(mRest, nr) : 0) +
          (nRest ? double(mFull) * nRest * efficiency(mr, nRest) : 0) +
          (mRest && nRest ? double(mRest) * nRest * efficiency(mRest, nRest)
                          : 0);
      double score = weighted / (double(shape.m) * shape.n) * laneUse;
      double loadsPerFma = double(mr + nr) / double(mr * nr);
      if (score > bestScore + 1e-9 ||
          (std::abs(score - bestScore) <= 1e-9 &&
           loadsPerFma <
               double(best.mr + best.nr) / double(best.mr * best.nr))) {
        bestScore = score;
        best.mr = mr;
        best.nr = nr;
      }
    }
  best.kc = shape.k;
  best.mc = best.mr;
  best.seconds =
      std::max(best.flops / (target.peakFlops * bestScore), memorySeconds);
  return best;
}

int64_t moma::chooseVocabChunk(const TargetModel &target, int64_t rows,
                               int64_t vocab, int64_t dModel) {
  if (rows <= 0 || vocab <= 0 || dModel <= 0)
    return std::max<int64_t>(vocab, 1);
  // The rows of the logits block that must stay in L2, and the column
  // granule the kernel works in.
  int64_t blockRows = rows, granule = 32;
  if (!target.isGpu) {
    MatmulTiling tiling =
        chooseMatmulTiling(target, MatmulShape{rows, vocab, dModel, 1, 32});
    blockRows = std::min(rows, tiling.mc);
    granule = tiling.nr;
  }
  int64_t bound = std::max<int64_t>(1, target.l2Bytes / 2 / (blockRows * 4));
  if (vocab <= bound)
    return vocab;
  int64_t best = 1, bestAligned = 0;
  for (int64_t d = 1; d <= bound; ++d)
    if (vocab % d == 0) {
      best = d;
      if (d % granule == 0)
        bestAligned = d;
    }
  int64_t chunk = bestAligned ? bestAligned : best;
  return chunk * 8 < bound ? vocab : chunk;
}
