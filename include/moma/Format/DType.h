//===- DType.h - Element types of safetensors files -------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The element types a safetensors file stores: the file layer's one enum,
/// shared by the reader (moma/Format/SafetensorsReader.h), the front end's
/// writer and weight initialisation (moma/Frontend/Safetensors.h). The
/// program layer has its own (ElementType, moma/Format/Program.h), the C API
/// another (moma_dtype); loading weights converts between them.
///
/// Plain C++, so that compiler headers may include it.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_DTYPE_H
#define MOMA_FORMAT_DTYPE_H

#include "moma/Format/Program.h"

#include <cstdint>
#include <optional>
#include <string_view>

namespace moma::runtime {

/// The element types of the safetensors format.
enum class DType : uint8_t {
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

/// Returns the safetensors spelling of \p dtype ("F32", "BOOL", "F8_E4M3").
std::string_view dtypeName(DType dtype);

/// Returns the size in bytes of one element of \p dtype.
uint64_t dtypeSize(DType dtype);

/// Parses a safetensors dtype spelling such as "BF16"; std::nullopt for any
/// other text (the spellings are case-sensitive).
std::optional<DType> parseDType(std::string_view name);

/// Returns the safetensors dtype that holds a buffer of element type \p type
/// exactly (F32 for f32, I64 for i64, ...).
DType dtypeOf(ElementType type);

} // namespace moma::runtime

#endif // MOMA_FORMAT_DTYPE_H
