//===- JsonText.h - Strict reading of JSON text -----------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The text layer of the model-definition reader: llvm::json::parse with the
/// rules of examples/README.md, "JSON text" (UTF-8, at most 64 levels of
/// nesting, no duplicate keys) and errors that give the line and column.
///
//===----------------------------------------------------------------------===//

#ifndef LIB_FRONTEND_JSONTEXT_H
#define LIB_FRONTEND_JSONTEXT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

namespace moma {

/// Deepest nesting accepted. A model file needs 6 levels; the limit keeps
/// llvm::json::parse, which recurses once per level, and the recursive
/// destructor of llvm::json::Value far from the stack limit on hostile input
/// such as "[[[[...".
inline constexpr unsigned kMaxJsonDepth = 64;

/// Parses \p text. On failure the error's message is the rule without a file
/// name: `not UTF-8 text (byte B)` or `invalid JSON at line L column C: WHAT`
/// (columns count bytes from 1). Checked in this order: UTF-8, nesting depth
/// (brackets outside strings, before the syntax), syntax (llvm::json::parse's
/// message and place), duplicate keys (the first key, in text order, that
/// repeats a key of its object; llvm::json would keep the last value).
llvm::Expected<llvm::json::Value> parseJsonText(llvm::StringRef text);

/// \p text as a JSON string literal, the way llvm::json writes it (only `"`,
/// `\` and control characters are escaped), e.g. "odd key".
std::string quoteJson(llvm::StringRef text);

} // namespace moma

#endif // LIB_FRONTEND_JSONTEXT_H
