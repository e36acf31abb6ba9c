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
      !optimizer.number("beta1", cfg.beta1, 0.9, atLeast(0.0)) ||
      !optimizer.number("beta2", cfg.beta2, 0.999, atLeast(0.0)) ||
      !optimizer.number("eps", cfg.eps, 1e-8, greaterThan(0.0)) ||
      !optimizer.number("weight_decay", cfg.weightDecay, 0.0, atLeast(0.0)) ||
      !optimizer.boolean("decay_norms_and_biases", cfg.decayNormsAndBiases,
                         false))
    return false;
  for (auto [key, value] :
       {std::pair<StringRef, double>{"beta1", cfg.beta1}, {"beta2", cfg.beta2}})
    if (value >= 1.0)
      return optimizer.error(key, "must be < 1");
  if (!top.object("schedule",
                  {"decay", "final_lr_ratio", "total_steps", "warmup_steps"},
                  /*optional=*/false, schedule) ||
      !schedule.integer("total_steps", cfg.totalSteps, std::nullopt, 1) ||
      !schedule.integer("warmup_steps", cfg.warmupSteps, 0, 0) ||
      !schedule.string("decay", cfg.decay, StringRef("linear"),
                       {"constant", "cosine", "linear"}) ||
      !schedule.number("final_lr_ratio", cfg.finalLrRatio, 0.0,
                       NumberBounds{0.0, std::nullopt, 1.0}))
    return false;
  if (const llvm::json::Value *clip = top.get("clip_grad_norm");
      clip && clip->kind() != llvm::json::Value::Null) {
    double threshold = 0.0;
    if (!top.number("clip_grad_norm", threshold, std::nullopt,
                    greaterThan(0.0)))
      return false;
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
