//===- Json.h - Strict, bounded JSON parsing for the runtime ----*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// JSON parsing shared by the program manifest and the safetensors header.
///
/// Wraps nlohmann::json (which reports errors by exceptions) so that the rest
/// of the runtime sees absl::StatusOr. The parse is strict: nesting deeper
/// than kMaxJsonDepth and duplicate object keys are rejected, as is anything
/// that is not RFC 8259 JSON (comments, trailing commas, invalid UTF-8).
///
/// Internal to lib/Format and lib/Runtime (the one JSON library of the
/// LLVM-free side; the compiler uses llvm::json): only translation units
/// compiled with exceptions may include this header.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_FORMAT_JSON_H
#define MOMA_LIB_FORMAT_JSON_H

#include "absl/status/statusor.h"

#include <nlohmann/json.hpp>

#include <string_view>

namespace moma::runtime {

/// Maximum nesting depth of objects and arrays accepted by parseJson().
inline constexpr int kMaxJsonDepth = 32;

/// Parses \p text as one JSON value. Errors are InvalidArgument statuses
/// whose message gives the byte position and the reason.
absl::StatusOr<nlohmann::json> parseJson(std::string_view text);

/// Like parseJson(), keeping the order of object keys.
absl::StatusOr<nlohmann::ordered_json> parseOrderedJson(std::string_view text);

} // namespace moma::runtime

#endif // MOMA_LIB_FORMAT_JSON_H
