//===- WeightListTest.cpp - The weights of a model
//--------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/ModelConfigTestUtil.h"

#include "moma/Frontend/Safetensors.h"

using namespace moma;
using namespace moma::configtest;

namespace {

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

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

} // namespace
