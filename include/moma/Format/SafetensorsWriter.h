//===- SafetensorsWriter.h - LLVM-free safetensors writer -------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Writing safetensors files on the LLVM-free side (moma-run's gradient
/// files; the layout of moma/Frontend/Safetensors.h): tensors in sorted name
/// order, contiguous, "__metadata__" first in the header, the header padded
/// with spaces to a multiple of 8 bytes.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_SAFETENSORSWRITER_H
#define MOMA_FORMAT_SAFETENSORSWRITER_H

#include "moma/Format/DType.h"

#include "absl/status/status.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

/// Builds a safetensors file in memory.
class SafetensorsFileWriter {
public:
  /// Adds a tensor, copying \p bytes. InvalidArgument if \p name is empty,
  /// "__metadata__" or already added, if a dimension is negative, or if
  /// \p bytes does not hold product(shape) * dtypeSize(dtype) bytes.
  absl::Status add(std::string_view name, DType dtype,
                   const std::vector<int64_t> &shape, std::string_view bytes);

  /// Sets metadata entry \p key to \p value.
  void setMetadata(std::string_view key, std::string_view value);

  /// The complete file.
  std::string serialize() const;

  /// Writes the file to \p path atomically (writeFileAtomically).
  absl::Status writeToFile(const std::string &path) const;

private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::map<std::string, Entry, std::less<>> entries;
  std::map<std::string, std::string, std::less<>> metadata;
};

} // namespace moma::runtime

#endif // MOMA_FORMAT_SAFETENSORSWRITER_H
