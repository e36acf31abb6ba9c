//===- JsonAccess.cpp - Typed access to JSON with paths -------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Paths, provenance and the typed accessors of the model-definition reader
/// (the reference's jsonio.format_path, jsonio.Context and jsonio.Obj).
///
//===----------------------------------------------------------------------===//

#include "lib/Frontend/JsonAccess.h"

#include "lib/Frontend/JsonText.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <cstdio>
#include <limits>
#include <tuple>

using namespace moma;
using llvm::ArrayRef;
using llvm::StringRef;
using llvm::Twine;
using llvm::json::Value;

bool PathPart::operator<(const PathPart &other) const {
  return std::tie(isIndex, index, key) <
         std::tie(other.isIndex, other.index, other.key);
}

bool PathPart::operator==(const PathPart &other) const {
  return isIndex == other.isIndex && index == other.index && key == other.key;
}

Path moma::child(Path path, StringRef key) {
  PathPart part;
  part.key = key.str();
  path.push_back(std::move(part));
  return path;
}

Path moma::child(Path path, int64_t index) {
  PathPart part;
  part.isIndex = true;
  part.index = index;
  path.push_back(std::move(part));
  return path;
}

bool moma::isIdentifier(StringRef text) {
  return !text.empty() && (llvm::isAlpha(text[0]) || text[0] == '_') &&
         llvm::all_of(text.drop_front(),
                      [](char c) { return llvm::isAlnum(c) || c == '_'; });
}

std::string moma::formatPath(ArrayRef<PathPart> path) {
  std::string text;
  for (const PathPart &part : path) {
    if (part.isIndex)
      text += "[" + std::to_string(part.index) + "]";
    else if (isIdentifier(part.key))
      text += (text.empty() ? "" : ".") + part.key;
    else
      text += "[" + quoteJson(part.key) + "]";
  }
  return text;
}

/// Whether \p path (relative to \p root) names a value of \p root.
static bool exists(const Value &root, ArrayRef<PathPart> path) {
  const Value *value = &root;
  for (const PathPart &part : path) {
    if (part.isIndex) {
      const llvm::json::Array *array = value->getAsArray();
      if (!array || part.index < 0 ||
          static_cast<size_t>(part.index) >= array->size())
        return false;
      value = &(*array)[part.index];
    } else {
      const llvm::json::Object *object = value->getAsObject();
      value = object ? object->get(part.key) : nullptr;
      if (!value)
        return false;
    }
  }
  return true;
}

std::optional<std::string> Context::sourceOf(const Path &path) const {
  if (!origins || !document)
    return std::nullopt;
  Path rel(path.begin() + std::min(base.size(), path.size()), path.end());
  if (!exists(*document, rel))
    return std::nullopt;
  for (size_t n = rel.size() + 1; n-- > 0;) {
    auto it = origins->find(Path(rel.begin(), rel.begin() + n));
    if (it == origins->end())
      continue;
    Path source = it->second;
    source.insert(source.end(), rel.begin() + n, rel.end());
    return formatPath(source);
  }
  return std::nullopt;
}

bool Context::fail(const Path &path, const Twine &rule) const {
  std::string where = formatPath(path);
  std::string text = where.empty() ? rule.str() : where + ": " + rule.str();
  std::optional<std::string> source = sourceOf(path);
  if (source && !source->empty() && *source != where)
    text += " (value from " + *source + ")";
  if (!file.empty())
    text = file.str() + ": " + text;
  *error = std::move(text);
  return false;
}

int JsonInteger::compare(int64_t other) const {
  if (huge)
    return 1;
  return value < other ? -1 : value > other ? 1 : 0;
}

int JsonInteger::compare(const JsonInteger &other) const {
  if (huge != other.huge)
    return huge ? 1 : -1;
  if (huge)
    return beyond < other.beyond ? -1 : beyond > other.beyond ? 1 : 0;
  return compare(other.value);
}

std::string JsonInteger::text() const {
  return huge ? std::to_string(beyond) : std::to_string(value);
}

std::optional<JsonInteger> moma::getInteger(const Value &value) {
  // llvm::json keeps integers written without fraction or exponent that fit
  // in int64 or uint64; getAsUINT64 accepts only those (when >= 0). A
  // negative integral double cannot be told from an integer (getAsInteger
  // accepts both): it counts as one, in both readers.
  JsonInteger result;
  if (std::optional<uint64_t> u = value.getAsUINT64()) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      result.huge = true;
      result.beyond = *u;
    } else {
      result.value = static_cast<int64_t>(*u);
    }
    return result;
  }
  std::optional<int64_t> i = value.getAsInteger();
  if (!i || *i >= 0)
    return std::nullopt; // Not a number, a fraction, or -0.0 and the like.
  result.value = *i;
  return result;
}

StringRef moma::typeName(const Value &value) {
  if (value.kind() == Value::Number)
    return getInteger(value) ? "an integer" : "a number";
  if (value.getAsBoolean())
    return "a boolean";
  if (value.getAsString())
    return "a string";
  if (value.getAsArray())
    return "a list";
  if (value.getAsObject())
    return "an object";
  return "null";
}

std::string moma::formatG(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

NumberBounds moma::atLeast(double minimum) {
  NumberBounds bounds;
  bounds.minimum = minimum;
  return bounds;
}

NumberBounds moma::greaterThan(double above, std::optional<double> maximum) {
  NumberBounds bounds;
  bounds.above = above;
  bounds.maximum = maximum;
  return bounds;
}

const Value &moma::emptyObject() {
  static const Value empty = llvm::json::Object();
  return empty;
}

bool Obj::open(const Value &value, Path path, const Context &ctx,
               ArrayRef<StringRef> keys, Obj &out) {
  const llvm::json::Object *object = value.getAsObject();
  if (!object)
    return ctx.fail(path, "must be an object, not " + typeName(value));
  std::optional<StringRef> unknown;
  for (const auto &entry : *object) {
    StringRef key = entry.first;
    if (!llvm::is_contained(keys, key) && (!unknown || key < *unknown))
      unknown = key;
  }
  if (unknown)
    return ctx.fail(child(path, *unknown), "unknown key (expected one of: " +
                                               llvm::join(keys, ", ") + ")");
  out.val = &value;
  out.objPath = std::move(path);
  out.context = &ctx;
  return true;
}

const Value *Obj::get(StringRef key) const {
  return val->getAsObject()->get(key);
}

bool Obj::raw(StringRef key, const Value *&out) const {
  out = get(key);
  return out || error(key, "required");
}

bool Obj::integer(StringRef key, int64_t &out,
                  std::optional<int64_t> defaultValue,
                  std::optional<int64_t> minimum,
                  std::optional<int64_t> maximum) const {
  bool ok;
  const Value *v = lookup(key, out, defaultValue, ok);
  if (!v)
    return ok;
  std::optional<JsonInteger> i = getInteger(*v);
  if (!i)
    return error(key, "must be an integer, not " + typeName(*v));
  if (minimum && i->compare(*minimum) < 0)
    return error(key, "must be >= " + Twine(*minimum));
  if (maximum && i->compare(*maximum) > 0)
    return error(key, "must be <= " + Twine(*maximum));
  if (i->huge)
    return error(key,
                 "must be <= " + Twine(std::numeric_limits<int64_t>::max()) +
                     " (the largest integer supported)");
  out = i->value;
  return true;
}

bool Obj::number(StringRef key, double &out, std::optional<double> defaultValue,
                 NumberBounds bounds) const {
  bool ok;
  const Value *v = lookup(key, out, defaultValue, ok);
  if (!v)
    return ok;
  std::optional<double> x = v->getAsNumber();
  if (!x)
    return error(key, "must be a number, not " + typeName(*v));
  if (bounds.minimum && *x < *bounds.minimum)
    return error(key, "must be >= " + formatG(*bounds.minimum));
  if (bounds.above && *x <= *bounds.above)
    return error(key, "must be > " + formatG(*bounds.above));
  if (bounds.maximum && *x > *bounds.maximum)
    return error(key, "must be <= " + formatG(*bounds.maximum));
  out = *x;
  return true;
}

bool Obj::boolean(StringRef key, bool &out,
                  std::optional<bool> defaultValue) const {
  bool ok;
  const Value *v = lookup(key, out, defaultValue, ok);
  if (!v)
    return ok;
  std::optional<bool> b = v->getAsBoolean();
  if (!b)
    return error(key, "must be true or false, not " + typeName(*v));
  out = *b;
  return true;
}

bool Obj::string(StringRef key, std::string &out,
                 std::optional<StringRef> defaultValue,
                 ArrayRef<StringRef> choices, bool isName) const {
  bool ok;
  const Value *v = lookup(key, out, defaultValue, ok);
  if (!v)
    return ok;
  std::optional<StringRef> s = v->getAsString();
  if (!s)
    return error(key, "must be a string, not " + typeName(*v));
  if (!choices.empty() && !llvm::is_contained(choices, *s))
    return error(key, "must be one of " + llvm::join(choices, " | ") +
                          ", not " + quoteJson(*s));
  if (isName && !isIdentifier(*s))
    return error(key, quoteJson(*s) +
                          " is not a valid name (letters, digits, '_'; not "
                          "starting with a digit)");
  out = s->str();
  return true;
}

bool Obj::array(StringRef key, const llvm::json::Array *&out, bool optional,
                size_t minLength) const {
  out = nullptr;
  const Value *v = get(key);
  if (!v)
    return optional || error(key, "required");
  out = v->getAsArray();
  if (!out)
    return error(key, "must be a list, not " + typeName(*v));
  if (out->size() < minLength)
    return error(key, "must have at least " + Twine(minLength) +
                          (minLength == 1 ? " entry" : " entries"));
  return true;
}

bool Obj::object(StringRef key, ArrayRef<StringRef> keys, bool optional,
                 Obj &out) const {
  const Value *v = get(key);
  if (!v) {
    if (!optional)
      return error(key, "required");
    v = &emptyObject();
  }
  return open(*v, at(key), *context, keys, out);
}
