//===- ModelConfigParser.cpp - Validation of model definitions ------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// parseModelConfig and loadModelConfig: the model-definition format of
/// examples/README.md, validated in the order of the PyTorch reference
/// (tools/moma-reference/moma_reference/config.py) with the same typed
/// accessors (JsonAccess.h) and the same provenance tracking for effective
/// layers (RFC 7386 merge patches that record, for every value they write,
/// where in the file it came from), so that both readers accept the same
/// files, apply the same defaults and report the same first error.
///
/// Deliberate difference, on inputs the reference cannot process in
/// reasonable time either: more than 2^20 layers are an error, and so is a
/// model with a weight of more than 2^63 - 1 elements.
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelConfig.h"

#include "lib/Frontend/JsonAccess.h"
#include "lib/Frontend/JsonText.h"
#include "lib/Frontend/WeightList.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Errc.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>

using namespace moma;
using llvm::ArrayRef;
using llvm::StringRef;
using llvm::Twine;
using llvm::json::Value;

/// Most layers accepted: the effective layers are materialised, so an absurd
/// `num_layers` would otherwise exhaust memory (the reference would spend
/// hours expanding them). Checked where the reference starts expanding.
static constexpr int64_t kMaxLayers = 1 << 20;

static llvm::Error makeError(const Twine &message) {
  return llvm::createStringError(llvm::errc::invalid_argument, message);
}

//===----------------------------------------------------------------------===//
// The model (config.py)
//===----------------------------------------------------------------------===//

static const StringRef kTopKeys[] = {
    "format",      "name",       "source",
    "description", "vocab_size", "modalities",
    "d_model",     "num_layers", "norm",
    "untie",       "mod",        "aux_routers",
    "loss",        "dtype",      "tie_embeddings",
    "init_std",    "layer",      "layer_overrides"};
static const StringRef kLayerKeys[] = {"attention", "ffn"};
static const StringRef kDTypes[] = {"f32", "bf16", "f16", "f64"};
/// The model dtypes, in the order of their spellings in kDTypes.
static const DType kModelDTypes[] = {DType::F32, DType::BF16, DType::F16,
                                     DType::F64};
static_assert(std::size(kModelDTypes) == std::size(kDTypes),
              "one spelling per model dtype");
static const StringRef kNormKinds[] = {"rms", "layer"};
static const StringRef kNormPlacements[] = {"pre", "post"};
static const StringRef kFfnKinds[] = {"dense", "moe"};
static const StringRef kActivations[] = {"swiglu", "gelu"};
static const StringRef kRoutings[] = {"expert_choice", "token_choice"};
static const StringRef kScores[] = {"sigmoid", "softmax"};

namespace {

/// A parsed layer selector (README, "Layer selectors"): a set of indices or
/// Python's range(start, stop, step).
struct LayerSelector {
  bool isRange = false;
  int64_t start = 0, stop = 0, step = 1;
  /// The listed indices, sorted.
  std::vector<int64_t> list;

  bool contains(int64_t i) const {
    if (isRange)
      return i >= start && i < stop && (i - start) % step == 0;
    return std::binary_search(list.begin(), list.end(), i);
  }
  bool empty() const { return isRange ? start >= stop : list.empty(); }
};

/// config.parse_model and its helpers, in the reference's order.
class ModelParser {
public:
  ModelParser(StringRef file, std::string &error) {
    topCtx.file = file;
    topCtx.error = &error;
  }

  bool parse(const Value &root, StringRef defaultName, ModelConfig &cfg);

private:
  bool parseModalities(ModelConfig &cfg);
  bool parseNorm(const Obj &n, NormConfig &norm);
  bool parseMod(ModelConfig &cfg);
  bool parseSelector(const Value &value, const Path &path, const Context &ctx,
                     int64_t numLayers, bool allowEmpty, LayerSelector &out);
  bool parseOverrides(const ModelConfig &cfg);
  Value layerSource(int64_t index, OriginMap &origins) const;
  bool parseLayer(const Value &value, const Path &path, const Context &ctx,
                  const ModelConfig &cfg, LayerConfig &out);
  bool parseAttention(const Obj &a, int64_t dModel, AttentionConfig &out);
  bool parseFfn(const Obj &lay, const ModelConfig &cfg, FfnConfig &out);
  bool parseGroups(const Obj &f, const ModelConfig &cfg,
                   std::vector<ExpertGroupConfig> &out);

  Context topCtx;
  Obj top;
  LayerSelector modLayers;
  const Value *rawLayer = nullptr;
  const llvm::json::Array *overrides = nullptr;
  std::vector<LayerSelector> overrideLayers;
};

} // namespace

bool ModelParser::parse(const Value &root, StringRef defaultName,
                        ModelConfig &cfg) {
  if (!Obj::open(root, {}, topCtx, kTopKeys, top))
    return false;
  std::string format;
  if (!top.string("format", format, StringRef(kModelFormat)))
    return false;
  if (format != kModelFormat)
    return top.error("format", "unsupported format " + quoteJson(format) +
                                   " (this reader knows " +
                                   quoteJson(kModelFormat) + ")");
  if (!top.string("name", cfg.name, defaultName) ||
      !top.string("source", cfg.source, StringRef("")) ||
      !top.string("description", cfg.description, StringRef("")) ||
      !top.integer("vocab_size", cfg.vocabSize, std::nullopt, 1) ||
      !parseModalities(cfg) ||
      !top.integer("d_model", cfg.dModel, std::nullopt, 1) ||
      !top.integer("num_layers", cfg.numLayers, std::nullopt, 1))
    return false;

  Obj n;
  if (!top.object("norm", {"kind", "eps", "placement", "bias", "final"},
                  /*optional=*/true, n) ||
      !parseNorm(n, cfg.norm))
    return false;
  Obj u;
  if (!top.object("untie", {"attention", "ffn", "norms"}, true, u) ||
      !u.boolean("attention", cfg.untie.attention, false) ||
      !u.boolean("ffn", cfg.untie.ffn, false) ||
      !u.boolean("norms", cfg.untie.norms, false))
    return false;
  if (!parseMod(cfg))
    return false;
  Obj a;
  if (!top.object("aux_routers", {"enabled", "hidden"}, true, a) ||
      !a.boolean("enabled", cfg.auxRouters.enabled, false) ||
      !a.integer("hidden", cfg.auxRouters.hidden,
                 std::max<int64_t>(1, cfg.dModel / 2), 1))
    return false;
  Obj lw;
  if (!top.object("loss", {"load_balancing", "router_z", "aux_router"}, true,
                  lw) ||
      !lw.number("load_balancing", cfg.loss.loadBalancing, 0.0, atLeast(0.0)) ||
      !lw.number("router_z", cfg.loss.routerZ, 0.0, atLeast(0.0)) ||
      !lw.number("aux_router", cfg.loss.auxRouter, 1.0, atLeast(0.0)))
    return false;
  std::string dtype;
  if (!top.string("dtype", dtype, StringRef("f32"), kDTypes))
    return false;
  // kDTypes lists exactly the spellings parseModelDType knows.
  cfg.dtype = *parseModelDType(dtype);
  if (!top.boolean("tie_embeddings", cfg.tieEmbeddings, false) ||
      !top.number("init_std", cfg.initStd, 0.02, greaterThan(0.0)))
    return false;

  // The effective layers: overrides' keys and selectors first, then layer 0,
  // 1, ... (config._expand_layers).
  if (!parseOverrides(cfg))
    return false;
  if (cfg.numLayers > kMaxLayers)
    return top.error("num_layers", "must be <= " + Twine(kMaxLayers) +
                                       " (the most layers this reader "
                                       "supports)");
  cfg.layers.clear();
  for (int64_t i = 0; i < cfg.numLayers; ++i) {
    OriginMap origins;
    Value value = layerSource(i, origins);
    Context ctx = topCtx;
    ctx.document = &value;
    ctx.origins = &origins;
    ctx.base = child(child({}, "layers"), i);
    LayerConfig layer;
    layer.index = i;
    if (!parseLayer(value, ctx.base, ctx, cfg, layer))
      return false;
    layer.mod = modLayers.contains(i);
    cfg.layers.push_back(std::move(layer));
  }

  if (cfg.untie.ffn)
    for (const LayerConfig &layer : cfg.layers) {
      if (layer.ffn.kind == FfnConfig::Kind::Dense)
        continue;
      OriginMap origins;
      Value value = layerSource(layer.index, origins);
      Context ctx = topCtx;
      ctx.document = &value;
      ctx.origins = &origins;
      ctx.base = child(child({}, "layers"), layer.index);
      return ctx.fail(child(child(ctx.base, "ffn"), "kind"),
                      "must be \"dense\" when untie.ffn is true (an MoE layer "
                      "is modality-aware through its expert groups)");
    }
  if (std::optional<std::string> name = findOversizedTensor(cfg))
    return topCtx.fail({}, "model too large: tensor " + quoteJson(*name) +
                               " would have more than " +
                               Twine(std::numeric_limits<int64_t>::max()) +
                               " elements");
  return true;
}

bool ModelParser::parseModalities(ModelConfig &cfg) {
  const llvm::json::Array *items;
  if (!top.array("modalities", items, /*optional=*/false, 1))
    return false;
  cfg.modalities.clear();
  for (size_t i = 0; i < items->size(); ++i) {
    Obj m;
    if (!Obj::open((*items)[i], child(top.at("modalities"), i), topCtx,
                   {"name", "tokens"}, m))
      return false;
    ModalityConfig modality;
    if (!m.string("name", modality.name, std::nullopt, {}, /*isName=*/true))
      return false;
    for (size_t j = 0; j < cfg.modalities.size(); ++j)
      if (cfg.modalities[j].name == modality.name)
        return m.error("name", "duplicate modality name " +
                                   quoteJson(modality.name) +
                                   " (also modalities[" + Twine(j) + "])");
    const llvm::json::Array *range;
    if (!m.array("tokens", range, false))
      return false;
    std::optional<JsonInteger> begin, end;
    if (range->size() == 2) {
      begin = getInteger((*range)[0]);
      end = getInteger((*range)[1]);
    }
    if (!begin || !end)
      return m.error("tokens", "must be [begin, end]: two integers, the "
                               "half-open range of token ids");
    if (!(begin->compare(0) >= 0 && begin->compare(*end) < 0 &&
          end->compare(cfg.vocabSize) <= 0))
      return m.error("tokens", "range [" + begin->text() + ", " + end->text() +
                                   ") must be non-empty and inside the "
                                   "vocabulary [0, " +
                                   Twine(cfg.vocabSize) + ")");
    modality.begin = begin->value;
    modality.end = end->value;
    for (size_t j = 0; j < cfg.modalities.size(); ++j) {
      const ModalityConfig &prev = cfg.modalities[j];
      if (modality.begin < prev.end && prev.begin < modality.end)
        return m.error("tokens",
                       "range [" + Twine(modality.begin) + ", " +
                           Twine(modality.end) + ") overlaps modalities[" +
                           Twine(j) + "] (" + quoteJson(prev.name) + ": [" +
                           Twine(prev.begin) + ", " + Twine(prev.end) + "))");
    }
    cfg.modalities.push_back(std::move(modality));
  }
  return true;
}

bool ModelParser::parseNorm(const Obj &n, NormConfig &norm) {
  std::string kind, placement;
  if (!n.string("kind", kind, StringRef("rms"), kNormKinds) ||
      !n.number("eps", norm.eps, 1e-5, greaterThan(0.0)) ||
      !n.string("placement", placement, StringRef("pre"), kNormPlacements) ||
      !n.boolean("bias", norm.bias, kind == "layer"))
    return false;
  if (norm.bias && kind != "layer")
    return n.error("bias", "only layer norm has a bias (kind is \"rms\")");
  if (!n.boolean("final", norm.final, true))
    return false;
  norm.kind = kind == "layer" ? NormConfig::Kind::Layer : NormConfig::Kind::RMS;
  norm.placement = placement == "post" ? NormConfig::Placement::Post
                                       : NormConfig::Placement::Pre;
  return true;
}

bool ModelParser::parseSelector(const Value &value, const Path &path,
                                const Context &ctx, int64_t numLayers,
                                bool allowEmpty, LayerSelector &out) {
  out = LayerSelector();
  if (const llvm::json::Array *list = value.getAsArray()) {
    std::set<int64_t> seen;
    for (size_t i = 0; i < list->size(); ++i) {
      std::optional<JsonInteger> v = getInteger((*list)[i]);
      if (!v)
        return ctx.fail(child(path, i), "must be an integer layer index");
      if (!(v->compare(0) >= 0 && v->compare(numLayers) < 0))
        return ctx.fail(child(path, i), "layer index " + v->text() +
                                            " out of range [0, " +
                                            Twine(numLayers) + ")");
      if (!seen.insert(v->value).second)
        return ctx.fail(child(path, i),
                        "layer " + Twine(v->value) + " listed twice");
    }
    out.list.assign(seen.begin(), seen.end());
  } else if (value.getAsObject()) {
    Obj s;
    out.isRange = true;
    if (!Obj::open(value, path, ctx, {"start", "stop", "step"}, s) ||
        !s.integer("start", out.start, 0, 0, numLayers) ||
        !s.integer("stop", out.stop, numLayers, out.start, numLayers) ||
        !s.integer("step", out.step, 1, 1))
      return false;
  } else {
    return ctx.fail(path, "must be a list of layer indices or an object "
                          "{\"start\", \"stop\", \"step\"}");
  }
  if (out.empty() && !allowEmpty)
    return ctx.fail(path, "selects no layer");
  return true;
}

bool ModelParser::parseMod(ModelConfig &cfg) {
  cfg.mod = ModelConfig::MoD();
  modLayers = LayerSelector();
  if (!top.has("mod"))
    return true;
  Obj m;
  const Value *layers;
  return top.object("mod", {"layers", "capacity", "gated"}, false, m) &&
         m.raw("layers", layers) &&
         parseSelector(*layers, m.at("layers"), topCtx, cfg.numLayers,
                       /*allowEmpty=*/true, modLayers) &&
         m.number("capacity", cfg.mod.capacity, 0.25, greaterThan(0.0, 1.0)) &&
         m.boolean("gated", cfg.mod.gated, true);
}

bool ModelParser::parseOverrides(const ModelConfig &cfg) {
  rawLayer = top.get("layer");
  if (rawLayer && !rawLayer->getAsObject())
    return top.error("layer", "must be an object");
  if (!top.array("layer_overrides", overrides, /*optional=*/true))
    return false;
  overrideLayers.clear();
  if (!overrides)
    return true;
  for (size_t k = 0; k < overrides->size(); ++k) {
    Path path = child(child({}, "layer_overrides"), k);
    const llvm::json::Object *entry = (*overrides)[k].getAsObject();
    if (!entry)
      return topCtx.fail(path, "must be an object");
    const Value *layers = entry->get("layers");
    if (!layers)
      return topCtx.fail(child(path, "layers"),
                         "required (which layers this override applies to)");
    std::optional<StringRef> unknown; // The first in sorted order.
    for (const auto &item : *entry) {
      StringRef key = item.first;
      if (key != "layers" && !llvm::is_contained(kLayerKeys, key) &&
          (!unknown || key < *unknown))
        unknown = key;
    }
    if (unknown)
      return topCtx.fail(child(path, *unknown),
                         "unknown key (expected one of: layers, " +
                             llvm::join(ArrayRef<StringRef>(kLayerKeys), ", ") +
                             ")");
    LayerSelector selector;
    if (!parseSelector(*layers, child(path, "layers"), topCtx, cfg.numLayers,
                       /*allowEmpty=*/false, selector))
      return false;
    overrideLayers.push_back(std::move(selector));
  }
  return true;
}

/// Removes every origin at or below \p rel (config._forget).
static void forgetOrigins(OriginMap &origins, const Path &rel) {
  for (auto it = origins.begin(); it != origins.end();) {
    const Path &key = it->first;
    if (key.size() >= rel.size() &&
        std::equal(rel.begin(), rel.end(), key.begin()))
      it = origins.erase(it);
    else
      ++it;
  }
}

/// Applies \p patch to \p target (null: absent) as an RFC 7386 merge patch,
/// recording in \p origins the file path \p src of every value written at
/// effective path \p rel (config.merge_patch).
static Value mergePatch(const Value *target, const Value &patch,
                        OriginMap &origins, const Path &rel, const Path &src) {
  const llvm::json::Object *changes = patch.getAsObject();
  if (!changes) {
    forgetOrigins(origins, rel);
    origins[rel] = src;
    return patch;
  }
  Value result = llvm::json::Object();
  if (target && target->getAsObject()) {
    result = *target;
  } else {
    forgetOrigins(origins, rel);
    origins[rel] = src;
  }
  llvm::json::Object &object = *result.getAsObject();
  for (const auto &[key, value] : *changes) {
    if (value.kind() == Value::Null) {
      object.erase(key);
      forgetOrigins(origins, child(rel, key));
      continue;
    }
    Value merged = mergePatch(object.get(key), value, origins, child(rel, key),
                              child(src, key));
    object[key] = std::move(merged);
  }
  return result;
}

Value ModelParser::layerSource(int64_t index, OriginMap &origins) const {
  origins.clear();
  Path layerPath = child({}, "layer");
  origins[{}] = layerPath;
  const Value &raw = rawLayer ? *rawLayer : emptyObject();
  Value value = mergePatch(&emptyObject(), raw, origins, {}, layerPath);
  for (size_t k = 0; k < overrideLayers.size(); ++k) {
    if (!overrideLayers[k].contains(index))
      continue;
    Value patch = (*overrides)[k];
    patch.getAsObject()->erase("layers");
    Value merged = mergePatch(&value, patch, origins, {},
                              child(child({}, "layer_overrides"), k));
    value = std::move(merged);
  }
  return value;
}

bool ModelParser::parseLayer(const Value &value, const Path &path,
                             const Context &ctx, const ModelConfig &cfg,
                             LayerConfig &out) {
  Obj lay, a;
  return Obj::open(value, path, ctx, kLayerKeys, lay) &&
         lay.object("attention",
                    {"heads", "kv_heads", "head_dim", "rope_theta", "causal"},
                    false, a) &&
         parseAttention(a, cfg.dModel, out.attention) &&
         parseFfn(lay, cfg, out.ffn);
}

bool ModelParser::parseAttention(const Obj &a, int64_t dModel,
                                 AttentionConfig &out) {
  if (!a.integer("heads", out.heads, std::nullopt, 1) ||
      !a.integer("kv_heads", out.kvHeads, out.heads, 1))
    return false;
  if (out.heads % out.kvHeads)
    return a.error("kv_heads", "must divide heads (" + Twine(out.heads) + ")");
  if (a.has("head_dim")) {
    if (!a.integer("head_dim", out.headDim, std::nullopt, 1))
      return false;
  } else if (dModel % out.heads) {
    return a.error("head_dim", "required because d_model (" + Twine(dModel) +
                                   ") is not divisible by heads (" +
                                   Twine(out.heads) + ")");
  } else {
    out.headDim = dModel / out.heads;
  }
  if (!a.number("rope_theta", out.ropeTheta, 10000.0, atLeast(0.0)))
    return false;
  if (out.ropeTheta > 0 && out.headDim % 2)
    return a.error("head_dim", "must be even when rope_theta > 0 (is " +
                                   Twine(out.headDim) + ")");
  return a.boolean("causal", out.causal, true);
}

bool ModelParser::parseFfn(const Obj &lay, const ModelConfig &cfg,
                           FfnConfig &out) {
  Obj base;
  std::string kind, activation;
  if (!lay.object("ffn", {"kind", "hidden", "activation", "groups", "lora"},
                  false, base) ||
      !base.string("kind", kind, std::nullopt, kFfnKinds))
    return false;
  Obj f = base;
  if (kind == "dense" && !Obj::open(base.value(), base.path(), base.ctx(),
                                    {"kind", "hidden", "activation"}, f))
    return false;
  if (!f.integer("hidden", out.hidden, std::nullopt, 1) ||
      !f.string("activation", activation, StringRef("swiglu"), kActivations))
    return false;
  out.kind = kind == "moe" ? FfnConfig::Kind::MoE : FfnConfig::Kind::Dense;
  out.activation = activation == "gelu" ? FfnConfig::Activation::GELU
                                        : FfnConfig::Activation::SwiGLU;
  out.groups.clear();
  out.loraRank = 0;
  out.loraAlpha = 0.0;
  if (kind == "dense")
    return true;
  Obj lo;
  if (!parseGroups(f, cfg, out.groups) ||
      !f.object("lora", {"rank", "alpha"}, true, lo) ||
      !lo.integer("rank", out.loraRank, 0, 0))
    return false;
  if (out.loraRank)
    return lo.number("alpha", out.loraAlpha, static_cast<double>(out.loraRank),
                     greaterThan(0.0));
  return lo.number("alpha", out.loraAlpha, 0.0, atLeast(0.0));
}

bool ModelParser::parseGroups(const Obj &f, const ModelConfig &cfg,
                              std::vector<ExpertGroupConfig> &out) {
  static const StringRef kGroupKeys[] = {
      "name",    "modality", "modalities",
      "experts", "routing",  "capacity_factor",
      "top_k",   "score",    "renormalize"};
  const llvm::json::Array *items;
  if (!f.array("groups", items, false, 1))
    return false;
  out.clear();
  std::map<std::string, size_t> owner; // Modality name -> its group.
  for (size_t i = 0; i < items->size(); ++i) {
    Obj g;
    if (!Obj::open((*items)[i], child(f.at("groups"), i), f.ctx(), kGroupKeys,
                   g))
      return false;
    if (g.has("modality") == g.has("modalities"))
      return g.ctx().fail(g.path(), "needs exactly one of \"modality\" (a "
                                    "name) or \"modalities\" (a list of "
                                    "names)");
    std::vector<std::string> names;
    std::vector<Path> namePaths;
    if (g.has("modality")) {
      std::string name;
      if (!g.string("modality", name, std::nullopt))
        return false;
      names.push_back(std::move(name));
      namePaths.push_back(g.at("modality"));
    } else {
      const llvm::json::Array *raw;
      if (!g.array("modalities", raw, false, 1))
        return false;
      for (size_t j = 0; j < raw->size(); ++j) {
        Path p = child(g.at("modalities"), j);
        std::optional<StringRef> name = (*raw)[j].getAsString();
        if (!name)
          return g.ctx().fail(p, "must be a modality name");
        names.push_back(name->str());
        namePaths.push_back(std::move(p));
      }
    }
    ExpertGroupConfig group;
    for (size_t j = 0; j < names.size(); ++j) {
      const std::string &n = names[j];
      auto it = llvm::find_if(
          cfg.modalities, [&](const ModalityConfig &m) { return m.name == n; });
      if (it == cfg.modalities.end()) {
        std::string known = llvm::join(
            llvm::map_range(cfg.modalities,
                            [](const ModalityConfig &m) { return m.name; }),
            ", ");
        return g.ctx().fail(namePaths[j], "unknown modality " + quoteJson(n) +
                                              " (modalities: " + known + ")");
      }
      if (auto o = owner.find(n); o != owner.end())
        return g.ctx().fail(namePaths[j],
                            "modality " + quoteJson(n) +
                                " already has an expert group (groups[" +
                                Twine(o->second) + "])");
      owner[n] = i;
      group.modalities.push_back(it - cfg.modalities.begin());
    }
    if (g.has("name")) {
      if (!g.string("name", group.name, std::nullopt, {}, /*isName=*/true))
        return false;
    } else if (names.size() == 1) {
      group.name = names[0];
    } else {
      return g.error("name", "required for a group of several modalities");
    }
    for (const ExpertGroupConfig &prev : out)
      if (prev.name == group.name)
        return g.error("name", "duplicate group name " + quoteJson(group.name));
    std::string routing, score;
    if (!g.integer("experts", group.experts, std::nullopt, 1) ||
        !g.string("routing", routing, std::nullopt, kRoutings))
      return false;
    if (routing == "expert_choice") {
      group.routing = ExpertGroupConfig::Routing::ExpertChoice;
      if (g.has("top_k"))
        return g.error("top_k", "only for token_choice groups (expert_choice "
                                "uses capacity_factor)");
      if (!g.number("capacity_factor", group.capacityFactor, 1.0,
                    greaterThan(0.0, static_cast<double>(group.experts))))
        return false;
      group.topK = 0;
    } else {
      group.routing = ExpertGroupConfig::Routing::TokenChoice;
      if (g.has("capacity_factor"))
        return g.error("capacity_factor", "only for expert_choice groups "
                                          "(token_choice uses top_k)");
      if (!g.integer("top_k", group.topK, 1, 1, group.experts))
        return false;
      group.capacityFactor = 0.0;
    }
    if (!g.string("score", score,
                  StringRef(routing == "expert_choice" ? "sigmoid" : "softmax"),
                  kScores) ||
        !g.boolean("renormalize", group.renormalize, false))
      return false;
    group.score = score == "softmax" ? ExpertGroupConfig::Score::Softmax
                                     : ExpertGroupConfig::Score::Sigmoid;
    out.push_back(std::move(group));
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

/// The reference's default model name: the file name without `.json`.
static std::string defaultModelName(StringRef fileName) {
  if (fileName.empty())
    return "model";
  StringRef base = fileName.substr(fileName.rfind('/') + 1);
  base.consume_back(".json");
  return base.str();
}

static llvm::Expected<ModelConfig>
parseText(StringRef bytes, StringRef fileName, StringRef defaultName) {
  auto fail = [&](const std::string &rule) {
    return makeError(fileName.empty() ? rule : fileName.str() + ": " + rule);
  };
  llvm::Expected<Value> root = parseJsonText(bytes);
  if (!root)
    return fail(llvm::toString(root.takeError()));
  std::string error;
  ModelConfig config;
  ModelParser modelParser(fileName, error);
  if (!modelParser.parse(*root, defaultName, config))
    return makeError(error);
  return config;
}

llvm::Expected<ModelConfig> moma::parseModelConfig(StringRef text,
                                                   StringRef fileName) {
  return parseText(text, fileName, defaultModelName(fileName));
}

llvm::Expected<ModelConfig> moma::loadModelConfig(StringRef path) {
  const bool isStdin = path == "-";
  const std::string fileName = isStdin ? "<stdin>" : path.str();
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      isStdin ? llvm::MemoryBuffer::getSTDIN()
              : llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer) {
    std::string rule = "cannot read file: " + buffer.getError().message();
    return makeError(fileName.empty() ? rule : fileName + ": " + rule);
  }
  return parseText((*buffer)->getBuffer(), fileName,
                   isStdin ? "model" : defaultModelName(path));
}

StringRef moma::modelDTypeName(DType dtype) {
  const auto *it = llvm::find(kModelDTypes, dtype);
  return it == std::end(kModelDTypes) ? StringRef()
                                      : kDTypes[it - std::begin(kModelDTypes)];
}

std::optional<DType> moma::parseModelDType(StringRef name) {
  const auto *it = llvm::find(kDTypes, name);
  if (it == std::end(kDTypes))
    return std::nullopt;
  return kModelDTypes[it - std::begin(kDTypes)];
}
