//===- ModelBuilder.cpp - Model definitions to moma IR --------------------===//
//
// Composes the moma ops into the forward pass and training objective of a
// model definition, following examples/README.md ("Model semantics") and
// the PyTorch reference (tools/moma-reference/moma_reference/model.py).
//
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelBuilder.h"

#include "dialects/moma/MomaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir;
using namespace moma;

void moma::registerModelBuilderDialects(DialectRegistry &registry) {
  registry.insert<MomaDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect, linalg::LinalgDialect>();
}

namespace {

/// Builds the IR of one model; errors are collected as a message.
class ModelIRBuilder {
public:
  ModelIRBuilder(MLIRContext &ctx, const ModelConfig &config,
                 const BuildOptions &options)
      : ctx(ctx), config(config), options(options), b(&ctx),
        fileLoc(FileLineColLoc::get(
            &ctx, options.fileName.empty() ? config.name : options.fileName, 1,
            1)) {}

  llvm::Expected<OwningOpRef<ModuleOp>> build();

private:
  struct LossParts {
    SmallVector<Value> loadBalancing, routerZ, auxRouter;
  };

  Location loc(const Twine &name) {
    return NameLoc::get(b.getStringAttr(name), fileLoc);
  }
  RankedTensorType floats(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, elementType);
  }
  RankedTensorType ints(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getI32Type());
  }
  Value weight(const Twine &name) {
    std::string key = name.str();
    auto it = weights.find(key);
    assert(it != weights.end() && "weight missing from listWeights");
    return it->second;
  }
  Value optionalWeight(const Twine &name) {
    auto it = weights.find(name.str());
    return it == weights.end() ? Value() : it->second;
  }
  Value scalar(double value, Location l) {
    auto type = floats({});
    return arith::ConstantOp::create(
        b, l, type,
        DenseElementsAttr::get(type, b.getFloatAttr(elementType, value)));
  }
  Value add(Value x, Value y, Location l) {
    return arith::AddFOp::create(b, l, x, y);
  }
  Value mean(ArrayRef<Value> values, Location l) {
    if (values.empty())
      return scalar(0.0, l);
    Value sum = values.front();
    for (Value v : values.drop_front())
      sum = add(sum, v, l);
    return arith::MulFOp::create(b, l, sum, scalar(1.0 / values.size(), l));
  }

  ArrayAttr groupsAttr(ArrayRef<ExpertGroupConfig> groups);
  Value norm(StringRef name, Value x, Value modality);
  Value attention(const LayerConfig &layer, Value x, Value modality,
                  Value positions);
  Value denseFfn(const LayerConfig &layer, Value x, Value modality);
  Value moe(const LayerConfig &layer, Value x, Value modality, Value residual,
            LossParts &parts);
  Value block(const LayerConfig &layer, Value x, Value modality,
              Value positions, LossParts &parts);
  llvm::Expected<Value> layer(const LayerConfig &layer, Value h, Value modality,
                              LossParts &parts);

  MLIRContext &ctx;
  const ModelConfig &config;
  const BuildOptions &options;
  OpBuilder b;
  Location fileLoc;
  Type elementType;
  llvm::StringMap<Value> weights;
};

ArrayAttr ModelIRBuilder::groupsAttr(ArrayRef<ExpertGroupConfig> groups) {
  SmallVector<Attribute> attrs;
  for (const ExpertGroupConfig &g : groups) {
    bool tc = g.routing == ExpertGroupConfig::Routing::TokenChoice;
    attrs.push_back(ExpertGroupAttr::get(
        &ctx, g.modalities, g.experts,
        tc ? RoutingKind::token_choice : RoutingKind::expert_choice,
        tc ? g.topK : 0, llvm::APFloat(tc ? 0.0 : g.capacityFactor),
        g.score == ExpertGroupConfig::Score::Softmax ? ScoreFunction::softmax
                                                     : ScoreFunction::sigmoid,
        g.renormalize));
  }
  return b.getArrayAttr(attrs);
}

Value ModelIRBuilder::norm(StringRef name, Value x, Value modality) {
  Location l = loc(name);
  NormKind kind = config.norm.kind == NormConfig::Kind::RMS ? NormKind::rms
                                                            : NormKind::layer;
  return NormOp::create(
      b, l, kind, x, weight(name + ".weight"), optionalWeight(name + ".bias"),
      config.untie.norms ? modality : Value(), llvm::APFloat(config.norm.eps));
}

Value ModelIRBuilder::attention(const LayerConfig &layer, Value x,
                                Value modality, Value positions) {
  std::string p = "layers." + std::to_string(layer.index) + ".attn";
  const moma::AttentionConfig &a = layer.attention;
  return AttentionOp::create(
      b, loc(p), x, weight(p + ".wq"), weight(p + ".wk"), weight(p + ".wv"),
      weight(p + ".wo"), positions, config.untie.attention ? modality : Value(),
      a.heads, a.kvHeads, a.headDim, llvm::APFloat(a.ropeTheta), a.causal);
}

Value ModelIRBuilder::denseFfn(const LayerConfig &layer, Value x,
                               Value modality) {
  std::string p = "layers." + std::to_string(layer.index) + ".ffn";
  Activation act = layer.ffn.activation == FfnConfig::Activation::SwiGLU
                       ? Activation::swiglu
                       : Activation::gelu;
  return FfnOp::create(b, loc(p), act, x, weight(p + ".w_in"),
                       weight(p + ".w_out"),
                       config.untie.ffn ? modality : Value());
}

Value ModelIRBuilder::moe(const LayerConfig &layer, Value x, Value modality,
                          Value residual, LossParts &parts) {
  const FfnConfig &f = layer.ffn;
  std::string p = "layers." + std::to_string(layer.index) + ".moe";
  auto xType = cast<RankedTensorType>(x.getType());
  int64_t batch = xType.getDimSize(0), seq = xType.getDimSize(1);
  ArrayAttr groups = groupsAttr(f.groups);
  SmallVector<ExpertGroupAttr> groupList = getExpertGroups(groups);
  int64_t maxExperts = getMaxExperts(groupList);

  SmallVector<Value> routerWeights;
  for (const ExpertGroupConfig &g : f.groups)
    routerWeights.push_back(weight(p + ".router." + g.name));
  Value logits =
      RouterOp::create(b, loc(p + ".router"), floats({batch, seq, maxExperts}),
                       x, modality, routerWeights, groups);

  // One auxiliary router per expert-choice group, reading the residual
  // stream through a stop-gradient.
  SmallVector<ExpertGroupConfig> ecGroups;
  for (const ExpertGroupConfig &g : f.groups)
    if (g.routing == ExpertGroupConfig::Routing::ExpertChoice)
      ecGroups.push_back(g);
  Value aux;
  if (config.auxRouters.enabled && !ecGroups.empty()) {
    Location al = loc(p + ".aux");
    SmallVector<Value> auxWeights;
    for (const ExpertGroupConfig &g : ecGroups) {
      auxWeights.push_back(weight(p + ".aux." + g.name + ".w1"));
      auxWeights.push_back(weight(p + ".aux." + g.name + ".w2"));
    }
    Value detached = StopGradientOp::create(b, al, x);
    aux = AuxRouterOp::create(b, al, floats({batch, seq, maxExperts}), detached,
                              auxWeights, modality, groupsAttr(ecGroups));
  }
  bool byAux = aux && options.routing == BuildOptions::Routing::Aux;
  int64_t slots =
      RouteOp::getRequiredSlots(groupList, batch * seq, /*withAux=*/byAux);
  auto route =
      RouteOp::create(b, loc(p + ".route"), ints({slots}), floats({slots}),
                      ints({getTotalExperts(groupList) + 1}), logits, modality,
                      byAux ? aux : Value(), /*positions=*/Value(), groups);
  Value tokens = DispatchOp::create(b, loc(p + ".dispatch"),
                                    floats({slots, xType.getDimSize(2)}), x,
                                    route.getSlotToken());
  SmallVector<Value> lora;
  if (f.loraRank > 0)
    for (StringRef name :
         {".w_in_lora_a", ".w_in_lora_b", ".w_out_lora_a", ".w_out_lora_b"})
      lora.push_back(weight(p + name));
  Activation act = f.activation == FfnConfig::Activation::SwiGLU
                       ? Activation::swiglu
                       : Activation::gelu;
  double loraScale = f.loraRank > 0 ? f.loraAlpha / f.loraRank : 1.0;
  Value outputs =
      ExpertsOp::create(b, loc(p + ".experts"), act, tokens,
                        route.getExpertOffsets(), weight(p + ".w_in"),
                        weight(p + ".w_out"), lora, llvm::APFloat(loraScale));
  Value out =
      CombineOp::create(b, loc(p + ".combine"), xType, outputs,
                        route.getSlotToken(), route.getSlotGate(), residual);

  Location lossLoc = loc(p + ".loss");
  auto scalarType = floats({});
  if (llvm::any_of(f.groups, [](const ExpertGroupConfig &g) {
        return g.routing == ExpertGroupConfig::Routing::TokenChoice;
      }))
    parts.loadBalancing.push_back(
        LoadBalancingLossOp::create(b, lossLoc, scalarType, logits, modality,
                                    route.getExpertOffsets(), groups));
  parts.routerZ.push_back(
      RouterZLossOp::create(b, lossLoc, scalarType, logits, modality, groups));
  if (aux) {
    Value target = RouteMaskOp::create(
        b, lossLoc, floats({batch, seq, maxExperts}), route.getSlotToken(),
        route.getExpertOffsets(), modality, groups);
    parts.auxRouter.push_back(
        AuxRouterLossOp::create(b, lossLoc, scalarType, aux, target));
  }
  return out;
}

Value ModelIRBuilder::block(const LayerConfig &layer, Value x, Value modality,
                            Value positions, LossParts &parts) {
  std::string p = "layers." + std::to_string(layer.index);
  Location l = loc(p);
  bool isMoe = layer.ffn.kind == FfnConfig::Kind::MoE;
  if (config.norm.placement == NormConfig::Placement::Pre) {
    Value a = add(x,
                  attention(layer, norm(p + ".attn_norm", x, modality),
                            modality, positions),
                  l);
    Value h = norm(p + ".ffn_norm", a, modality);
    if (isMoe)
      return moe(layer, h, modality, /*residual=*/a, parts);
    return add(a, denseFfn(layer, h, modality), l);
  }
  Value a = add(x,
                norm(p + ".attn_norm", attention(layer, x, modality, positions),
                     modality),
                l);
  Value f = isMoe ? moe(layer, a, modality, Value(), parts)
                  : denseFfn(layer, a, modality);
  return add(a, norm(p + ".ffn_norm", f, modality), l);
}

llvm::Expected<Value> ModelIRBuilder::layer(const LayerConfig &layer, Value h,
                                            Value modality, LossParts &parts) {
  if (!layer.mod)
    return block(layer, h, modality, /*positions=*/Value(), parts);
  std::string p = "layers." + std::to_string(layer.index) + ".mod";
  Location l = loc(p);
  auto hType = cast<RankedTensorType>(h.getType());
  int64_t batch = hType.getDimSize(0), seq = hType.getDimSize(1),
          width = hType.getDimSize(2);

  Value aux;
  if (config.auxRouters.enabled) {
    Value detached = StopGradientOp::create(b, l, h);
    aux = AuxRouterOp::create(
        b, l, floats({batch, seq, 1}), detached,
        ValueRange{weight(p + ".aux.w1"), weight(p + ".aux.w2")}, Value(),
        ArrayAttr());
  }
  bool byAux = aux && options.routing == BuildOptions::Routing::Aux;
  int64_t kept = byAux ? seq
                       : static_cast<int64_t>(std::floor(
                             static_cast<double>(seq) * config.mod.capacity));
  if (kept < 1)
    return llvm::createStringError("layers[" + std::to_string(layer.index) +
                                   "]: mod.capacity " +
                                   std::to_string(config.mod.capacity) +
                                   " keeps no token of a sequence of " +
                                   std::to_string(seq) + " (raise --seq-len)");
  auto route = DepthRouteOp::create(
      b, l, ints({batch, kept}), floats({batch, kept}), h,
      weight(p + ".router"), byAux ? aux : Value(),
      /*positions=*/Value(), llvm::APFloat(config.mod.capacity));
  // The block's auxiliary losses are computed inside the region and leave
  // it as extra results.
  Location bodyLoc = l;
  SmallVector<Type> resultTypes = {hType};
  LossParts inner;
  auto region = DepthRegionOp::create(
      b, l, TypeRange{hType}, h, modality, route.getIndices(),
      config.mod.gated ? route.getGate() : Value(),
      /*positions=*/Value());
  {
    OpBuilder::InsertionGuard guard(b);
    Block *body = b.createBlock(&region.getBody(), {},
                                {floats({batch, kept, width}),
                                 ints({batch, kept}), ints({batch, kept})},
                                {bodyLoc, bodyLoc, bodyLoc});
    Value out = block(layer, body->getArgument(0), body->getArgument(1),
                      body->getArgument(2), inner);
    SmallVector<Value> extras;
    for (ArrayRef<Value> list :
         {ArrayRef<Value>(inner.loadBalancing), ArrayRef<Value>(inner.routerZ),
          ArrayRef<Value>(inner.auxRouter)})
      extras.append(list.begin(), list.end());
    YieldOp::create(b, bodyLoc, out, extras);
  }
  size_t numExtras = inner.loadBalancing.size() + inner.routerZ.size() +
                     inner.auxRouter.size();
  if (numExtras) {
    // Rebuild the region with the extra results (their number is only known
    // once the body is built), moving the body over.
    resultTypes.append(numExtras, floats({}));
    auto withExtras = DepthRegionOp::create(
        b, l, TypeRange(resultTypes), h, modality, route.getIndices(),
        config.mod.gated ? route.getGate() : Value(),
        /*positions=*/Value());
    withExtras.getBody().takeBody(region.getBody());
    region.erase();
    region = withExtras;
  }
  unsigned next = 1;
  for (SmallVector<Value> *list :
       {&parts.loadBalancing, &parts.routerZ, &parts.auxRouter}) {
    size_t count = list == &parts.loadBalancing ? inner.loadBalancing.size()
                   : list == &parts.routerZ     ? inner.routerZ.size()
                                                : inner.auxRouter.size();
    for (size_t i = 0; i < count; ++i)
      list->push_back(region->getResult(next++));
  }
  if (aux) {
    Value target =
        DepthMaskOp::create(b, l, floats({batch, seq, 1}), route.getIndices());
    parts.auxRouter.push_back(
        AuxRouterLossOp::create(b, l, floats({}), aux, target));
  }
  return region->getResult(0);
}

llvm::Expected<OwningOpRef<ModuleOp>> ModelIRBuilder::build() {
  if (options.batch < 1 || options.seqLen < 1)
    return llvm::createStringError("batch and sequence length must be >= 1");
  if (options.routing == BuildOptions::Routing::Aux &&
      !config.auxRouters.enabled)
    return llvm::createStringError(
        "routing by auxiliary routers needs aux_routers.enabled in the model");
  const DType dtype = config.dtype;
  elementType = dtype == DType::F32    ? Type(b.getF32Type())
                : dtype == DType::F64  ? Type(b.getF64Type())
                : dtype == DType::BF16 ? Type(b.getBF16Type())
                : dtype == DType::F16  ? Type(b.getF16Type())
                                       : Type();
  if (!elementType)
    return llvm::createStringError("unsupported model dtype " +
                                   std::string(runtime::dtypeName(dtype)));

  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc, config.name);
  SmallVector<Attribute> modalities;
  for (auto [index, m] : llvm::enumerate(config.modalities))
    modalities.push_back(ModalityAttr::get(&ctx, index, b.getStringAttr(m.name),
                                           m.begin, m.end));
  (*module)->setAttr(MomaDialect::getModalitiesAttrName(),
                     b.getArrayAttr(modalities));

  int64_t batch = options.batch, seq = options.seqLen;
  int64_t numModalities = config.modalities.size();
  std::vector<moma::WeightSpec> specs = moma::listWeights(config);
  SmallVector<Type> argTypes(4, ints({batch, seq}));
  for (const moma::WeightSpec &spec : specs)
    argTypes.push_back(floats(spec.shape));
  Type logitsType = floats({batch, seq, config.vocabSize});
  SmallVector<Type> resultTypes;
  SmallVector<StringRef> outputs;
  if (options.logitsOutput) {
    resultTypes.push_back(logitsType);
    outputs.push_back("logits");
  }
  resultTypes.push_back(floats({numModalities}));
  resultTypes.append(5, floats({}));
  outputs.append({"ce_per_modality", "ce", "load_balancing", "router_z",
                  "aux_router", "total"});
  b.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(b, fileLoc, "forward",
                                   b.getFunctionType(argTypes, resultTypes));
  StringRef inputs[] = {"ids", "modality", "targets", "target_modality"};
  for (unsigned i = 0; i < 4; ++i)
    func.setArgAttr(i, "moma.input", b.getStringAttr(inputs[i]));
  for (auto [i, spec] : llvm::enumerate(specs))
    func.setArgAttr(4 + i, "moma.weight", b.getStringAttr(spec.name));
  for (unsigned i = 0; i < resultTypes.size(); ++i)
    func.setResultAttr(i, "moma.output", b.getStringAttr(outputs[i]));

  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  for (auto [i, spec] : llvm::enumerate(specs))
    weights[spec.name] = entry->getArgument(4 + i);
  Value ids = entry->getArgument(0), modality = entry->getArgument(1);
  Value targets = entry->getArgument(2), targetModality = entry->getArgument(3);

  LossParts parts;
  Value h =
      EmbedOp::create(b, loc("embed"), floats({batch, seq, config.dModel}), ids,
                      weight("embed.weight"), Value());
  for (const LayerConfig &layerConfig : config.layers) {
    llvm::Expected<Value> next = layer(layerConfig, h, modality, parts);
    if (!next)
      return next.takeError();
    h = *next;
  }
  if (config.norm.final)
    h = norm("final_norm", h, modality);
  Location headLoc = loc("lm_head");
  Value head;
  if (config.tieEmbeddings) {
    Value table = weight("embed.weight");
    Value init = tensor::EmptyOp::create(
        b, headLoc, ArrayRef<int64_t>{config.dModel, config.vocabSize},
        elementType);
    head = linalg::TransposeOp::create(b, headLoc, table, init,
                                       ArrayRef<int64_t>{1, 0})
               .getResult()
               .front();
  } else {
    head = weight("lm_head.weight");
  }
  Value logits =
      LinearOp::create(b, headLoc, logitsType, h, head, Value(), Value(),
                       Value(), Value(), llvm::APFloat(1.0));
  Location lossLoc = loc("loss");
  auto ce = CrossEntropyOp::create(b, lossLoc, floats({numModalities}),
                                   floats({}), logits, targets, targetModality);
  Value lb = mean(parts.loadBalancing, lossLoc);
  Value z = mean(parts.routerZ, lossLoc);
  Value aux = mean(parts.auxRouter, lossLoc);
  Value total = ce.getTotal();
  auto weighted = [&](Value term, double w) {
    if (w != 0.0)
      total = add(total,
                  arith::MulFOp::create(b, lossLoc, term, scalar(w, lossLoc)),
                  lossLoc);
  };
  weighted(lb, config.loss.loadBalancing);
  weighted(z, config.loss.routerZ);
  weighted(aux, config.loss.auxRouter);
  SmallVector<Value> results;
  if (options.logitsOutput)
    results.push_back(logits);
  results.append({ce.getPerModality(), ce.getTotal(), lb, z, aux, total});
  func::ReturnOp::create(b, fileLoc, results);

  // The builder must only ever produce valid IR; report the verifier's
  // diagnostics as an error if it did not.
  std::string diagnostics;
  {
    ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
      llvm::raw_string_ostream os(diagnostics);
      os << diag.getLocation() << ": " << diag << "\n";
      return success();
    });
    if (failed(verify(*module)))
      return llvm::createStringError("internal error: the IR built for '" +
                                     config.name + "' does not verify:\n" +
                                     diagnostics);
  }
  return module;
}
} // namespace

namespace moma {
llvm::Expected<OwningOpRef<ModuleOp>>
buildModelModule(MLIRContext &context, const ModelConfig &config,
                 const BuildOptions &options) {
  DialectRegistry registry;
  registerModelBuilderDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
  return ModelIRBuilder(context, config, options).build();
}
} // namespace moma
