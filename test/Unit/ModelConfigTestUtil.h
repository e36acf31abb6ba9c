//===- ModelConfigTestUtil.h - Helpers of the model-reader tests -*- C++
//-*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Model texts and checks shared by the tests of the model-definition reader
/// (ModelConfigTest.cpp, ModelConfigErrorsTest.cpp, JsonTextTest.cpp,
/// WeightListTest.cpp, InitialWeightsTest.cpp).
///
//===----------------------------------------------------------------------===//

#ifndef TEST_UNIT_MODELCONFIGTESTUTIL_H
#define TEST_UNIT_MODELCONFIGTESTUTIL_H

#include "moma/Frontend/ModelConfig.h"

#include "llvm/ADT/StringRef.h"

#include "gtest/gtest.h"

#include <string>
#include <vector>

namespace moma::configtest {

/// The file name of every parsed text.
inline constexpr const char *kFile = "m.json";

/// A dense layer with 4 heads and hidden size 64.
inline constexpr llvm::StringLiteral kDenseLayer =
    R"({"attention": {"heads": 4}, "ffn": {"kind": "dense", "hidden": 64}})";

/// A 4-layer model over text [0, 64) and image [64, 128) with \p layer as
/// its `layer` and \p extra (`, "key": value...`) appended at the top level.
inline std::string model(llvm::StringRef layer = kDenseLayer,
                         llvm::StringRef extra = "") {
  return (R"({"vocab_size": 128, "modalities": [{"name": "text", "tokens": )"
          R"([0, 64]}, {"name": "image", "tokens": [64, 128]}], "d_model": )"
          R"(32, "num_layers": 4, "layer": )" +
          layer + extra + "}")
      .str();
}

/// An MoE layer with the given groups (a JSON list).
inline std::string moeLayer(llvm::StringRef groups, llvm::StringRef more = "") {
  return (R"({"attention": {"heads": 4}, "ffn": {"kind": "moe", "hidden": )"
          R"(16, "groups": )" +
          groups + more + "}}")
      .str();
}

/// Parses \p text, which must be valid.
inline ModelConfig parseOk(llvm::StringRef text, llvm::StringRef file = kFile) {
  llvm::Expected<ModelConfig> config = parseModelConfig(text, file);
  if (!config) {
    ADD_FAILURE() << "unexpected error: " << llvm::toString(config.takeError());
    return ModelConfig();
  }
  return std::move(*config);
}

/// The error message of parsing \p text, which must be invalid.
inline std::string parseError(llvm::StringRef text,
                              llvm::StringRef file = kFile) {
  llvm::Expected<ModelConfig> config = parseModelConfig(text, file);
  if (config) {
    ADD_FAILURE() << "expected an error for " << text.str();
    return "";
  }
  return llvm::toString(config.takeError());
}

/// A model text and its expected error message.
struct ErrorCase {
  std::string text;
  std::string message;
};

/// Checks the error message of every case.
inline void checkErrors(const std::vector<ErrorCase> &cases) {
  for (const ErrorCase &c : cases)
    EXPECT_EQ(parseError(c.text), c.message) << "input: " << c.text;
}

/// An MoE layer with one group of the given fields.
inline std::string group(llvm::StringRef fields) {
  return moeLayer(("[{" + fields + "}]").str());
}

/// Every feature that adds a tensor: MoD with aux routers, layer norm with
/// bias untied per modality, untied attention, an MoE layer with LoRA and an
/// expert-choice group, a dense layer, no final norm, tied embeddings.
inline constexpr llvm::StringLiteral kTinyModel = R"({
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

} // namespace moma::configtest

#endif // TEST_UNIT_MODELCONFIGTESTUTIL_H
