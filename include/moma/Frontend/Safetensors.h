//===- Safetensors.h - Safetensors reader and writer ------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Writing of the safetensors weight format (momac --init-weights).
///
/// A safetensors file is laid out as follows:
///   - 8 bytes: N, a little-endian unsigned 64-bit integer, the header size;
///   - N bytes: a UTF-8 JSON object mapping each tensor name to an object
///     {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, plus
///     an optional "__metadata__" entry holding a string-to-string map;
///   - the data buffer: raw little-endian tensor bytes. The data offsets are
///     relative to the start of this buffer.
///
/// The one reader of the format is LLVM-free and shared with the runtime:
/// moma/Format/SafetensorsReader.h.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FRONTEND_SAFETENSORS_H
#define MOMA_FRONTEND_SAFETENSORS_H

#include "moma/Format/DType.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moma {

/// The element types of safetensors files: the file layer's enum, shared
/// with the reader (moma/Format/DType.h), with its spellings ("F32", "BOOL")
/// and sizes.
using runtime::DType;
using runtime::dtypeName;
using runtime::dtypeSize;
using runtime::parseDType;

/// Formats \p shape as "[d0, d1, ...]" (or "[]" for a scalar).
std::string formatShape(llvm::ArrayRef<int64_t> shape);

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
