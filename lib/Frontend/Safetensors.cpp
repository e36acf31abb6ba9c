//===- Safetensors.cpp - Safetensors writer -------------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Implementation of the safetensors writer; its errors name the tensor and
/// the violated rule. Files are read by moma/Format/SafetensorsReader.h.
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/Safetensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
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

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

std::string moma::formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleaveComma(shape, os);
  os << ']';
  return text;
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
                           " with dtype " + llvm::StringRef(dtypeName(dtype)) +
                           " needs " + llvm::Twine(*expected) + " bytes");
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
          json.attribute("dtype", llvm::StringRef(dtypeName(entry.dtype)));
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
