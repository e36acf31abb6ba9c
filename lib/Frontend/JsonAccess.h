//===- JsonAccess.h - Typed access to JSON with paths -----------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Checked, typed access to the values of a parsed model file, with errors
/// `FILE: PATH: RULE (value from SOURCE)` (examples/README.md, "Validation
/// errors"). Mirrors the reference's jsonio.Context and jsonio.Obj.
///
//===----------------------------------------------------------------------===//

#ifndef LIB_FRONTEND_JSONACCESS_H
#define LIB_FRONTEND_JSONACCESS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace moma {

/// One step of a JSON path: an object key or a list index.
struct PathPart {
  bool isIndex = false;
  int64_t index = 0;
  std::string key;

  bool operator<(const PathPart &other) const;
  bool operator==(const PathPart &other) const;
};

/// A JSON path, outermost step first.
using Path = std::vector<PathPart>;

/// \p path extended by an object key.
Path child(Path path, llvm::StringRef key);
/// \p path extended by a list index.
Path child(Path path, int64_t index);

/// `layers[3].ffn.groups[1].experts`; keys that are not identifiers are
/// written `["odd key"]`.
std::string formatPath(llvm::ArrayRef<PathPart> path);

/// Python's `re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text)`.
bool isIdentifier(llvm::StringRef text);

/// For an effective layer: the place in the file each sub-tree was written
/// at (keys are paths relative to the layer, values file paths).
using OriginMap = std::map<Path, Path>;

/// Where errors go: the file name and the first error and, for effective
/// layers, the provenance of their values.
struct Context {
  llvm::StringRef file;
  std::string *error = nullptr;
  /// For an effective layer: its document (at path `base`) and origins.
  const llvm::json::Value *document = nullptr;
  const OriginMap *origins = nullptr;
  Path base;

  /// The file path of the value at effective \p path, if the file wrote
  /// one there (a derived default or a missing value has none).
  std::optional<std::string> sourceOf(const Path &path) const;

  /// Records the error `FILE: PATH: RULE (value from SOURCE)`; always
  /// returns false.
  bool fail(const Path &path, const llvm::Twine &rule) const;
};

/// A JSON integer: an int64, or (written without fraction or exponent
/// between 2^63 and 2^64 - 1) one beyond int64.
struct JsonInteger {
  int64_t value = 0;
  /// Beyond int64: the value is `beyond`.
  bool huge = false;
  uint64_t beyond = 0;

  /// <0, 0 or >0 as this integer is below, equal to or above \p other.
  int compare(int64_t other) const;
  int compare(const JsonInteger &other) const;
  /// Its decimal text.
  std::string text() const;
};

/// \p value as an integer, if it is one (examples/README.md, "JSON text":
/// written without fraction or exponent, or negative with an integral value).
std::optional<JsonInteger> getInteger(const llvm::json::Value &value);

/// The JSON type name used in messages: "an integer", "a number", "a list"...
llvm::StringRef typeName(const llvm::json::Value &value);

/// Python's format(value, "g").
std::string formatG(double value);

/// Bounds of a number field: `minimum` and `maximum` inclusive, `above`
/// exclusive.
struct NumberBounds {
  std::optional<double> minimum, above, maximum;
};

/// `>= minimum`.
NumberBounds atLeast(double minimum);
/// `> above`, and `<= maximum` if given.
NumberBounds greaterThan(double above,
                         std::optional<double> maximum = std::nullopt);

/// Typed, checked access to the keys of one JSON object. Every accessor
/// returns false after recording the error in the context.
class Obj {
public:
  /// Opens \p value as an object with the allowed \p keys: a value that is
  /// not an object, or has a key not in \p keys, is an error (the first
  /// unknown key in sorted order is reported).
  [[nodiscard]] static bool open(const llvm::json::Value &value, Path path,
                                 const Context &ctx,
                                 llvm::ArrayRef<llvm::StringRef> keys,
                                 Obj &out);

  /// The object's value, path and context.
  const llvm::json::Value &value() const { return *val; }
  const Path &path() const { return objPath; }
  const Context &ctx() const { return *context; }
  /// The path of \p key in this object.
  Path at(llvm::StringRef key) const { return child(objPath, key); }
  /// Whether \p key is present.
  bool has(llvm::StringRef key) const { return get(key) != nullptr; }
  /// The value of \p key, or null if absent.
  const llvm::json::Value *get(llvm::StringRef key) const;
  /// Records \p rule as the error of \p key; returns false.
  bool error(llvm::StringRef key, const llvm::Twine &rule) const {
    return context->fail(at(key), rule);
  }

  /// The value of a required key, unchecked.
  [[nodiscard]] bool raw(llvm::StringRef key,
                         const llvm::json::Value *&out) const;
  /// An integer in [minimum, maximum] (and in int64).
  [[nodiscard]] bool
  integer(llvm::StringRef key, int64_t &out,
          std::optional<int64_t> defaultValue,
          std::optional<int64_t> minimum = std::nullopt,
          std::optional<int64_t> maximum = std::nullopt) const;
  /// A number (an integer or not) as a double.
  [[nodiscard]] bool number(llvm::StringRef key, double &out,
                            std::optional<double> defaultValue,
                            NumberBounds bounds = {}) const;
  /// true or false.
  [[nodiscard]] bool boolean(llvm::StringRef key, bool &out,
                             std::optional<bool> defaultValue) const;
  /// A string; with \p choices it must be one of them, with \p isName an
  /// identifier.
  [[nodiscard]] bool string(llvm::StringRef key, std::string &out,
                            std::optional<llvm::StringRef> defaultValue,
                            llvm::ArrayRef<llvm::StringRef> choices = {},
                            bool isName = false) const;
  /// A list of at least \p minLength entries. When the key is absent and
  /// \p optional, `out` is null (the default, an empty list).
  [[nodiscard]] bool array(llvm::StringRef key, const llvm::json::Array *&out,
                           bool optional, size_t minLength = 0) const;
  /// Opens the object at \p key; when absent and \p optional, an empty one.
  [[nodiscard]] bool object(llvm::StringRef key,
                            llvm::ArrayRef<llvm::StringRef> keys, bool optional,
                            Obj &out) const;

private:
  /// The value of \p key; when it is absent, stores \p defaultValue in
  /// \p out (or records that the key is required) and sets \p ok.
  template <typename T, typename D>
  const llvm::json::Value *lookup(llvm::StringRef key, T &out,
                                  const std::optional<D> &defaultValue,
                                  bool &ok) const {
    const llvm::json::Value *v = get(key);
    ok = true;
    if (!v) {
      if (defaultValue)
        out = T(*defaultValue);
      else
        ok = error(key, "required");
    }
    return v;
  }

  const llvm::json::Value *val = nullptr;
  Path objPath;
  const Context *context = nullptr;
};

/// The empty JSON object, the default of optional object fields.
const llvm::json::Value &emptyObject();

} // namespace moma

#endif // LIB_FRONTEND_JSONACCESS_H
