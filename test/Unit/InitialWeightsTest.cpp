//===- InitialWeightsTest.cpp - Seeded initial weights
//----------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/ModelConfigTestUtil.h"

#include "moma/Format/SafetensorsReader.h"
#include "moma/Frontend/Safetensors.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <cstring>
#include <random>

using namespace moma;
using namespace moma::configtest;
using runtime::SafetensorsFile;
using TensorInfo = runtime::SafetensorsTensor;

namespace {

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
    c.dtype = k.storage;
    EXPECT_EQ(modelDTypeName(k.storage), k.dtype);
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

  c.dtype = DType::I8;
  err = writeInitialWeights(c, 1, path("w.safetensors"));
  EXPECT_TRUE(static_cast<bool>(err));
  llvm::consumeError(std::move(err));
  EXPECT_FALSE(llvm::sys::fs::exists(path("w.safetensors")));
}

} // namespace
