//===- JsonTextTest.cpp - JSON text of model files
//--------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/ModelConfigTestUtil.h"

using namespace moma;
using namespace moma::configtest;

namespace {

//===----------------------------------------------------------------------===//
// examples/README.md, "JSON text"
//===----------------------------------------------------------------------===//

TEST(JsonTextTest, Syntax) {
  // llvm::json::parse's messages, at the byte where it stopped (columns
  // count bytes from 1).
  checkErrors({
      {R"({"vocab_size": 128,})",
       "m.json: invalid JSON at line 1 column 21: Expected object key"},
      {"{\n  \"a\": tru\n}",
       "m.json: invalid JSON at line 3 column 1: Invalid JSON value (true?)"},
      {R"({"a": [1 2]})", "m.json: invalid JSON at line 1 column 11: "
                          "Expected , or ] after array element"},
      {R"({"a" 1})",
       "m.json: invalid JSON at line 1 column 7: Expected : after object key"},
      {R"({"a": "b)",
       "m.json: invalid JSON at line 1 column 9: Unterminated string"},
      {R"({"a": "\x"})",
       "m.json: invalid JSON at line 1 column 10: Invalid escape sequence"},
      {R"({"a": "\u12"})",
       "m.json: invalid JSON at line 1 column 14: Invalid \\u escape "
       "sequence"},
      {"{\"a\": \"\x01\"}", "m.json: invalid JSON at line 1 column 9: "
                            "Control character in string"},
      {R"({} x)",
       "m.json: invalid JSON at line 1 column 4: Text after end of document"},
      {"", "m.json: invalid JSON at line 1 column 1: Unexpected EOF"},
      {R"({"init_std": NaN})",
       "m.json: invalid JSON at line 1 column 15: Invalid JSON value"},
      {R"({"init_std": Infinity})",
       "m.json: invalid JSON at line 1 column 15: Invalid JSON value"},
      {R"({"init_std": -Infinity})",
       "m.json: invalid JSON at line 1 column 15: Invalid JSON value "
       "(number?)"},
      {"\xEF\xBB\xBF{}",
       "m.json: invalid JSON at line 1 column 2: Invalid JSON value"},
      {"{\"name\": \"\xFF\"}", "m.json: not UTF-8 text (byte 10)"},
      {"{\"name\": \"\xE2\x82\"}", "m.json: not UTF-8 text (byte 10)"},
      {"{\"name\": \"\xED\xA0\x80\"}", "m.json: not UTF-8 text (byte 10)"},
  });
}

TEST(JsonTextTest, DuplicateKeys) {
  // llvm::json keeps the last value; the format rejects duplicates: the
  // first key, in text order, that repeats a key of its object, after any
  // syntax error.
  checkErrors({
      {R"({"vocab_size": 1, "vocab_size": 2})",
       "m.json: invalid JSON at line 1 column 19: duplicate key "
       "\"vocab_size\" in an object"},
      {R"({"norm": {"eps": 1, "eps": 2}, "x": 1, "x": 2})",
       "m.json: invalid JSON at line 1 column 21: duplicate key \"eps\" in an "
       "object"},
      {R"({"a": {"k": 1}, "b": {"k": 1}, "\u0061": 2})",
       "m.json: invalid JSON at line 1 column 32: duplicate key \"a\" in an "
       "object"},
      {R"({"norm": {"eps": 1, "eps": 2}, "x": })",
       "m.json: invalid JSON at line 1 column 38: Invalid JSON value"},
  });
}

TEST(JsonTextTest, Numbers) {
  // Integers are written without fraction or exponent (within [-2^63,
  // 2^64)); a negative integral number counts as an integer; llvm::json also
  // reads numbers such as 01, 1. and +1.
  checkErrors({
      {R"({"vocab_size": 2.0})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": 1e2})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": -2.0})", "m.json: vocab_size: must be >= 1"},
      {R"({"vocab_size": -0.0})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": -2.5})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": 9223372036854775808})",
       "m.json: vocab_size: must be <= 9223372036854775807 (the largest "
       "integer supported)"},
      {R"({"vocab_size": 18446744073709551616})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": 1.5.2})",
       "m.json: invalid JSON at line 1 column 21: Invalid JSON value "
       "(number?)"},
      {R"({"vocab_size": 01, "d_model": 1.})", "m.json: modalities: required"},
      {R"({"vocab_size": +1, "init_std": .5})", "m.json: modalities: required"},
      {R"({"name": -1.0})", "m.json: name: must be a string, not an integer"},
      {R"({"name": 1.0})", "m.json: name: must be a string, not a number"},
      {"{\"vocab_size\": " + std::string(4301, '1') + "}",
       "m.json: vocab_size: must be an integer, not a number"},
  });
}

TEST(JsonTextTest, Strings) {
  // A \u escape of a lone surrogate reads as U+FFFD; messages quote strings
  // the way llvm::json writes them.
  checkErrors({
      {R"({"\ud800": 1})",
       "m.json: [\"\xEF\xBF\xBD\"]: unknown key (expected one of: format, "
       "name, source, description, vocab_size, modalities, d_model, "
       "num_layers, norm, untie, mod, aux_routers, loss, dtype, "
       "tie_embeddings, init_std, layer, layer_overrides)"},
      {model(kDenseLayer, R"(, "dtype": "f\t\"\u00e9")"),
       "m.json: dtype: must be one of f32 | bf16 | f16 | f64, not "
       "\"f\\t\\\"\xC3\xA9\""},
      {R"({"vocab_size": 8, "modalities": [{"name": "t\n", "tokens": )"
       R"([0, 8]}]})",
       "m.json: modalities[0].name: \"t\\n\" is not a valid name (letters, "
       "digits, '_'; not starting with a digit)"},
  });
  EXPECT_EQ(
      parseOk(model(kDenseLayer, R"(, "name": "a\ud83d\ude00\udc00")")).name,
      "a\xF0\x9F\x98\x80\xEF\xBF\xBD");
}

TEST(JsonTextTest, UnknownKeysSorted) {
  // llvm::json objects have no key order: of several unknown keys, the
  // first in sorted order is reported.
  checkErrors({
      {model(kDenseLayer, R"(, "untie": {"zz": true, "attn": true})"),
       "m.json: untie.attn: unknown key (expected one of: attention, ffn, "
       "norms)"},
      {model(kDenseLayer, R"(, "layer_overrides": [{"layers": [0], "zz": )"
                          R"(1, "norm": {}}])"),
       "m.json: layer_overrides[0].norm: unknown key (expected one of: "
       "layers, attention, ffn)"},
  });
}

TEST(JsonTextTest, DeepNesting) {
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
  // The limit comes before the syntax.
  EXPECT_EQ(parseError("{\"a\" 1, \"b\": " + std::string(100, '{')),
            "m.json: invalid JSON at line 1 column 77: nested deeper than 64 "
            "levels");
  // 64 levels are fine as JSON (and then fail validation).
  std::string ok = std::string(63, '[') + std::string(63, ']');
  EXPECT_EQ(parseError("{\"layer\": " + ok + "}"),
            "m.json: vocab_size: required");
}

TEST(JsonTextTest, ReaderLimits) {
  checkErrors({
      {R"({"vocab_size": 1000000000000000000000000000000})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": -1000000000000000000000000000000})",
       "m.json: vocab_size: must be an integer, not a number"},
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, )"
       R"(10000000000000000000]}]})",
       "m.json: modalities[0].tokens: range [0, 10000000000000000000) must "
       "be non-empty and inside the vocabulary [0, 8)"},
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, )"
       R"(100000000000000000000]}]})",
       "m.json: modalities[0].tokens: must be [begin, end]: two integers, "
       "the half-open range of token ids"},
      {R"({"vocab_size": 8, "modalities": [{"name": "t", "tokens": [0, )"
       R"(8]}], "d_model": 8, "num_layers": 1048577, "layer": {}})",
       "m.json: num_layers: must be <= 1048576 (the most layers this reader "
       "supports)"},
      {R"({"vocab_size": 4611686018427387904, "modalities": [{"name": "t", )"
       R"("tokens": [0, 8]}], "d_model": 4, "num_layers": 1, "layer": )"
       R"({"attention": {"heads": 1, "rope_theta": 0}, "ffn": {"kind": )"
       R"("dense", "hidden": 1}}})",
       "m.json: model too large: tensor \"embed.weight\" would have more than "
       "9223372036854775807 elements"},
  });
}

} // namespace
