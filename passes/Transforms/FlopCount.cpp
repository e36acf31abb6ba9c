//===- FlopCount.cpp - FLOP and parameter accounting of moma IR -----------===//
//
// Implements `moma-flop-count`: expected FLOPs per token of each modality by
// op kind, the dense baseline of the same width, and parameter counts. The
// counting rules are listed in Passes.td.
//
//===----------------------------------------------------------------------===//

#include "passes/Transforms/FlopCount.h"
#include "dialects/moma/MomaOps.h"
#include "passes/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/ToolOutputFile.h"

namespace moma {
#define GEN_PASS_DEF_MOMAFLOPCOUNT
#include "passes/Transforms/Passes.h.inc"
} // namespace moma

using namespace mlir;
using namespace moma;

StringRef moma::getFlopKindName(FlopKind kind) {
  switch (kind) {
  case FlopKind::AttentionProjections:
    return "attention projections";
  case FlopKind::AttentionScores:
    return "attention scores";
  case FlopKind::Routers:
    return "routers";
  case FlopKind::Ffn:
    return "dense ffn";
  case FlopKind::Experts:
    return "experts";
  case FlopKind::Norms:
    return "norms";
  case FlopKind::Head:
    return "head";
  case FlopKind::AuxRouters:
    return "aux routers";
  case FlopKind::OtherProjections:
    return "other projections";
  }
  llvm_unreachable("unknown FLOP kind");
}

double FlopReport::totalForward(size_t m) const {
  double total = 0.0;
  for (const std::vector<double> &kind : forward)
    total += kind[m];
  return total;
}

double FlopReport::ratioToDense(size_t m) const {
  return denseForward[m] == 0.0 ? 0.0 : totalForward(m) / denseForward[m];
}

namespace {
int64_t numElements(Value value) {
  return cast<RankedTensorType>(value.getType()).getNumElements();
}
ArrayRef<int64_t> shapeOf(Value value) {
  return cast<RankedTensorType>(value.getType()).getShape();
}

/// FLOPs of one SwiGLU / GELU FFN application on one token, without LoRA.
double ffnFlops(Activation act, int64_t width, int64_t hidden) {
  return (act == Activation::swiglu ? 6.0 : 4.0) * width * hidden;
}

/// Walks one function and fills a FlopReport.
class Counter {
public:
  Counter(FlopReport &report, size_t numModalities)
      : report(report), numModalities(numModalities) {
    for (std::vector<double> &kind : report.forward)
      kind.assign(numModalities, 0.0);
    report.denseForward.assign(numModalities, 0.0);
    report.activeParams.assign(numModalities, 0.0);
  }

  LogicalResult countBlock(Block &block) {
    for (Operation &op : block)
      if (failed(count(&op)))
        return failure();
    return success();
  }

private:
  /// The expert group serving each modality (null when none).
  SmallVector<ExpertGroupAttr> groupPerModality(ArrayAttr groups) {
    SmallVector<ExpertGroupAttr> result(numModalities);
    for (ExpertGroupAttr group : getExpertGroups(groups))
      for (int64_t modality : group.getModalities())
        if (modality < static_cast<int64_t>(numModalities))
          result[modality] = group;
    return result;
  }

  /// Adds FLOPs per token of each modality, scaled by the fraction of
  /// tokens that run the current block; `dense` is the dense baseline's,
  /// which runs every block on every token and is never scaled.
  void add(FlopKind kind, ArrayRef<double> perModality, double dense) {
    for (size_t m = 0; m < numModalities; ++m) {
      report.forward[static_cast<size_t>(kind)][m] += fraction * perModality[m];
      report.denseForward[m] += dense;
    }
  }
  void addUniform(FlopKind kind, double flops, double dense) {
    SmallVector<double> all(numModalities, flops);
    add(kind, all, dense);
  }

  /// Counts `weight` once in the totals; adds what a token of each modality
  /// uses of it (already per token) to the active parameters.
  void addParams(Value weight, ArrayRef<double> activePerModality,
                 bool embedding = false) {
    if (!weight)
      return;
    if (seen.insert(weight).second) {
      report.totalParams += numElements(weight);
      if (embedding)
        report.embeddingParams += numElements(weight);
      else
        report.params[static_cast<size_t>(paramKind)] += numElements(weight);
    }
    if (embedding)
      return;
    for (size_t m = 0; m < numModalities; ++m)
      report.activeParams[m] += fraction * activePerModality[m];
  }
  /// A tied weight, or an untied one whose slice a token uses.
  void addSliceParams(Value weight, bool untied) {
    if (!weight)
      return;
    double slice = static_cast<double>(numElements(weight)) /
                   (untied ? shapeOf(weight)[0] : 1);
    SmallVector<double> all(numModalities, slice);
    addParams(weight, all);
  }

  /// True when `value` feeds the logits of a cross-entropy loss.
  static bool feedsLoss(Value value) {
    return llvm::any_of(value.getUsers(), [&](Operation *user) {
      auto ce = dyn_cast<CrossEntropyOp>(user);
      return ce && ce.getLogits() == value;
    });
  }

  LogicalResult count(Operation *op) {
    return llvm::TypeSwitch<Operation *, LogicalResult>(op)
        .Case([&](EmbedOp embed) {
          addParams(embed.getTable(), {}, /*embedding=*/true);
          return success();
        })
        .Case([&](NormOp norm) {
          paramKind = FlopKind::Norms;
          int64_t width = shapeOf(norm.getX())[2];
          double perElement = norm.getKind() == NormKind::rms ? 4.0 : 7.0;
          if (norm.getBias())
            perElement += 1.0;
          addUniform(FlopKind::Norms, perElement * width, perElement * width);
          addSliceParams(norm.getWeight(), norm.isUntied());
          addSliceParams(norm.getBias(), norm.isUntied());
          return success();
        })
        .Case([&](LinearOp linear) {
          ArrayRef<int64_t> w = shapeOf(linear.getWeight());
          double in = w[w.size() - 2], out = w.back();
          double flops = 2.0 * in * out;
          if (linear.getBias())
            flops += out;
          if (Value a = linear.getLoraA())
            flops += 2.0 * shapeOf(a).back() * (in + out);
          FlopKind kind = feedsLoss(linear.getResult())
                              ? FlopKind::Head
                              : FlopKind::OtherProjections;
          paramKind = kind;
          addUniform(kind, flops, flops);
          for (Value weight : {linear.getWeight(), linear.getBias(),
                               linear.getLoraA(), linear.getLoraB()})
            addSliceParams(weight, linear.isUntied());
          return success();
        })
        .Case([&](FfnOp ffn) {
          paramKind = FlopKind::Ffn;
          ArrayRef<int64_t> out = shapeOf(ffn.getWOut());
          double flops =
              ffnFlops(ffn.getActivation(), out.back(), out[out.size() - 2]);
          addUniform(FlopKind::Ffn, flops, flops);
          addSliceParams(ffn.getWIn(), ffn.isUntied());
          addSliceParams(ffn.getWOut(), ffn.isUntied());
          return success();
        })
        .Case([&](AttentionOp attn) {
          paramKind = FlopKind::AttentionProjections;
          double width = shapeOf(attn.getX())[2];
          double heads = attn.getHeads(), kvHeads = attn.getKvHeads(),
                 headDim = attn.getHeadDim();
          double projections =
              2.0 * width * headDim * (2.0 * heads + 2.0 * kvHeads);
          auto meanKeys = [&](double seq) {
            return attn.getCausal() ? (seq + 1.0) / 2.0 : seq;
          };
          double seq = shapeOf(attn.getX())[1];
          double denseSeq = denseSequence ? denseSequence : seq;
          addUniform(FlopKind::AttentionProjections, projections, projections);
          addUniform(FlopKind::AttentionScores,
                     4.0 * heads * headDim * meanKeys(seq),
                     4.0 * heads * headDim * meanKeys(denseSeq));
          for (Value w :
               {attn.getWq(), attn.getWk(), attn.getWv(), attn.getWo()})
            addSliceParams(w, attn.isUntied());
          return success();
        })
        .Case([&](RouterOp router) {
          paramKind = FlopKind::Routers;
          double width = shapeOf(router.getX())[2];
          SmallVector<ExpertGroupAttr> perModality =
              groupPerModality(router.getGroups());
          SmallVector<double> flops(numModalities, 0.0);
          for (size_t m = 0; m < numModalities; ++m)
            if (perModality[m])
              flops[m] = 2.0 * width * perModality[m].getExperts();
          add(FlopKind::Routers, flops, 0.0);
          for (auto [weight, group] : llvm::zip(
                   router.getWeights(), getExpertGroups(router.getGroups()))) {
            SmallVector<double> active(numModalities, 0.0);
            for (int64_t modality : group.getModalities())
              if (modality < static_cast<int64_t>(numModalities))
                active[modality] = numElements(weight);
            addParams(weight, active);
          }
          return success();
        })
        .Case([&](ExpertsOp experts) -> LogicalResult {
          paramKind = FlopKind::Experts;
          auto route = experts.getExpertOffsets().getDefiningOp<RouteOp>();
          if (!route)
            return experts.emitOpError()
                   << "cannot attribute expert FLOPs to modalities: "
                      "'expert_offsets' does not come from a moma.route";
          ArrayRef<int64_t> wOut = shapeOf(experts.getWOut());
          double numExperts = wOut[0], hidden = wOut[1], width = wOut[2];
          double perSlot = ffnFlops(experts.getActivation(), width, hidden);
          double perExpertParams =
              static_cast<double>(numElements(experts.getWIn()) +
                                  numElements(experts.getWOut())) /
              numExperts;
          if (!experts.getLora().empty()) {
            double columns = shapeOf(experts.getWIn())[2];
            double rank = shapeOf(experts.getLora()[0])[2];
            perSlot +=
                2.0 * rank * (width + columns) + 2.0 * rank * (hidden + width);
            for (Value lora : experts.getLora())
              perExpertParams += numElements(lora) / numExperts;
          }
          SmallVector<ExpertGroupAttr> perModality =
              groupPerModality(route.getGroups());
          SmallVector<double> flops(numModalities, 0.0),
              active(numModalities, 0.0);
          for (size_t m = 0; m < numModalities; ++m) {
            if (!perModality[m])
              continue;
            double slots = perModality[m].getSlotsPerToken();
            flops[m] = slots * perSlot;
            active[m] = slots * perExpertParams;
          }
          add(FlopKind::Experts, flops, perSlot);
          for (size_t m = 0; m < numModalities; ++m)
            report.activeParams[m] += fraction * active[m];
          for (Value weight : {experts.getWIn(), experts.getWOut()})
            addParams(weight, SmallVector<double>(numModalities, 0.0));
          for (Value lora : experts.getLora())
            addParams(lora, SmallVector<double>(numModalities, 0.0));
          return success();
        })
        .Case([&](DepthRouteOp route) {
          paramKind = FlopKind::Routers;
          double width = shapeOf(route.getX())[2];
          addUniform(FlopKind::Routers, 2.0 * width, 0.0);
          addSliceParams(route.getWeight(), /*untied=*/false);
          return success();
        })
        .Case([&](DepthRegionOp region) -> LogicalResult {
          double seq = shapeOf(region.getX())[1];
          double kept = shapeOf(region.getIndices())[1];
          double savedFraction = fraction;
          double savedSequence = denseSequence;
          fraction *= kept / seq;
          if (!denseSequence)
            denseSequence = seq;
          LogicalResult result = countBlock(region.getBody().front());
          fraction = savedFraction;
          denseSequence = savedSequence;
          return result;
        })
        .Case([&](AuxRouterOp aux) {
          paramKind = FlopKind::AuxRouters;
          double width = shapeOf(aux.getX())[2];
          auto routerFlops = [&](Value w1, Value w2) {
            double hidden = shapeOf(w1).back(), outputs = shapeOf(w2).back();
            return 2.0 * width * hidden + 2.0 * hidden * outputs;
          };
          if (!aux.getGroups()) {
            double flops =
                routerFlops(aux.getWeights()[0], aux.getWeights()[1]);
            addUniform(FlopKind::AuxRouters, flops, 0.0);
            for (Value weight : aux.getWeights())
              addSliceParams(weight, aux.isUntied());
            return success();
          }
          SmallVector<double> flops(numModalities, 0.0);
          for (auto [index, group] :
               llvm::enumerate(getExpertGroups(*aux.getGroups()))) {
            Value w1 = aux.getWeights()[2 * index],
                  w2 = aux.getWeights()[2 * index + 1];
            SmallVector<double> active(numModalities, 0.0);
            for (int64_t modality : group.getModalities()) {
              if (modality >= static_cast<int64_t>(numModalities))
                continue;
              flops[modality] = routerFlops(w1, w2);
              active[modality] = 1.0;
            }
            for (Value weight : {w1, w2}) {
              SmallVector<double> used(numModalities, 0.0);
              for (size_t m = 0; m < numModalities; ++m)
                used[m] = active[m] * numElements(weight);
              addParams(weight, used);
            }
          }
          add(FlopKind::AuxRouters, flops, 0.0);
          return success();
        })
        .Default([&](Operation *) { return success(); });
  }

  FlopReport &report;
  size_t numModalities;
  llvm::DenseSet<Value> seen;
  /// The kind total parameters are attributed to (the op being counted).
  FlopKind paramKind = FlopKind::OtherProjections;
  /// Fraction of the tokens that run the ops being counted (MoD regions).
  double fraction = 1.0;
  /// Inside a depth region: the full sequence length the dense baseline's
  /// attention sees (0 outside).
  double denseSequence = 0.0;
};
} // namespace

FailureOr<FlopReport> moma::countFlops(func::FuncOp func) {
  FlopReport report;
  report.function = func.getSymName().str();
  if (std::optional<SmallVector<ModalityAttr>> modalities =
          getDeclaredModalities(func)) {
    for (ModalityAttr modality : *modalities)
      report.modalities.push_back(modality.getName().getValue().str());
  } else {
    report.modalities.push_back("all");
  }
  if (func.isExternal())
    return func.emitError() << "cannot count FLOPs of an external function";
  Counter counter(report, report.modalities.size());
  if (failed(counter.countBlock(func.getBody().front())))
    return failure();
  return report;
}

void FlopReport::print(llvm::raw_ostream &os) const {
  auto row = [&](StringRef label, auto value) {
    os << llvm::left_justify(label, 32);
    for (size_t m = 0; m < modalities.size(); ++m)
      os << llvm::right_justify(value(m), 18);
    os << "\n";
  };
  auto number = [](double v) {
    std::string text;
    llvm::raw_string_ostream(text) << llvm::format("%.10g", v);
    return text;
  };
  os << "flops @" << function << " (expected per token of each modality)\n";
  row("", [&](size_t m) { return modalities[m]; });
  for (size_t k = 0; k < kNumFlopKinds; ++k) {
    bool any = llvm::any_of(forward[k], [](double v) { return v != 0.0; });
    if (any)
      row(getFlopKindName(static_cast<FlopKind>(k)),
          [&](size_t m) { return number(forward[k][m]); });
  }
  row("forward total", [&](size_t m) { return number(totalForward(m)); });
  row("training (fwd + bwd = 3x fwd)",
      [&](size_t m) { return number(training(m)); });
  row("dense baseline forward",
      [&](size_t m) { return number(denseForward[m]); });
  row("ratio to dense", [&](size_t m) {
    std::string text;
    llvm::raw_string_ostream(text) << llvm::format("%.4f", ratioToDense(m));
    return text;
  });
  row("active params (non-embedding)",
      [&](size_t m) { return number(activeParams[m]); });
  os << "total params: " << totalParams << " (embedding " << embeddingParams
     << ", non-embedding " << totalParams - embeddingParams << ")\n";
  for (size_t k = 0; k < kNumFlopKinds; ++k)
    if (params[k])
      os << "  params " << getFlopKindName(static_cast<FlopKind>(k)) << ": "
         << params[k] << "\n";
}

namespace {
struct MomaFlopCount : moma::impl::MomaFlopCountBase<MomaFlopCount> {
  using Base::Base;

  void runOnOperation() override {
    std::string error;
    std::unique_ptr<llvm::ToolOutputFile> file = openOutputFile(output, &error);
    if (!file) {
      getOperation().emitError() << "cannot open '" << output << "': " << error;
      return signalPassFailure();
    }
    for (func::FuncOp func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      FailureOr<FlopReport> report = countFlops(func);
      if (failed(report))
        return signalPassFailure();
      report->print(file->os());
    }
    file->keep();
    markAllAnalysesPreserved();
  }
};
} // namespace
