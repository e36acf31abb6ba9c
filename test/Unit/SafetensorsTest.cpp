//===- SafetensorsTest.cpp - Tests for the safetensors reader/writer ------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The front end's writer (moma/Frontend/Safetensors.h), read back with the
// one reader (moma/Format/SafetensorsReader.h, shared with the runtime), and
// every rejection of that reader on hand-made and randomly damaged files.
//
//===----------------------------------------------------------------------===//

#include "moma/Frontend/Safetensors.h"
#include "moma/Format/SafetensorsReader.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace moma;

namespace {

constexpr const char *kFileName = "test.safetensors";

/// Builds raw file bytes from a header text and a data buffer, with the
/// header length prefix set to the header's actual size.
std::string makeFile(llvm::StringRef header, llvm::StringRef data = "") {
  char prefix[8];
  llvm::support::endian::write64le(prefix, header.size());
  return std::string(prefix, 8) + header.str() + data.str();
}

/// Builds raw file bytes with an explicit (possibly wrong) header length.
std::string makeFileWithLength(uint64_t length, llvm::StringRef rest) {
  char prefix[8];
  llvm::support::endian::write64le(prefix, length);
  return std::string(prefix, 8) + rest.str();
}

using moma::runtime::SafetensorsFile;
using moma::runtime::SafetensorsTensor;

/// Reads \p bytes with the shared reader (moma/Format/SafetensorsReader.h).
absl::StatusOr<std::unique_ptr<SafetensorsFile>>
parseBytes(llvm::StringRef bytes, llvm::StringRef name = kFileName) {
  return SafetensorsFile::fromBytes(bytes.str(), name.str());
}

/// Reads \p bytes, which must succeed; null (and a failure) otherwise.
std::unique_ptr<SafetensorsFile> parseOk(llvm::StringRef bytes) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = parseBytes(bytes);
  if (!file.ok()) {
    ADD_FAILURE() << file.status();
    return nullptr;
  }
  return std::move(*file);
}

/// Parses \p bytes, which must fail as a damaged file, and returns the
/// error message.
std::string parseError(llvm::StringRef bytes,
                       llvm::StringRef name = kFileName) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      parseBytes(bytes, name);
  if (file.ok()) {
    ADD_FAILURE() << "expected a parse error";
    return "";
  }
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  return std::string(file.status().message());
}

/// Returns \p bytes as an array of bytes (what the writer takes).
llvm::ArrayRef<uint8_t> arrayOf(std::string_view bytes) {
  return llvm::ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
}

/// Returns the message of \p err, or "" for success.
std::string message(llvm::Error err) {
  if (!err)
    return "";
  return llvm::toString(std::move(err));
}

/// Checks that an llvm::Error is success, printing its message otherwise.
#define EXPECT_OK(expr) EXPECT_EQ(message(expr), "")
/// Like EXPECT_OK, but aborts the test on failure.
#define ASSERT_OK(expr) ASSERT_EQ(message(expr), "")

std::string writeToString(const SafetensorsWriter &writer) {
  std::string out;
  llvm::raw_string_ostream os(out);
  writer.write(os);
  os.flush();
  return out;
}

template <typename T> std::vector<uint8_t> bytesOf(const std::vector<T> &v) {
  std::vector<uint8_t> bytes(v.size() * sizeof(T));
  if (!bytes.empty())
    std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i)
    bytes[i] = static_cast<uint8_t>(seed + i * 7);
  return bytes;
}

/// A single well-formed F32 [2] tensor entry with the given offsets.
std::string f32Entry(uint64_t begin, uint64_t end,
                     llvm::StringRef shape = "2") {
  return (llvm::Twine(R"({"dtype":"F32","shape":[)") + shape +
          R"(],"data_offsets":[)" + llvm::Twine(begin) + "," +
          llvm::Twine(end) + "]}")
      .str();
}

/// Builds a writer holding a few tensors of different types plus metadata.
SafetensorsWriter makeSampleWriter() {
  SafetensorsWriter writer;
  EXPECT_OK(
      writer.add("layers.0.attn.wq", DType::F32, {2, 3},
                 bytesOf(std::vector<float>{1.f, 2.f, 3.f, 4.f, 5.f, 6.f})));
  EXPECT_OK(
      writer.add("step", DType::I64, {}, bytesOf(std::vector<int64_t>{42})));
  EXPECT_OK(writer.add("embed", DType::BF16, {4, 2}, pattern(16, 3)));
  EXPECT_OK(writer.add("empty", DType::U8, {0, 4}, {}));
  EXPECT_OK(writer.add("mask", DType::Bool, {5}, pattern(5, 1)));
  EXPECT_OK(writer.add("bias", DType::F64, {3}, pattern(24, 9)));
  EXPECT_OK(writer.add("idx", DType::I32, {1, 1, 3}, pattern(12, 2)));
  EXPECT_OK(writer.add("q", DType::I8, {7}, pattern(7, 5)));
  EXPECT_OK(writer.add("h", DType::F16, {3}, pattern(6, 4)));
  EXPECT_OK(writer.setMetadata("format", "pt"));
  EXPECT_OK(writer.setMetadata("note", "braces {}[]\",: inside"));
  return writer;
}

//===----------------------------------------------------------------------===//
// DType helpers
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, DTypeNamesAndSizes) {
  struct Case {
    DType dtype;
    const char *name;
    size_t size;
  } cases[] = {{DType::F64, "F64", 8},       {DType::F32, "F32", 4},
               {DType::F16, "F16", 2},       {DType::BF16, "BF16", 2},
               {DType::I64, "I64", 8},       {DType::I32, "I32", 4},
               {DType::I16, "I16", 2},       {DType::I8, "I8", 1},
               {DType::U64, "U64", 8},       {DType::U32, "U32", 4},
               {DType::U16, "U16", 2},       {DType::U8, "U8", 1},
               {DType::Bool, "BOOL", 1},     {DType::F8E4M3, "F8_E4M3", 1},
               {DType::F8E5M2, "F8_E5M2", 1}};
  for (const Case &c : cases) {
    EXPECT_EQ(dtypeName(c.dtype), c.name);
    EXPECT_EQ(dtypeSize(c.dtype), c.size);
    EXPECT_EQ(parseDType(c.name), c.dtype);
  }
  EXPECT_EQ(parseDType("f32"), std::nullopt);
  EXPECT_EQ(parseDType("F8"), std::nullopt);
  EXPECT_EQ(formatShape({}), "[]");
  EXPECT_EQ(formatShape({32, 64}), "[32, 64]");
}

//===----------------------------------------------------------------------===//
// Round trips
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, RoundTripInMemory) {
  SafetensorsWriter writer = makeSampleWriter();
  std::string bytes = writeToString(writer);

  // Layout: 8-byte prefix, header padded with spaces to a multiple of 8.
  ASSERT_GE(bytes.size(), 8u);
  uint64_t headerSize = llvm::support::endian::read64le(bytes.data());
  EXPECT_EQ(headerSize % 8, 0u);
  llvm::StringRef header = llvm::StringRef(bytes).substr(8, headerSize);
  EXPECT_TRUE(header.starts_with(R"({"__metadata__":{"format":"pt",)"));
  EXPECT_EQ(header.rtrim(' ').back(), '}');

  std::unique_ptr<SafetensorsFile> file = parseOk(bytes);
  ASSERT_TRUE(file);
  ASSERT_EQ(file->tensors().size(), 9u);

  // Tensors come out sorted by name and laid out contiguously in that order.
  uint64_t offset = 0;
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const SafetensorsTensor &info = file->tensors()[i];
    if (i > 0) {
      EXPECT_LT(file->tensors()[i - 1].name, info.name);
    }
    EXPECT_EQ(info.begin, offset);
    offset = info.end;
  }
  EXPECT_EQ(offset, file->dataBuffer().size());

  const SafetensorsTensor *wq = file->find("layers.0.attn.wq");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(wq->dtype, DType::F32);
  EXPECT_EQ(wq->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(wq->numElements(), 6u);
  std::vector<float> floats(6);
  ASSERT_EQ(file->data(*wq).size(), 24u);
  std::memcpy(floats.data(), file->data(*wq).data(), 24);
  EXPECT_EQ(floats, (std::vector<float>{1.f, 2.f, 3.f, 4.f, 5.f, 6.f}));

  const SafetensorsTensor *step = file->find("step");
  ASSERT_NE(step, nullptr);
  EXPECT_TRUE(step->shape.empty());
  EXPECT_EQ(arrayOf(file->data(*step)),
            llvm::ArrayRef<uint8_t>(bytesOf(std::vector<int64_t>{42})));

  const SafetensorsTensor *embed = file->find("embed");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(arrayOf(file->data(*embed)),
            llvm::ArrayRef<uint8_t>(pattern(16, 3)));

  const SafetensorsTensor *empty = file->find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->byteSize(), 0u);
  EXPECT_TRUE(file->data(*empty).empty());

  EXPECT_EQ(file->find("missing"), nullptr);
  EXPECT_EQ(file->find(""), nullptr);

  // Rewriting what was read reproduces the file byte for byte.
  SafetensorsWriter again;
  for (const SafetensorsTensor &info : file->tensors())
    ASSERT_OK(again.add(info.name, info.dtype, info.shape,
                        arrayOf(file->data(info))));
  for (const auto &kv : file->metadata())
    ASSERT_OK(again.setMetadata(kv.first, kv.second));
  EXPECT_EQ(writeToString(again), bytes);
}

TEST(SafetensorsTest, HeaderMatchesReferenceLayout) {
  // What the reference implementation writes for {"a": zeros(2, F32)} with
  // metadata {"format": "pt"}.
  SafetensorsWriter writer;
  ASSERT_OK(writer.add("a", DType::F32, {2}, pattern(8, 0)));
  ASSERT_OK(writer.setMetadata("format", "pt"));
  std::string bytes = writeToString(writer);
  std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],)"
      R"("data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> data = pattern(8, 0);
  EXPECT_EQ(bytes,
            makeFile(header, llvm::StringRef(
                                 reinterpret_cast<const char *>(data.data()),
                                 data.size())));
}

TEST(SafetensorsTest, MetadataRoundTrip) {
  SafetensorsWriter writer;
  ASSERT_OK(writer.setMetadata("format", "pt"));
  ASSERT_OK(writer.setMetadata("quote\"and\\slash", "x\ny\t\"z\""));
  ASSERT_OK(writer.setMetadata("unicode", "\xc3\xa9t\xc3\xa9"));
  ASSERT_OK(writer.setMetadata("format", "moma")); // Replaces.
  ASSERT_OK(writer.add("w", DType::U8, {1}, {7}));
  std::unique_ptr<SafetensorsFile> file = parseOk(writeToString(writer));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{
                                  {"format", "moma"},
                                  {"quote\"and\\slash", "x\ny\t\"z\""},
                                  {"unicode", "\xc3\xa9t\xc3\xa9"}}));
  EXPECT_EQ(file->metadata().count("absent"), 0u);
}

TEST(SafetensorsTest, EmptyFileWithZeroTensors) {
  SafetensorsWriter writer;
  std::string bytes = writeToString(writer);
  EXPECT_EQ(bytes, makeFile("{}      "));
  std::unique_ptr<SafetensorsFile> file = parseOk(bytes);
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_TRUE(file->metadata().empty());
  EXPECT_TRUE(file->dataBuffer().empty());

  // Unpadded "{}" and an explicitly empty metadata map are accepted too.
  EXPECT_TRUE(parseOk(makeFile("{}")));
  std::unique_ptr<SafetensorsFile> meta =
      parseOk(makeFile(R"({"__metadata__":{}})"));
  ASSERT_TRUE(meta);
  EXPECT_TRUE(meta->tensors().empty());
}

TEST(SafetensorsTest, WriteToFileAndOpen) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moma-st", dir));
  llvm::SmallString<128> path(dir);
  llvm::sys::path::append(path, "model.safetensors");

  SafetensorsWriter writer = makeSampleWriter();
  ASSERT_OK(writer.writeToFile(path));
  {
    auto file = SafetensorsFile::open(path.str().str());
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->name(), path.str().str());
    EXPECT_EQ((*file)->tensors().size(), 9u);
    auto buffer = llvm::MemoryBuffer::getFile(path);
    ASSERT_TRUE(static_cast<bool>(buffer));
    EXPECT_EQ((*buffer)->getBuffer(), writeToString(writer));
  }

  // Overwriting an existing file replaces it.
  SafetensorsWriter small;
  ASSERT_OK(small.add("only", DType::I8, {2}, {1, 2}));
  ASSERT_OK(small.writeToFile(path));
  {
    auto file = SafetensorsFile::open(path.str().str());
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_EQ((*file)->tensors().size(), 1u);
    EXPECT_EQ((*file)->tensors()[0].name, "only");
  }

  // No temporary files are left behind.
  std::error_code ec;
  std::vector<std::string> names;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    names.push_back(llvm::sys::path::filename(it->path()).str());
  EXPECT_EQ(names, std::vector<std::string>{"model.safetensors"});

  llvm::sys::fs::remove(path);
  llvm::sys::fs::remove(dir);
}

TEST(SafetensorsTest, WriteToFileFailureLeavesNoOutput) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moma-st", dir));
  SafetensorsWriter writer = makeSampleWriter();

  // The destination is a directory: the rename fails; the temporary is gone.
  llvm::SmallString<128> sub(dir);
  llvm::sys::path::append(sub, "sub");
  ASSERT_FALSE(llvm::sys::fs::create_directory(sub));
  std::string err = message(writer.writeToFile(sub));
  EXPECT_NE(err.find(sub.str().str() + ": cannot rename"), std::string::npos)
      << err;

  // The destination's directory does not exist.
  llvm::SmallString<128> missing(dir);
  llvm::sys::path::append(missing, "no-such-dir", "model.safetensors");
  err = message(writer.writeToFile(missing));
  EXPECT_NE(err.find(missing.str().str() + ": cannot create temporary file"),
            std::string::npos)
      << err;
  EXPECT_FALSE(llvm::sys::fs::exists(missing));

  std::error_code ec;
  std::vector<std::string> names;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    names.push_back(llvm::sys::path::filename(it->path()).str());
  EXPECT_EQ(names, std::vector<std::string>{"sub"});

  llvm::sys::fs::remove(sub);
  llvm::sys::fs::remove(dir);
}

TEST(SafetensorsTest, OpenMissingFile) {
  auto file = SafetensorsFile::open("/nonexistent/dir/model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(file.status().message(),
            "/nonexistent/dir/model.safetensors: no such file");
}

//===----------------------------------------------------------------------===//
// Validation errors
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, FileTooShort) {
  EXPECT_EQ(parseError(""), "test.safetensors: not a safetensors file: 0 bytes "
                            "is too short for the header length");
  EXPECT_EQ(parseError("1234567"),
            "test.safetensors: not a safetensors file: 7 bytes is too short "
            "for the header length");
}

TEST(SafetensorsTest, HeaderLengthBeyondFile) {
  EXPECT_EQ(parseError(makeFileWithLength(100, "{}")),
            "test.safetensors: truncated: the header length is 100 bytes, but "
            "only 2 follow");
  EXPECT_EQ(parseError(makeFileWithLength(3, "{}")),
            "test.safetensors: truncated: the header length is 3 bytes, but "
            "only 2 follow");
  EXPECT_EQ(parseError(makeFileWithLength(UINT64_MAX, "{}")),
            "test.safetensors: header length 18446744073709551615 exceeds the "
            "limit of 104857600 bytes");
  // Exactly 8 bytes, header length 0: the empty header is not JSON.
  EXPECT_NE(parseError(makeFileWithLength(0, "")).find("invalid JSON"),
            std::string::npos);
}

TEST(SafetensorsTest, HeaderNotJson) {
  std::string err = parseError(makeFile(R"({"a":)"));
  EXPECT_EQ(err.rfind("test.safetensors: the header is invalid JSON: ", 0), 0u)
      << err;
  err = parseError(makeFile("{\"\xff\":1}"));
  EXPECT_NE(err.find("the header is invalid JSON"), std::string::npos) << err;
  EXPECT_NE(err.find("UTF-8"), std::string::npos) << err;
  // Trailing garbage after the object.
  err = parseError(makeFile("{} x"));
  EXPECT_NE(err.find("the header is invalid JSON"), std::string::npos) << err;
}

TEST(SafetensorsTest, HeaderNotObject) {
  EXPECT_EQ(parseError(makeFile("[1, 2]")),
            "test.safetensors: the header is not a JSON object");
  EXPECT_EQ(parseError(makeFile("\"x\"     ")),
            "test.safetensors: the header is not a JSON object");
  EXPECT_EQ(parseError(makeFile("null")),
            "test.safetensors: the header is not a JSON object");
}

TEST(SafetensorsTest, DeeplyNestedHeader) {
  // The parse stops at the depth limit; deep input must not overflow a stack.
  std::string deep(1'000'000, '[');
  EXPECT_EQ(parseError(makeFile(deep)),
            "test.safetensors: the header is invalid JSON: nesting deeper than "
            "32 levels");
  std::string valid =
      "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(parseError(makeFile(valid)),
            "test.safetensors: the header is invalid JSON: nesting deeper than "
            "32 levels");
}

TEST(SafetensorsTest, EntryNotObject) {
  EXPECT_EQ(parseError(makeFile(R"({"w": 5})")),
            "test.safetensors: tensor 'w': expected an object");
  EXPECT_EQ(parseError(makeFile(R"({"w": [0, 4]})")),
            "test.safetensors: tensor 'w': expected an object");
}

TEST(SafetensorsTest, MissingFields) {
  EXPECT_EQ(parseError(
                makeFile(R"({"w":{"shape":[],"data_offsets":[0,4]}})", "abcd")),
            "test.safetensors: tensor 'w': missing string \"dtype\"");
  EXPECT_EQ(parseError(makeFile(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})",
                                "abcd")),
            "test.safetensors: tensor 'w': missing array \"shape\"");
  EXPECT_EQ(parseError(makeFile(R"({"w":{"dtype":"F32","shape":[]}})", "abcd")),
            "test.safetensors: tensor 'w': \"data_offsets\" is not a pair of "
            "non-negative integers");
}

TEST(SafetensorsTest, UnknownDType) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"F8","shape":[],"data_offsets":[0,1]}})", "a")),
      "test.safetensors: tensor 'w': unknown dtype \"F8\"");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"f32","shape":[],"data_offsets":[0,4]}})", "abcd")),
      "test.safetensors: tensor 'w': unknown dtype \"f32\"");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":4,"shape":[],"data_offsets":[0,4]}})", "abcd")),
      "test.safetensors: tensor 'w': missing string \"dtype\"");
}

TEST(SafetensorsTest, BadShape) {
  const std::string expected = "test.safetensors: tensor 'w': the shape holds "
                               "a value that is not a non-negative integer";
  for (const char *shape :
       {"2,-1", "1.5", "\"2\"", "null", "[2]", "1e2", "2.0", "true"})
    EXPECT_EQ(parseError(makeFile(R"({"w":)" + f32Entry(0, 8, shape) + "}",
                                  "12345678")),
              expected)
        << shape;
  EXPECT_EQ(parseError(makeFile(
                R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})",
                std::string(16, 'x'))),
            "test.safetensors: tensor 'w': missing array \"shape\"");
  // A dimension beyond int64_t.
  EXPECT_EQ(parseError(makeFile(R"({"w":)" +
                                    f32Entry(0, 8, "9223372036854775808") + "}",
                                "12345678")),
            expected);
}

TEST(SafetensorsTest, BadDataOffsets) {
  const std::string expected = "test.safetensors: tensor 'w': \"data_offsets\" "
                               "is not a pair of non-negative integers";
  for (const char *offsets :
       {"[0]", "[0,4,8]", "[]", "[-1,4]", "[0,\"4\"]", "4", "[0,4.5]",
        "[0,18446744073709551616]", "{\"0\":4}"})
    EXPECT_EQ(
        parseError(makeFile(
            std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") +
                offsets + "}}",
            "abcd")),
        expected)
        << offsets;
  EXPECT_EQ(parseError(makeFile(R"({"w":)" + f32Entry(8, 0) + "}", "12345678")),
            "test.safetensors: tensor 'w': data_offsets [8, 0] lie outside the "
            "data buffer of 8 bytes");
}

TEST(SafetensorsTest, OffsetsBeyondDataBuffer) {
  EXPECT_EQ(
      parseError(makeFile(R"({"w":)" + f32Entry(4, 12) + "}", "12345678")),
      "test.safetensors: tensor 'w': data_offsets [4, 12] lie outside the data "
      "buffer of 8 bytes");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":)" +
              f32Entry(18446744073709551607ull, 18446744073709551615ull) + "}",
          "12345678")),
      "test.safetensors: tensor 'w': data_offsets [18446744073709551607, "
      "18446744073709551615] lie outside the data buffer of 8 bytes");
}

TEST(SafetensorsTest, ByteSizeMismatch) {
  EXPECT_EQ(parseError(makeFile(R"({"w":)" + f32Entry(0, 4) + "}", "12345678")),
            "test.safetensors: tensor 'w': 4 bytes do not match F32 [2] (8 "
            "bytes)");
  EXPECT_EQ(parseError(makeFile(
                R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,9]}})",
                "123456789")),
            "test.safetensors: tensor 'w': 9 bytes do not match BF16 [2, 2] (8 "
            "bytes)");
}

TEST(SafetensorsTest, ByteSizeOverflow) {
  // 2^32 * 2^32 elements overflows; so does 2^62 elements of 4 bytes.
  EXPECT_EQ(parseError(makeFile(
                R"({"w":)" + f32Entry(0, 8, "4294967296,4294967296") + "}",
                "12345678")),
            "test.safetensors: tensor 'w': the shape is too large");
  EXPECT_EQ(parseError(makeFile(R"({"w":)" +
                                    f32Entry(0, 8, "4611686018427387904") + "}",
                                "12345678")),
            "test.safetensors: tensor 'w': the shape is too large");
  // A zero dimension makes the product zero even if the others overflow.
  std::unique_ptr<SafetensorsFile> file = parseOk(
      makeFile(R"({"w":)" + f32Entry(0, 0, "4294967296,4294967296,0") + "}"));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->tensors()[0].numElements(), 0u);
}

TEST(SafetensorsTest, OverlappingTensors) {
  std::string header =
      R"({"a":)" + f32Entry(0, 8) + R"(,"b":)" + f32Entry(4, 12) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(12, 'x'))),
            "test.safetensors: tensors 'a' and 'b' overlap");
  // Identical ranges overlap as well.
  header = R"({"a":)" + f32Entry(0, 8) + R"(,"b":)" + f32Entry(0, 8) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(8, 'x'))),
            "test.safetensors: tensors 'a' and 'b' overlap");
  // A range nested inside an earlier, longer one.
  header = R"({"a":)" + f32Entry(0, 16, "4") + R"(,"b":)" + f32Entry(4, 12) +
           R"(,"c":)" + f32Entry(12, 20) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(20, 'x'))),
            "test.safetensors: tensors 'a' and 'b' overlap");
  // Adjacent ranges, gaps and empty tensors anywhere are fine.
  header = R"({"a":)" + f32Entry(0, 8) + R"(,"b":)" + f32Entry(8, 16) +
           R"(,"c":)" + f32Entry(20, 28) + R"(,"e":)" + f32Entry(4, 4, "0") +
           "}";
  EXPECT_TRUE(parseOk(makeFile(header, std::string(28, 'x'))));
}

TEST(SafetensorsTest, BadMetadata) {
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":[]})")),
            "test.safetensors: __metadata__ is not an object");
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{"k":1}})")),
            "test.safetensors: __metadata__ entry 'k' is not a string");
}

TEST(SafetensorsTest, DuplicateKeys) {
  // JSON parsers commonly keep the last of duplicate keys silently; the
  // reader must reject them instead.
  std::string header =
      R"({"a":)" + f32Entry(0, 8) + R"(,"a":)" + f32Entry(8, 16) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(16, 'x'))),
            "test.safetensors: the header is invalid JSON: duplicate key "
            "\"a\"");
  // Spelled differently but equal after unescaping.
  header =
      R"({"a":)" + f32Entry(0, 8) + R"(,"\u0061":)" + f32Entry(8, 16) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(16, 'x'))),
            "test.safetensors: the header is invalid JSON: duplicate key "
            "\"a\"");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"F32","dtype":"I32","shape":[],"data_offsets":[0,4]}})",
          "abcd")),
      "test.safetensors: the header is invalid JSON: duplicate key \"dtype\"");
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{"k":"1","k":"2"}})")),
            "test.safetensors: the header is invalid JSON: duplicate key "
            "\"k\"");
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{},"__metadata__":{}})")),
            "test.safetensors: the header is invalid JSON: duplicate key "
            "\"__metadata__\"");
  // Equal keys in different objects, and key-like strings in values or
  // arrays, are not duplicates.
  header = R"({"__metadata__":{"a":"a","b":"{\"a\":[\"a\",","c":"\\"},)"
           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::unique_ptr<SafetensorsFile> file =
      parseOk(makeFile(header, std::string(8, 'x')));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->metadata().at("b"), "{\"a\":[\"a\",");
  EXPECT_EQ(file->metadata().at("c"), "\\");
}

TEST(SafetensorsTest, FirstErrorIsDeterministic) {
  // Entries are checked in name order regardless of hash order.
  std::string header = R"({"z":5,"m":6,"b":7,"q":8})";
  EXPECT_EQ(parseError(makeFile(header)),
            "test.safetensors: tensor 'b': expected an object");
}

TEST(SafetensorsTest, UnknownFieldsAreRejectedTrailingBytesAccepted) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":1}})",
          "abcdef")),
      "test.safetensors: tensor 'w': unknown key \"x\"");
  std::unique_ptr<SafetensorsFile> file = parseOk(makeFile(
      R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "abcdef"));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->dataBuffer().size(), 6u);
  EXPECT_EQ(file->data(*file->find("w")), "ab");
  // A tensor that does not belong to the file yields no bytes.
  SafetensorsTensor foreign;
  foreign.begin = 4;
  foreign.end = 100;
  EXPECT_TRUE(file->data(foreign).empty());
}

//===----------------------------------------------------------------------===//
// Writer validation
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, WriterRejectsBadTensors) {
  SafetensorsWriter writer;
  EXPECT_EQ(message(writer.add("w", DType::F32, {2}, pattern(4, 0))),
            "tensor 'w': got 4 bytes, but shape [2] with dtype F32 needs 8 "
            "bytes");
  EXPECT_EQ(message(writer.add("w", DType::F32, {-2}, {})),
            "tensor 'w': shape [-2] has a negative dimension");
  EXPECT_EQ(message(writer.add("w", DType::F64,
                               {int64_t(1) << 40, int64_t(1) << 40}, {})),
            "tensor 'w': byte size of shape [1099511627776, 1099511627776] "
            "overflows 64 bits");
  EXPECT_EQ(message(writer.add("__metadata__", DType::U8, {}, {1})),
            "tensor '__metadata__': name is reserved for metadata");
  EXPECT_EQ(message(writer.add("", DType::U8, {}, {1})),
            "cannot add a tensor with an empty name");
  EXPECT_EQ(message(writer.add("\xff", DType::U8, {}, {1})),
            "tensor '\xff': name is not valid UTF-8");
  EXPECT_EQ(message(writer.add("w", DType::U8, {}, {1})), "");
  EXPECT_EQ(message(writer.add("w", DType::U8, {}, {1})),
            "tensor 'w': already added");
  EXPECT_NE(message(writer.setMetadata("k", "\xc3")), "");
  EXPECT_EQ(writer.size(), 1u);
}

//===----------------------------------------------------------------------===//
// Random corruption
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, RandomCorruptionNeverCrashes) {
  const std::string base = writeToString(makeSampleWriter());
  const size_t headerEnd = 8 + llvm::support::endian::read64le(base.data());
  std::mt19937 rng(0x5AFE7E45);
  auto below = [&](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  };
  const char interesting[] = "{}[]\",:-0123456789.e\\ \x00\xff"
                             "FIBUL";

  unsigned successes = 0, failures = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::string bytes = base;
    unsigned mutations = 1 + below(3);
    for (unsigned m = 0; m < mutations && !bytes.empty(); ++m) {
      switch (below(7)) {
      case 0: // Flip a bit anywhere.
        bytes[below(bytes.size())] ^= static_cast<char>(1u << below(8));
        break;
      case 1: // Overwrite a header byte with a JSON-significant character.
      case 2: {
        size_t limit = std::min(bytes.size(), headerEnd);
        size_t pos = limit > 8 ? 8 + below(limit - 8) : below(bytes.size());
        bytes[pos] = interesting[below(sizeof(interesting) - 1)];
        break;
      }
      case 3: // Truncate.
        bytes.resize(below(bytes.size() + 1));
        break;
      case 4: // Corrupt the length prefix.
        bytes[below(std::min<size_t>(8, bytes.size()))] =
            static_cast<char>(below(256));
        break;
      case 5: // Delete a byte.
        bytes.erase(below(bytes.size()), 1);
        break;
      case 6: // Insert a byte.
        bytes.insert(below(bytes.size() + 1), 1,
                     interesting[below(sizeof(interesting) - 1)]);
        break;
      }
    }

    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        parseBytes(bytes, "fuzz.safetensors");
    if (!file.ok()) {
      ++failures;
      std::string err(file.status().message());
      EXPECT_EQ(err.rfind("fuzz.safetensors: ", 0), 0u) << err;
      continue;
    }
    ++successes;
    // Everything a successfully parsed file reports must be consistent and
    // in bounds; touch every byte so sanitizers would catch a bad view.
    unsigned checksum = 0;
    for (const SafetensorsTensor &info : (*file)->tensors()) {
      std::string_view data = (*file)->data(info);
      ASSERT_EQ(data.size(), info.byteSize());
      ASSERT_LE(info.end, (*file)->dataBuffer().size());
      ASSERT_EQ(info.byteSize(), info.numElements() * dtypeSize(info.dtype));
      for (char b : data)
        checksum += static_cast<uint8_t>(b);
      EXPECT_EQ((*file)->find(info.name), &info);
    }
    (void)checksum;
  }
  // Both outcomes occur, so the loop exercises the parser meaningfully.
  EXPECT_GT(successes, 0u);
  EXPECT_GT(failures, 0u);
  std::printf("corruption loop: %u parsed, %u rejected\n", successes, failures);
}

} // namespace
