//===- Safetensors.cpp - Safetensors reader and writer --------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Implementation of the safetensors reader and writer. The reader treats the
/// file as untrusted input: every length, offset and size is checked before it
/// is used, and every error names the file, the tensor and the violated rule.
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/Safetensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/Errc.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Signals.h"

#include <limits>
#include <tuple>

using namespace moma;

/// Size of the little-endian header length prefix.
static constexpr uint64_t kPrefixSize = 8;

/// Largest header accepted, as in the reference implementation.
static constexpr uint64_t kMaxHeaderSize = 100'000'000;

/// Deepest JSON nesting accepted in the header. The schema needs 3 levels;
/// the limit keeps llvm::json::parse, which recurses once per level, from
/// overflowing the stack on hostile input such as "[[[[...".
static constexpr unsigned kMaxJsonDepth = 64;

/// Name of the reserved header entry holding the metadata map.
static constexpr llvm::StringLiteral kMetadataKey = "__metadata__";

/// Builds an error "<file>: <message>" (the prefix is omitted when the file
/// name is unknown).
static llvm::Error fileError(llvm::StringRef file, const llvm::Twine &message) {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (!file.empty())
    os << file << ": ";
  os << message;
  return llvm::createStringError(llvm::errc::invalid_argument, text);
}

/// Builds an error "<file>: tensor '<name>': <message>".
static llvm::Error tensorError(llvm::StringRef file, llvm::StringRef tensor,
                               const llvm::Twine &message) {
  return fileError(file, "tensor '" + tensor + "': " + message);
}

/// Multiplies the dimensions of \p shape and the element size \p elemSize.
/// Returns std::nullopt if the result does not fit in 64 bits. A zero
/// dimension makes the product zero regardless of the other dimensions.
static std::optional<uint64_t> checkedByteSize(llvm::ArrayRef<int64_t> shape,
                                               uint64_t elemSize) {
  if (llvm::is_contained(shape, 0))
    return 0;
  uint64_t product = elemSize;
  for (int64_t dim : shape) {
    if (dim < 0)
      return std::nullopt;
    bool overflow = false;
    product = llvm::SaturatingMultiply(product, static_cast<uint64_t>(dim),
                                       &overflow);
    if (overflow)
      return std::nullopt;
  }
  return product;
}

namespace {
/// Result of the structural pre-scan of the header text.
struct ScanResult {
  /// The nesting depth exceeded kMaxJsonDepth.
  bool tooDeep = false;
  /// A key that occurs twice in the same object (valid if `hasDuplicate`).
  std::string duplicateKey;
  /// The top-level key enclosing the duplicate; empty when the duplicate is
  /// itself a top-level key.
  std::string enclosingKey;
  /// Whether a duplicate key was found.
  bool hasDuplicate = false;
  /// Whether the duplicate is a top-level key.
  bool duplicateAtTop = false;
};
} // namespace

/// Returns the decoded value of the JSON string literal body \p raw (the text
/// between the quotes), or \p raw itself if it has no escapes or is invalid.
static std::string decodeJsonString(llvm::StringRef raw) {
  if (!raw.contains('\\'))
    return raw.str();
  std::string quoted = ("\"" + raw + "\"").str();
  llvm::Expected<llvm::json::Value> value = llvm::json::parse(quoted);
  if (!value) {
    llvm::consumeError(value.takeError());
    return raw.str();
  }
  if (std::optional<llvm::StringRef> s = value->getAsString())
    return s->str();
  return raw.str();
}

/// Scans the (possibly malformed) JSON text \p text, tracking bracket nesting
/// outside strings. Reports nesting deeper than kMaxJsonDepth and the first
/// key that occurs twice within one object, which llvm::json::parse would
/// otherwise silently collapse (it keeps the last value).
static ScanResult scanJsonStructure(llvm::StringRef text) {
  struct Frame {
    bool isObject;
    bool expectKey;
    llvm::StringSet<> keys;
  };
  ScanResult result;
  llvm::SmallVector<Frame, 8> stack;
  std::string topKey;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    switch (text[i]) {
    case '"': {
      size_t j = i + 1;
      while (j < n && text[j] != '"')
        j += text[j] == '\\' ? 2 : 1;
      llvm::StringRef raw = text.slice(i + 1, j);
      i = j; // The closing quote, or past the end for unterminated strings.
      if (stack.empty() || !stack.back().isObject || !stack.back().expectKey)
        break;
      Frame &frame = stack.back();
      frame.expectKey = false;
      std::string key = decodeJsonString(raw);
      if (stack.size() == 1)
        topKey = key;
      if (!frame.keys.insert(key).second && !result.hasDuplicate) {
        result.hasDuplicate = true;
        result.duplicateAtTop = stack.size() == 1;
        result.duplicateKey = key;
        result.enclosingKey = result.duplicateAtTop ? "" : topKey;
      }
      break;
    }
    case '{':
    case '[':
      stack.push_back(Frame{text[i] == '{', text[i] == '{', {}});
      if (stack.size() > kMaxJsonDepth) {
        result.tooDeep = true;
        return result;
      }
      break;
    case '}':
    case ']':
      if (!stack.empty())
        stack.pop_back();
      break;
    case ',':
      if (!stack.empty() && stack.back().isObject)
        stack.back().expectKey = true;
      break;
    default:
      break;
    }
  }
  return result;
}

/// Reads a JSON value that must be a non-negative integer.
static std::optional<uint64_t> getUnsigned(const llvm::json::Value &value) {
  // getAsUINT64 accepts only integers written without fraction or exponent,
  // which is what the reference implementation accepts.
  return value.getAsUINT64();
}

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

llvm::StringRef moma::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F64:
    return "F64";
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::I64:
    return "I64";
  case DType::I32:
    return "I32";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  case DType::Bool:
    return "BOOL";
  }
  llvm_unreachable("unknown DType");
}

size_t moma::dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 1;
  }
  llvm_unreachable("unknown DType");
}

std::optional<DType> moma::parseDType(llvm::StringRef name) {
  for (DType dtype :
       {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
        DType::I8, DType::U8, DType::Bool})
    if (dtypeName(dtype) == name)
      return dtype;
  return std::nullopt;
}

std::string moma::formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleaveComma(shape, os);
  os << ']';
  return text;
}

uint64_t TensorInfo::numElements() const {
  std::optional<uint64_t> n = checkedByteSize(shape, 1);
  return n ? *n : std::numeric_limits<uint64_t>::max();
}

//===----------------------------------------------------------------------===//
// SafetensorsFile
//===----------------------------------------------------------------------===//

llvm::Expected<SafetensorsFile> SafetensorsFile::open(llvm::StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fileError(path, "cannot open file: " + buffer.getError().message());
  // getFile names the buffer after the path, so errors name the file.
  return parse(std::move(*buffer));
}

llvm::Expected<SafetensorsFile>
SafetensorsFile::parse(std::unique_ptr<llvm::MemoryBuffer> buffer) {
  if (!buffer)
    return fileError("", "no buffer to parse");

  SafetensorsFile file;
  file.fileNameStr = buffer->getBufferIdentifier().str();
  const llvm::StringRef name = file.fileNameStr;
  const llvm::StringRef contents = buffer->getBuffer();
  const uint64_t fileSize = contents.size();

  // Header length prefix.
  if (fileSize < kPrefixSize)
    return fileError(name, "file is too small (" + llvm::Twine(fileSize) +
                               " bytes) to hold the 8-byte header length");
  const uint64_t headerSize = llvm::support::endian::read64le(contents.data());
  if (headerSize > kMaxHeaderSize)
    return fileError(name, "header length " + llvm::Twine(headerSize) +
                               " exceeds the limit of " +
                               llvm::Twine(kMaxHeaderSize) + " bytes");
  if (headerSize > fileSize - kPrefixSize)
    return fileError(name, "header length " + llvm::Twine(headerSize) +
                               " is larger than the " +
                               llvm::Twine(fileSize - kPrefixSize) +
                               " bytes that follow the length prefix");
  const llvm::StringRef headerText = contents.substr(kPrefixSize, headerSize);
  file.dataStart = kPrefixSize + headerSize;
  const uint64_t dataSize = fileSize - file.dataStart;

  // Header JSON.
  ScanResult scan = scanJsonStructure(headerText);
  if (scan.tooDeep)
    return fileError(name, "header JSON is nested deeper than " +
                               llvm::Twine(kMaxJsonDepth) + " levels");
  llvm::Expected<llvm::json::Value> header = llvm::json::parse(headerText);
  if (!header)
    return fileError(name, "header is not valid JSON: " +
                               llvm::toString(header.takeError()));
  const llvm::json::Object *root = header->getAsObject();
  if (!root)
    return fileError(name, "header is not a JSON object");
  if (scan.hasDuplicate) {
    if (scan.duplicateAtTop)
      return fileError(name, "header contains duplicate entry '" +
                                 scan.duplicateKey + "'");
    if (scan.enclosingKey == kMetadataKey)
      return fileError(name, "'__metadata__' contains duplicate key '" +
                                 scan.duplicateKey + "'");
    return tensorError(name, scan.enclosingKey,
                       "entry contains duplicate key '" + scan.duplicateKey +
                           "'");
  }

  // Visit entries in name order so diagnostics are deterministic and the
  // tensor list comes out sorted.
  std::vector<const llvm::json::Object::value_type *> entries;
  entries.reserve(root->size());
  for (const auto &entry : *root)
    entries.push_back(&entry);
  llvm::sort(entries, [](const auto *a, const auto *b) {
    return llvm::StringRef(a->first) < llvm::StringRef(b->first);
  });

  for (const auto *entry : entries) {
    const llvm::StringRef key = entry->first;
    const llvm::json::Value &value = entry->second;

    if (key == kMetadataKey) {
      const llvm::json::Object *meta = value.getAsObject();
      if (!meta)
        return fileError(name, "'__metadata__' is not a JSON object");
      for (const auto &kv : *meta) {
        std::optional<llvm::StringRef> str = kv.second.getAsString();
        if (!str)
          return fileError(name, "'__metadata__' value for key '" +
                                     llvm::StringRef(kv.first) +
                                     "' is not a string");
        file.metadataMap[kv.first.str()] = str->str();
      }
      continue;
    }

    const llvm::json::Object *obj = value.getAsObject();
    if (!obj)
      return tensorError(name, key, "entry is not a JSON object");

    TensorInfo info;
    info.name = key.str();

    // dtype
    const llvm::json::Value *dtypeValue = obj->get("dtype");
    if (!dtypeValue)
      return tensorError(name, key, "missing 'dtype'");
    std::optional<llvm::StringRef> dtypeStr = dtypeValue->getAsString();
    if (!dtypeStr)
      return tensorError(name, key, "'dtype' is not a string");
    std::optional<DType> dtype = parseDType(*dtypeStr);
    if (!dtype)
      return tensorError(name, key, "unknown dtype '" + *dtypeStr + "'");
    info.dtype = *dtype;

    // shape
    const llvm::json::Value *shapeValue = obj->get("shape");
    if (!shapeValue)
      return tensorError(name, key, "missing 'shape'");
    const llvm::json::Array *shape = shapeValue->getAsArray();
    if (!shape)
      return tensorError(name, key,
                         "'shape' is not a list of non-negative integers");
    for (const llvm::json::Value &dimValue : *shape) {
      std::optional<uint64_t> dim = getUnsigned(dimValue);
      if (!dim)
        return tensorError(name, key,
                           "'shape' is not a list of non-negative integers");
      if (*dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return tensorError(name, key,
                           "shape dimension " + llvm::Twine(*dim) +
                               " is out of range");
      info.shape.push_back(static_cast<int64_t>(*dim));
    }

    // data_offsets
    const llvm::json::Value *offsetsValue = obj->get("data_offsets");
    if (!offsetsValue)
      return tensorError(name, key, "missing 'data_offsets'");
    const llvm::json::Array *offsets = offsetsValue->getAsArray();
    std::optional<uint64_t> begin, end;
    if (offsets && offsets->size() == 2) {
      begin = getUnsigned((*offsets)[0]);
      end = getUnsigned((*offsets)[1]);
    }
    if (!begin || !end)
      return tensorError(
          name, key,
          "'data_offsets' is not a list of two non-negative integers");
    info.begin = *begin;
    info.end = *end;
    const std::string offsetsText = "data_offsets [" + std::to_string(*begin) +
                                    ", " + std::to_string(*end) + "]";
    if (info.begin > info.end)
      return tensorError(name, key, offsetsText + " have begin > end");
    if (info.end > dataSize)
      return tensorError(name, key,
                         offsetsText + " extend beyond the data buffer of " +
                             llvm::Twine(dataSize) + " bytes");

    // Size consistency.
    std::optional<uint64_t> expectedBytes =
        checkedByteSize(info.shape, dtypeSize(info.dtype));
    if (!expectedBytes)
      return tensorError(name, key,
                         "byte size of shape " + formatShape(info.shape) +
                             " with dtype " + dtypeName(info.dtype) +
                             " overflows 64 bits");
    if (info.byteSize() != *expectedBytes)
      return tensorError(name, key,
                         offsetsText + " span " + llvm::Twine(info.byteSize()) +
                             " bytes, but shape " + formatShape(info.shape) +
                             " with dtype " + dtypeName(info.dtype) +
                             " needs " + llvm::Twine(*expectedBytes) +
                             " bytes");

    file.tensorList.push_back(std::move(info));
  }

  // Overlap check: sort non-empty ranges by start; each range must start at
  // or after the furthest end seen so far. Empty tensors occupy no bytes.
  std::vector<const TensorInfo *> byOffset;
  for (const TensorInfo &info : file.tensorList)
    if (info.begin != info.end)
      byOffset.push_back(&info);
  llvm::sort(byOffset, [](const TensorInfo *a, const TensorInfo *b) {
    return std::tie(a->begin, a->end, a->name) <
           std::tie(b->begin, b->end, b->name);
  });
  const TensorInfo *furthest = nullptr;
  for (const TensorInfo *info : byOffset) {
    if (furthest && info->begin < furthest->end)
      return tensorError(name, info->name,
                         "data_offsets [" + llvm::Twine(info->begin) + ", " +
                             llvm::Twine(info->end) + "] overlap tensor '" +
                             furthest->name + "' [" +
                             llvm::Twine(furthest->begin) + ", " +
                             llvm::Twine(furthest->end) + "]");
    if (!furthest || info->end > furthest->end)
      furthest = info;
  }

  file.buffer = std::move(buffer);
  return file;
}

const TensorInfo *SafetensorsFile::lookup(llvm::StringRef name) const {
  auto it = llvm::partition_point(tensorList, [&](const TensorInfo &info) {
    return llvm::StringRef(info.name) < name;
  });
  if (it == tensorList.end() || it->name != name)
    return nullptr;
  return &*it;
}

llvm::ArrayRef<uint8_t> SafetensorsFile::dataBuffer() const {
  if (!buffer)
    return {};
  llvm::StringRef contents = buffer->getBuffer();
  if (dataStart > contents.size())
    return {};
  return llvm::ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(contents.data()) + dataStart,
      contents.size() - dataStart);
}

llvm::ArrayRef<uint8_t> SafetensorsFile::data(const TensorInfo &info) const {
  llvm::ArrayRef<uint8_t> all = dataBuffer();
  if (info.begin > info.end || info.end > all.size())
    return {};
  return all.slice(info.begin, info.end - info.begin);
}

std::optional<llvm::StringRef>
SafetensorsFile::getMetadata(llvm::StringRef key) const {
  auto it = metadataMap.find(key.str());
  if (it == metadataMap.end())
    return std::nullopt;
  return llvm::StringRef(it->second);
}

llvm::Expected<const TensorInfo *>
SafetensorsFile::get(llvm::StringRef name, DType dtype,
                     llvm::ArrayRef<int64_t> shape) const {
  const TensorInfo *info = lookup(name);
  if (!info)
    return tensorError(fileNameStr, name, "not found");
  std::string problems;
  if (info->dtype != dtype)
    problems += ("expected dtype " + dtypeName(dtype) + ", found " +
                 dtypeName(info->dtype))
                    .str();
  if (llvm::ArrayRef<int64_t>(info->shape) != shape) {
    if (!problems.empty())
      problems += "; ";
    problems += "expected shape " + formatShape(shape) + ", found " +
                formatShape(info->shape);
  }
  if (!problems.empty())
    return tensorError(fileNameStr, name, problems);
  return info;
}

llvm::Error SafetensorsFile::expect(llvm::StringRef name, DType dtype,
                                    llvm::ArrayRef<int64_t> shape) const {
  return get(name, dtype, shape).takeError();
}

//===----------------------------------------------------------------------===//
// SafetensorsWriter
//===----------------------------------------------------------------------===//

llvm::Error SafetensorsWriter::add(llvm::StringRef name, DType dtype,
                                   llvm::ArrayRef<int64_t> shape,
                                   llvm::ArrayRef<uint8_t> bytes) {
  if (name.empty())
    return fileError("", "cannot add a tensor with an empty name");
  if (name == kMetadataKey)
    return tensorError("", name, "name is reserved for metadata");
  if (!llvm::json::isUTF8(name))
    return tensorError("", name, "name is not valid UTF-8");
  if (entries.count(name.str()))
    return tensorError("", name, "already added");
  if (llvm::any_of(shape, [](int64_t dim) { return dim < 0; }))
    return tensorError(
        "", name, "shape " + formatShape(shape) + " has a negative dimension");
  std::optional<uint64_t> expected = checkedByteSize(shape, dtypeSize(dtype));
  if (!expected)
    return tensorError("", name,
                       "byte size of shape " + formatShape(shape) +
                           " overflows 64 bits");
  if (bytes.size() != *expected)
    return tensorError("", name,
                       "got " + llvm::Twine(bytes.size()) +
                           " bytes, but shape " + formatShape(shape) +
                           " with dtype " + dtypeName(dtype) + " needs " +
                           llvm::Twine(*expected) + " bytes");
  entries.emplace(name.str(),
                  Entry{dtype, llvm::SmallVector<int64_t>(shape),
                        std::vector<uint8_t>(bytes.begin(), bytes.end())});
  return llvm::Error::success();
}

llvm::Error SafetensorsWriter::setMetadata(llvm::StringRef key,
                                           llvm::StringRef value) {
  if (!llvm::json::isUTF8(key) || !llvm::json::isUTF8(value))
    return fileError("", "metadata entry '" + llvm::json::fixUTF8(key) +
                             "' is not valid UTF-8");
  metadataMap[key.str()] = value.str();
  return llvm::Error::success();
}

void SafetensorsWriter::write(llvm::raw_ostream &os) const {
  std::string header;
  {
    llvm::raw_string_ostream headerOS(header);
    llvm::json::OStream json(headerOS);
    json.object([&] {
      if (!metadataMap.empty())
        json.attributeObject(kMetadataKey, [&] {
          for (const auto &[key, value] : metadataMap)
            json.attribute(key, value);
        });
      uint64_t offset = 0;
      for (const auto &named : entries) {
        const Entry &entry = named.second;
        const uint64_t end = offset + entry.bytes.size();
        json.attributeObject(named.first, [&] {
          json.attribute("dtype", dtypeName(entry.dtype));
          json.attributeArray("shape", [&] {
            for (int64_t dim : entry.shape)
              json.value(dim);
          });
          json.attributeArray("data_offsets", [&] {
            json.value(offset);
            json.value(end);
          });
        });
        offset = end;
      }
    });
  }
  // Pad with spaces so the data buffer starts 8-byte aligned.
  header.append((kPrefixSize - header.size() % kPrefixSize) % kPrefixSize, ' ');

  char prefix[kPrefixSize];
  llvm::support::endian::write64le(prefix, header.size());
  os.write(prefix, sizeof(prefix));
  os << header;
  for (const auto &entry : entries)
    os.write(reinterpret_cast<const char *>(entry.second.bytes.data()),
             entry.second.bytes.size());
}

llvm::Error SafetensorsWriter::writeToFile(llvm::StringRef path) const {
  // Create the temporary next to the destination so the rename stays within
  // one file system and is atomic.
  int fd = -1;
  llvm::SmallString<256> tempPath;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueFile(path + ".tmp-%%%%%%%%", fd, tempPath))
    return fileError(path, "cannot create temporary file: " + ec.message());
  llvm::sys::RemoveFileOnSignal(tempPath);
  auto cleanup = [&] {
    llvm::sys::fs::remove(tempPath);
    llvm::sys::DontRemoveFileOnSignal(tempPath);
  };

  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    write(os);
    os.close();
    if (os.has_error()) {
      std::error_code ec = os.error();
      // An unhandled stream error is fatal when the stream is destroyed.
      os.clear_error();
      cleanup();
      return fileError(path,
                       "cannot write '" + tempPath + "': " + ec.message());
    }
  }

  if (std::error_code ec = llvm::sys::fs::rename(tempPath, path)) {
    cleanup();
    return fileError(path, "cannot rename '" + tempPath +
                               "' into place: " + ec.message());
  }
  llvm::sys::DontRemoveFileOnSignal(tempPath);
  return llvm::Error::success();
}
