//===- SafetensorsTest.cpp - Tests for the safetensors reader/writer ------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Frontend/Safetensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
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

llvm::Expected<SafetensorsFile> parseBytes(llvm::StringRef bytes,
                                           llvm::StringRef name = kFileName) {
  return SafetensorsFile::parse(
      llvm::MemoryBuffer::getMemBufferCopy(bytes, name));
}

/// Parses \p bytes, which must fail, and returns the error message.
std::string parseError(llvm::StringRef bytes,
                       llvm::StringRef name = kFileName) {
  llvm::Expected<SafetensorsFile> file = parseBytes(bytes, name);
  if (file) {
    ADD_FAILURE() << "expected a parse error";
    return "";
  }
  return llvm::toString(file.takeError());
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
  } cases[] = {{DType::F64, "F64", 8},  {DType::F32, "F32", 4},
               {DType::F16, "F16", 2},  {DType::BF16, "BF16", 2},
               {DType::I64, "I64", 8},  {DType::I32, "I32", 4},
               {DType::I8, "I8", 1},    {DType::U8, "U8", 1},
               {DType::Bool, "BOOL", 1}};
  for (const Case &c : cases) {
    EXPECT_EQ(dtypeName(c.dtype), c.name);
    EXPECT_EQ(dtypeSize(c.dtype), c.size);
    EXPECT_EQ(parseDType(c.name), c.dtype);
  }
  EXPECT_EQ(parseDType("f32"), std::nullopt);
  EXPECT_EQ(parseDType("F8_E4M3"), std::nullopt);
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

  llvm::Expected<SafetensorsFile> file = parseBytes(bytes);
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  ASSERT_EQ(file->tensors().size(), 9u);

  // Tensors come out sorted by name and laid out contiguously in that order.
  uint64_t offset = 0;
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const TensorInfo &info = file->tensors()[i];
    if (i > 0) {
      EXPECT_LT(file->tensors()[i - 1].name, info.name);
    }
    EXPECT_EQ(info.begin, offset);
    offset = info.end;
  }
  EXPECT_EQ(offset, file->dataBuffer().size());

  const TensorInfo *wq = file->lookup("layers.0.attn.wq");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(wq->dtype, DType::F32);
  EXPECT_EQ(llvm::ArrayRef<int64_t>(wq->shape),
            llvm::ArrayRef<int64_t>({2, 3}));
  EXPECT_EQ(wq->numElements(), 6u);
  std::vector<float> floats(6);
  ASSERT_EQ(file->data(*wq).size(), 24u);
  std::memcpy(floats.data(), file->data(*wq).data(), 24);
  EXPECT_EQ(floats, (std::vector<float>{1.f, 2.f, 3.f, 4.f, 5.f, 6.f}));

  const TensorInfo *step = file->lookup("step");
  ASSERT_NE(step, nullptr);
  EXPECT_TRUE(step->shape.empty());
  EXPECT_EQ(file->data(*step),
            llvm::ArrayRef<uint8_t>(bytesOf(std::vector<int64_t>{42})));

  const TensorInfo *embed = file->lookup("embed");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(file->data(*embed), llvm::ArrayRef<uint8_t>(pattern(16, 3)));

  const TensorInfo *empty = file->lookup("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->byteSize(), 0u);
  EXPECT_TRUE(file->data(*empty).empty());

  EXPECT_EQ(file->lookup("missing"), nullptr);
  EXPECT_EQ(file->lookup(""), nullptr);

  // Rewriting what was read reproduces the file byte for byte.
  SafetensorsWriter again;
  for (const TensorInfo &info : file->tensors())
    ASSERT_OK(again.add(info.name, info.dtype, info.shape, file->data(info)));
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
  llvm::Expected<SafetensorsFile> file = parseBytes(writeToString(writer));
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->metadata().size(), 3u);
  EXPECT_EQ(file->getMetadata("format"), llvm::StringRef("moma"));
  EXPECT_EQ(file->getMetadata("quote\"and\\slash"),
            llvm::StringRef("x\ny\t\"z\""));
  EXPECT_EQ(file->getMetadata("unicode"), llvm::StringRef("\xc3\xa9t\xc3\xa9"));
  EXPECT_EQ(file->getMetadata("absent"), std::nullopt);
}

TEST(SafetensorsTest, EmptyFileWithZeroTensors) {
  SafetensorsWriter writer;
  std::string bytes = writeToString(writer);
  EXPECT_EQ(bytes, makeFile("{}      "));
  llvm::Expected<SafetensorsFile> file = parseBytes(bytes);
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_TRUE(file->metadata().empty());
  EXPECT_TRUE(file->dataBuffer().empty());

  // Unpadded "{}" and an explicitly empty metadata map are accepted too.
  EXPECT_TRUE(static_cast<bool>(parseBytes(makeFile("{}"))));
  llvm::Expected<SafetensorsFile> meta =
      parseBytes(makeFile(R"({"__metadata__":{}})"));
  ASSERT_TRUE(static_cast<bool>(meta)) << llvm::toString(meta.takeError());
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
    llvm::Expected<SafetensorsFile> file = SafetensorsFile::open(path);
    ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
    EXPECT_EQ(file->fileName(), path);
    EXPECT_EQ(file->tensors().size(), 9u);
    auto buffer = llvm::MemoryBuffer::getFile(path);
    ASSERT_TRUE(static_cast<bool>(buffer));
    EXPECT_EQ((*buffer)->getBuffer(), writeToString(writer));
    // Errors from expect() name the path.
    EXPECT_EQ(message(file->expect("nope", DType::F32, {})),
              (path + ": tensor 'nope': not found").str());
  }

  // Overwriting an existing file replaces it.
  SafetensorsWriter small;
  ASSERT_OK(small.add("only", DType::I8, {2}, {1, 2}));
  ASSERT_OK(small.writeToFile(path));
  {
    llvm::Expected<SafetensorsFile> file = SafetensorsFile::open(path);
    ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
    ASSERT_EQ(file->tensors().size(), 1u);
    EXPECT_EQ(file->tensors()[0].name, "only");
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
  llvm::Expected<SafetensorsFile> file =
      SafetensorsFile::open("/nonexistent/dir/model.safetensors");
  ASSERT_FALSE(static_cast<bool>(file));
  std::string err = llvm::toString(file.takeError());
  EXPECT_EQ(
      err.rfind("/nonexistent/dir/model.safetensors: cannot open file: ", 0),
      0u)
      << err;
}

//===----------------------------------------------------------------------===//
// Validation errors
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, FileTooShort) {
  EXPECT_EQ(parseError(""), "test.safetensors: file is too small (0 bytes) to "
                            "hold the 8-byte header length");
  EXPECT_EQ(parseError("1234567"),
            "test.safetensors: file is too small (7 bytes) to hold the 8-byte "
            "header length");
  // Without a buffer name the prefix is omitted.
  EXPECT_EQ(parseError("", ""),
            "file is too small (0 bytes) to hold the 8-byte header length");
}

TEST(SafetensorsTest, HeaderLengthBeyondFile) {
  EXPECT_EQ(parseError(makeFileWithLength(100, "{}")),
            "test.safetensors: header length 100 is larger than the 2 bytes "
            "that follow the length prefix");
  EXPECT_EQ(parseError(makeFileWithLength(3, "{}")),
            "test.safetensors: header length 3 is larger than the 2 bytes "
            "that follow the length prefix");
  EXPECT_EQ(parseError(makeFileWithLength(UINT64_MAX, "{}")),
            "test.safetensors: header length 18446744073709551615 exceeds the "
            "limit of 100000000 bytes");
  // Exactly 8 bytes, header length 0: the empty header is not JSON.
  EXPECT_NE(parseError(makeFileWithLength(0, "")).find("not valid JSON"),
            std::string::npos);
}

TEST(SafetensorsTest, HeaderNotJson) {
  std::string err = parseError(makeFile(R"({"a":)"));
  EXPECT_EQ(err.rfind("test.safetensors: header is not valid JSON: ", 0), 0u)
      << err;
  err = parseError(makeFile("{\"\xff\":1}"));
  EXPECT_NE(err.find("header is not valid JSON"), std::string::npos) << err;
  EXPECT_NE(err.find("UTF-8"), std::string::npos) << err;
  // Trailing garbage after the object.
  err = parseError(makeFile("{} x"));
  EXPECT_NE(err.find("header is not valid JSON"), std::string::npos) << err;
}

TEST(SafetensorsTest, HeaderNotObject) {
  EXPECT_EQ(parseError(makeFile("[1, 2]")),
            "test.safetensors: header is not a JSON object");
  EXPECT_EQ(parseError(makeFile("\"x\"     ")),
            "test.safetensors: header is not a JSON object");
  EXPECT_EQ(parseError(makeFile("null")),
            "test.safetensors: header is not a JSON object");
}

TEST(SafetensorsTest, DeeplyNestedHeader) {
  // llvm::json::parse recurses per nesting level; this must not overflow.
  std::string deep(1'000'000, '[');
  EXPECT_EQ(parseError(makeFile(deep)),
            "test.safetensors: header JSON is nested deeper than 64 levels");
  std::string valid =
      "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(parseError(makeFile(valid)),
            "test.safetensors: header JSON is nested deeper than 64 levels");
}

TEST(SafetensorsTest, EntryNotObject) {
  EXPECT_EQ(parseError(makeFile(R"({"w": 5})")),
            "test.safetensors: tensor 'w': entry is not a JSON object");
  EXPECT_EQ(parseError(makeFile(R"({"w": [0, 4]})")),
            "test.safetensors: tensor 'w': entry is not a JSON object");
}

TEST(SafetensorsTest, MissingFields) {
  EXPECT_EQ(parseError(
                makeFile(R"({"w":{"shape":[],"data_offsets":[0,4]}})", "abcd")),
            "test.safetensors: tensor 'w': missing 'dtype'");
  EXPECT_EQ(parseError(makeFile(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})",
                                "abcd")),
            "test.safetensors: tensor 'w': missing 'shape'");
  EXPECT_EQ(parseError(makeFile(R"({"w":{"dtype":"F32","shape":[]}})", "abcd")),
            "test.safetensors: tensor 'w': missing 'data_offsets'");
}

TEST(SafetensorsTest, UnknownDType) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"F8","shape":[],"data_offsets":[0,1]}})", "a")),
      "test.safetensors: tensor 'w': unknown dtype 'F8'");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"f32","shape":[],"data_offsets":[0,4]}})", "abcd")),
      "test.safetensors: tensor 'w': unknown dtype 'f32'");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":4,"shape":[],"data_offsets":[0,4]}})", "abcd")),
      "test.safetensors: tensor 'w': 'dtype' is not a string");
}

TEST(SafetensorsTest, BadShape) {
  const std::string expected =
      "test.safetensors: tensor 'w': 'shape' is not a list of non-negative "
      "integers";
  for (const char *shape :
       {"2,-1", "1.5", "\"2\"", "null", "[2]", "1e2", "2.0", "true"})
    EXPECT_EQ(parseError(makeFile(R"({"w":)" + f32Entry(0, 8, shape) + "}",
                                  "12345678")),
              expected)
        << shape;
  EXPECT_EQ(parseError(makeFile(
                R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})",
                std::string(16, 'x'))),
            expected);
  EXPECT_EQ(
      parseError(
          makeFile(R"({"w":)" + f32Entry(0, 8, "9223372036854775808") + "}",
                   "12345678")),
      "test.safetensors: tensor 'w': shape dimension 9223372036854775808 is "
      "out of range");
}

TEST(SafetensorsTest, BadDataOffsets) {
  const std::string expected = "test.safetensors: tensor 'w': 'data_offsets' "
                               "is not a list of two non-negative integers";
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
            "test.safetensors: tensor 'w': data_offsets [8, 0] have begin > "
            "end");
}

TEST(SafetensorsTest, OffsetsBeyondDataBuffer) {
  EXPECT_EQ(
      parseError(makeFile(R"({"w":)" + f32Entry(4, 12) + "}", "12345678")),
      "test.safetensors: tensor 'w': data_offsets [4, 12] extend beyond "
      "the data buffer of 8 bytes");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":)" +
              f32Entry(18446744073709551607ull, 18446744073709551615ull) + "}",
          "12345678")),
      "test.safetensors: tensor 'w': data_offsets [18446744073709551607, "
      "18446744073709551615] extend beyond the data buffer of 8 bytes");
}

TEST(SafetensorsTest, ByteSizeMismatch) {
  EXPECT_EQ(parseError(makeFile(R"({"w":)" + f32Entry(0, 4) + "}", "12345678")),
            "test.safetensors: tensor 'w': data_offsets [0, 4] span 4 bytes, "
            "but shape [2] with dtype F32 needs 8 bytes");
  EXPECT_EQ(parseError(makeFile(
                R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,9]}})",
                "123456789")),
            "test.safetensors: tensor 'w': data_offsets [0, 9] span 9 bytes, "
            "but shape [2, 2] with dtype BF16 needs 8 bytes");
}

TEST(SafetensorsTest, ByteSizeOverflow) {
  // 2^32 * 2^32 elements overflows; so does 2^62 elements of 4 bytes.
  EXPECT_EQ(parseError(makeFile(
                R"({"w":)" + f32Entry(0, 8, "4294967296,4294967296") + "}",
                "12345678")),
            "test.safetensors: tensor 'w': byte size of shape [4294967296, "
            "4294967296] with dtype F32 overflows 64 bits");
  EXPECT_EQ(parseError(makeFile(R"({"w":)" +
                                    f32Entry(0, 8, "4611686018427387904") + "}",
                                "12345678")),
            "test.safetensors: tensor 'w': byte size of shape "
            "[4611686018427387904] with dtype F32 overflows 64 bits");
  // A zero dimension makes the product zero even if the others overflow.
  llvm::Expected<SafetensorsFile> file = parseBytes(
      makeFile(R"({"w":)" + f32Entry(0, 0, "4294967296,4294967296,0") + "}"));
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->tensors()[0].numElements(), 0u);
}

TEST(SafetensorsTest, OverlappingTensors) {
  std::string header =
      R"({"a":)" + f32Entry(0, 8) + R"(,"b":)" + f32Entry(4, 12) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(12, 'x'))),
            "test.safetensors: tensor 'b': data_offsets [4, 12] overlap "
            "tensor 'a' [0, 8]");
  // Identical ranges overlap as well.
  header = R"({"a":)" + f32Entry(0, 8) + R"(,"b":)" + f32Entry(0, 8) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(8, 'x'))),
            "test.safetensors: tensor 'b': data_offsets [0, 8] overlap "
            "tensor 'a' [0, 8]");
  // A range nested inside an earlier, longer one.
  header = R"({"a":)" + f32Entry(0, 16, "4") + R"(,"b":)" + f32Entry(4, 12) +
           R"(,"c":)" + f32Entry(12, 20) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(20, 'x'))),
            "test.safetensors: tensor 'b': data_offsets [4, 12] overlap "
            "tensor 'a' [0, 16]");
  // Adjacent ranges, gaps and empty tensors anywhere are fine.
  header = R"({"a":)" + f32Entry(0, 8) + R"(,"b":)" + f32Entry(8, 16) +
           R"(,"c":)" + f32Entry(20, 28) + R"(,"e":)" + f32Entry(4, 4, "0") +
           "}";
  llvm::Expected<SafetensorsFile> file =
      parseBytes(makeFile(header, std::string(28, 'x')));
  EXPECT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
}

TEST(SafetensorsTest, BadMetadata) {
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":[]})")),
            "test.safetensors: '__metadata__' is not a JSON object");
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{"k":1}})")),
            "test.safetensors: '__metadata__' value for key 'k' is not a "
            "string");
}

TEST(SafetensorsTest, DuplicateKeys) {
  // llvm::json::parse keeps the last of duplicate keys silently; the reader
  // must reject them instead.
  std::string header =
      R"({"a":)" + f32Entry(0, 8) + R"(,"a":)" + f32Entry(8, 16) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(16, 'x'))),
            "test.safetensors: header contains duplicate entry 'a'");
  // Spelled differently but equal after unescaping.
  header =
      R"({"a":)" + f32Entry(0, 8) + R"(,"\u0061":)" + f32Entry(8, 16) + "}";
  EXPECT_EQ(parseError(makeFile(header, std::string(16, 'x'))),
            "test.safetensors: header contains duplicate entry 'a'");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"F32","dtype":"I32","shape":[],"data_offsets":[0,4]}})",
          "abcd")),
      "test.safetensors: tensor 'w': entry contains duplicate key 'dtype'");
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{"k":"1","k":"2"}})")),
            "test.safetensors: '__metadata__' contains duplicate key 'k'");
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{},"__metadata__":{}})")),
            "test.safetensors: header contains duplicate entry "
            "'__metadata__'");
  // Equal keys in different objects, and key-like strings in values or
  // arrays, are not duplicates.
  header = R"({"__metadata__":{"a":"a","b":"{\"a\":[\"a\",","c":"\\"},)"
           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  llvm::Expected<SafetensorsFile> file =
      parseBytes(makeFile(header, std::string(8, 'x')));
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->getMetadata("b"), llvm::StringRef("{\"a\":[\"a\","));
  EXPECT_EQ(file->getMetadata("c"), llvm::StringRef("\\"));
}

TEST(SafetensorsTest, FirstErrorIsDeterministic) {
  // Entries are checked in name order regardless of hash order.
  std::string header = R"({"z":5,"m":6,"b":7,"q":8})";
  EXPECT_EQ(parseError(makeFile(header)),
            "test.safetensors: tensor 'b': entry is not a JSON object");
}

TEST(SafetensorsTest, UnknownFieldsAndTrailingBytesAreAccepted) {
  std::string header =
      R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":1}})";
  llvm::Expected<SafetensorsFile> file = parseBytes(makeFile(header, "abcdef"));
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->dataBuffer().size(), 6u);
  EXPECT_EQ(file->data(*file->lookup("w")),
            llvm::ArrayRef<uint8_t>({'a', 'b'}));
  // A TensorInfo that does not belong to the file yields no bytes.
  TensorInfo foreign;
  foreign.begin = 4;
  foreign.end = 100;
  EXPECT_TRUE(file->data(foreign).empty());
}

//===----------------------------------------------------------------------===//
// expect()
//===----------------------------------------------------------------------===//

TEST(SafetensorsTest, ExpectMessages) {
  SafetensorsWriter writer;
  ASSERT_OK(writer.add("layers.0.attn.wq", DType::F32, {32, 32},
                       std::vector<uint8_t>(32 * 32 * 4)));
  ASSERT_OK(writer.add("scale", DType::F32, {}, pattern(4, 0)));
  llvm::Expected<SafetensorsFile> file =
      parseBytes(writeToString(writer), "model.safetensors");
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());

  EXPECT_EQ(message(file->expect("layers.0.attn.wq", DType::F32, {32, 32})),
            "");
  EXPECT_EQ(message(file->expect("layers.0.attn.wq", DType::F32, {32, 64})),
            "model.safetensors: tensor 'layers.0.attn.wq': expected shape "
            "[32, 64], found [32, 32]");
  EXPECT_EQ(message(file->expect("layers.0.attn.wq", DType::BF16, {32, 32})),
            "model.safetensors: tensor 'layers.0.attn.wq': expected dtype "
            "BF16, found F32");
  EXPECT_EQ(message(file->expect("layers.0.attn.wq", DType::I8, {32})),
            "model.safetensors: tensor 'layers.0.attn.wq': expected dtype I8, "
            "found F32; expected shape [32], found [32, 32]");
  EXPECT_EQ(message(file->expect("scale", DType::F32, {1})),
            "model.safetensors: tensor 'scale': expected shape [1], found []");
  EXPECT_EQ(message(file->expect("layers.1.attn.wq", DType::F32, {32, 32})),
            "model.safetensors: tensor 'layers.1.attn.wq': not found");

  llvm::Expected<const TensorInfo *> info = file->get("scale", DType::F32, {});
  ASSERT_TRUE(static_cast<bool>(info)) << llvm::toString(info.takeError());
  EXPECT_EQ((*info)->name, "scale");
  llvm::Expected<const TensorInfo *> bad = file->get("scale", DType::F64, {});
  EXPECT_FALSE(static_cast<bool>(bad));
  llvm::consumeError(bad.takeError());
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

    llvm::Expected<SafetensorsFile> file =
        parseBytes(bytes, "fuzz.safetensors");
    if (!file) {
      ++failures;
      std::string err = llvm::toString(file.takeError());
      EXPECT_EQ(err.rfind("fuzz.safetensors: ", 0), 0u) << err;
      continue;
    }
    ++successes;
    // Everything a successfully parsed file reports must be consistent and
    // in bounds; touch every byte so sanitizers would catch a bad view.
    unsigned checksum = 0;
    for (const TensorInfo &info : file->tensors()) {
      llvm::ArrayRef<uint8_t> data = file->data(info);
      ASSERT_EQ(data.size(), info.byteSize());
      ASSERT_LE(info.end, file->dataBuffer().size());
      ASSERT_EQ(info.byteSize(), info.numElements() * dtypeSize(info.dtype));
      for (uint8_t b : data)
        checksum += b;
      EXPECT_EQ(file->lookup(info.name), &info);
      EXPECT_OK(file->expect(info.name, info.dtype, info.shape));
    }
    (void)checksum;
  }
  // Both outcomes occur, so the loop exercises the parser meaningfully.
  EXPECT_GT(successes, 0u);
  EXPECT_GT(failures, 0u);
  std::printf("corruption loop: %u parsed, %u rejected\n", successes, failures);
}

} // namespace
