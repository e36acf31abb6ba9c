//===- DType.cpp - Element types of safetensors files ---------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/DType.h"

#include <array>

namespace moma::runtime {
namespace {

struct DTypeInfo {
  std::string_view name;
  DType dtype;
  uint64_t size;
};

constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {"F64", DType::F64, 8},
    {"F32", DType::F32, 4},
    {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2},
    {"I64", DType::I64, 8},
    {"I32", DType::I32, 4},
    {"I16", DType::I16, 2},
    {"I8", DType::I8, 1},
    {"U64", DType::U64, 8},
    {"U32", DType::U32, 4},
    {"U16", DType::U16, 2},
    {"U8", DType::U8, 1},
    {"BOOL", DType::Bool, 1},
    {"F8_E4M3", DType::F8E4M3, 1},
    {"F8_E5M2", DType::F8E5M2, 1},
}};

} // namespace

std::string_view dtypeName(DType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info.name;
  return "<invalid>";
}

uint64_t dtypeSize(DType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info.size;
  return 1;
}

std::optional<DType> parseDType(std::string_view name) {
  for (const DTypeInfo &info : kDTypes)
    if (info.name == name)
      return info.dtype;
  return std::nullopt;
}

DType dtypeOf(ElementType type) {
  switch (type) {
  case ElementType::F32:
    return DType::F32;
  case ElementType::F64:
    return DType::F64;
  case ElementType::BF16:
    return DType::BF16;
  case ElementType::F16:
    return DType::F16;
  case ElementType::I32:
    return DType::I32;
  case ElementType::I64:
    return DType::I64;
  }
  return DType::U8;
}

} // namespace moma::runtime
