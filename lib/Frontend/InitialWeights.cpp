//===- InitialWeights.cpp - Seeded initial weights of a model -------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// writeInitialWeights: normal(0, init_std) / ones / zeros tensors in the
/// model's dtype, written as one safetensors file.
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelConfig.h"

#include "moma/Format/FloatConversion.h"
#include "moma/Frontend/Safetensors.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/Errc.h"
#include "llvm/Support/MathExtras.h"

#include <charconv>
#include <cstring>
#include <limits>
#include <optional>
#include <random>

using namespace moma;
using llvm::StringRef;

static llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::errc::invalid_argument, message);
}

/// The shortest decimal text that reads back as \p value, e.g. 0.02.
static std::string shortestDecimal(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

namespace {
/// Draws the elements of one tensor and stores them little-endian.
template <DType Storage> struct ElementWriter;
template <> struct ElementWriter<DType::F32> {
  static void store(uint8_t *p, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    llvm::support::endian::write32le(p, bits);
  }
};
template <> struct ElementWriter<DType::F64> {
  static void store(uint8_t *p, float v) {
    double d = v;
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    llvm::support::endian::write64le(p, bits);
  }
};
template <> struct ElementWriter<DType::F16> {
  static void store(uint8_t *p, float v) {
    llvm::support::endian::write16le(p, runtime::doubleToHalf(v));
  }
};
template <> struct ElementWriter<DType::BF16> {
  static void store(uint8_t *p, float v) {
    llvm::support::endian::write16le(p, runtime::doubleToBFloat16(v));
  }
};
} // namespace

template <DType Storage>
static void fillTensor(std::vector<uint8_t> &bytes, uint64_t elements,
                       WeightInit init, float stddev, std::mt19937_64 &rng,
                       std::normal_distribution<float> &normal) {
  const size_t size = dtypeSize(Storage);
  uint8_t *p = bytes.data();
  switch (init) {
  case WeightInit::Normal:
    for (uint64_t i = 0; i < elements; ++i, p += size)
      ElementWriter<Storage>::store(p, normal(rng) * stddev);
    return;
  case WeightInit::Ones:
  case WeightInit::Zeros: {
    const float v = init == WeightInit::Ones ? 1.0f : 0.0f;
    for (uint64_t i = 0; i < elements; ++i, p += size)
      ElementWriter<Storage>::store(p, v);
    return;
  }
  }
}

llvm::Error moma::writeInitialWeights(const ModelConfig &config, uint64_t seed,
                                      StringRef path) {
  const DType dtype = config.dtype;
  if (modelDTypeName(dtype).empty())
    return makeError(path + ": " + StringRef(dtypeName(dtype)) +
                     " is not a model dtype (f32, bf16, f16 or f64)");
  if (!(config.initStd > 0))
    return makeError(path + ": init_std must be > 0");

  SafetensorsWriter writer;
  const std::string init =
      "normal(0, " + shortestDecimal(config.initStd) +
      ") matrices, ones norm weights, zeros norm biases and LoRA B; "
      "std::mt19937_64 seed " +
      std::to_string(seed) +
      " with std::normal_distribution<float>, canonical order";
  if (llvm::Error err = writer.setMetadata("format", "moma-weights"))
    return err;
  if (llvm::Error err = writer.setMetadata("model", config.name))
    return err;
  if (llvm::Error err = writer.setMetadata("seed", std::to_string(seed)))
    return err;
  if (llvm::Error err = writer.setMetadata("init", init))
    return err;

  // normal(0, std) draws z * std with z ~ normal(0, 1), as libstdc++'s
  // normal_distribution<float>(0, std) does, without requiring that std be
  // representable as a positive float.
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float stddev = static_cast<float>(config.initStd);
  const size_t elementSize = dtypeSize(dtype);
  auto *fill = dtype == DType::F32   ? &fillTensor<DType::F32>
               : dtype == DType::F64 ? &fillTensor<DType::F64>
               : dtype == DType::F16 ? &fillTensor<DType::F16>
                                     : &fillTensor<DType::BF16>;
  for (const WeightSpec &spec : listWeights(config)) {
    uint64_t elements = 1;
    bool overflow = false;
    for (int64_t dim : spec.shape) {
      if (dim < 0)
        overflow = true;
      elements = llvm::SaturatingMultiply(elements, static_cast<uint64_t>(dim),
                                          &overflow);
    }
    uint64_t byteCount =
        llvm::SaturatingMultiply<uint64_t>(elements, elementSize, &overflow);
    if (overflow || byteCount > std::numeric_limits<size_t>::max() / 2)
      return makeError(path + ": tensor '" + spec.name + "' " +
                       formatShape(spec.shape) + " is too large to write");
    std::vector<uint8_t> bytes(byteCount);
    fill(bytes, elements, spec.init, stddev, rng, normal);
    if (llvm::Error err = writer.add(spec.name, dtype, spec.shape, bytes))
      return err;
  }
  return writer.writeToFile(path);
}
