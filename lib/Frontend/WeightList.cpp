//===- WeightList.cpp - The weights of a model ----------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// listWeights: every tensor of a model in the canonical order of
/// examples/README.md, "Weights" (the reference's weights.weight_specs), with
/// overflow-checked shapes.
///
//===----------------------------------------------------------------------===//

#include "lib/Frontend/WeightList.h"

#include "llvm/Support/MathExtras.h"

using namespace moma;

namespace {
/// Builds the weight list of weights.weight_specs. Sizes are computed with
/// overflow checks; `oversized` names the first tensor with a dimension or an
/// element count beyond int64 (its shape is then meaningless).
struct WeightListBuilder {
  std::vector<WeightSpec> specs;
  std::optional<std::string> oversized;
  bool overflow = false;

  int64_t mul(int64_t a, int64_t b) {
    int64_t result;
    if (llvm::MulOverflow(a, b, result))
      overflow = true;
    return result;
  }
  int64_t add(int64_t a, int64_t b) {
    int64_t result;
    if (llvm::AddOverflow(a, b, result))
      overflow = true;
    return result;
  }
  void push(std::string name, llvm::SmallVector<int64_t, 4> shape,
            WeightInit init) {
    int64_t elements = 1;
    for (int64_t dim : shape)
      elements = mul(elements, dim);
    if (overflow && !oversized)
      oversized = name;
    overflow = false;
    specs.push_back(WeightSpec{std::move(name), std::move(shape), init});
  }
};
} // namespace

static WeightListBuilder buildWeights(const ModelConfig &cfg) {
  WeightListBuilder b;
  const int64_t d = cfg.dModel, v = cfg.vocabSize;
  const int64_t m = static_cast<int64_t>(cfg.modalities.size());
  auto untied = [&](bool flag, llvm::SmallVector<int64_t, 4> shape) {
    if (flag)
      shape.insert(shape.begin(), m);
    return shape;
  };
  auto norm = [&](const std::string &prefix) {
    b.push(prefix + ".weight", untied(cfg.untie.norms, {d}), WeightInit::Ones);
    if (cfg.norm.bias)
      b.push(prefix + ".bias", untied(cfg.untie.norms, {d}), WeightInit::Zeros);
  };
  auto aux = [&](const std::string &prefix, int64_t outputs) {
    const int64_t h = cfg.auxRouters.hidden;
    b.push(prefix + ".w1", {d, h}, WeightInit::Normal);
    b.push(prefix + ".w2", {h, outputs}, WeightInit::Normal);
  };

  b.push("embed.weight", {v, d}, WeightInit::Normal);
  for (const LayerConfig &layer : cfg.layers) {
    const std::string p = "layers." + std::to_string(layer.index);
    if (layer.mod) {
      b.push(p + ".mod.router", {d, 1}, WeightInit::Normal);
      if (cfg.auxRouters.enabled)
        aux(p + ".mod.aux", 1);
    }
    const AttentionConfig &a = layer.attention;
    const bool ua = cfg.untie.attention;
    norm(p + ".attn_norm");
    b.push(p + ".attn.wq", untied(ua, {d, b.mul(a.heads, a.headDim)}),
           WeightInit::Normal);
    b.push(p + ".attn.wk", untied(ua, {d, b.mul(a.kvHeads, a.headDim)}),
           WeightInit::Normal);
    b.push(p + ".attn.wv", untied(ua, {d, b.mul(a.kvHeads, a.headDim)}),
           WeightInit::Normal);
    b.push(p + ".attn.wo", untied(ua, {b.mul(a.heads, a.headDim), d}),
           WeightInit::Normal);
    norm(p + ".ffn_norm");
    const FfnConfig &f = layer.ffn;
    const int64_t hidden = f.hidden;
    const int64_t columns = f.activation == FfnConfig::Activation::SwiGLU
                                ? b.mul(2, hidden)
                                : hidden;
    if (f.kind == FfnConfig::Kind::Dense) {
      b.push(p + ".ffn.w_in", untied(cfg.untie.ffn, {d, columns}),
             WeightInit::Normal);
      b.push(p + ".ffn.w_out", untied(cfg.untie.ffn, {hidden, d}),
             WeightInit::Normal);
      continue;
    }
    int64_t experts = 0;
    for (const ExpertGroupConfig &g : f.groups)
      experts = b.add(experts, g.experts);
    // A sum that overflowed poisons every MoE tensor of the layer.
    const bool expertsOverflow = b.overflow;
    b.overflow = false;
    for (const ExpertGroupConfig &g : f.groups)
      b.push(p + ".moe.router." + g.name, {d, g.experts}, WeightInit::Normal);
    auto moe = [&](const std::string &name, llvm::SmallVector<int64_t, 4> shape,
                   WeightInit init) {
      b.overflow |= expertsOverflow;
      b.push(name, std::move(shape), init);
    };
    const int64_t r = f.loraRank;
    moe(p + ".moe.w_in", {experts, d, columns}, WeightInit::Normal);
    moe(p + ".moe.w_out", {experts, hidden, d}, WeightInit::Normal);
    if (r) {
      moe(p + ".moe.w_in_lora_a", {experts, d, r}, WeightInit::Normal);
      moe(p + ".moe.w_in_lora_b", {experts, r, columns}, WeightInit::Zeros);
      moe(p + ".moe.w_out_lora_a", {experts, hidden, r}, WeightInit::Normal);
      moe(p + ".moe.w_out_lora_b", {experts, r, d}, WeightInit::Zeros);
    }
    if (cfg.auxRouters.enabled)
      for (const ExpertGroupConfig &g : f.groups)
        if (g.routing == ExpertGroupConfig::Routing::ExpertChoice)
          aux(p + ".moe.aux." + g.name, g.experts);
  }
  if (cfg.norm.final)
    norm("final_norm");
  if (!cfg.tieEmbeddings)
    b.push("lm_head.weight", {d, v}, WeightInit::Normal);
  return b;
}

std::optional<std::string>
moma::findOversizedTensor(const ModelConfig &config) {
  return buildWeights(config).oversized;
}

std::vector<WeightSpec> moma::listWeights(const ModelConfig &config) {
  return buildWeights(config).specs;
}
