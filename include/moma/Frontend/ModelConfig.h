//===- ModelConfig.h - moma model definitions (moma-model/1) ----*- C++ -*-===//
//
// The C++ reader of model definition files. The format, its defaults and its
// validation rules are specified in examples/README.md; the PyTorch reference
// (tools/moma-reference) is the other reader, and both must agree.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_FRONTEND_MODELCONFIG_H
#define MOMA_FRONTEND_MODELCONFIG_H

#include "moma/Format/DType.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moma {

/// The format of model definitions this reader knows (`format`).
inline constexpr llvm::StringLiteral kModelFormat = "moma-model/1";

/// The file layer's element types (safetensors), which the model's `dtype`
/// names; moma IR uses MLIR types and programs ElementType, converted where
/// the layers meet.
using runtime::DType;

/// The model file's spelling of a model dtype: "f32", "bf16", "f16" or
/// "f64"; empty for a DType no model can have.
llvm::StringRef modelDTypeName(DType dtype);

/// Parses a model file's `dtype` spelling ("f32", "bf16", "f16", "f64");
/// std::nullopt for any other text.
std::optional<DType> parseModelDType(llvm::StringRef name);

/// One modality: its name and token-id range [begin, end).
struct ModalityConfig {
  std::string name;
  int64_t begin = 0;
  int64_t end = 0;
};

/// Normalisation settings (`norm`).
struct NormConfig {
  enum class Kind { RMS, Layer };
  enum class Placement { Pre, Post };
  Kind kind = Kind::RMS;
  double eps = 1e-5;
  Placement placement = Placement::Pre;
  bool bias = false;
  bool final = true;
};

/// Attention of one effective layer.
struct AttentionConfig {
  int64_t heads = 0;
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  double ropeTheta = 10000.0;
  bool causal = true;
};

/// One expert group of an MoE layer.
struct ExpertGroupConfig {
  enum class Routing { TokenChoice, ExpertChoice };
  enum class Score { Softmax, Sigmoid };
  /// The group's name (weight names use it): the modality name by default.
  std::string name;
  /// Modality ids (positions in `modalities`) the group serves.
  llvm::SmallVector<int64_t, 2> modalities;
  int64_t experts = 0;
  Routing routing = Routing::ExpertChoice;
  /// Expert-choice capacity factor (0 for token choice).
  double capacityFactor = 0.0;
  /// Token-choice top-k (0 for expert choice).
  int64_t topK = 0;
  Score score = Score::Sigmoid;
  bool renormalize = false;
};

/// The FFN of one effective layer: dense, or modality-aware MoE.
struct FfnConfig {
  enum class Kind { Dense, MoE };
  enum class Activation { SwiGLU, GELU };
  Kind kind = Kind::Dense;
  int64_t hidden = 0;
  Activation activation = Activation::SwiGLU;
  /// MoE only.
  std::vector<ExpertGroupConfig> groups;
  int64_t loraRank = 0;
  double loraAlpha = 0.0;
  /// Columns of `w_in`: 2F (SwiGLU) or F (GELU).
  int64_t inColumns() const {
    return activation == Activation::SwiGLU ? 2 * hidden : hidden;
  }
  /// Total experts over the groups (global expert numbering).
  int64_t totalExperts() const;
};

/// The effective configuration of one layer (defaults and overrides
/// applied).
struct LayerConfig {
  int64_t index = 0;
  /// Whether this layer is a mixture-of-depths layer (`mod.layers`).
  bool mod = false;
  AttentionConfig attention;
  FfnConfig ffn;
};

/// A validated model definition with every default filled in.
struct ModelConfig {
  std::string name;
  std::string source;
  std::string description;
  int64_t vocabSize = 0;
  std::vector<ModalityConfig> modalities;
  int64_t dModel = 0;
  int64_t numLayers = 0;
  NormConfig norm;
  struct Untie {
    bool attention = false, ffn = false, norms = false;
  } untie;
  struct MoD {
    double capacity = 0.25;
    bool gated = true;
  } mod;
  struct AuxRouters {
    bool enabled = false;
    int64_t hidden = 0;
  } auxRouters;
  struct Loss {
    double loadBalancing = 0.0, routerZ = 0.0, auxRouter = 1.0;
  } loss;
  /// The element type of the weights and activations: F32, BF16, F16 or
  /// F64 (written "f32", "bf16", "f16", "f64" in the file).
  DType dtype = DType::F32;
  bool tieEmbeddings = false;
  double initStd = 0.02;
  /// Effective configuration of every layer, in order.
  std::vector<LayerConfig> layers;

  /// The `validate --expand` form: every default filled in and the
  /// effective `layers` list (the reference prints the same JSON).
  llvm::json::Value toExpandedJson() const;
};

/// Parses and validates a model definition. `fileName` prefixes every error
/// message: `FILE: PATH: RULE`, exactly as examples/README.md specifies
/// (e.g. `m.json: layers[3].ffn.groups[1].experts: must be >= 1`). The
/// default `name` is `fileName` without directory and `.json` ("model" when
/// `fileName` is empty). Accepts exactly what the reference accepts, except
/// more than 2^20 layers and weights of more than 2^63 - 1 elements (errors
/// here).
llvm::Expected<ModelConfig> parseModelConfig(llvm::StringRef text,
                                             llvm::StringRef fileName);

/// Reads `path` ("-" for stdin, named `<stdin>` in errors, default name
/// "model") and parses it.
llvm::Expected<ModelConfig> loadModelConfig(llvm::StringRef path);

/// How a weight is initialised (examples/README.md, "Weights").
enum class WeightInit { Normal, Ones, Zeros };

/// One tensor of the weights file.
struct WeightSpec {
  std::string name;
  llvm::SmallVector<int64_t, 4> shape;
  WeightInit init = WeightInit::Normal;
};

/// Every weight of the model, in the canonical order of examples/README.md.
std::vector<WeightSpec> listWeights(const ModelConfig &config);

/// Writes seeded initial weights (normal(0, init_std) / ones / zeros,
/// stored in the model's dtype) to a safetensors file with metadata
/// `format = moma-weights`, `model`, `seed`, `init`. Atomic: on failure no
/// file is left behind.
///
/// Normal tensors are drawn in the canonical order of listWeights() from
/// std::mt19937_64(seed) with std::normal_distribution<float> (the same
/// distribution as the reference, not the same numbers) and rounded to the
/// storage type (bf16 and f16 to nearest even). Tensors are generated one at
/// a time directly in the storage type, but SafetensorsWriter holds the
/// whole file in memory until it writes it: peak memory is about the size of
/// the weights file (e.g. ~14 GB for a 7B-parameter bf16 model).
llvm::Error writeInitialWeights(const ModelConfig &config, uint64_t seed,
                                llvm::StringRef path);

} // namespace moma

#endif // MOMA_FRONTEND_MODELCONFIG_H
