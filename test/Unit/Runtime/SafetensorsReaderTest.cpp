//===- SafetensorsReaderTest.cpp - Tests of the safetensors reader --------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The LLVM-free safetensors reader (moma/Format/SafetensorsReader.h):
// conversion into buffers of another type, and every rejection of a damaged
// file.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/SafetensorsReader.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

BufferDesc buffer(const std::string &name, ElementType type,
                  std::vector<int64_t> shape) {
  BufferDesc desc;
  desc.name = name;
  desc.role = BufferRole::Weight;
  desc.type = type;
  desc.shape = std::move(shape);
  uint64_t size = type == ElementType::F64 || type == ElementType::I64    ? 8
                  : type == ElementType::F16 || type == ElementType::BF16 ? 2
                                                                          : 4;
  desc.byteSize = desc.numElements() * size;
  return desc;
}

TEST(RuntimeSafetensors, ReadsAndConverts) {
  std::vector<uint16_t> half = {0x3c00, 0xc000, 0x3555, 0x0001};
  std::vector<float> f32 = {1.0f, 1.00390625f, -3.5f, 1e-3f};
  std::vector<int64_t> i64 = {1, -2, 3000000000LL};
  std::string data = bytesOf(half) + bytesOf(f32) + bytesOf(i64);
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("f":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},)"
      R"("i":{"dtype":"I64","shape":[3],"data_offsets":[24,48]}})";
  auto file = SafetensorsFile::fromBytes(safetensors(header, data), "w.st");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), 3u);
  ASSERT_NE((*file)->find("h"), nullptr);
  EXPECT_EQ((*file)->find("nope"), nullptr);

  std::vector<float> out(4);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("h"),
                                buffer("h", ElementType::F32, {2, 2}),
                                out.data())
                  .ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.333251953125f,
                                     std::ldexp(1.0f, -24)}));
  std::vector<uint16_t> bf(4);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("f"),
                                buffer("f", ElementType::BF16, {4}), bf.data())
                  .ok());
  EXPECT_EQ(bf[0], 0x3f80);
  EXPECT_EQ(bf[1], 0x3f80); // 1 + 2^-8 rounds to even
  EXPECT_EQ(bf[2], 0xc060);
  std::vector<double> f64(4);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("f"),
                                buffer("f", ElementType::F64, {4}), f64.data())
                  .ok());
  EXPECT_EQ(f64[3], double(1e-3f));
  std::vector<int64_t> ints(3);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("i"),
                                buffer("i", ElementType::I64, {3}), ints.data())
                  .ok());
  EXPECT_EQ(ints, i64);

  // Conversion errors name the tensor.
  std::vector<int32_t> narrow(3);
  absl::Status range = (*file)->convertInto(
      *(*file)->find("i"), buffer("i", ElementType::I32, {3}), narrow.data());
  EXPECT_NE(std::string(range.message())
                .find("tensor 'i': element 2 (3000000000) does not fit"),
            std::string::npos)
      << range;
  absl::Status shape = (*file)->convertInto(
      *(*file)->find("f"), buffer("f", ElementType::F32, {2, 2}), out.data());
  EXPECT_NE(std::string(shape.message())
                .find("tensor 'f' has shape [4], but buffer 'f' expects "
                      "[2, 2]"),
            std::string::npos)
      << shape;
  absl::Status kind = (*file)->convertInto(
      *(*file)->find("i"), buffer("i", ElementType::F32, {3}), out.data());
  EXPECT_NE(std::string(kind.message())
                .find("has dtype I64, which cannot be "
                      "loaded into buffer 'i' of type "
                      "f32"),
            std::string::npos)
      << kind;
}

void expectSafetensorsRejected(const std::string &bytes,
                               const std::string &needle) {
  auto file = SafetensorsFile::fromBytes(bytes, "w.safetensors");
  ASSERT_FALSE(file.ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(file.status().message()).find(needle),
            std::string::npos)
      << "message: " << file.status().message()
      << "\nexpected to contain: " << needle;
}

TEST(RuntimeSafetensors, RejectsDamagedFiles) {
  const std::string data(16, '\0');
  auto one = [&](const std::string &entry) {
    return safetensors("{\"t\":" + entry + "}", data);
  };
  expectSafetensorsRejected("", "too short for the header length");
  expectSafetensorsRejected(std::string("\x05\0\0\0\0\0\0\0{}", 10),
                            "truncated");
  std::string hugeLength;
  putU64(hugeLength, ~uint64_t(0));
  expectSafetensorsRejected(hugeLength + "{}", "exceeds the limit");
  expectSafetensorsRejected(safetensors("{", ""), "the header is invalid JSON");
  expectSafetensorsRejected(safetensors("[]", ""), "not a JSON object");
  expectSafetensorsRejected(
      safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  data),
      "duplicate key \"t\"");
  // One tensor entry "t" and what its rejection says.
  const std::pair<std::string, std::string> badEntries[] = {
      {"3", "tensor 't': expected an object"},
      {R"({"dtype":"F31","shape":[1],"data_offsets":[0,4]})",
       "tensor 't': unknown dtype \"F31\""},
      {R"({"shape":[1],"data_offsets":[0,4]})",
       "tensor 't': missing string \"dtype\""},
      {R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})",
       "tensor 't': the shape holds a value"},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1})",
       "tensor 't': unknown key \"x\""},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0]})",
       "\"data_offsets\" is not a pair"},
      {R"({"dtype":"F32","shape":[2],"data_offsets":[12,20]})",
       "data_offsets [12, 20] lie outside the data buffer of 16 bytes"},
      {R"({"dtype":"F32","shape":[2],"data_offsets":[8,4]})", "lie outside"},
      {R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})",
       "8 bytes do not match F32 [3] (12 bytes)"},
      {R"({"dtype":"F32","shape":[4294967296,4294967296],)"
       R"("data_offsets":[0,8]})",
       "the shape is too large"},
  };
  for (const auto &[entry, needle] : badEntries) {
    SCOPED_TRACE(entry);
    expectSafetensorsRejected(one(entry), needle);
  }
  expectSafetensorsRejected(
      safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  data),
      "tensors 'a' and 'b' overlap");
  expectSafetensorsRejected(safetensors(R"({"__metadata__":{"a":1}})", ""),
                            "__metadata__ entry 'a' is not a string");

  // Whitespace padding after the header is allowed, as the format permits.
  EXPECT_TRUE(SafetensorsFile::fromBytes(safetensors("{}   ", ""), "x").ok());
  // Random damage never crashes.
  std::string good =
      safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[8,16]}})",
                  data);
  std::mt19937 rng(99);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = good;
    bytes[rng() % bytes.size()] = static_cast<char>(rng());
    (void)SafetensorsFile::fromBytes(bytes, "fuzz");
    (void)SafetensorsFile::fromBytes(bytes.substr(0, rng() % bytes.size()),
                                     "fuzz");
  }
}

} // namespace
