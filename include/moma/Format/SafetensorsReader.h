//===- SafetensorsReader.h - Bounds-checked safetensors reader --*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The one reader of safetensors weight files: the runtime loads weights with
/// it, and the front end's tests read what its writer wrote with it. It is
/// free of LLVM, which the runtime must not link.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON mapping
/// each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
/// (plus an optional "__metadata__" string map), then the data buffer, to
/// which the offsets are relative. The whole header is validated when the
/// file is opened: every tensor's bytes lie inside the data buffer, match its
/// dtype and shape, and do not overlap another tensor's; its entries have no
/// other keys. The file is mapped, not read, so opening a large file is
/// cheap.
///
/// Free of exceptions, so code compiled without them may include it.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_SAFETENSORSREADER_H
#define MOMA_FORMAT_SAFETENSORSREADER_H

#include "moma/Format/DType.h"
#include "moma/Format/Program.h"

#include "absl/status/statusor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

/// One tensor of a safetensors file.
struct SafetensorsTensor {
  /// The tensor's name.
  std::string name;
  /// Its element type.
  DType dtype = DType::F32;
  /// Its dimensions (empty for a scalar).
  std::vector<int64_t> shape;
  /// Start of its bytes in the data buffer.
  uint64_t begin = 0;
  /// One past the end of its bytes in the data buffer.
  uint64_t end = 0;

  /// Returns the number of bytes the tensor occupies (end - begin).
  uint64_t byteSize() const { return end - begin; }
  /// Returns the number of elements (the product of the shape).
  uint64_t numElements() const;
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
  /// Returns the bytes of \p tensor, which should come from this file (not
  /// necessarily aligned for its type); empty for a tensor whose range is
  /// not inside the data buffer.
  std::string_view data(const SafetensorsTensor &tensor) const;
  /// Returns the whole data buffer (everything after the header).
  std::string_view dataBuffer() const { return dataBytes; }
  /// Returns the "__metadata__" map (empty if the file has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }

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
  std::string_view contents;  // the whole file
  std::string_view dataBytes; // the data after the header
  std::vector<SafetensorsTensor> entries;
  std::map<std::string, std::string> metadataMap;
};

} // namespace moma::runtime

#endif // MOMA_FORMAT_SAFETENSORSREADER_H
