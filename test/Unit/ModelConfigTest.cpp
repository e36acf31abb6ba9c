//===- ModelConfigTest.cpp - Defaults and effective layers
//------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/ModelConfigTestUtil.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace moma;
using namespace moma::configtest;

namespace {

//===----------------------------------------------------------------------===//
// Defaults
//===----------------------------------------------------------------------===//

TEST(ModelConfigTest, Defaults) {
  ModelConfig c = parseOk(model());
  EXPECT_EQ(c.name, "m");
  EXPECT_EQ(c.source, "");
  EXPECT_EQ(c.description, "");
  EXPECT_EQ(c.vocabSize, 128);
  ASSERT_EQ(c.modalities.size(), 2u);
  EXPECT_EQ(c.modalities[1].name, "image");
  EXPECT_EQ(c.modalities[1].begin, 64);
  EXPECT_EQ(c.modalities[1].end, 128);
  EXPECT_EQ(c.dModel, 32);
  EXPECT_EQ(c.numLayers, 4);
  EXPECT_EQ(c.norm.kind, NormConfig::Kind::RMS);
  EXPECT_EQ(c.norm.eps, 1e-5);
  EXPECT_EQ(c.norm.placement, NormConfig::Placement::Pre);
  EXPECT_FALSE(c.norm.bias);
  EXPECT_TRUE(c.norm.final);
  EXPECT_FALSE(c.untie.attention || c.untie.ffn || c.untie.norms);
  EXPECT_EQ(c.mod.capacity, 0.25);
  EXPECT_TRUE(c.mod.gated);
  EXPECT_FALSE(c.auxRouters.enabled);
  EXPECT_EQ(c.auxRouters.hidden, 16);
  EXPECT_EQ(c.loss.loadBalancing, 0.0);
  EXPECT_EQ(c.loss.routerZ, 0.0);
  EXPECT_EQ(c.loss.auxRouter, 1.0);
  EXPECT_EQ(c.dtype, DType::F32);
  EXPECT_FALSE(c.tieEmbeddings);
  EXPECT_EQ(c.initStd, 0.02);
  ASSERT_EQ(c.layers.size(), 4u);
  for (int64_t i = 0; i < 4; ++i) {
    const LayerConfig &l = c.layers[i];
    EXPECT_EQ(l.index, i);
    EXPECT_FALSE(l.mod);
    EXPECT_EQ(l.attention.heads, 4);
    EXPECT_EQ(l.attention.kvHeads, 4);
    EXPECT_EQ(l.attention.headDim, 8);
    EXPECT_EQ(l.attention.ropeTheta, 10000.0);
    EXPECT_TRUE(l.attention.causal);
    EXPECT_EQ(l.ffn.kind, FfnConfig::Kind::Dense);
    EXPECT_EQ(l.ffn.hidden, 64);
    EXPECT_EQ(l.ffn.activation, FfnConfig::Activation::SwiGLU);
    EXPECT_EQ(l.ffn.inColumns(), 128);
    EXPECT_TRUE(l.ffn.groups.empty());
  }
}

TEST(ModelConfigTest, DependentDefaults) {
  // Layer norm has a bias by default; aux_routers.hidden is max(1, D / 2).
  ModelConfig c = parseOk(R"({"vocab_size": 8, "modalities": [{"name": "t", )"
                          R"("tokens": [0, 8]}], "d_model": 1, "num_layers": )"
                          R"(1, "norm": {"kind": "layer"}, "layer": )"
                          R"({"attention": {"heads": 1, "rope_theta": 0}, )"
                          R"("ffn": {"kind": "dense", "hidden": 2, )"
                          R"("activation": "gelu"}}})");
  EXPECT_EQ(c.norm.kind, NormConfig::Kind::Layer);
  EXPECT_TRUE(c.norm.bias);
  EXPECT_EQ(c.auxRouters.hidden, 1);
  EXPECT_EQ(c.layers[0].attention.headDim, 1);
  EXPECT_EQ(c.layers[0].ffn.inColumns(), 2);

  // Expert groups: names, scores, capacity and top-k; LoRA alpha = rank.
  ModelConfig m = parseOk(model(
      moeLayer(R"([{"modality": "image", "experts": 4, "routing": )"
               R"("expert_choice"}, {"modalities": ["text"], "experts": 3, )"
               R"("routing": "token_choice"}])",
               R"(, "lora": {"rank": 2})")));
  const FfnConfig &f = m.layers[0].ffn;
  EXPECT_EQ(f.kind, FfnConfig::Kind::MoE);
  ASSERT_EQ(f.groups.size(), 2u);
  EXPECT_EQ(f.groups[0].name, "image");
  EXPECT_EQ(f.groups[0].modalities, (llvm::SmallVector<int64_t, 2>{1}));
  EXPECT_EQ(f.groups[0].routing, ExpertGroupConfig::Routing::ExpertChoice);
  EXPECT_EQ(f.groups[0].capacityFactor, 1.0);
  EXPECT_EQ(f.groups[0].topK, 0);
  EXPECT_EQ(f.groups[0].score, ExpertGroupConfig::Score::Sigmoid);
  EXPECT_FALSE(f.groups[0].renormalize);
  EXPECT_EQ(f.groups[1].name, "text");
  EXPECT_EQ(f.groups[1].routing, ExpertGroupConfig::Routing::TokenChoice);
  EXPECT_EQ(f.groups[1].topK, 1);
  EXPECT_EQ(f.groups[1].capacityFactor, 0.0);
  EXPECT_EQ(f.groups[1].score, ExpertGroupConfig::Score::Softmax);
  EXPECT_EQ(f.totalExperts(), 7);
  EXPECT_EQ(f.loraRank, 2);
  EXPECT_EQ(f.loraAlpha, 2.0);
}

TEST(ModelConfigTest, DefaultName) {
  EXPECT_EQ(parseOk(model(), "dir/sub/my-model.json").name, "my-model");
  EXPECT_EQ(parseOk(model(), "notes.txt").name, "notes.txt");
  EXPECT_EQ(parseOk(model(), "").name, "model");
  EXPECT_EQ(parseOk(model(kDenseLayer, R"(, "name": "given")")).name, "given");
}

//===----------------------------------------------------------------------===//
// Effective layers
//===----------------------------------------------------------------------===//

TEST(ModelConfigTest, EffectiveLayers) {
  // `layer`: MoE with two groups. Override 0 (layers 2 and 0) makes them
  // dense (null deletes the inherited groups). Override 1 (layer 3) replaces
  // the group list wholesale and changes one attention field. Override 2
  // (every layer, applied last) sets kv_heads. MoD on layers 0 and 2.
  std::string text = model(
      moeLayer(R"([{"modality": "text", "experts": 4, "routing": )"
               R"("expert_choice"}, {"modality": "image", "experts": 2, )"
               R"("routing": "expert_choice"}])"),
      R"(, "mod": {"layers": {"start": 0, "step": 2}}, "layer_overrides": [)"
      R"({"layers": [2, 0], "ffn": {"kind": "dense", "hidden": 48, )"
      R"("groups": null}}, {"layers": {"start": 3}, "attention": )"
      R"({"rope_theta": 0}, "ffn": {"groups": [{"modality": "image", )"
      R"("experts": 3, "routing": "token_choice", "top_k": 2}]}}, )"
      R"({"layers": {}, "attention": {"kv_heads": 2}}])");
  ModelConfig c = parseOk(text);
  ASSERT_EQ(c.layers.size(), 4u);
  const std::vector<LayerConfig> &l = c.layers;
  EXPECT_TRUE(l[0].mod);
  EXPECT_FALSE(l[1].mod);
  EXPECT_TRUE(l[2].mod);
  EXPECT_FALSE(l[3].mod);
  for (const LayerConfig &layer : l)
    EXPECT_EQ(layer.attention.kvHeads, 2);
  for (int i : {0, 2}) {
    EXPECT_EQ(l[i].ffn.kind, FfnConfig::Kind::Dense);
    EXPECT_EQ(l[i].ffn.hidden, 48);
    EXPECT_TRUE(l[i].ffn.groups.empty());
  }
  EXPECT_EQ(l[1].ffn.kind, FfnConfig::Kind::MoE);
  EXPECT_EQ(l[1].ffn.hidden, 16);
  ASSERT_EQ(l[1].ffn.groups.size(), 2u);
  EXPECT_EQ(l[1].ffn.totalExperts(), 6);
  EXPECT_EQ(l[1].attention.ropeTheta, 10000.0);

  EXPECT_EQ(l[3].ffn.kind, FfnConfig::Kind::MoE);
  ASSERT_EQ(l[3].ffn.groups.size(), 1u);
  EXPECT_EQ(l[3].ffn.groups[0].name, "image");
  EXPECT_EQ(l[3].ffn.groups[0].experts, 3);
  EXPECT_EQ(l[3].ffn.groups[0].topK, 2);
  EXPECT_EQ(l[3].ffn.totalExperts(), 3);
  EXPECT_EQ(l[3].attention.ropeTheta, 0.0);
}

TEST(ModelConfigTest, OverrideOrderAndProvenance) {
  // Layer 2 is made dense by override 0 and gets `groups` back from
  // override 1: the effective dense ffn has a key it may not have.
  std::string text = model(
      moeLayer(R"([{"modality": "text", "experts": 4, "routing": )"
               R"("expert_choice"}])"),
      R"(, "layer_overrides": [{"layers": [2], "ffn": {"kind": "dense", )"
      R"("groups": null}}, {"layers": {"start": 2}, "ffn": {"groups": []}}])");
  EXPECT_EQ(parseError(text),
            "m.json: layers[2].ffn.groups: unknown key (expected one of: "
            "kind, hidden, activation) (value from "
            "layer_overrides[1].ffn.groups)");

  // The same overrides in the other order: the null wins.
  std::string swapped = model(
      moeLayer(R"([{"modality": "text", "experts": 4, "routing": )"
               R"("expert_choice"}])"),
      R"(, "layer_overrides": [{"layers": {"start": 2}, "ffn": {"groups": )"
      R"([]}}, {"layers": [2], "ffn": {"kind": "dense", "groups": null}}])");
  EXPECT_EQ(parseError(swapped),
            "m.json: layers[3].ffn.groups: must have at least 1 entry (value "
            "from layer_overrides[0].ffn.groups)");

  // A value written in `layer` is reported with its place in `layer`.
  EXPECT_EQ(
      parseError(model(R"({"attention": {"heads": 4, "kv_heads": 3}, "ffn": )"
                       R"({"kind": "dense", "hidden": 64}})")),
      "m.json: layers[0].attention.kv_heads: must divide heads (4) "
      "(value from layer.attention.kv_heads)");
  // An override that replaces a list reports the override's place.
  EXPECT_EQ(
      parseError(model(
          moeLayer(R"([{"modality": "text", "experts": 4, "routing": )"
                   R"("expert_choice"}, {"modality": "image", "experts": 4, )"
                   R"("routing": "expert_choice"}])"),
          R"(, "layer_overrides": [{"layers": [3], "ffn": {"groups": [)"
          R"({"modality": "text", "experts": 4, "routing": "expert_choice"},)"
          R"( {"modality": "image", "experts": 0, "routing": )"
          R"("expert_choice"}]}}])")),
      "m.json: layers[3].ffn.groups[1].experts: must be >= 1 (value from "
      "layer_overrides[0].ffn.groups[1].experts)");
}

TEST(ModelConfigTest, ExpandedJson) {
  ModelConfig c = parseOk(
      model(moeLayer(R"([{"modality": "text", "experts": 2, "routing": )"
                     R"("token_choice", "top_k": 2}])"),
            R"(, "mod": {"layers": [3, 1]})"));
  llvm::json::Value v = c.toExpandedJson();
  const llvm::json::Object *o = v.getAsObject();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->getString("format"), "moma-model/1");
  EXPECT_EQ(o->getString("name"), "m");
  EXPECT_EQ(o->getInteger("vocab_size"), 128);
  EXPECT_EQ(*o->getObject("norm")->getNumber("eps"), 1e-5);
  EXPECT_EQ(*o->getObject("aux_routers")->getInteger("hidden"), 16);
  const llvm::json::Array *modLayers = o->getObject("mod")->getArray("layers");
  ASSERT_TRUE(modLayers);
  EXPECT_EQ(*modLayers, (llvm::json::Array{1, 3}));
  const llvm::json::Array *layers = o->getArray("layers");
  ASSERT_TRUE(layers);
  ASSERT_EQ(layers->size(), 4u);
  const llvm::json::Object *l1 = (*layers)[1].getAsObject();
  EXPECT_EQ(l1->getInteger("index"), 1);
  EXPECT_EQ(l1->getBoolean("mod"), true);
  const llvm::json::Object *ffn = l1->getObject("ffn");
  const llvm::json::Object *group = (*ffn->getArray("groups"))[0].getAsObject();
  EXPECT_EQ(group->getString("name"), "text");
  EXPECT_EQ(*group->getArray("modalities"), (llvm::json::Array{"text"}));
  EXPECT_EQ(group->getInteger("top_k"), 2);
  EXPECT_FALSE(group->get("capacity_factor"));
  EXPECT_EQ(group->getString("score"), "softmax");
  EXPECT_EQ(*ffn->getObject("lora"),
            (llvm::json::Object{{"rank", 0}, {"alpha", 0.0}}));
}

TEST(ModelConfigTest, LoadFile) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moma-config", dir));
  llvm::SmallString<128> path(dir);
  llvm::sys::path::append(path, "tiny.json");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    ASSERT_FALSE(ec);
    os << model();
  }
  llvm::Expected<ModelConfig> config = loadModelConfig(path);
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->name, "tiny");

  llvm::SmallString<128> missing(dir);
  llvm::sys::path::append(missing, "missing.json");
  llvm::Expected<ModelConfig> none = loadModelConfig(missing);
  ASSERT_FALSE(static_cast<bool>(none));
  EXPECT_EQ(llvm::toString(none.takeError()),
            std::string(missing) +
                ": cannot read file: No such file or directory");
  llvm::sys::fs::remove(path);
  llvm::sys::fs::remove(dir);
}

} // namespace
