//===- ModelConfigErrorsTest.cpp - Validation errors of model files
//---------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/ModelConfigTestUtil.h"

using namespace moma;
using namespace moma::configtest;

namespace {

//===----------------------------------------------------------------------===//
// Errors: every class of examples/README.md, "Validation errors"
//===----------------------------------------------------------------------===//

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
       "(\"text\": [0, 64))"},
      {modalities(R"([{"name": "text", "tokens": [0, 64]}, {"name": )"
                  R"("text", "tokens": [64, 128]}])"),
       "m.json: modalities[1].name: duplicate modality name \"text\" (also "
       "modalities[0])"},
      {modalities(R"([{"name": "1x", "tokens": [0, 64]}])"),
       "m.json: modalities[0].name: \"1x\" is not a valid name (letters, "
       "digits, '_'; not starting with a digit)"},
      {modalities(R"([{"name": "t\u00e9", "tokens": [0, 64]}])"),
       "m.json: modalities[0].name: \"t\u00e9\" is not a valid name "
       "(letters, digits, '_'; not starting with a digit)"},
      {model(group(R"("modality": "text", "experts": 1, "routing": )"
                   R"("expert_choice"}, {"modality": "image", "name": )"
                   R"("text", "experts": 1, "routing": "expert_choice")")),
       "m.json: layers[0].ffn.groups[1].name: duplicate group name \"text\" "
       "(value from layer.ffn.groups[1].name)"},
      {model(kDenseLayer, R"(, "format": "moma-model/2")"),
       "m.json: format: unsupported format \"moma-model/2\" (this reader knows "
       "\"moma-model/1\")"},
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
       "is not divisible by heads (5)"},
      // A derived head_dim was not written in the file: no "value from".
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, 8]}], )"
       R"("d_model": 28, "num_layers": 1, "layer": {"attention": {"heads": )"
       R"(4}, "ffn": {"kind": "dense", "hidden": 8}}})",
       "m.json: layers[0].attention.head_dim: must be even when rope_theta > "
       "0 (is 7)"},
      {attention(R"("heads": 4, "head_dim": 7)"),
       "m.json: layers[0].attention.head_dim: must be even when rope_theta > "
       "0 (is 7) (value from layer.attention.head_dim)"},
      {attention(R"("heads": 4, "rope_theta": -1)"),
       "m.json: layers[0].attention.rope_theta: must be >= 0 (value from "
       "layer.attention.rope_theta)"},
      {model(R"({"ffn": {}})"), "m.json: layers[0].attention: required"},
      {model(kDenseLayer, R"(, "norm": {"bias": true})"),
       "m.json: norm.bias: only layer norm has a bias (kind is \"rms\")"},
      {model(kDenseLayer, R"(, "layer": [])"),
       // A duplicate key: JSON errors come before everything else.
       "m.json: invalid JSON at line 1 column 224: duplicate key \"layer\" "
       "in an object"},
      {(R"({"vocab_size": 128, "modalities": [{"name": "text", "tokens": )"
        R"([0, 64]}], "d_model": 32, "num_layers": 4, "layer": []})"),
       "m.json: layer: must be an object"},
  });
}

TEST(ModelConfigTest, ErrorsGroups) {
  checkErrors({
      {model(group(R"("modality": "audio", "experts": 1, "routing": )"
                   R"("expert_choice")")),
       "m.json: layers[0].ffn.groups[0].modality: unknown modality \"audio\" "
       "(modalities: text, image) (value from "
       "layer.ffn.groups[0].modality)"},
      {model(group(R"("modality": "text", "experts": 1, "routing": )"
                   R"("expert_choice"}, {"modalities": ["image", "text"], )"
                   R"("name": "both", "experts": 1, "routing": )"
                   R"("expert_choice")")),
       "m.json: layers[0].ffn.groups[1].modalities[1]: modality \"text\" "
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
       "several modalities"},
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

} // namespace
