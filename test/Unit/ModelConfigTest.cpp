//===- ModelConfigTest.cpp - Tests for the model-definition reader --------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelConfig.h"
#include "moma/Format/SafetensorsReader.h"
#include "moma/Frontend/Safetensors.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace moma;
using runtime::SafetensorsFile;
using TensorInfo = runtime::SafetensorsTensor;

namespace {

constexpr const char *kFile = "m.json";

constexpr llvm::StringLiteral kDenseLayer =
    R"({"attention": {"heads": 4}, "ffn": {"kind": "dense", "hidden": 64}})";

/// A 4-layer model over text [0, 64) and image [64, 128) with \p layer as
/// its `layer` and \p extra (`, "key": value...`) appended at the top level.
std::string model(llvm::StringRef layer = kDenseLayer,
                  llvm::StringRef extra = "") {
  return (R"({"vocab_size": 128, "modalities": [{"name": "text", "tokens": )"
          R"([0, 64]}, {"name": "image", "tokens": [64, 128]}], "d_model": )"
          R"(32, "num_layers": 4, "layer": )" +
          layer + extra + "}")
      .str();
}

/// An MoE layer with the given groups (a JSON list).
std::string moeLayer(llvm::StringRef groups, llvm::StringRef more = "") {
  return (R"({"attention": {"heads": 4}, "ffn": {"kind": "moe", "hidden": )"
          R"(16, "groups": )" +
          groups + more + "}}")
      .str();
}

ModelConfig parseOk(llvm::StringRef text, llvm::StringRef file = kFile) {
  llvm::Expected<ModelConfig> config = parseModelConfig(text, file);
  if (!config) {
    ADD_FAILURE() << "unexpected error: " << llvm::toString(config.takeError());
    return ModelConfig();
  }
  return std::move(*config);
}

std::string parseError(llvm::StringRef text, llvm::StringRef file = kFile) {
  llvm::Expected<ModelConfig> config = parseModelConfig(text, file);
  if (config) {
    ADD_FAILURE() << "expected an error for " << text.str();
    return "";
  }
  return llvm::toString(config.takeError());
}

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
  EXPECT_EQ(c.dtype, "f32");
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

//===----------------------------------------------------------------------===//
// Errors: every class of examples/README.md, "Validation errors"
//===----------------------------------------------------------------------===//

struct ErrorCase {
  std::string text;
  std::string message;
};

void checkErrors(const std::vector<ErrorCase> &cases) {
  for (const ErrorCase &c : cases)
    EXPECT_EQ(parseError(c.text), c.message) << "input: " << c.text;
}

std::string group(llvm::StringRef fields) {
  return moeLayer(("[{" + fields + "}]").str());
}

TEST(ModelConfigTest, ErrorsBoundsAndTypes) {
  checkErrors({
      {R"({"vocab_size": 0})", "m.json: vocab_size: must be >= 1"},
      {model(kDenseLayer, R"(, "mod": {"layers": {"start": 9}})"),
       "m.json: mod.layers.start: must be <= 4"},
      {model(kDenseLayer, R"(, "mod": {"layers": {"start": 3, "stop": 2}})"),
       "m.json: mod.layers.stop: must be >= 3"},
      {model(kDenseLayer, R"(, "init_std": 0)"),
       "m.json: init_std: must be > 0"},
      {model(kDenseLayer, R"(, "loss": {"router_z": -1})"),
       "m.json: loss.router_z: must be >= 0"},
      {model(kDenseLayer, R"(, "mod": {"layers": [], "capacity": 2})"),
       "m.json: mod.capacity: must be <= 1"},
      {R"({"vocab_size": 2.0})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": true})",
       "m.json: vocab_size: must be an integer, not a boolean"},
      {R"({"vocab_size": null})",
       "m.json: vocab_size: must be an integer, not null"},
      {R"({"name": 3})", "m.json: name: must be a string, not an integer"},
      {model(kDenseLayer, R"(, "tie_embeddings": 1)"),
       "m.json: tie_embeddings: must be true or false, not an integer"},
      {R"({"vocab_size": 8, "modalities": {}})",
       "m.json: modalities: must be a list, not an object"},
      {R"({"vocab_size": 8, "modalities": []})",
       "m.json: modalities: must have at least 1 entry"},
      {model(kDenseLayer, R"(, "norm": [])"),
       "m.json: norm: must be an object, not a list"},
      {model(kDenseLayer, R"(, "init_std": "x")"),
       "m.json: init_std: must be a number, not a string"},
      {model(kDenseLayer, R"(, "norm": {"kind": "x"})"),
       R"(m.json: norm.kind: must be one of rms | layer, not "x")"},
      {model(kDenseLayer, R"(, "dtype": "f8")"),
       R"(m.json: dtype: must be one of f32 | bf16 | f16 | f64, not "f8")"},
      {model(R"({"attention": {"heads": 4}, "ffn": {"kind": "dense", )"
             R"("hidden": 2.0}})"),
       "m.json: layers[0].ffn.hidden: must be an integer, not a number "
       "(value from layer.ffn.hidden)"},
      {R"({"d_model": 4})", "m.json: vocab_size: required"},
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, 8]}]})",
       "m.json: d_model: required"},
      {"[]", "m.json: must be an object, not a list"},
  });
  EXPECT_EQ(parseError("[]", ""), "must be an object, not a list");
}

TEST(ModelConfigTest, ErrorsUnknownKeys) {
  checkErrors({
      {R"({"vocab": 1, "vocab_size": 0})",
       "m.json: vocab: unknown key (expected one of: format, name, source, "
       "description, vocab_size, modalities, d_model, num_layers, norm, "
       "untie, mod, aux_routers, loss, dtype, tie_embeddings, init_std, "
       "layer, layer_overrides)"},
      {model(kDenseLayer, R"(, "untie": {"attn": true})"),
       "m.json: untie.attn: unknown key (expected one of: attention, ffn, "
       "norms)"},
      {model(R"({"attention": {"heads": 4, "head": 8}, "ffn": {}})"),
       "m.json: layers[0].attention.head: unknown key (expected one of: "
       "heads, kv_heads, head_dim, rope_theta, causal) (value from "
       "layer.attention.head)"},
      {model(R"({"attention": {"heads": 4}, "ffn": {"kind": "dense", )"
             R"("hidden": 8, "lora": {}}})"),
       "m.json: layers[0].ffn.lora: unknown key (expected one of: kind, "
       "hidden, activation) (value from layer.ffn.lora)"},
      {model(R"({"attention": {"heads": 4}, "odd key": 1, "ffn": {}})"),
       "m.json: layers[0][\"odd key\"]: unknown key (expected one of: "
       "attention, ffn) (value from layer[\"odd key\"])"},
      {model(kDenseLayer, R"(, "layer_overrides": [{"layers": [0], )"
                          R"("norm": {}}])"),
       "m.json: layer_overrides[0].norm: unknown key (expected one of: "
       "layers, attention, ffn)"},
      {model(kDenseLayer, R"(, "mod": {"layers": {"begin": 0}})"),
       "m.json: mod.layers.begin: unknown key (expected one of: start, stop, "
       "step)"},
  });
}

TEST(ModelConfigTest, ErrorsModalitiesAndNames) {
  auto modalities = [](llvm::StringRef list) {
    return (R"({"vocab_size": 128, "modalities": )" + list + "}").str();
  };
  checkErrors({
      {modalities(R"([{"name": "text", "tokens": [0, 200]}])"),
       "m.json: modalities[0].tokens: range [0, 200) must be non-empty and "
       "inside the vocabulary [0, 128)"},
      {modalities(R"([{"name": "text", "tokens": [5, 5]}])"),
       "m.json: modalities[0].tokens: range [5, 5) must be non-empty and "
       "inside the vocabulary [0, 128)"},
      {modalities(R"([{"name": "text", "tokens": [0, 1, 2]}])"),
       "m.json: modalities[0].tokens: must be [begin, end]: two integers, the "
       "half-open range of token ids"},
      {modalities(R"([{"name": "text", "tokens": [0, 64]}, {"name": )"
                  R"("image", "tokens": [60, 128]}])"),
       "m.json: modalities[1].tokens: range [60, 128) overlaps modalities[0] "
       "('text': [0, 64))"},
      {modalities(R"([{"name": "text", "tokens": [0, 64]}, {"name": )"
                  R"("text", "tokens": [64, 128]}])"),
       "m.json: modalities[1].name: duplicate modality name 'text' (also "
       "modalities[0])"},
      {modalities(R"([{"name": "1x", "tokens": [0, 64]}])"),
       "m.json: modalities[0].name: \"1x\" is not a valid name (letters, "
       "digits, '_'; not starting with a digit)"},
      {modalities(R"([{"name": "t\u00e9", "tokens": [0, 64]}])"),
       "m.json: modalities[0].name: \"t\\u00e9\" is not a valid name "
       "(letters, digits, '_'; not starting with a digit)"},
      {model(group(R"("modality": "text", "experts": 1, "routing": )"
                   R"("expert_choice"}, {"modality": "image", "name": )"
                   R"("text", "experts": 1, "routing": "expert_choice")")),
       "m.json: layers[0].ffn.groups[1].name: duplicate group name 'text' "
       "(value from layer.ffn.groups[1].name)"},
      {model(kDenseLayer, R"(, "format": "moma-model/2")"),
       "m.json: format: unsupported format 'moma-model/2' (this reader knows "
       "'moma-model/1')"},
  });
}

TEST(ModelConfigTest, ErrorsAttentionAndNorm) {
  auto attention = [](llvm::StringRef fields) {
    return model((R"({"attention": {)" + fields +
                  R"(}, "ffn": {"kind": "dense", "hidden": 8}})")
                     .str());
  };
  checkErrors({
      {attention(R"("heads": 4, "kv_heads": 3)"),
       "m.json: layers[0].attention.kv_heads: must divide heads (4) (value "
       "from layer.attention.kv_heads)"},
      {attention(R"("heads": 5)"),
       "m.json: layers[0].attention.head_dim: required because d_model (32) "
       "is not divisible by heads (5) (value from layer.attention.head_dim)"},
      {attention(R"("heads": 4, "head_dim": 7)"),
       "m.json: layers[0].attention.head_dim: must be even when rope_theta > "
       "0 (is 7) (value from layer.attention.head_dim)"},
      {attention(R"("heads": 4, "rope_theta": -1)"),
       "m.json: layers[0].attention.rope_theta: must be >= 0 (value from "
       "layer.attention.rope_theta)"},
      {model(R"({"ffn": {}})"),
       "m.json: layers[0].attention: required (value from layer.attention)"},
      {model(kDenseLayer, R"(, "norm": {"bias": true})"),
       "m.json: norm.bias: only layer norm has a bias (kind is \"rms\")"},
      {model(kDenseLayer, R"(, "layer": [])"),
       // A duplicate key: JSON errors come before everything else.
       "m.json: invalid JSON: duplicate key \"layer\" in an object"},
      {(R"({"vocab_size": 128, "modalities": [{"name": "text", "tokens": )"
        R"([0, 64]}], "d_model": 32, "num_layers": 4, "layer": []})"),
       "m.json: layer: must be an object"},
  });
}

TEST(ModelConfigTest, ErrorsGroups) {
  checkErrors({
      {model(group(R"("modality": "audio", "experts": 1, "routing": )"
                   R"("expert_choice")")),
       "m.json: layers[0].ffn.groups[0].modality: unknown modality 'audio' "
       "(modalities: text, image) (value from "
       "layer.ffn.groups[0].modality)"},
      {model(group(R"("modality": "text", "experts": 1, "routing": )"
                   R"("expert_choice"}, {"modalities": ["image", "text"], )"
                   R"("name": "both", "experts": 1, "routing": )"
                   R"("expert_choice")")),
       "m.json: layers[0].ffn.groups[1].modalities[1]: modality 'text' "
       "already has an expert group (groups[0]) (value from "
       "layer.ffn.groups[1].modalities[1])"},
      {model(group(R"("modality": "text", "experts": 2, "routing": )"
                   R"("token_choice", "top_k": 3)")),
       "m.json: layers[0].ffn.groups[0].top_k: must be <= 2 (value from "
       "layer.ffn.groups[0].top_k)"},
      {model(group(R"("modality": "text", "experts": 2, "routing": )"
                   R"("expert_choice", "capacity_factor": 3)")),
       "m.json: layers[0].ffn.groups[0].capacity_factor: must be <= 2 (value "
       "from layer.ffn.groups[0].capacity_factor)"},
      {model(group(R"("modality": "text", "experts": 2, "routing": )"
                   R"("expert_choice", "top_k": 1)")),
       "m.json: layers[0].ffn.groups[0].top_k: only for token_choice groups "
       "(expert_choice uses capacity_factor) (value from "
       "layer.ffn.groups[0].top_k)"},
      {model(group(R"("modality": "text", "experts": 2, "routing": )"
                   R"("token_choice", "capacity_factor": 1)")),
       "m.json: layers[0].ffn.groups[0].capacity_factor: only for "
       "expert_choice groups (token_choice uses top_k) (value from "
       "layer.ffn.groups[0].capacity_factor)"},
      {model(group(R"("modalities": ["text", "image"], "experts": 2, )"
                   R"("routing": "token_choice")")),
       "m.json: layers[0].ffn.groups[0].name: required for a group of "
       "several modalities (value from layer.ffn.groups[0].name)"},
      {model(group(R"("experts": 2, "routing": "token_choice")")),
       "m.json: layers[0].ffn.groups[0]: needs exactly one of \"modality\" "
       "(a name) or \"modalities\" (a list of names) (value from "
       "layer.ffn.groups[0])"},
      {model(group(R"("modality": "text", "experts": 0, "routing": )"
                   R"("token_choice")")),
       "m.json: layers[0].ffn.groups[0].experts: must be >= 1 (value from "
       "layer.ffn.groups[0].experts)"},
      {model(moeLayer(R"([{"modality": "text", "experts": 2, "routing": )"
                      R"("token_choice"}])",
                      R"(, "lora": {"rank": 2, "alpha": 0})")),
       "m.json: layers[0].ffn.lora.alpha: must be > 0 (value from "
       "layer.ffn.lora.alpha)"},
      {model(group(R"("modality": "text", "experts": 2, "routing": )"
                   R"("token_choice")"),
             R"(, "untie": {"ffn": true})"),
       "m.json: layers[0].ffn.kind: must be \"dense\" when untie.ffn is true "
       "(an MoE layer is modality-aware through its expert groups) (value "
       "from layer.ffn.kind)"},
  });
}

TEST(ModelConfigTest, ErrorsSelectorsAndOverrides) {
  checkErrors({
      {model(kDenseLayer, R"(, "mod": {"layers": [4]})"),
       "m.json: mod.layers[0]: layer index 4 out of range [0, 4)"},
      {model(kDenseLayer, R"(, "mod": {"layers": [1, 1]})"),
       "m.json: mod.layers[1]: layer 1 listed twice"},
      {model(kDenseLayer, R"(, "mod": {"layers": [true]})"),
       "m.json: mod.layers[0]: must be an integer layer index"},
      {model(kDenseLayer, R"(, "mod": {"layers": "all"})"),
       "m.json: mod.layers: must be a list of layer indices or an object "
       "{\"start\", \"stop\", \"step\"}"},
      {model(kDenseLayer, R"(, "mod": {})"), "m.json: mod.layers: required"},
      {model(kDenseLayer, R"(, "layer_overrides": [{"layers": []}])"),
       "m.json: layer_overrides[0].layers: selects no layer"},
      {model(kDenseLayer, R"(, "layer_overrides": [{"layers": {"start": )"
                          R"(4}}])"),
       "m.json: layer_overrides[0].layers: selects no layer"},
      {model(kDenseLayer, R"(, "layer_overrides": [{"ffn": {}}])"),
       "m.json: layer_overrides[0].layers: required (which layers this "
       "override applies to)"},
      {model(kDenseLayer, R"(, "layer_overrides": [3])"),
       "m.json: layer_overrides[0]: must be an object"},
      // Overrides are checked before any effective layer.
      {model(R"({"attention": {}, "ffn": {}})",
             R"(, "layer_overrides": [{"layers": [9]}])"),
       "m.json: layer_overrides[0].layers[0]: layer index 9 out of range [0, "
       "4)"},
  });
}

TEST(ModelConfigTest, ErrorsJson) {
  checkErrors({
      {R"({"vocab_size": 128,})",
       "m.json: invalid JSON at line 1 column 20: Expecting property name "
       "enclosed in double quotes"},
      {"{\n  \"a\": tru\n}",
       "m.json: invalid JSON at line 2 column 8: Expecting value"},
      {R"({"a": [1 2]})",
       "m.json: invalid JSON at line 1 column 10: Expecting ',' delimiter"},
      {R"({"a" 1})", "m.json: invalid JSON at line 1 column 6: Expecting ':' "
                     "delimiter"},
      {R"({"a": "b)", "m.json: invalid JSON at line 1 column 7: Unterminated "
                      "string starting at"},
      {R"({"a": "\x"})",
       "m.json: invalid JSON at line 1 column 8: Invalid \\escape"},
      {R"({"a": "\u12"})",
       "m.json: invalid JSON at line 1 column 9: Invalid \\uXXXX escape"},
      {"{\"a\": \"\x01\"}", "m.json: invalid JSON at line 1 column 8: Invalid "
                            "control character at"},
      {R"({} x)", "m.json: invalid JSON at line 1 column 4: Extra data"},
      {R"({"a": 01})",
       "m.json: invalid JSON at line 1 column 8: Expecting ',' delimiter"},
      {"", "m.json: invalid JSON at line 1 column 1: Expecting value"},
      {R"({"vocab_size": 1, "vocab_size": 2})",
       "m.json: invalid JSON: duplicate key \"vocab_size\" in an object"},
      {R"({"norm": {"eps": 1, "eps": 2}, "x": })",
       "m.json: invalid JSON: duplicate key \"eps\" in an object"},
      {R"({"init_std": NaN})", "m.json: invalid JSON: NaN is not valid JSON"},
      {R"({"init_std": Infinity})",
       "m.json: invalid JSON: Infinity is not valid JSON"},
      {R"({"init_std": -Infinity})",
       "m.json: invalid JSON: -Infinity is not valid JSON"},
      {"\xEF\xBB\xBF{}", "m.json: invalid JSON at line 1 column 1: "
                         "Unexpected UTF-8 BOM (decode using utf-8-sig)"},
      {"{\"name\": \"\xFF\"}", "m.json: not UTF-8 text (byte 10)"},
      {"{\"name\": \"\xE2\x82\"}", "m.json: not UTF-8 text (byte 10)"},
      {"{\"vocab_size\": " + std::string(4301, '1') + "}",
       "m.json: invalid JSON: Exceeds the limit (4300 digits) for integer "
       "string conversion: value has 4301 digits; use "
       "sys.set_int_max_str_digits() to increase the limit"},
  });
}

TEST(ModelConfigTest, ErrorsDeepNesting) {
  // Far deeper than the stack allows for a recursive parser: rejected
  // cleanly at the 65th level.
  std::string deep(1000000, '[');
  EXPECT_EQ(parseError(deep), "m.json: invalid JSON at line 1 column 65: "
                              "nested deeper than 64 levels");
  std::string objects;
  for (int i = 0; i < 100000; ++i)
    objects += "{\"a\":";
  EXPECT_EQ(parseError(objects), "m.json: invalid JSON at line 1 column 321: "
                                 "nested deeper than 64 levels");
  // 64 levels are fine as JSON (and then fail validation).
  std::string ok = std::string(63, '[') + std::string(63, ']');
  EXPECT_EQ(parseError("{\"layer\": " + ok + "}"),
            "m.json: vocab_size: required");
}

TEST(ModelConfigTest, ErrorsReaderLimits) {
  checkErrors({
      {R"({"vocab_size": 1000000000000000000000000000000})",
       "m.json: vocab_size: must be <= 9223372036854775807 (the largest "
       "integer this reader supports)"},
      {R"({"vocab_size": -1000000000000000000000000000000})",
       "m.json: vocab_size: must be >= 1"},
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, )"
       R"(100000000000000000000]}]})",
       "m.json: modalities[0].tokens: range [0, 100000000000000000000) must "
       "be non-empty and inside the vocabulary [0, 8)"},
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, )"
       R"(8]}], "d_model": 8, "num_layers": 1048577, "layer": {}})",
       "m.json: num_layers: must be <= 1048576 (the most layers this reader "
       "supports)"},
      {R"({"vocab_size": 4611686018427387904, "modalities": [{"name": "t", )"
       R"("tokens": [0, 8]}], "d_model": 4, "num_layers": 1, "layer": )"
       R"({"attention": {"heads": 1, "rope_theta": 0}, "ffn": {"kind": )"
       R"("dense", "hidden": 1}}})",
       "m.json: model too large: tensor 'embed.weight' would have more than "
       "9223372036854775807 elements"},
  });
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

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

/// Every feature that adds a tensor: MoD with aux routers, layer norm with
/// bias untied per modality, untied attention, an MoE layer with LoRA and an
/// expert-choice group, a dense layer, no final norm, tied embeddings.
constexpr llvm::StringLiteral kTinyModel = R"({
  "name": "tiny", "vocab_size": 16,
  "modalities": [{"name": "text", "tokens": [0, 8]},
                 {"name": "image", "tokens": [8, 16]}],
  "d_model": 4, "num_layers": 2,
  "norm": {"kind": "layer", "final": false},
  "untie": {"attention": true, "norms": true},
  "mod": {"layers": [1]},
  "aux_routers": {"enabled": true, "hidden": 3},
  "tie_embeddings": true,
  "dtype": "bf16",
  "layer": {"attention": {"heads": 2, "kv_heads": 1},
            "ffn": {"kind": "moe", "hidden": 5, "activation": "gelu",
                    "groups": [{"modality": "text", "experts": 2,
                                "routing": "expert_choice"},
                               {"name": "img", "modalities": ["image"],
                                "experts": 3, "routing": "token_choice",
                                "top_k": 2}],
                    "lora": {"rank": 2}}},
  "layer_overrides": [{"layers": [1], "ffn": {"kind": "dense",
                       "activation": "swiglu", "groups": null,
                       "lora": null}}]
})";

std::string formatSpec(const WeightSpec &spec) {
  static const char *inits[] = {"normal", "ones", "zeros"};
  return spec.name + " " + formatShape(spec.shape) + " " +
         inits[static_cast<int>(spec.init)];
}

TEST(ModelConfigTest, WeightList) {
  ModelConfig c = parseOk(kTinyModel);
  std::vector<std::string> names;
  for (const WeightSpec &spec : listWeights(c))
    names.push_back(formatSpec(spec));
  // The order and shapes of `moma_reference.py validate --list-weights`.
  std::vector<std::string> expected = {
      "embed.weight [16, 4] normal",
      "layers.0.attn_norm.weight [2, 4] ones",
      "layers.0.attn_norm.bias [2, 4] zeros",
      "layers.0.attn.wq [2, 4, 4] normal",
      "layers.0.attn.wk [2, 4, 2] normal",
      "layers.0.attn.wv [2, 4, 2] normal",
      "layers.0.attn.wo [2, 4, 4] normal",
      "layers.0.ffn_norm.weight [2, 4] ones",
      "layers.0.ffn_norm.bias [2, 4] zeros",
      "layers.0.moe.router.text [4, 2] normal",
      "layers.0.moe.router.img [4, 3] normal",
      "layers.0.moe.w_in [5, 4, 5] normal",
      "layers.0.moe.w_out [5, 5, 4] normal",
      "layers.0.moe.w_in_lora_a [5, 4, 2] normal",
      "layers.0.moe.w_in_lora_b [5, 2, 5] zeros",
      "layers.0.moe.w_out_lora_a [5, 5, 2] normal",
      "layers.0.moe.w_out_lora_b [5, 2, 4] zeros",
      "layers.0.moe.aux.text.w1 [4, 3] normal",
      "layers.0.moe.aux.text.w2 [3, 2] normal",
      "layers.1.mod.router [4, 1] normal",
      "layers.1.mod.aux.w1 [4, 3] normal",
      "layers.1.mod.aux.w2 [3, 1] normal",
      "layers.1.attn_norm.weight [2, 4] ones",
      "layers.1.attn_norm.bias [2, 4] zeros",
      "layers.1.attn.wq [2, 4, 4] normal",
      "layers.1.attn.wk [2, 4, 2] normal",
      "layers.1.attn.wv [2, 4, 2] normal",
      "layers.1.attn.wo [2, 4, 4] normal",
      "layers.1.ffn_norm.weight [2, 4] ones",
      "layers.1.ffn_norm.bias [2, 4] zeros",
      "layers.1.ffn.w_in [4, 10] normal",
      "layers.1.ffn.w_out [5, 4] normal",
  };
  EXPECT_EQ(names, expected);

  // Untied FFN, final norm and an LM head.
  ModelConfig d = parseOk(model(kDenseLayer, R"(, "untie": {"ffn": true})"));
  std::vector<WeightSpec> specs = listWeights(d);
  ASSERT_EQ(specs.size(), 1u + 4 * 8 + 1 + 1);
  EXPECT_EQ(formatSpec(specs[7]), "layers.0.ffn.w_in [2, 32, 128] normal");
  EXPECT_EQ(formatSpec(specs[8]), "layers.0.ffn.w_out [2, 64, 32] normal");
  EXPECT_EQ(formatSpec(specs[specs.size() - 2]), "final_norm.weight [32] ones");
  EXPECT_EQ(formatSpec(specs.back()), "lm_head.weight [32, 128] normal");
}

//===----------------------------------------------------------------------===//
// Seeded initialisation
//===----------------------------------------------------------------------===//

class InitTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moma-init", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  std::string path(llvm::StringRef name) {
    llvm::SmallString<128> p(dir);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }

  static std::string bytesOf(const std::string &file) {
    auto buffer = llvm::MemoryBuffer::getFile(file);
    return buffer ? (*buffer)->getBuffer().str() : "";
  }

  llvm::SmallString<128> dir;
};

/// The stored element \p i of \p info as a double.
double element(const SafetensorsFile &file, const TensorInfo &info,
               uint64_t i) {
  const auto *p = reinterpret_cast<const uint8_t *>(file.data(info).data()) +
                  i * dtypeSize(info.dtype);
  switch (info.dtype) {
  case DType::F64: {
    uint64_t bits = llvm::support::endian::read64le(p);
    double v;
    std::memcpy(&v, &bits, sizeof(v));
    return v;
  }
  case DType::F32: {
    uint32_t bits = llvm::support::endian::read32le(p);
    float v;
    std::memcpy(&v, &bits, sizeof(v));
    return v;
  }
  case DType::F16:
  case DType::BF16: {
    llvm::APInt bits(16, llvm::support::endian::read16le(p));
    return llvm::APFloat(info.dtype == DType::F16 ? llvm::APFloat::IEEEhalf()
                                                  : llvm::APFloat::BFloat(),
                         bits)
        .convertToDouble();
  }
  default:
    ADD_FAILURE() << "unexpected dtype";
    return 0;
  }
}

TEST_F(InitTest, RoundTrip) {
  ModelConfig c = parseOk(kTinyModel);
  c.initStd = 0.5;
  const std::string file = path("w.safetensors");
  ASSERT_FALSE(static_cast<bool>(writeInitialWeights(c, 7, file)));
  auto opened = SafetensorsFile::open(file);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const SafetensorsFile *st = opened->get();
  const std::map<std::string, std::string> &metadata = st->metadata();
  EXPECT_EQ(metadata.at("format"), "moma-weights");
  EXPECT_EQ(metadata.at("model"), "tiny");
  EXPECT_EQ(metadata.at("seed"), "7");
  ASSERT_EQ(metadata.count("init"), 1u);
  EXPECT_EQ(metadata.at("init").rfind("normal(0, 0.5)", 0), 0u);

  std::vector<WeightSpec> specs = listWeights(c);
  EXPECT_EQ(st->tensors().size(), specs.size());
  std::vector<double> normals;
  for (const WeightSpec &spec : specs) {
    const TensorInfo *info = st->find(spec.name);
    ASSERT_TRUE(info) << spec.name;
    EXPECT_EQ(info->dtype, DType::BF16) << spec.name;
    EXPECT_EQ(llvm::ArrayRef<int64_t>(info->shape),
              llvm::ArrayRef<int64_t>(spec.shape))
        << spec.name;
    for (uint64_t i = 0, e = info->numElements(); i < e; ++i) {
      double v = element(*st, *info, i);
      if (spec.init == WeightInit::Ones)
        EXPECT_EQ(v, 1.0) << spec.name;
      else if (spec.init == WeightInit::Zeros)
        EXPECT_EQ(v, 0.0) << spec.name;
      else
        normals.push_back(v);
    }
  }
  // Roughly normal(0, 0.5): mean within 4 standard errors, std within 10%.
  ASSERT_GT(normals.size(), 300u);
  double sum = 0, squares = 0;
  for (double v : normals) {
    sum += v;
    squares += v * v;
  }
  double n = normals.size(), mean = sum / n;
  double stddev = std::sqrt(squares / n - mean * mean);
  EXPECT_LT(std::fabs(mean), 4 * 0.5 / std::sqrt(n));
  EXPECT_NEAR(stddev, 0.5, 0.05);

  // Same seed, same bytes; another seed, other bytes.
  const std::string again = path("again.safetensors");
  const std::string other = path("other.safetensors");
  ASSERT_FALSE(static_cast<bool>(writeInitialWeights(c, 7, again)));
  ASSERT_FALSE(static_cast<bool>(writeInitialWeights(c, 8, other)));
  EXPECT_EQ(bytesOf(file), bytesOf(again));
  EXPECT_NE(bytesOf(file), bytesOf(other));
  EXPECT_EQ(bytesOf(file).size(), bytesOf(other).size());
}

/// Checks that every stored normal element is the expected draw (the same
/// generator, in canonical order) rounded to the storage type to nearest
/// even, as APFloat rounds it.
void checkDraws(const ModelConfig &c, uint64_t seed, const SafetensorsFile &st,
                DType dtype) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float stddev = static_cast<float>(c.initStd);
  uint64_t checked = 0, infinite = 0, subnormal = 0;
  for (const WeightSpec &spec : listWeights(c)) {
    if (spec.init != WeightInit::Normal)
      continue;
    const TensorInfo *info = st.find(spec.name);
    ASSERT_TRUE(info);
    ASSERT_EQ(info->dtype, dtype);
    for (uint64_t i = 0, e = info->numElements(); i < e; ++i) {
      float draw = normal(rng) * stddev;
      double expected = draw;
      if (dtype == DType::F16 || dtype == DType::BF16) {
        llvm::APFloat f(draw);
        bool lost;
        f.convert(dtype == DType::F16 ? llvm::APFloat::IEEEhalf()
                                      : llvm::APFloat::BFloat(),
                  llvm::APFloat::rmNearestTiesToEven, &lost);
        infinite += f.isInfinity();
        subnormal += f.isDenormal();
        expected = f.convertToDouble();
      }
      ASSERT_EQ(element(st, *info, i), expected)
          << spec.name << "[" << i << "] drawn " << draw;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
  if (dtype == DType::F16 && c.initStd > 1000)
    EXPECT_GT(infinite, 0u); // Overflow to infinity was exercised.
  if (dtype == DType::F16 && c.initStd < 1e-4)
    EXPECT_GT(subnormal, 0u); // Subnormal rounding was exercised.
}

TEST_F(InitTest, StorageTypes) {
  ModelConfig c = parseOk(kTinyModel);
  struct Case {
    const char *dtype;
    DType storage;
    double std;
  };
  const Case cases[] = {{"f32", DType::F32, 0.02},   {"f64", DType::F64, 0.02},
                        {"bf16", DType::BF16, 0.02}, {"f16", DType::F16, 0.02},
                        {"f16", DType::F16, 30000},  {"f16", DType::F16, 1e-6},
                        {"bf16", DType::BF16, 1e38}};
  for (const Case &k : cases) {
    c.dtype = k.dtype;
    c.initStd = k.std;
    const std::string file = path(std::string("w-") + k.dtype + ".safetensors");
    ASSERT_FALSE(static_cast<bool>(writeInitialWeights(c, 3, file)));
    auto st = SafetensorsFile::open(file);
    ASSERT_TRUE(st.ok()) << st.status();
    checkDraws(c, 3, **st, k.storage);
  }
}

TEST_F(InitTest, FailureLeavesNoFile) {
  ModelConfig c = parseOk(kTinyModel);
  const std::string file = path("missing-dir/w.safetensors");
  llvm::Error err = writeInitialWeights(c, 1, file);
  EXPECT_TRUE(static_cast<bool>(err));
  llvm::consumeError(std::move(err));
  EXPECT_FALSE(llvm::sys::fs::exists(file));

  c.dtype = "i8";
  err = writeInitialWeights(c, 1, path("w.safetensors"));
  EXPECT_TRUE(static_cast<bool>(err));
  llvm::consumeError(std::move(err));
  EXPECT_FALSE(llvm::sys::fs::exists(path("w.safetensors")));
}

} // namespace
