//===- SafetensorsReader.h - Bounds-checked safetensors reader --*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The runtime's own reader of safetensors weight files (the compiler's
/// reader in lib/Frontend depends on LLVM, which the runtime must not link).
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON mapping
/// each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
/// (plus an optional "__metadata__" string map), then the data buffer, to
/// which the offsets are relative. The whole header is validated when the
/// file is opened: every tensor's bytes lie inside the data buffer, match its
/// dtype and shape, and do not overlap another tensor's. The file is mapped,
/// not read, so opening a large file is cheap.
///
/// Internal to lib/Runtime; free of exceptions, so tests may include it.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_RUNTIME_SAFETENSORSREADER_H
#define MOMA_LIB_RUNTIME_SAFETENSORSREADER_H

#include "moma/Format/Program.h"

#include "absl/status/statusor.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

/// The storage types of the safetensors format.
enum class StorageType : uint8_t {
  F64,
  F32,
  F16,
  BF16,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,
  Bool,
  F8E4M3,
  F8E5M2,
};

/// Returns the safetensors spelling of \p type ("F32", "BOOL", ...).
std::string_view storageTypeName(StorageType type);

/// One tensor of a safetensors file.
struct SafetensorsTensor {
  /// The tensor's name.
  std::string name;
  /// Its storage type.
  StorageType type = StorageType::F32;
  /// Its dimensions (empty for a scalar).
  std::vector<int64_t> shape;
  /// Start of its bytes in the data buffer.
  uint64_t begin = 0;
  /// One past the end of its bytes in the data buffer.
  uint64_t end = 0;
};

/// A validated safetensors file.
class SafetensorsFile {
public:
  /// Maps and validates the file at \p path. Errors: NotFound when it does
  /// not exist; MOMA_STATUS_INVALID_WEIGHTS when it is damaged.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>>
  open(const std::string &path);

  /// Validates the file contents \p bytes; \p name is used in messages.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>>
  fromBytes(std::string bytes, std::string name);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  /// The name used in messages (the path).
  const std::string &name() const { return fileName; }
  /// All tensors, sorted by name.
  const std::vector<SafetensorsTensor> &tensors() const { return entries; }
  /// Returns the tensor named \p name, or nullptr.
  const SafetensorsTensor *find(std::string_view name) const;
  /// Returns the bytes of \p tensor.
  std::string_view data(const SafetensorsTensor &tensor) const;

  /// Converts \p tensor into \p buffer's element type and writes
  /// buffer.byteSize bytes to \p dst. The shapes must be equal. Float tensors
  /// (F32, F64, F16, BF16) convert to float buffers, rounding to nearest
  /// even; integer tensors (I32, I64) to integer buffers, checking the range.
  /// Errors (MOMA_STATUS_INVALID_WEIGHTS) name the tensor.
  absl::Status convertInto(const SafetensorsTensor &tensor,
                           const BufferDesc &buffer, void *dst) const;

private:
  SafetensorsFile() = default;
  absl::Status parse();

  std::string fileName;
  std::string owned;            // contents when not mapped
  const char *mapped = nullptr; // the mapping, when mapped
  size_t mappedSize = 0;
  std::string_view contents;   // the whole file
  std::string_view dataBuffer; // the data after the header
  std::vector<SafetensorsTensor> entries;
};

} // namespace moma::runtime

#endif // MOMA_LIB_RUNTIME_SAFETENSORSREADER_H
