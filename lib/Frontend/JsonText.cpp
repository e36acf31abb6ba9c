//===- JsonText.cpp - Strict reading of JSON text -------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// llvm::json::parse plus the two checks it lacks: a nesting limit, checked
/// before parsing because the parser recurses, and duplicate keys, which it
/// silently collapses. Both come from one pass over the text that follows
/// brackets and strings only; it is exact on text that llvm::json accepts
/// and harmless on any other. The PyTorch reference
/// (tools/moma-reference/moma_reference/jsonio.py) reads JSON text with the
/// same grammar and reports the same errors at the same places.
///
//===----------------------------------------------------------------------===//

#include "lib/Frontend/JsonText.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

using namespace moma;
using llvm::StringRef;
using llvm::Twine;

static llvm::Error textError(StringRef text, size_t offset, const Twine &what) {
  StringRef before = text.take_front(offset);
  size_t line = 1 + before.count('\n');
  size_t lineStart = before.rfind('\n');
  size_t column = offset - (lineStart == StringRef::npos ? 0 : lineStart + 1);
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "invalid JSON at line " + Twine(line) +
                                     " column " + Twine(column + 1) + ": " +
                                     what);
}

namespace {
/// What the structural pass found: the first problem of each kind.
struct Structure {
  /// Offset of the bracket that opens level kMaxJsonDepth + 1.
  std::optional<size_t> tooDeep;
  /// Offset of the first key that repeats a key of its object, and the key.
  std::optional<size_t> duplicateAt;
  std::string duplicateKey;
};
} // namespace

static Structure scanStructure(StringRef text) {
  struct Container {
    bool isObject;
    /// In an object: the next string is a key (after `{` and `,`).
    bool keyNext;
    llvm::StringSet<> keys;
  };
  Structure found;
  llvm::SmallVector<Container, 8> open;
  for (size_t i = 0, n = text.size(); i < n; ++i) {
    const char c = text[i];
    if (c == '{' || c == '[') {
      if (open.size() == kMaxJsonDepth) {
        found.tooDeep = i;
        return found;
      }
      open.push_back(Container{c == '{', c == '{', {}});
    } else if (c == '}' || c == ']') {
      if (!open.empty())
        open.pop_back();
    } else if (c == ',') {
      if (!open.empty())
        open.back().keyNext = open.back().isObject;
    } else if (c == '"') {
      size_t end = i + 1;
      while (end < n && text[end] != '"')
        end += text[end] == '\\' ? 2 : 1;
      const size_t start = i;
      i = end; // The closing quote (or past the end).
      if (open.empty() || !open.back().keyNext)
        continue;
      open.back().keyNext = false;
      if (end >= n || found.duplicateAt)
        continue;
      // The key's value, decoded by llvm::json itself.
      llvm::Expected<llvm::json::Value> key =
          llvm::json::parse(text.slice(start, end + 1));
      if (!key) {
        llvm::consumeError(key.takeError());
        continue;
      }
      StringRef name = *key->getAsString();
      if (!open.back().keys.insert(name).second) {
        found.duplicateAt = start;
        found.duplicateKey = name.str();
      }
    }
  }
  return found;
}

llvm::Expected<llvm::json::Value> moma::parseJsonText(StringRef text) {
  size_t badByte = 0;
  if (!llvm::json::isUTF8(text, &badByte))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "not UTF-8 text (byte " + Twine(badByte) +
                                       ")");
  Structure structure = scanStructure(text);
  if (structure.tooDeep)
    return textError(text, *structure.tooDeep,
                     "nested deeper than " + Twine(kMaxJsonDepth) + " levels");
  llvm::Expected<llvm::json::Value> value = llvm::json::parse(text);
  if (!value) {
    // ParseError logs "[LINE:COLUMN, byte=OFFSET]: MESSAGE".
    std::string logged = llvm::toString(value.takeError());
    auto [place, message] = StringRef(logged).split("]: ");
    size_t offset = 0;
    if (place.rsplit("byte=").second.getAsInteger(10, offset))
      offset = 0;
    return textError(text, offset, message);
  }
  if (structure.duplicateAt)
    return textError(text, *structure.duplicateAt,
                     "duplicate key " + quoteJson(structure.duplicateKey) +
                         " in an object");
  return value;
}

std::string moma::quoteJson(StringRef text) {
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::json::Value(text.str());
  return out;
}
