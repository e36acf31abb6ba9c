//===- Safetensors.h - Safetensors reader and writer ------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Reading and writing of the safetensors weight format.
///
/// A safetensors file is laid out as follows:
///   - 8 bytes: N, a little-endian unsigned 64-bit integer, the header size;
///   - N bytes: a UTF-8 JSON object mapping each tensor name to an object
///     {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, plus
///     an optional "__metadata__" entry holding a string-to-string map;
///   - the data buffer: raw little-endian tensor bytes. The data offsets are
///     relative to the start of this buffer.
///
/// The reader validates the whole header before handing out any tensor, so
/// every TensorInfo of a successfully parsed file describes bytes that lie
/// inside the file. Malformed input yields an llvm::Error; it never causes an
/// out-of-bounds read, a crash or an assertion failure.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FRONTEND_SAFETENSORS_H
#define MOMA_FRONTEND_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moma {

/// Element types supported in safetensors files.
enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I8, U8, Bool };

/// Returns the safetensors spelling of \p dtype, e.g. "F32" or "BOOL".
llvm::StringRef dtypeName(DType dtype);

/// Returns the size in bytes of one element of type \p dtype.
size_t dtypeSize(DType dtype);

/// Parses a safetensors dtype spelling such as "BF16"; returns std::nullopt
/// for spellings that are not supported.
std::optional<DType> parseDType(llvm::StringRef name);

/// Formats \p shape as "[d0, d1, ...]" (or "[]" for a scalar).
std::string formatShape(llvm::ArrayRef<int64_t> shape);

/// Description of one tensor stored in a safetensors file.
struct TensorInfo {
  /// The tensor's name (the key in the JSON header).
  std::string name;
  /// The element type.
  DType dtype = DType::F32;
  /// The dimensions; empty for a scalar. All dimensions are non-negative.
  llvm::SmallVector<int64_t> shape;
  /// Start of the tensor's bytes, relative to the start of the data buffer.
  uint64_t begin = 0;
  /// One past the end of the tensor's bytes, relative to the data buffer.
  uint64_t end = 0;

  /// Returns the number of bytes the tensor occupies (end - begin).
  uint64_t byteSize() const { return end - begin; }
  /// Returns the number of elements (the product of the shape).
  uint64_t numElements() const;
};

/// A parsed, validated safetensors file. The file's contents stay mapped in
/// memory for the lifetime of this object; data() returns views into it.
class SafetensorsFile {
public:
  /// Maps the file at \p path into memory and parses it. Errors name \p path.
  static llvm::Expected<SafetensorsFile> open(llvm::StringRef path);

  /// Parses the safetensors contents of \p buffer, taking ownership of it.
  /// The buffer's identifier, when non-empty, is used as the file name in
  /// error messages.
  static llvm::Expected<SafetensorsFile>
  parse(std::unique_ptr<llvm::MemoryBuffer> buffer);

  /// Move-constructs; the moved-from object must not be used afterwards.
  SafetensorsFile(SafetensorsFile &&) = default;
  /// Move-assigns; the moved-from object must not be used afterwards.
  SafetensorsFile &operator=(SafetensorsFile &&) = default;

  /// Returns the name used for this file in diagnostics (its path, or the
  /// buffer identifier); may be empty.
  llvm::StringRef fileName() const { return fileNameStr; }

  /// Returns all tensors, sorted by name.
  llvm::ArrayRef<TensorInfo> tensors() const { return tensorList; }

  /// Returns the tensor called \p name, or null if there is none.
  const TensorInfo *lookup(llvm::StringRef name) const;

  /// Returns the raw little-endian bytes of \p info, which must come from
  /// this file. The bytes are not necessarily aligned for the element type.
  /// Returns an empty array for a TensorInfo whose range is not inside this
  /// file's data buffer.
  llvm::ArrayRef<uint8_t> data(const TensorInfo &info) const;

  /// Returns the whole data buffer (everything after the header).
  llvm::ArrayRef<uint8_t> dataBuffer() const;

  /// Returns the "__metadata__" map (empty if the file has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }

  /// Returns the metadata value for \p key, or std::nullopt.
  std::optional<llvm::StringRef> getMetadata(llvm::StringRef key) const;

  /// Checks that a tensor called \p name exists with element type \p dtype
  /// and exactly the shape \p shape. The error names the file and tensor,
  /// e.g. "model.safetensors: tensor 'layers.0.attn.wq': expected shape
  /// [32, 64], found [32, 32]".
  llvm::Error expect(llvm::StringRef name, DType dtype,
                     llvm::ArrayRef<int64_t> shape) const;

  /// Like expect(), but returns the tensor on success.
  llvm::Expected<const TensorInfo *> get(llvm::StringRef name, DType dtype,
                                         llvm::ArrayRef<int64_t> shape) const;

private:
  SafetensorsFile() = default;

  std::unique_ptr<llvm::MemoryBuffer> buffer;
  std::string fileNameStr;
  /// Offset of the data buffer from the start of the file (8 + N).
  uint64_t dataStart = 0;
  std::vector<TensorInfo> tensorList;
  std::map<std::string, std::string> metadataMap;
};

/// Builds a safetensors file in memory and writes it out. Tensors are laid
/// out contiguously in sorted name order, the header is padded with spaces to
/// a multiple of 8 bytes, and "__metadata__" (if any) comes first in the
/// header, matching the reference implementation.
class SafetensorsWriter {
public:
  /// Adds a tensor, copying \p bytes. Fails if \p name is empty, is
  /// "__metadata__", is not valid UTF-8 or was already added, if a dimension
  /// is negative, or if \p bytes does not hold exactly
  /// product(shape) * dtypeSize(dtype) bytes.
  llvm::Error add(llvm::StringRef name, DType dtype,
                  llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<uint8_t> bytes);

  /// Sets metadata entry \p key to \p value, replacing any previous value.
  /// Fails if either is not valid UTF-8 (JSON strings must be UTF-8).
  llvm::Error setMetadata(llvm::StringRef key, llvm::StringRef value);

  /// Returns the number of tensors added so far.
  size_t size() const { return entries.size(); }

  /// Writes the complete file to \p os.
  void write(llvm::raw_ostream &os) const;

  /// Writes the file to \p path atomically: the contents go to a temporary
  /// file in the same directory which is then renamed over \p path, so a
  /// failure never leaves a partial or missing output behind.
  llvm::Error writeToFile(llvm::StringRef path) const;

private:
  struct Entry {
    DType dtype;
    llvm::SmallVector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Entry> entries;
  std::map<std::string, std::string> metadataMap;
};

} // namespace moma

#endif // MOMA_FRONTEND_SAFETENSORS_H
