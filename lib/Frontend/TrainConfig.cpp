//===- TrainConfig.cpp - Training configurations --------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// Reads moma-train-config/1 files (examples/Training.md) through the model
// file's strict JSON reader and typed accessors.
//
//===----------------------------------------------------------------------===//

#include "moma/Frontend/TrainConfig.h"

#include "JsonAccess.h"
#include "JsonText.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace moma;
using llvm::StringRef;

static constexpr llvm::StringLiteral kTrainConfigFormat = "moma-train-config/1";

static bool parseConfig(const llvm::json::Value &root, const Context &ctx,
                        TrainConfig &cfg) {
  Obj top, optimizer, schedule;
  if (!Obj::open(root, {}, ctx,
                 {"accumulation_steps", "clip_grad_norm", "format", "optimizer",
                  "schedule"},
                 top))
    return false;
  std::string format;
  if (!top.string("format", format, std::nullopt))
    return false;
  if (format != kTrainConfigFormat)
    return top.error("format", "must be \"" + kTrainConfigFormat +
                                   "\", not \"" + format + "\"");
  if (!top.object("optimizer",
                  {"beta1", "beta2", "decay_norms_and_biases", "eps", "lr",
                   "weight_decay"},
                  /*optional=*/false, optimizer) ||
      !optimizer.number("lr", cfg.lr, std::nullopt, greaterThan(0.0)) ||
      !optimizer.number("beta1", cfg.beta1, 0.9, NumberBounds{}) ||
      !optimizer.number("beta2", cfg.beta2, 0.999, NumberBounds{}) ||
      !optimizer.number("eps", cfg.eps, 1e-8, greaterThan(0.0)) ||
      !optimizer.number("weight_decay", cfg.weightDecay, 0.0, atLeast(0.0)) ||
      !optimizer.boolean("decay_norms_and_biases", cfg.decayNormsAndBiases,
                         false))
    return false;
  // A number too large for a double (1e999) reads as infinity.
  for (auto [key, value] : {std::pair<StringRef, double>{"lr", cfg.lr},
                            {"eps", cfg.eps},
                            {"weight_decay", cfg.weightDecay}})
    if (!std::isfinite(value))
      return optimizer.error(key, "must be finite");
  for (auto [key, value] :
       {std::pair<StringRef, double>{"beta1", cfg.beta1}, {"beta2", cfg.beta2}})
    if (!(value >= 0.0 && value < 1.0))
      return optimizer.error(key, "must be in [0, 1)");
  if (!top.object("schedule",
                  {"decay", "final_lr_ratio", "total_steps", "warmup_steps"},
                  /*optional=*/false, schedule) ||
      !schedule.integer("total_steps", cfg.totalSteps, std::nullopt, 1) ||
      !schedule.integer("warmup_steps", cfg.warmupSteps, 0, 0) ||
      !schedule.string("decay", cfg.decay, StringRef("linear"),
                       {"linear", "cosine", "constant"}) ||
      !schedule.number("final_lr_ratio", cfg.finalLrRatio, 0.0, NumberBounds{}))
    return false;
  if (!(cfg.finalLrRatio >= 0.0 && cfg.finalLrRatio <= 1.0))
    return schedule.error("final_lr_ratio", "must be in [0, 1]");
  if (const llvm::json::Value *clip = top.get("clip_grad_norm");
      clip && clip->kind() != llvm::json::Value::Null) {
    double threshold = 0.0;
    if (!top.number("clip_grad_norm", threshold, std::nullopt,
                    greaterThan(0.0)))
      return false;
    if (!std::isfinite(threshold))
      return top.error("clip_grad_norm", "must be finite");
    cfg.clipGradNorm = threshold;
  }
  return top.integer("accumulation_steps", cfg.accumulationSteps, 1, 1);
}

llvm::Expected<TrainConfig> moma::parseTrainConfig(StringRef text,
                                                   StringRef fileName) {
  llvm::Expected<llvm::json::Value> root = parseJsonText(text);
  if (!root)
    return llvm::createStringError(fileName.str() + ": " +
                                   llvm::toString(root.takeError()));
  std::string error;
  Context ctx;
  ctx.file = fileName;
  ctx.error = &error;
  TrainConfig config;
  if (!parseConfig(*root, ctx, config))
    return llvm::createStringError(error);
  return config;
}

llvm::Expected<TrainConfig> moma::loadTrainConfig(StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!buffer)
    return llvm::createStringError(
        path.str() + ": cannot read file: " + buffer.getError().message());
  return parseTrainConfig((*buffer)->getBuffer(), path);
}
