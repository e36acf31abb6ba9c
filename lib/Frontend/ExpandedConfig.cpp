//===- ExpandedConfig.cpp - The expanded form of a model definition -------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// ModelConfig::toExpandedJson, the `validate --expand` form that the
/// reference prints too (ModelConfig.to_json), and FfnConfig's derived
/// counts.
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelConfig.h"

using namespace moma;

int64_t FfnConfig::totalExperts() const {
  uint64_t total = 0; // Wraps instead of overflowing (parse rejects that).
  for (const ExpertGroupConfig &group : groups)
    total += static_cast<uint64_t>(group.experts);
  return static_cast<int64_t>(total);
}

llvm::json::Value ModelConfig::toExpandedJson() const {
  using llvm::json::Array;
  using llvm::json::Object;
  Array modalityList;
  for (const ModalityConfig &m : modalities)
    modalityList.push_back(
        Object{{"name", (m.name)}, {"tokens", Array{m.begin, m.end}}});
  Array modLayers, layerList;
  for (const LayerConfig &layer : layers) {
    if (layer.mod)
      modLayers.push_back(layer.index);
    const AttentionConfig &a = layer.attention;
    const FfnConfig &f = layer.ffn;
    Object ffn{{"kind", f.kind == FfnConfig::Kind::MoE ? "moe" : "dense"},
               {"hidden", f.hidden},
               {"activation", f.activation == FfnConfig::Activation::GELU
                                  ? "gelu"
                                  : "swiglu"}};
    if (f.kind == FfnConfig::Kind::MoE) {
      Array groupList;
      for (const ExpertGroupConfig &g : f.groups) {
        Array names;
        for (int64_t id : g.modalities)
          names.push_back((modalities[id].name));
        const bool ec = g.routing == ExpertGroupConfig::Routing::ExpertChoice;
        Object group{{"name", (g.name)},
                     {"modalities", std::move(names)},
                     {"experts", g.experts},
                     {"routing", ec ? "expert_choice" : "token_choice"}};
        if (ec)
          group["capacity_factor"] = g.capacityFactor;
        else
          group["top_k"] = g.topK;
        group["score"] = g.score == ExpertGroupConfig::Score::Softmax
                             ? "softmax"
                             : "sigmoid";
        group["renormalize"] = g.renormalize;
        groupList.push_back(std::move(group));
      }
      ffn["groups"] = std::move(groupList);
      ffn["lora"] = Object{{"rank", f.loraRank}, {"alpha", f.loraAlpha}};
    }
    layerList.push_back(Object{{"index", layer.index},
                               {"mod", layer.mod},
                               {"attention", Object{{"heads", a.heads},
                                                    {"kv_heads", a.kvHeads},
                                                    {"head_dim", a.headDim},
                                                    {"rope_theta", a.ropeTheta},
                                                    {"causal", a.causal}}},
                               {"ffn", std::move(ffn)}});
  }
  return Object{
      {"format", kModelFormat},
      {"name", (name)},
      {"source", (source)},
      {"description", (description)},
      {"vocab_size", vocabSize},
      {"modalities", std::move(modalityList)},
      {"d_model", dModel},
      {"num_layers", numLayers},
      {"norm",
       Object{{"kind", norm.kind == NormConfig::Kind::Layer ? "layer" : "rms"},
              {"eps", norm.eps},
              {"placement",
               norm.placement == NormConfig::Placement::Post ? "post" : "pre"},
              {"bias", norm.bias},
              {"final", norm.final}}},
      {"untie", Object{{"attention", untie.attention},
                       {"ffn", untie.ffn},
                       {"norms", untie.norms}}},
      {"mod", Object{{"layers", std::move(modLayers)},
                     {"capacity", mod.capacity},
                     {"gated", mod.gated}}},
      {"aux_routers",
       Object{{"enabled", auxRouters.enabled}, {"hidden", auxRouters.hidden}}},
      {"loss", Object{{"load_balancing", loss.loadBalancing},
                      {"router_z", loss.routerZ},
                      {"aux_router", loss.auxRouter}}},
      {"dtype", modelDTypeName(dtype)},
      {"tie_embeddings", tieEmbeddings},
      {"init_std", initStd},
      {"layers", std::move(layerList)}};
}
