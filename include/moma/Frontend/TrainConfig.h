//===- TrainConfig.h - Training configurations (moma-train-config/1) -*- C++
//-*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The hyper-parameters of a train program: AdamW, its learning-rate
/// schedule, gradient clipping and accumulation, read from a
/// `moma-train-config/1` file (examples/Training.md) with the model file's
/// strictness: unknown keys, wrong types and out-of-range values are errors
/// `FILE: PATH: RULE`.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FRONTEND_TRAINCONFIG_H
#define MOMA_FRONTEND_TRAINCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace moma {

/// One training configuration; the defaults are examples/Training.md's.
struct TrainConfig {
  /// AdamW.
  double lr = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;
  /// Whether rank-1 weights (norm scales, biases) are decayed too.
  bool decayNormsAndBiases = false;
  /// The schedule: linear warm-up, then `decay` (linear, cosine, constant)
  /// to `finalLrRatio * lr` at `totalSteps`.
  int64_t warmupSteps = 0;
  int64_t totalSteps = 1;
  std::string decay = "linear";
  double finalLrRatio = 0.0;
  /// Global gradient-norm clipping threshold; none when absent.
  std::optional<double> clipGradNorm;
  /// Micro-batches per optimizer step.
  int64_t accumulationSteps = 1;
};

/// Parses the text of a training configuration; errors name \p fileName.
llvm::Expected<TrainConfig> parseTrainConfig(llvm::StringRef text,
                                             llvm::StringRef fileName);

/// Reads and parses the training configuration at \p path.
llvm::Expected<TrainConfig> loadTrainConfig(llvm::StringRef path);

} // namespace moma

#endif // MOMA_FRONTEND_TRAINCONFIG_H
