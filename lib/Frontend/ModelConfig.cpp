//===- ModelConfig.cpp - moma model definitions (moma-model/1) ------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The C++ reader of model definition files (examples/README.md, "Model
/// definition format"). It mirrors the PyTorch reference
/// (tools/moma-reference/moma_reference/config.py and jsonio.py) step by step
/// so that both readers accept the same files, apply the same defaults and
/// report the same first error with the same text:
///
///   - the JSON text is read by a small parser that follows the json module
///     of CPython 3.11 (the reference's interpreter): same grammar, same error
///     messages and positions, object keys in file order, integers distinct
///     from other numbers and of any size; duplicate keys and NaN/Infinity
///     are rejected as the reference's hooks reject them;
///   - validation walks the document in the reference's order with the same
///     typed accessors (class Obj mirrors jsonio.Obj) and the same provenance
///     tracking for effective layers (RFC 7386 merge patches that record, for
///     every value they write, where in the file it came from).
///
/// Deliberate differences, all on inputs the reference cannot process either:
/// JSON nested deeper than 64 levels is an error (the reference runs into
/// Python's recursion limit near 1000); an integer beyond the int64 range
/// that passes the reference's bounds is rejected; so is a model with a
/// weight of more than 2^63 - 1 elements.
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelConfig.h"

#include "moma/Frontend/Safetensors.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/Errc.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Unicode.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <tuple>

using namespace moma;
using llvm::ArrayRef;
using llvm::StringRef;
using llvm::Twine;

/// The only format this reader knows.
static constexpr llvm::StringLiteral kFormat = "moma-model/1";

/// Deepest JSON nesting accepted. A model file needs 6 levels; the limit
/// keeps the recursive parser and the recursive value destructor far from
/// the stack limit on hostile input such as "[[[[...".
static constexpr unsigned kMaxJsonDepth = 64;

/// Most layers accepted: the effective layers are materialised, so an absurd
/// `num_layers` would otherwise exhaust memory (the reference would spend
/// hours expanding them). Checked where the reference starts expanding.
static constexpr int64_t kMaxLayers = 1 << 20;

/// Python's default limit on the digits of an integer literal
/// (sys.get_int_max_str_digits()); longer integers make json.loads fail.
static constexpr size_t kMaxIntDigits = 4300;

static llvm::Error makeError(const Twine &message) {
  return llvm::createStringError(llvm::errc::invalid_argument, message);
}

//===----------------------------------------------------------------------===//
// Unicode and Python-compatible formatting
//===----------------------------------------------------------------------===//

/// Appends code point \p cp as UTF-8. Surrogates, which only `\u` escapes can
/// produce, are encoded like any other BMP code point (WTF-8) so that they
/// survive into error messages the way Python prints them.
static void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// Decodes \p bytes like Python's `bytes.decode("utf-8")`. On failure returns
/// false and sets \p badByte to the offset where the offending sequence
/// starts (Python's UnicodeDecodeError.start).
static bool decodeUtf8Strict(StringRef bytes, std::u32string &out,
                             size_t &badByte) {
  out.clear();
  out.reserve(bytes.size());
  const auto *p = bytes.bytes_begin();
  const size_t n = bytes.size();
  for (size_t i = 0; i < n;) {
    const unsigned char lead = p[i];
    if (lead < 0x80) {
      out.push_back(lead);
      ++i;
      continue;
    }
    unsigned length;
    uint32_t cp;
    unsigned char low = 0x80, high = 0xBF; // Range of the second byte.
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
      cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      cp = lead & 0x0F;
      if (lead == 0xE0)
        low = 0xA0; // Overlong.
      if (lead == 0xED)
        high = 0x9F; // Surrogates.
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      cp = lead & 0x07;
      if (lead == 0xF0)
        low = 0x90; // Overlong.
      if (lead == 0xF4)
        high = 0x8F; // Beyond U+10FFFF.
    } else {
      badByte = i;
      return false;
    }
    for (unsigned k = 1; k < length; ++k) {
      if (i + k >= n) {
        badByte = i;
        return false;
      }
      const unsigned char c = p[i + k];
      if (c < (k == 1 ? low : 0x80) || c > (k == 1 ? high : 0xBF)) {
        badByte = i;
        return false;
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    out.push_back(cp);
    i += length;
  }
  return true;
}

/// Decodes text written by appendUtf8 (UTF-8, plus surrogates encoded as
/// three bytes). Bytes that do not decode become U+FFFD.
static std::u32string decodeWtf8(StringRef text) {
  std::u32string out;
  const auto *p = text.bytes_begin();
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char lead = p[i];
    unsigned length = lead < 0x80             ? 1
                      : (lead & 0xE0) == 0xC0 ? 2
                      : (lead & 0xF0) == 0xE0 ? 3
                      : (lead & 0xF8) == 0xF0 ? 4
                                              : 0;
    if (length == 0 || i + length > n) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    uint32_t cp = length == 1 ? lead : lead & (0x7F >> length);
    bool ok = true;
    for (unsigned k = 1; k < length; ++k) {
      if ((p[i + k] & 0xC0) != 0x80)
        ok = false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += length;
  }
  return out;
}

/// Characters that LLVM's (newer) Unicode tables call printable but that
/// were unassigned in Unicode 14.0, the version of the reference's Python
/// 3.11, which therefore escapes them in repr().
static const std::pair<uint32_t, uint32_t> kUnassignedInUnicode14[] = {
    {0xCF3, 0xCF3},     {0xECE, 0xECE},     {0x2FFC, 0x2FFF},
    {0x31EF, 0x31EF},   {0x10EFD, 0x10EFF}, {0x1123F, 0x11241},
    {0x11B00, 0x11B09}, {0x11F00, 0x11F10}, {0x11F12, 0x11F3A},
    {0x11F3E, 0x11F59}, {0x1342F, 0x1342F}, {0x13440, 0x13455},
    {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1D2C0, 0x1D2D3},
    {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F},
    {0x1E4D0, 0x1E4F9}, {0x1F6DC, 0x1F6DC}, {0x1F774, 0x1F776},
    {0x1F77B, 0x1F77F}, {0x1F7D9, 0x1F7D9}, {0x1FA75, 0x1FA77},
    {0x1FA87, 0x1FA88}, {0x1FAAD, 0x1FAAF}, {0x1FABB, 0x1FABD},
    {0x1FABF, 0x1FABF}, {0x1FACE, 0x1FACF}, {0x1FADA, 0x1FADB},
    {0x1FAE8, 0x1FAE8}, {0x1FAF7, 0x1FAF8}, {0x2B739, 0x2B739},
    {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF}};

/// Python's str.isprintable() for one character: false for the categories
/// Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs (except the ASCII space).
static bool isPythonPrintable(uint32_t cp) {
  if (cp < 0x80)
    return cp >= 0x20 && cp < 0x7F;
  if (cp >= 0xD800 && cp <= 0xDFFF)
    return false;
  if (cp == 0xA0 || cp == 0xAD || cp == 0x1680 ||
      (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F ||
      cp == 0x3000)
    return false;
  for (const auto &[first, last] : kUnassignedInUnicode14)
    if (cp >= first && cp <= last)
      return false;
  return llvm::sys::unicode::isPrintable(static_cast<int>(cp)) &&
         !llvm::sys::unicode::isFormatting(static_cast<int>(cp));
}

static void appendHex(std::string &out, uint32_t value, unsigned digits) {
  static const char hex[] = "0123456789abcdef";
  for (unsigned i = digits; i-- > 0;)
    out += hex[(value >> (4 * i)) & 0xF];
}

/// Python's repr() of a str, e.g. 'text' or "it's".
static std::string pyRepr(StringRef text) {
  std::u32string chars = decodeWtf8(text);
  const bool hasSingle = llvm::is_contained(chars, U'\'');
  const bool hasDouble = llvm::is_contained(chars, U'"');
  const char32_t quote = hasSingle && !hasDouble ? U'"' : U'\'';
  std::string out(1, static_cast<char>(quote));
  for (char32_t c : chars) {
    if (c == quote || c == U'\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == U'\t') {
      out += "\\t";
    } else if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      appendHex(out, c, 2);
    } else if (c < 0x7F) {
      out += static_cast<char>(c);
    } else if (isPythonPrintable(c)) {
      appendUtf8(out, c);
    } else if (c <= 0xFF) {
      out += "\\x";
      appendHex(out, c, 2);
    } else if (c <= 0xFFFF) {
      out += "\\u";
      appendHex(out, c, 4);
    } else {
      out += "\\U";
      appendHex(out, c, 8);
    }
  }
  out += static_cast<char>(quote);
  return out;
}

/// Python's json.dumps() of a str (ensure_ascii), e.g. "x" or "\u00e9".
static std::string jsonDumps(StringRef text) {
  std::string out = "\"";
  for (char32_t c : decodeWtf8(text)) {
    if (c >= 0x20 && c <= 0x7E && c != U'\\' && c != U'"') {
      out += static_cast<char>(c);
      continue;
    }
    out += '\\';
    switch (c) {
    case U'\\':
      out += '\\';
      break;
    case U'"':
      out += '"';
      break;
    case U'\b':
      out += 'b';
      break;
    case U'\f':
      out += 'f';
      break;
    case U'\n':
      out += 'n';
      break;
    case U'\r':
      out += 'r';
      break;
    case U'\t':
      out += 't';
      break;
    default:
      if (c >= 0x10000) {
        const uint32_t v = c - 0x10000;
        out += 'u';
        appendHex(out, 0xD800 | ((v >> 10) & 0x3FF), 4);
        out += '\\';
        c = 0xDC00 | (v & 0x3FF);
      }
      out += 'u';
      appendHex(out, c, 4);
    }
  }
  out += '"';
  return out;
}

/// Python's format(value, "g").
static std::string formatG(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

/// Python's repr() of a float (shortest round trip), e.g. 0.02 or 1e-05.
static std::string pythonFloatRepr(double value) {
  if (std::isnan(value))
    return "nan";
  if (std::isinf(value))
    return value < 0 ? "-inf" : "inf";
  if (value == 0)
    return std::signbit(value) ? "-0.0" : "0.0";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value,
                              std::chars_format::scientific);
  StringRef text(buffer, result.ptr - buffer);
  std::string sign;
  if (text.consume_front("-"))
    sign = "-";
  auto [mantissa, exponentText] = text.split('e');
  int exponent = 0;
  exponentText.consume_front("+");
  exponentText.getAsInteger(10, exponent);
  std::string digits = mantissa.str();
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1)
      out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+',
                  std::abs(exponent));
    return out + exp;
  }
  if (exponent < 0)
    return sign + "0." + std::string(-exponent - 1, '0') + digits;
  if (static_cast<size_t>(exponent) + 1 >= digits.size())
    return sign + digits + std::string(exponent + 1 - digits.size(), '0') +
           ".0";
  return sign + digits.substr(0, exponent + 1) + "." +
         digits.substr(exponent + 1);
}

/// Python's `re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", text)`. Note that `$`
/// also matches before a trailing newline, so "text\n" matches.
static bool matchesNamePattern(StringRef text) {
  text.consume_back("\n");
  if (text.empty() || !(llvm::isAlpha(text[0]) || text[0] == '_'))
    return false;
  return llvm::all_of(text.drop_front(),
                      [](char c) { return llvm::isAlnum(c) || c == '_'; });
}

//===----------------------------------------------------------------------===//
// JSON values and the CPython-compatible parser
//===----------------------------------------------------------------------===//

namespace {

/// A parsed JSON value with the semantics of Python's json module: objects
/// keep their keys in file order, integers (of any size) are distinct from
/// other numbers, and booleans are not numbers.
struct JsonValue {
  enum class Kind { Null, Bool, Int, Float, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  /// Int: the value, when it fits in int64 (`bigInt` false).
  int64_t integer = 0;
  /// Int: the value does not fit in int64; `text` holds its decimal digits.
  bool bigInt = false;
  /// Float: the value; Int: Python's float(value).
  double number = 0;
  /// String: the value (UTF-8, lone surrogates as three bytes); big Int: its
  /// decimal text.
  std::string text;
  /// Array: the elements; Object: the values, parallel to `keys`.
  std::vector<JsonValue> items;
  /// Object: the keys in order.
  std::vector<std::string> keys;

  static JsonValue object() {
    JsonValue v;
    v.kind = Kind::Object;
    return v;
  }
  bool isObject() const { return kind == Kind::Object; }
  bool isNull() const { return kind == Kind::Null; }

  /// Object: the value of \p key, or null if absent.
  const JsonValue *find(StringRef key) const {
    for (size_t i = 0, e = keys.size(); i < e; ++i)
      if (keys[i] == key)
        return &items[i];
    return nullptr;
  }
  /// Object: sets \p key like Python's `d[key] = value` (an existing key
  /// keeps its position, a new one goes last).
  void set(StringRef key, JsonValue value) {
    for (size_t i = 0, e = keys.size(); i < e; ++i)
      if (keys[i] == key) {
        items[i] = std::move(value);
        return;
      }
    keys.push_back(key.str());
    items.push_back(std::move(value));
  }
  /// Object: removes \p key if present.
  void erase(StringRef key) {
    for (size_t i = 0, e = keys.size(); i < e; ++i)
      if (keys[i] == key) {
        keys.erase(keys.begin() + i);
        items.erase(items.begin() + i);
        return;
      }
  }
};

/// The empty JSON object, the default of optional object fields.
const JsonValue &emptyObject() {
  static const JsonValue empty = JsonValue::object();
  return empty;
}

/// A JSON parser with the grammar, the error messages and the error positions
/// of CPython 3.11's json.loads (its C scanner), called the way the reference
/// calls it (duplicate keys and NaN/Infinity rejected by hooks). Positions
/// count code points, as Python's do.
class JsonParser {
public:
  explicit JsonParser(const std::u32string &text) : s(text), len(text.size()) {}

  /// Parses the whole text. On failure returns false; message() is then the
  /// reference's rule text ("invalid JSON at line L column C: ...").
  bool parse(JsonValue &out);

  const std::string &message() const { return error; }

private:
  bool isWhitespace(size_t i) const {
    char32_t c = s[i];
    return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r';
  }
  size_t skipWhitespace(size_t i) const {
    while (i < len && isWhitespace(i))
      ++i;
    return i;
  }
  bool isDigit(size_t i) const { return s[i] >= U'0' && s[i] <= U'9'; }
  /// Whether the code points from \p i on spell \p word (false when the
  /// text ends first).
  bool matches(size_t i, StringRef word) const {
    if (i > len || word.size() > len - i)
      return false;
    for (size_t k = 0; k < word.size(); ++k)
      if (s[i + k] != static_cast<char32_t>(word[k]))
        return false;
    return true;
  }

  /// A json.JSONDecodeError at code point \p pos.
  bool failAt(StringRef message, size_t pos);
  /// A ValueError raised by a hook: "invalid JSON: <message>".
  bool failValue(const Twine &message);

  bool scanOnce(size_t idx, JsonValue &out, size_t &next);
  bool scanString(size_t end, std::string &out, size_t &next);
  bool parseObject(size_t idx, JsonValue &out, size_t &next);
  bool parseArray(size_t idx, JsonValue &out, size_t &next);
  bool matchNumber(size_t start, JsonValue &out, size_t &next);
  bool enter(size_t pos);

  const std::u32string &s;
  const size_t len;
  unsigned depth = 0;
  std::string error;
};

} // namespace

bool JsonParser::failAt(StringRef message, size_t pos) {
  size_t line = 1;
  std::optional<size_t> lastNewline;
  for (size_t i = 0; i < pos && i < len; ++i)
    if (s[i] == U'\n') {
      ++line;
      lastNewline = i;
    }
  size_t column = lastNewline ? pos - *lastNewline : pos + 1;
  error = ("invalid JSON at line " + Twine(line) + " column " + Twine(column) +
           ": " + message)
              .str();
  return false;
}

bool JsonParser::failValue(const Twine &message) {
  error = ("invalid JSON: " + message).str();
  return false;
}

bool JsonParser::parse(JsonValue &out) {
  if (len > 0 && s[0] == 0xFEFF)
    return failAt("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0);
  size_t next;
  if (!scanOnce(skipWhitespace(0), out, next))
    return false;
  size_t end = skipWhitespace(next);
  if (end != len)
    return failAt("Extra data", end);
  return true;
}

bool JsonParser::enter(size_t pos) {
  if (++depth <= kMaxJsonDepth)
    return true;
  return failAt(
      ("nested deeper than " + Twine(kMaxJsonDepth) + " levels").str(), pos);
}

bool JsonParser::scanOnce(size_t idx, JsonValue &out, size_t &next) {
  if (idx >= len)
    return failAt("Expecting value", idx);
  // `null`, `true` or `false` at idx.
  auto literal = [&](StringRef word, JsonValue::Kind kind, bool value) {
    if (!matches(idx, word))
      return false;
    out.kind = kind;
    out.boolean = value;
    next = idx + word.size();
    return true;
  };
  switch (s[idx]) {
  case U'"':
    out.kind = JsonValue::Kind::String;
    return scanString(idx + 1, out.text, next);
  case U'{':
  case U'[': {
    if (!enter(idx))
      return false;
    bool ok = s[idx] == U'{' ? parseObject(idx + 1, out, next)
                             : parseArray(idx + 1, out, next);
    --depth;
    return ok;
  }
  case U'n':
    if (literal("null", JsonValue::Kind::Null, false))
      return true;
    break;
  case U't':
    if (literal("true", JsonValue::Kind::Bool, true))
      return true;
    break;
  case U'f':
    if (literal("false", JsonValue::Kind::Bool, false))
      return true;
    break;
  case U'N':
    if (matches(idx, "NaN"))
      return failValue("NaN is not valid JSON");
    break;
  case U'I':
    if (matches(idx, "Infinity"))
      return failValue("Infinity is not valid JSON");
    break;
  case U'-':
    if (matches(idx, "-Infinity"))
      return failValue("-Infinity is not valid JSON");
    break;
  default:
    break;
  }
  return matchNumber(idx, out, next);
}

bool JsonParser::scanString(size_t end, std::string &out, size_t &next) {
  // `end` is the index after the opening quote (CPython's scanstring).
  const size_t begin = end - 1;
  out.clear();
  while (true) {
    char32_t c = 0;
    size_t pos = end;
    for (; pos < len; ++pos) {
      c = s[pos];
      if (c == U'"' || c == U'\\')
        break;
      if (c <= 0x1F)
        return failAt("Invalid control character at", pos);
    }
    if (pos == len || (c != U'"' && c != U'\\'))
      return failAt("Unterminated string starting at", begin);
    for (size_t i = end; i < pos; ++i)
      appendUtf8(out, s[i]);
    ++pos;
    if (c == U'"') {
      end = pos;
      break;
    }
    if (pos == len)
      return failAt("Unterminated string starting at", begin);
    c = s[pos];
    if (c != U'u') {
      end = pos + 1;
      switch (c) {
      case U'"':
      case U'\\':
      case U'/':
        break;
      case U'b':
        c = U'\b';
        break;
      case U'f':
        c = U'\f';
        break;
      case U'n':
        c = U'\n';
        break;
      case U'r':
        c = U'\r';
        break;
      case U't':
        c = U'\t';
        break;
      default:
        return failAt("Invalid \\escape", end - 2);
      }
    } else {
      auto hex4 = [&](size_t at, uint32_t &value) {
        value = 0;
        for (size_t i = at; i < at + 4; ++i) {
          char32_t d = s[i];
          value <<= 4;
          if (d >= U'0' && d <= U'9')
            value |= d - U'0';
          else if (d >= U'a' && d <= U'f')
            value |= d - U'a' + 10;
          else if (d >= U'A' && d <= U'F')
            value |= d - U'A' + 10;
          else
            return false;
        }
        return true;
      };
      ++pos;
      end = pos + 4;
      if (end >= len)
        return failAt("Invalid \\uXXXX escape", pos - 1);
      uint32_t value;
      if (!hex4(pos, value))
        return failAt("Invalid \\uXXXX escape", end - 5);
      // A high surrogate followed by an escaped low surrogate is one pair.
      if (value >= 0xD800 && value <= 0xDBFF && end + 6 < len &&
          s[end] == U'\\' && s[end + 1] == U'u') {
        uint32_t low;
        if (!hex4(end + 2, low))
          return failAt("Invalid \\uXXXX escape", end + 1);
        if (low >= 0xDC00 && low <= 0xDFFF) {
          value = 0x10000 + (((value - 0xD800) << 10) | (low - 0xDC00));
          end += 6;
        }
      }
      c = value;
    }
    appendUtf8(out, c);
  }
  next = end;
  return true;
}

bool JsonParser::parseObject(size_t idx, JsonValue &out, size_t &next) {
  out = JsonValue::object();
  idx = skipWhitespace(idx);
  if (idx >= len || s[idx] != U'}') {
    while (true) {
      if (idx >= len || s[idx] != U'"')
        return failAt("Expecting property name enclosed in double quotes", idx);
      std::string key;
      size_t after;
      if (!scanString(idx + 1, key, after))
        return false;
      idx = skipWhitespace(after);
      if (idx >= len || s[idx] != U':')
        return failAt("Expecting ':' delimiter", idx);
      idx = skipWhitespace(idx + 1);
      JsonValue value;
      if (!scanOnce(idx, value, after))
        return false;
      out.keys.push_back(std::move(key));
      out.items.push_back(std::move(value));
      idx = skipWhitespace(after);
      if (idx < len && s[idx] == U'}')
        break;
      if (idx >= len || s[idx] != U',')
        return failAt("Expecting ',' delimiter", idx);
      idx = skipWhitespace(idx + 1);
    }
  }
  next = idx + 1;
  // The reference's object_pairs_hook, run when the object is complete.
  std::set<StringRef> seen;
  for (const std::string &key : out.keys)
    if (!seen.insert(key).second)
      return failValue("duplicate key " + jsonDumps(key) + " in an object");
  return true;
}

bool JsonParser::parseArray(size_t idx, JsonValue &out, size_t &next) {
  out.kind = JsonValue::Kind::Array;
  idx = skipWhitespace(idx);
  if (idx >= len || s[idx] != U']') {
    while (true) {
      JsonValue value;
      size_t after;
      if (!scanOnce(idx, value, after))
        return false;
      out.items.push_back(std::move(value));
      idx = skipWhitespace(after);
      if (idx < len && s[idx] == U']')
        break;
      if (idx >= len || s[idx] != U',')
        return failAt("Expecting ',' delimiter", idx);
      idx = skipWhitespace(idx + 1);
    }
  }
  next = idx + 1;
  return true;
}

/// Converts a decimal number (JSON grammar) to the nearest double, like
/// Python's float(); out-of-range magnitudes become infinity or zero.
static double decimalToDouble(StringRef text) {
  llvm::APFloat value(llvm::APFloat::IEEEdouble());
  llvm::Expected<llvm::APFloat::opStatus> status =
      value.convertFromString(text, llvm::APFloat::rmNearestTiesToEven);
  if (!status) {
    llvm::consumeError(status.takeError());
    return 0.0;
  }
  return value.convertToDouble();
}

bool JsonParser::matchNumber(size_t start, JsonValue &out, size_t &next) {
  size_t idx = start;
  const size_t endIdx = len - 1; // len >= 1 here: s[start] exists.
  if (s[idx] == U'-') {
    ++idx;
    if (idx > endIdx)
      return failAt("Expecting value", start);
  }
  if (s[idx] >= U'1' && s[idx] <= U'9') {
    ++idx;
    while (idx <= endIdx && isDigit(idx))
      ++idx;
  } else if (s[idx] == U'0') {
    ++idx;
  } else {
    return failAt("Expecting value", start);
  }
  bool isFloat = false;
  if (idx < endIdx && s[idx] == U'.' && isDigit(idx + 1)) {
    isFloat = true;
    idx += 2;
    while (idx <= endIdx && isDigit(idx))
      ++idx;
  }
  if (idx < endIdx && (s[idx] == U'e' || s[idx] == U'E')) {
    const size_t exponentStart = idx;
    ++idx;
    if (idx < endIdx && (s[idx] == U'-' || s[idx] == U'+'))
      ++idx;
    while (idx <= endIdx && isDigit(idx))
      ++idx;
    if (isDigit(idx - 1))
      isFloat = true;
    else
      idx = exponentStart;
  }
  std::string text;
  for (size_t i = start; i < idx; ++i)
    text += static_cast<char>(s[i]);
  next = idx;
  if (isFloat) {
    out.kind = JsonValue::Kind::Float;
    out.number = decimalToDouble(text);
    return true;
  }
  out.kind = JsonValue::Kind::Int;
  size_t digits = text.size() - (text[0] == '-' ? 1 : 0);
  if (digits > kMaxIntDigits)
    return failValue("Exceeds the limit (" + Twine(kMaxIntDigits) +
                     " digits) for integer string conversion: value has " +
                     Twine(digits) +
                     " digits; use sys.set_int_max_str_digits() to increase "
                     "the limit");
  if (StringRef(text).getAsInteger(10, out.integer)) {
    out.bigInt = true;
    out.text = text;
    out.number = decimalToDouble(text);
  } else {
    out.number = static_cast<double>(out.integer);
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Paths, provenance and typed access (jsonio.py)
//===----------------------------------------------------------------------===//

namespace {

/// One step of a JSON path: an object key or a list index.
struct PathPart {
  bool isIndex = false;
  int64_t index = 0;
  std::string key;

  bool operator<(const PathPart &other) const {
    return std::tie(isIndex, index, key) <
           std::tie(other.isIndex, other.index, other.key);
  }
  bool operator==(const PathPart &other) const {
    return isIndex == other.isIndex && index == other.index && key == other.key;
  }
};

using Path = std::vector<PathPart>;

Path child(Path path, StringRef key) {
  PathPart part;
  part.key = key.str();
  path.push_back(std::move(part));
  return path;
}

Path child(Path path, int64_t index) {
  PathPart part;
  part.isIndex = true;
  part.index = index;
  path.push_back(std::move(part));
  return path;
}

/// jsonio.format_path: `layers[3].ffn.groups[1].experts`; keys that are not
/// identifiers are written `["odd key"]`.
std::string formatPath(ArrayRef<PathPart> path) {
  std::string text;
  for (const PathPart &part : path) {
    if (part.isIndex)
      text += "[" + std::to_string(part.index) + "]";
    else if (matchesNamePattern(part.key))
      text += (text.empty() ? "" : ".") + part.key;
    else
      text += "[" + jsonDumps(part.key) + "]";
  }
  return text;
}

/// For an effective layer: which place in the file each sub-tree was
/// written at (keys are paths relative to the layer, values file paths).
using OriginMap = std::map<Path, Path>;

/// jsonio.Context: where errors go (the file name, the first error) and, for
/// effective layers, the provenance of values.
struct Context {
  StringRef file;
  std::string *error = nullptr;
  const OriginMap *origins = nullptr;
  Path base;

  /// The file path of the value at effective \p path, if known.
  std::optional<std::string> sourceOf(const Path &path) const {
    if (!origins)
      return std::nullopt;
    Path rel(path.begin() + std::min(base.size(), path.size()), path.end());
    for (size_t n = rel.size() + 1; n-- > 0;) {
      Path prefix(rel.begin(), rel.begin() + n);
      auto it = origins->find(prefix);
      if (it == origins->end())
        continue;
      Path source = it->second;
      source.insert(source.end(), rel.begin() + n, rel.end());
      return formatPath(source);
    }
    return std::nullopt;
  }

  /// Records the error `FILE: PATH: RULE (value from SOURCE)` (errors.py);
  /// always returns false.
  bool fail(const Path &path, const Twine &rule) const {
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
};

/// The JSON type name used in messages (jsonio.json_type_name).
StringRef typeName(const JsonValue &value) {
  switch (value.kind) {
  case JsonValue::Kind::Null:
    return "null";
  case JsonValue::Kind::Bool:
    return "a boolean";
  case JsonValue::Kind::Int:
    return "an integer";
  case JsonValue::Kind::Float:
    return "a number";
  case JsonValue::Kind::String:
    return "a string";
  case JsonValue::Kind::Array:
    return "a list";
  case JsonValue::Kind::Object:
    return "an object";
  }
  llvm_unreachable("unknown JSON kind");
}

/// Python's str() of a JSON integer.
std::string intText(const JsonValue &value) {
  return value.bigInt ? value.text : std::to_string(value.integer);
}

/// Compares two JSON integers exactly (<0, 0, >0).
int compareInts(const JsonValue &a, const JsonValue &b) {
  auto signOf = [](const JsonValue &v) {
    if (!v.bigInt)
      return 0;
    return v.text[0] == '-' ? -1 : 1;
  };
  int sa = signOf(a), sb = signOf(b);
  if (sa != sb)
    return sa < sb ? -1 : 1;
  if (sa == 0)
    return a.integer < b.integer ? -1 : a.integer > b.integer ? 1 : 0;
  // Both big with the same sign: compare magnitudes by their digits.
  StringRef da = StringRef(a.text).ltrim('-'),
            db = StringRef(b.text).ltrim('-');
  int magnitude = da.size() != db.size() ? (da.size() < db.size() ? -1 : 1)
                                         : da.compare(db);
  return sa > 0 ? magnitude : -magnitude;
}

int compareInts(const JsonValue &a, int64_t b) {
  JsonValue v;
  v.kind = JsonValue::Kind::Int;
  v.integer = b;
  return compareInts(a, v);
}

/// Bounds of a number field (jsonio.Obj.number): `minimum` and `maximum`
/// inclusive, `above` exclusive.
struct NumberBounds {
  std::optional<double> minimum, above, maximum;
};

/// `>= minimum`.
NumberBounds atLeast(double minimum) {
  NumberBounds bounds;
  bounds.minimum = minimum;
  return bounds;
}

/// `> above`, and `<= maximum` if given.
NumberBounds greaterThan(double above,
                         std::optional<double> maximum = std::nullopt) {
  NumberBounds bounds;
  bounds.above = above;
  bounds.maximum = maximum;
  return bounds;
}

/// jsonio.Obj: typed, checked access to the keys of one JSON object. Every
/// accessor returns false after recording the error in the context.
class Obj {
public:
  /// Opens \p value as an object with the allowed \p keys: an object that is
  /// not one, or has a key not in \p keys, is an error.
  [[nodiscard]] static bool open(const JsonValue &value, Path path,
                                 const Context &ctx, ArrayRef<StringRef> keys,
                                 Obj &out) {
    if (!value.isObject())
      return ctx.fail(path, "must be an object, not " + typeName(value));
    for (const std::string &key : value.keys)
      if (!llvm::is_contained(keys, key))
        return ctx.fail(child(path, key), "unknown key (expected one of: " +
                                              llvm::join(keys, ", ") + ")");
    out.val = &value;
    out.objPath = std::move(path);
    out.context = &ctx;
    return true;
  }

  const JsonValue &value() const { return *val; }
  const Path &path() const { return objPath; }
  const Context &ctx() const { return *context; }
  Path at(StringRef key) const { return child(objPath, key); }
  bool has(StringRef key) const { return val->find(key) != nullptr; }
  const JsonValue *get(StringRef key) const { return val->find(key); }
  bool error(StringRef key, const Twine &rule) const {
    return context->fail(at(key), rule);
  }

  /// The value of a required key, unchecked.
  [[nodiscard]] bool raw(StringRef key, const JsonValue *&out) const {
    out = get(key);
    return out || error(key, "required");
  }

  [[nodiscard]] bool
  integer(StringRef key, int64_t &out, std::optional<int64_t> defaultValue,
          std::optional<int64_t> minimum = std::nullopt,
          std::optional<int64_t> maximum = std::nullopt) const {
    const JsonValue *v = get(key);
    if (!v) {
      if (!defaultValue)
        return error(key, "required");
      out = *defaultValue;
      return true;
    }
    if (v->kind != JsonValue::Kind::Int)
      return error(key, "must be an integer, not " + typeName(*v));
    if (minimum && compareInts(*v, *minimum) < 0)
      return error(key, "must be >= " + Twine(*minimum));
    if (maximum && compareInts(*v, *maximum) > 0)
      return error(key, "must be <= " + Twine(*maximum));
    if (v->bigInt) {
      if (v->text[0] == '-')
        return error(
            key, "must be >= " + Twine(std::numeric_limits<int64_t>::min()) +
                     " (the smallest integer this reader supports)");
      return error(key,
                   "must be <= " + Twine(std::numeric_limits<int64_t>::max()) +
                       " (the largest integer this reader supports)");
    }
    out = v->integer;
    return true;
  }

  [[nodiscard]] bool number(StringRef key, double &out,
                            std::optional<double> defaultValue,
                            NumberBounds bounds = {}) const {
    const JsonValue *v = get(key);
    if (!v) {
      if (!defaultValue)
        return error(key, "required");
      out = *defaultValue;
      return true;
    }
    if (v->kind != JsonValue::Kind::Int && v->kind != JsonValue::Kind::Float)
      return error(key, "must be a number, not " + typeName(*v));
    double x = v->number;
    if (bounds.minimum && x < *bounds.minimum)
      return error(key, "must be >= " + formatG(*bounds.minimum));
    if (bounds.above && x <= *bounds.above)
      return error(key, "must be > " + formatG(*bounds.above));
    if (bounds.maximum && x > *bounds.maximum)
      return error(key, "must be <= " + formatG(*bounds.maximum));
    out = x;
    return true;
  }

  [[nodiscard]] bool boolean(StringRef key, bool &out,
                             std::optional<bool> defaultValue) const {
    const JsonValue *v = get(key);
    if (!v) {
      if (!defaultValue)
        return error(key, "required");
      out = *defaultValue;
      return true;
    }
    if (v->kind != JsonValue::Kind::Bool)
      return error(key, "must be true or false, not " + typeName(*v));
    out = v->boolean;
    return true;
  }

  /// A string; with \p choices it must be one of them, with \p isName it
  /// must match the name pattern.
  [[nodiscard]] bool string(StringRef key, std::string &out,
                            std::optional<StringRef> defaultValue,
                            ArrayRef<StringRef> choices = {},
                            bool isName = false) const {
    const JsonValue *v = get(key);
    if (!v) {
      if (!defaultValue)
        return error(key, "required");
      out = defaultValue->str();
      return true;
    }
    if (v->kind != JsonValue::Kind::String)
      return error(key, "must be a string, not " + typeName(*v));
    if (!choices.empty() && !llvm::is_contained(choices, v->text))
      return error(key, "must be one of " + llvm::join(choices, " | ") +
                            ", not " + jsonDumps(v->text));
    if (isName && !matchesNamePattern(v->text))
      return error(key, jsonDumps(v->text) +
                            " is not a valid name (letters, digits, '_'; not "
                            "starting with a digit)");
    out = v->text;
    return true;
  }

  /// A list of at least \p minLength entries. When the key is absent and
  /// \p optional, `out` is null (the default, an empty list).
  [[nodiscard]] bool array(StringRef key, const JsonValue *&out, bool optional,
                           size_t minLength = 0) const {
    out = get(key);
    if (!out)
      return optional || error(key, "required");
    if (out->kind != JsonValue::Kind::Array)
      return error(key, "must be a list, not " + typeName(*out));
    if (out->items.size() < minLength)
      return error(key, "must have at least " + Twine(minLength) +
                            (minLength == 1 ? " entry" : " entries"));
    return true;
  }

  /// Opens the object at \p key; when absent and \p optional, an empty one.
  [[nodiscard]] bool object(StringRef key, ArrayRef<StringRef> keys,
                            bool optional, Obj &out) const {
    const JsonValue *v = get(key);
    if (!v) {
      if (!optional)
        return error(key, "required");
      v = &emptyObject();
    }
    return open(*v, at(key), *context, keys, out);
  }

private:
  const JsonValue *val = nullptr;
  Path objPath;
  const Context *context = nullptr;
};

} // namespace

//===----------------------------------------------------------------------===//
// The model (config.py)
//===----------------------------------------------------------------------===//

static const StringRef kTopKeys[] = {
    "format",      "name",       "source",
    "description", "vocab_size", "modalities",
    "d_model",     "num_layers", "norm",
    "untie",       "mod",        "aux_routers",
    "loss",        "dtype",      "tie_embeddings",
    "init_std",    "layer",      "layer_overrides"};
static const StringRef kLayerKeys[] = {"attention", "ffn"};
static const StringRef kDTypes[] = {"f32", "bf16", "f16", "f64"};
static const StringRef kNormKinds[] = {"rms", "layer"};
static const StringRef kNormPlacements[] = {"pre", "post"};
static const StringRef kFfnKinds[] = {"dense", "moe"};
static const StringRef kActivations[] = {"swiglu", "gelu"};
static const StringRef kRoutings[] = {"expert_choice", "token_choice"};
static const StringRef kScores[] = {"sigmoid", "softmax"};

namespace {

/// A parsed layer selector (README, "Layer selectors"): a set of indices or
/// Python's range(start, stop, step).
struct LayerSelector {
  bool isRange = false;
  int64_t start = 0, stop = 0, step = 1;
  /// The listed indices, sorted.
  std::vector<int64_t> list;

  bool contains(int64_t i) const {
    if (isRange)
      return i >= start && i < stop && (i - start) % step == 0;
    return std::binary_search(list.begin(), list.end(), i);
  }
  bool empty() const { return isRange ? start >= stop : list.empty(); }
};

/// config.parse_model and its helpers, in the reference's order.
class ModelParser {
public:
  ModelParser(StringRef file, std::string &error) {
    topCtx.file = file;
    topCtx.error = &error;
  }

  bool parse(const JsonValue &root, StringRef defaultName, ModelConfig &cfg);

private:
  bool parseModalities(ModelConfig &cfg);
  bool parseNorm(const Obj &n, NormConfig &norm);
  bool parseMod(ModelConfig &cfg);
  bool parseSelector(const JsonValue &value, const Path &path,
                     const Context &ctx, int64_t numLayers, bool allowEmpty,
                     LayerSelector &out);
  bool parseOverrides(const ModelConfig &cfg);
  JsonValue layerSource(int64_t index, OriginMap &origins) const;
  bool parseLayer(const JsonValue &value, const Path &path, const Context &ctx,
                  const ModelConfig &cfg, LayerConfig &out);
  bool parseAttention(const Obj &a, int64_t dModel, AttentionConfig &out);
  bool parseFfn(const Obj &lay, const ModelConfig &cfg, FfnConfig &out);
  bool parseGroups(const Obj &f, const ModelConfig &cfg,
                   std::vector<ExpertGroupConfig> &out);
  bool checkSizes(const ModelConfig &cfg);

  Context topCtx;
  Obj top;
  LayerSelector modLayers;
  const JsonValue *rawLayer = nullptr;
  const JsonValue *overrides = nullptr;
  std::vector<LayerSelector> overrideLayers;
};

} // namespace

bool ModelParser::parse(const JsonValue &root, StringRef defaultName,
                        ModelConfig &cfg) {
  if (!Obj::open(root, {}, topCtx, kTopKeys, top))
    return false;
  std::string format;
  if (!top.string("format", format, StringRef(kFormat)))
    return false;
  if (format != kFormat)
    return top.error("format", "unsupported format " + pyRepr(format) +
                                   " (this reader knows " + pyRepr(kFormat) +
                                   ")");
  if (!top.string("name", cfg.name, defaultName) ||
      !top.string("source", cfg.source, StringRef("")) ||
      !top.string("description", cfg.description, StringRef("")) ||
      !top.integer("vocab_size", cfg.vocabSize, std::nullopt, 1) ||
      !parseModalities(cfg) ||
      !top.integer("d_model", cfg.dModel, std::nullopt, 1) ||
      !top.integer("num_layers", cfg.numLayers, std::nullopt, 1))
    return false;

  Obj n;
  if (!top.object("norm", {"kind", "eps", "placement", "bias", "final"},
                  /*optional=*/true, n) ||
      !parseNorm(n, cfg.norm))
    return false;
  Obj u;
  if (!top.object("untie", {"attention", "ffn", "norms"}, true, u) ||
      !u.boolean("attention", cfg.untie.attention, false) ||
      !u.boolean("ffn", cfg.untie.ffn, false) ||
      !u.boolean("norms", cfg.untie.norms, false))
    return false;
  if (!parseMod(cfg))
    return false;
  Obj a;
  if (!top.object("aux_routers", {"enabled", "hidden"}, true, a) ||
      !a.boolean("enabled", cfg.auxRouters.enabled, false) ||
      !a.integer("hidden", cfg.auxRouters.hidden,
                 std::max<int64_t>(1, cfg.dModel / 2), 1))
    return false;
  Obj lw;
  if (!top.object("loss", {"load_balancing", "router_z", "aux_router"}, true,
                  lw) ||
      !lw.number("load_balancing", cfg.loss.loadBalancing, 0.0, atLeast(0.0)) ||
      !lw.number("router_z", cfg.loss.routerZ, 0.0, atLeast(0.0)) ||
      !lw.number("aux_router", cfg.loss.auxRouter, 1.0, atLeast(0.0)))
    return false;
  if (!top.string("dtype", cfg.dtype, StringRef("f32"), kDTypes) ||
      !top.boolean("tie_embeddings", cfg.tieEmbeddings, false) ||
      !top.number("init_std", cfg.initStd, 0.02, greaterThan(0.0)))
    return false;

  // The effective layers: overrides' keys and selectors first, then layer 0,
  // 1, ... (config._expand_layers).
  if (!parseOverrides(cfg))
    return false;
  if (cfg.numLayers > kMaxLayers)
    return top.error("num_layers", "must be <= " + Twine(kMaxLayers) +
                                       " (the most layers this reader "
                                       "supports)");
  cfg.layers.clear();
  for (int64_t i = 0; i < cfg.numLayers; ++i) {
    OriginMap origins;
    JsonValue value = layerSource(i, origins);
    Context ctx = topCtx;
    ctx.origins = &origins;
    ctx.base = child(child({}, "layers"), i);
    LayerConfig layer;
    layer.index = i;
    if (!parseLayer(value, ctx.base, ctx, cfg, layer))
      return false;
    layer.mod = modLayers.contains(i);
    cfg.layers.push_back(std::move(layer));
  }

  if (cfg.untie.ffn)
    for (const LayerConfig &layer : cfg.layers) {
      if (layer.ffn.kind == FfnConfig::Kind::Dense)
        continue;
      OriginMap origins;
      (void)layerSource(layer.index, origins);
      Context ctx = topCtx;
      ctx.origins = &origins;
      ctx.base = child(child({}, "layers"), layer.index);
      return ctx.fail(child(child(ctx.base, "ffn"), "kind"),
                      "must be \"dense\" when untie.ffn is true (an MoE layer "
                      "is modality-aware through its expert groups)");
    }
  return checkSizes(cfg);
}

bool ModelParser::parseModalities(ModelConfig &cfg) {
  const JsonValue *items;
  if (!top.array("modalities", items, /*optional=*/false, 1))
    return false;
  cfg.modalities.clear();
  for (size_t i = 0; i < items->items.size(); ++i) {
    Obj m;
    if (!Obj::open(items->items[i], child(top.at("modalities"), i), topCtx,
                   {"name", "tokens"}, m))
      return false;
    ModalityConfig modality;
    if (!m.string("name", modality.name, std::nullopt, {}, /*isName=*/true))
      return false;
    for (size_t j = 0; j < cfg.modalities.size(); ++j)
      if (cfg.modalities[j].name == modality.name)
        return m.error("name", "duplicate modality name " +
                                   pyRepr(modality.name) +
                                   " (also modalities[" + Twine(j) + "])");
    const JsonValue *range;
    if (!m.array("tokens", range, false))
      return false;
    if (range->items.size() != 2 ||
        llvm::any_of(range->items, [](const JsonValue &v) {
          return v.kind != JsonValue::Kind::Int;
        }))
      return m.error("tokens", "must be [begin, end]: two integers, the "
                               "half-open range of token ids");
    const JsonValue &begin = range->items[0], &end = range->items[1];
    if (!(compareInts(begin, 0) >= 0 && compareInts(begin, end) < 0 &&
          compareInts(end, cfg.vocabSize) <= 0))
      return m.error("tokens", "range [" + intText(begin) + ", " +
                                   intText(end) +
                                   ") must be non-empty and inside the "
                                   "vocabulary [0, " +
                                   Twine(cfg.vocabSize) + ")");
    modality.begin = begin.integer;
    modality.end = end.integer;
    for (size_t j = 0; j < cfg.modalities.size(); ++j) {
      const ModalityConfig &prev = cfg.modalities[j];
      if (modality.begin < prev.end && prev.begin < modality.end)
        return m.error("tokens",
                       "range [" + Twine(modality.begin) + ", " +
                           Twine(modality.end) + ") overlaps modalities[" +
                           Twine(j) + "] (" + pyRepr(prev.name) + ": [" +
                           Twine(prev.begin) + ", " + Twine(prev.end) + "))");
    }
    cfg.modalities.push_back(std::move(modality));
  }
  return true;
}

bool ModelParser::parseNorm(const Obj &n, NormConfig &norm) {
  std::string kind, placement;
  if (!n.string("kind", kind, StringRef("rms"), kNormKinds) ||
      !n.number("eps", norm.eps, 1e-5, greaterThan(0.0)) ||
      !n.string("placement", placement, StringRef("pre"), kNormPlacements) ||
      !n.boolean("bias", norm.bias, kind == "layer"))
    return false;
  if (norm.bias && kind != "layer")
    return n.error("bias", "only layer norm has a bias (kind is \"rms\")");
  if (!n.boolean("final", norm.final, true))
    return false;
  norm.kind = kind == "layer" ? NormConfig::Kind::Layer : NormConfig::Kind::RMS;
  norm.placement = placement == "post" ? NormConfig::Placement::Post
                                       : NormConfig::Placement::Pre;
  return true;
}

bool ModelParser::parseSelector(const JsonValue &value, const Path &path,
                                const Context &ctx, int64_t numLayers,
                                bool allowEmpty, LayerSelector &out) {
  out = LayerSelector();
  if (value.kind == JsonValue::Kind::Array) {
    std::set<int64_t> seen;
    for (size_t i = 0; i < value.items.size(); ++i) {
      const JsonValue &v = value.items[i];
      if (v.kind != JsonValue::Kind::Int)
        return ctx.fail(child(path, i), "must be an integer layer index");
      if (!(compareInts(v, 0) >= 0 && compareInts(v, numLayers) < 0))
        return ctx.fail(child(path, i), "layer index " + intText(v) +
                                            " out of range [0, " +
                                            Twine(numLayers) + ")");
      if (!seen.insert(v.integer).second)
        return ctx.fail(child(path, i),
                        "layer " + Twine(v.integer) + " listed twice");
    }
    out.list.assign(seen.begin(), seen.end());
  } else if (value.isObject()) {
    Obj s;
    out.isRange = true;
    if (!Obj::open(value, path, ctx, {"start", "stop", "step"}, s) ||
        !s.integer("start", out.start, 0, 0, numLayers) ||
        !s.integer("stop", out.stop, numLayers, out.start, numLayers) ||
        !s.integer("step", out.step, 1, 1))
      return false;
  } else {
    return ctx.fail(path, "must be a list of layer indices or an object "
                          "{\"start\", \"stop\", \"step\"}");
  }
  if (out.empty() && !allowEmpty)
    return ctx.fail(path, "selects no layer");
  return true;
}

bool ModelParser::parseMod(ModelConfig &cfg) {
  cfg.mod = ModelConfig::MoD();
  modLayers = LayerSelector();
  if (!top.has("mod"))
    return true;
  Obj m;
  const JsonValue *layers;
  return top.object("mod", {"layers", "capacity", "gated"}, false, m) &&
         m.raw("layers", layers) &&
         parseSelector(*layers, m.at("layers"), topCtx, cfg.numLayers,
                       /*allowEmpty=*/true, modLayers) &&
         m.number("capacity", cfg.mod.capacity, 0.25, greaterThan(0.0, 1.0)) &&
         m.boolean("gated", cfg.mod.gated, true);
}

bool ModelParser::parseOverrides(const ModelConfig &cfg) {
  rawLayer = top.get("layer");
  if (rawLayer && !rawLayer->isObject())
    return top.error("layer", "must be an object");
  if (!top.array("layer_overrides", overrides, /*optional=*/true))
    return false;
  overrideLayers.clear();
  if (!overrides)
    return true;
  for (size_t k = 0; k < overrides->items.size(); ++k) {
    const JsonValue &entry = overrides->items[k];
    Path path = child(child({}, "layer_overrides"), k);
    if (!entry.isObject())
      return topCtx.fail(path, "must be an object");
    const JsonValue *layers = entry.find("layers");
    if (!layers)
      return topCtx.fail(child(path, "layers"),
                         "required (which layers this override applies to)");
    for (const std::string &key : entry.keys)
      if (key != "layers" && !llvm::is_contained(kLayerKeys, key))
        return topCtx.fail(
            child(path, key),
            "unknown key (expected one of: layers, " +
                llvm::join(ArrayRef<StringRef>(kLayerKeys), ", ") + ")");
    LayerSelector selector;
    if (!parseSelector(*layers, child(path, "layers"), topCtx, cfg.numLayers,
                       /*allowEmpty=*/false, selector))
      return false;
    overrideLayers.push_back(std::move(selector));
  }
  return true;
}

/// Removes every origin at or below \p rel (config._forget).
static void forgetOrigins(OriginMap &origins, const Path &rel) {
  for (auto it = origins.begin(); it != origins.end();) {
    const Path &key = it->first;
    if (key.size() >= rel.size() &&
        std::equal(rel.begin(), rel.end(), key.begin()))
      it = origins.erase(it);
    else
      ++it;
  }
}

/// Applies \p patch to \p target (null: absent) as an RFC 7386 merge patch,
/// recording in \p origins the file path \p src of every value written at
/// effective path \p rel (config.merge_patch).
static JsonValue mergePatch(const JsonValue *target, const JsonValue &patch,
                            OriginMap &origins, const Path &rel,
                            const Path &src) {
  if (!patch.isObject()) {
    forgetOrigins(origins, rel);
    origins[rel] = src;
    return patch;
  }
  JsonValue result;
  if (!target || !target->isObject()) {
    result = JsonValue::object();
    forgetOrigins(origins, rel);
    origins[rel] = src;
  } else {
    result = *target;
  }
  for (size_t i = 0; i < patch.keys.size(); ++i) {
    const std::string &key = patch.keys[i];
    const JsonValue &value = patch.items[i];
    if (value.isNull()) {
      result.erase(key);
      forgetOrigins(origins, child(rel, key));
      continue;
    }
    JsonValue merged = mergePatch(result.find(key), value, origins,
                                  child(rel, key), child(src, key));
    result.set(key, std::move(merged));
  }
  return result;
}

JsonValue ModelParser::layerSource(int64_t index, OriginMap &origins) const {
  origins.clear();
  Path layerPath = child({}, "layer");
  origins[{}] = layerPath;
  const JsonValue &raw = rawLayer ? *rawLayer : emptyObject();
  JsonValue value = mergePatch(&emptyObject(), raw, origins, {}, layerPath);
  for (size_t k = 0; k < overrideLayers.size(); ++k) {
    if (!overrideLayers[k].contains(index))
      continue;
    const JsonValue &entry = overrides->items[k];
    JsonValue patch = JsonValue::object();
    for (size_t i = 0; i < entry.keys.size(); ++i)
      if (entry.keys[i] != "layers")
        patch.set(entry.keys[i], entry.items[i]);
    JsonValue merged = mergePatch(&value, patch, origins, {},
                                  child(child({}, "layer_overrides"), k));
    value = std::move(merged);
  }
  return value;
}

bool ModelParser::parseLayer(const JsonValue &value, const Path &path,
                             const Context &ctx, const ModelConfig &cfg,
                             LayerConfig &out) {
  Obj lay, a;
  return Obj::open(value, path, ctx, kLayerKeys, lay) &&
         lay.object("attention",
                    {"heads", "kv_heads", "head_dim", "rope_theta", "causal"},
                    false, a) &&
         parseAttention(a, cfg.dModel, out.attention) &&
         parseFfn(lay, cfg, out.ffn);
}

bool ModelParser::parseAttention(const Obj &a, int64_t dModel,
                                 AttentionConfig &out) {
  if (!a.integer("heads", out.heads, std::nullopt, 1) ||
      !a.integer("kv_heads", out.kvHeads, out.heads, 1))
    return false;
  if (out.heads % out.kvHeads)
    return a.error("kv_heads", "must divide heads (" + Twine(out.heads) + ")");
  if (a.has("head_dim")) {
    if (!a.integer("head_dim", out.headDim, std::nullopt, 1))
      return false;
  } else if (dModel % out.heads) {
    return a.error("head_dim", "required because d_model (" + Twine(dModel) +
                                   ") is not divisible by heads (" +
                                   Twine(out.heads) + ")");
  } else {
    out.headDim = dModel / out.heads;
  }
  if (!a.number("rope_theta", out.ropeTheta, 10000.0, atLeast(0.0)))
    return false;
  if (out.ropeTheta > 0 && out.headDim % 2)
    return a.error("head_dim", "must be even when rope_theta > 0 (is " +
                                   Twine(out.headDim) + ")");
  return a.boolean("causal", out.causal, true);
}

bool ModelParser::parseFfn(const Obj &lay, const ModelConfig &cfg,
                           FfnConfig &out) {
  Obj base;
  std::string kind, activation;
  if (!lay.object("ffn", {"kind", "hidden", "activation", "groups", "lora"},
                  false, base) ||
      !base.string("kind", kind, std::nullopt, kFfnKinds))
    return false;
  Obj f = base;
  if (kind == "dense" && !Obj::open(base.value(), base.path(), base.ctx(),
                                    {"kind", "hidden", "activation"}, f))
    return false;
  if (!f.integer("hidden", out.hidden, std::nullopt, 1) ||
      !f.string("activation", activation, StringRef("swiglu"), kActivations))
    return false;
  out.kind = kind == "moe" ? FfnConfig::Kind::MoE : FfnConfig::Kind::Dense;
  out.activation = activation == "gelu" ? FfnConfig::Activation::GELU
                                        : FfnConfig::Activation::SwiGLU;
  out.groups.clear();
  out.loraRank = 0;
  out.loraAlpha = 0.0;
  if (kind == "dense")
    return true;
  Obj lo;
  if (!parseGroups(f, cfg, out.groups) ||
      !f.object("lora", {"rank", "alpha"}, true, lo) ||
      !lo.integer("rank", out.loraRank, 0, 0))
    return false;
  if (out.loraRank)
    return lo.number("alpha", out.loraAlpha, static_cast<double>(out.loraRank),
                     greaterThan(0.0));
  return lo.number("alpha", out.loraAlpha, 0.0, atLeast(0.0));
}

bool ModelParser::parseGroups(const Obj &f, const ModelConfig &cfg,
                              std::vector<ExpertGroupConfig> &out) {
  static const StringRef kGroupKeys[] = {
      "name",    "modality", "modalities",
      "experts", "routing",  "capacity_factor",
      "top_k",   "score",    "renormalize"};
  const JsonValue *items;
  if (!f.array("groups", items, false, 1))
    return false;
  out.clear();
  std::map<std::string, size_t> owner; // Modality name -> its group.
  for (size_t i = 0; i < items->items.size(); ++i) {
    Obj g;
    if (!Obj::open(items->items[i], child(f.at("groups"), i), f.ctx(),
                   kGroupKeys, g))
      return false;
    if (g.has("modality") == g.has("modalities"))
      return g.ctx().fail(g.path(), "needs exactly one of \"modality\" (a "
                                    "name) or \"modalities\" (a list of "
                                    "names)");
    std::vector<std::string> names;
    std::vector<Path> namePaths;
    if (g.has("modality")) {
      std::string name;
      if (!g.string("modality", name, std::nullopt))
        return false;
      names.push_back(std::move(name));
      namePaths.push_back(g.at("modality"));
    } else {
      const JsonValue *raw;
      if (!g.array("modalities", raw, false, 1))
        return false;
      for (size_t j = 0; j < raw->items.size(); ++j) {
        Path p = child(g.at("modalities"), j);
        if (raw->items[j].kind != JsonValue::Kind::String)
          return g.ctx().fail(p, "must be a modality name");
        names.push_back(raw->items[j].text);
        namePaths.push_back(std::move(p));
      }
    }
    ExpertGroupConfig group;
    for (size_t j = 0; j < names.size(); ++j) {
      const std::string &n = names[j];
      auto it = llvm::find_if(
          cfg.modalities, [&](const ModalityConfig &m) { return m.name == n; });
      if (it == cfg.modalities.end()) {
        std::string known = llvm::join(
            llvm::map_range(cfg.modalities,
                            [](const ModalityConfig &m) { return m.name; }),
            ", ");
        return g.ctx().fail(namePaths[j], "unknown modality " + pyRepr(n) +
                                              " (modalities: " + known + ")");
      }
      if (auto o = owner.find(n); o != owner.end())
        return g.ctx().fail(namePaths[j],
                            "modality " + pyRepr(n) +
                                " already has an expert group (groups[" +
                                Twine(o->second) + "])");
      owner[n] = i;
      group.modalities.push_back(it - cfg.modalities.begin());
    }
    if (g.has("name")) {
      if (!g.string("name", group.name, std::nullopt, {}, /*isName=*/true))
        return false;
    } else if (names.size() == 1) {
      group.name = names[0];
    } else {
      return g.error("name", "required for a group of several modalities");
    }
    for (const ExpertGroupConfig &prev : out)
      if (prev.name == group.name)
        return g.error("name", "duplicate group name " + pyRepr(group.name));
    std::string routing, score;
    if (!g.integer("experts", group.experts, std::nullopt, 1) ||
        !g.string("routing", routing, std::nullopt, kRoutings))
      return false;
    if (routing == "expert_choice") {
      group.routing = ExpertGroupConfig::Routing::ExpertChoice;
      if (g.has("top_k"))
        return g.error("top_k", "only for token_choice groups (expert_choice "
                                "uses capacity_factor)");
      if (!g.number("capacity_factor", group.capacityFactor, 1.0,
                    greaterThan(0.0, static_cast<double>(group.experts))))
        return false;
      group.topK = 0;
    } else {
      group.routing = ExpertGroupConfig::Routing::TokenChoice;
      if (g.has("capacity_factor"))
        return g.error("capacity_factor", "only for expert_choice groups "
                                          "(token_choice uses top_k)");
      if (!g.integer("top_k", group.topK, 1, 1, group.experts))
        return false;
      group.capacityFactor = 0.0;
    }
    if (!g.string("score", score,
                  StringRef(routing == "expert_choice" ? "sigmoid" : "softmax"),
                  kScores) ||
        !g.boolean("renormalize", group.renormalize, false))
      return false;
    group.score = score == "softmax" ? ExpertGroupConfig::Score::Softmax
                                     : ExpertGroupConfig::Score::Sigmoid;
    out.push_back(std::move(group));
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Weights (weights.py)
//===----------------------------------------------------------------------===//

namespace {
/// Builds the weight list of weights.weight_specs. Sizes are computed with
/// overflow checks; `oversized` names the first tensor with a dimension or an
/// element count beyond int64 (its shape is then meaningless).
struct WeightListBuilder {
  std::vector<WeightSpec> specs;
  std::optional<std::string> oversized;
  bool overflow = false;

  int64_t mul(int64_t a, int64_t b) {
    int64_t result;
    if (llvm::MulOverflow(a, b, result))
      overflow = true;
    return result;
  }
  int64_t add(int64_t a, int64_t b) {
    int64_t result;
    if (llvm::AddOverflow(a, b, result))
      overflow = true;
    return result;
  }
  void push(std::string name, llvm::SmallVector<int64_t, 4> shape,
            WeightInit init) {
    int64_t elements = 1;
    for (int64_t dim : shape)
      elements = mul(elements, dim);
    if (overflow && !oversized)
      oversized = name;
    overflow = false;
    specs.push_back(WeightSpec{std::move(name), std::move(shape), init});
  }
};
} // namespace

static WeightListBuilder buildWeights(const ModelConfig &cfg) {
  WeightListBuilder b;
  const int64_t d = cfg.dModel, v = cfg.vocabSize;
  const int64_t m = static_cast<int64_t>(cfg.modalities.size());
  auto untied = [&](bool flag, llvm::SmallVector<int64_t, 4> shape) {
    if (flag)
      shape.insert(shape.begin(), m);
    return shape;
  };
  auto norm = [&](const std::string &prefix) {
    b.push(prefix + ".weight", untied(cfg.untie.norms, {d}), WeightInit::Ones);
    if (cfg.norm.bias)
      b.push(prefix + ".bias", untied(cfg.untie.norms, {d}), WeightInit::Zeros);
  };
  auto aux = [&](const std::string &prefix, int64_t outputs) {
    const int64_t h = cfg.auxRouters.hidden;
    b.push(prefix + ".w1", {d, h}, WeightInit::Normal);
    b.push(prefix + ".w2", {h, outputs}, WeightInit::Normal);
  };

  b.push("embed.weight", {v, d}, WeightInit::Normal);
  for (const LayerConfig &layer : cfg.layers) {
    const std::string p = "layers." + std::to_string(layer.index);
    if (layer.mod) {
      b.push(p + ".mod.router", {d, 1}, WeightInit::Normal);
      if (cfg.auxRouters.enabled)
        aux(p + ".mod.aux", 1);
    }
    const AttentionConfig &a = layer.attention;
    const bool ua = cfg.untie.attention;
    norm(p + ".attn_norm");
    b.push(p + ".attn.wq", untied(ua, {d, b.mul(a.heads, a.headDim)}),
           WeightInit::Normal);
    b.push(p + ".attn.wk", untied(ua, {d, b.mul(a.kvHeads, a.headDim)}),
           WeightInit::Normal);
    b.push(p + ".attn.wv", untied(ua, {d, b.mul(a.kvHeads, a.headDim)}),
           WeightInit::Normal);
    b.push(p + ".attn.wo", untied(ua, {b.mul(a.heads, a.headDim), d}),
           WeightInit::Normal);
    norm(p + ".ffn_norm");
    const FfnConfig &f = layer.ffn;
    const int64_t hidden = f.hidden;
    const int64_t columns = f.activation == FfnConfig::Activation::SwiGLU
                                ? b.mul(2, hidden)
                                : hidden;
    if (f.kind == FfnConfig::Kind::Dense) {
      b.push(p + ".ffn.w_in", untied(cfg.untie.ffn, {d, columns}),
             WeightInit::Normal);
      b.push(p + ".ffn.w_out", untied(cfg.untie.ffn, {hidden, d}),
             WeightInit::Normal);
      continue;
    }
    int64_t experts = 0;
    for (const ExpertGroupConfig &g : f.groups)
      experts = b.add(experts, g.experts);
    // A sum that overflowed poisons every MoE tensor of the layer.
    const bool expertsOverflow = b.overflow;
    b.overflow = false;
    for (const ExpertGroupConfig &g : f.groups)
      b.push(p + ".moe.router." + g.name, {d, g.experts}, WeightInit::Normal);
    auto moe = [&](const std::string &name, llvm::SmallVector<int64_t, 4> shape,
                   WeightInit init) {
      b.overflow |= expertsOverflow;
      b.push(name, std::move(shape), init);
    };
    const int64_t r = f.loraRank;
    moe(p + ".moe.w_in", {experts, d, columns}, WeightInit::Normal);
    moe(p + ".moe.w_out", {experts, hidden, d}, WeightInit::Normal);
    if (r) {
      moe(p + ".moe.w_in_lora_a", {experts, d, r}, WeightInit::Normal);
      moe(p + ".moe.w_in_lora_b", {experts, r, columns}, WeightInit::Zeros);
      moe(p + ".moe.w_out_lora_a", {experts, hidden, r}, WeightInit::Normal);
      moe(p + ".moe.w_out_lora_b", {experts, r, d}, WeightInit::Zeros);
    }
    if (cfg.auxRouters.enabled)
      for (const ExpertGroupConfig &g : f.groups)
        if (g.routing == ExpertGroupConfig::Routing::ExpertChoice)
          aux(p + ".moe.aux." + g.name, g.experts);
  }
  if (cfg.norm.final)
    norm("final_norm");
  if (!cfg.tieEmbeddings)
    b.push("lm_head.weight", {d, v}, WeightInit::Normal);
  return b;
}

bool ModelParser::checkSizes(const ModelConfig &cfg) {
  WeightListBuilder b = buildWeights(cfg);
  if (!b.oversized)
    return true;
  return topCtx.fail({}, "model too large: tensor " + pyRepr(*b.oversized) +
                             " would have more than " +
                             Twine(std::numeric_limits<int64_t>::max()) +
                             " elements");
}

std::vector<WeightSpec> moma::listWeights(const ModelConfig &config) {
  return buildWeights(config).specs;
}

int64_t FfnConfig::totalExperts() const {
  uint64_t total = 0; // Wraps instead of overflowing (parse rejects that).
  for (const ExpertGroupConfig &group : groups)
    total += static_cast<uint64_t>(group.experts);
  return static_cast<int64_t>(total);
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

/// The reference's default model name: the file name without `.json`.
static std::string defaultModelName(StringRef fileName) {
  if (fileName.empty())
    return "model";
  StringRef base = fileName.substr(fileName.rfind('/') + 1);
  base.consume_back(".json");
  return base.str();
}

static llvm::Expected<ModelConfig>
parseText(StringRef bytes, StringRef fileName, StringRef defaultName) {
  auto fail = [&](const std::string &rule) {
    return makeError(fileName.empty() ? rule : fileName.str() + ": " + rule);
  };
  std::u32string text;
  size_t badByte = 0;
  if (!decodeUtf8Strict(bytes, text, badByte))
    return fail("not UTF-8 text (byte " + std::to_string(badByte) + ")");
  JsonValue root;
  JsonParser parser(text);
  if (!parser.parse(root))
    return fail(parser.message());
  std::string error;
  ModelConfig config;
  ModelParser modelParser(fileName, error);
  if (!modelParser.parse(root, defaultName, config))
    return makeError(error);
  return config;
}

llvm::Expected<ModelConfig> moma::parseModelConfig(StringRef text,
                                                   StringRef fileName) {
  return parseText(text, fileName, defaultModelName(fileName));
}

llvm::Expected<ModelConfig> moma::loadModelConfig(StringRef path) {
  const bool isStdin = path == "-";
  const std::string fileName = isStdin ? "<stdin>" : path.str();
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      isStdin ? llvm::MemoryBuffer::getSTDIN()
              : llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer) {
    std::string rule = "cannot read file: " + buffer.getError().message();
    return makeError(fileName.empty() ? rule : fileName + ": " + rule);
  }
  return parseText((*buffer)->getBuffer(), fileName,
                   isStdin ? "model" : defaultModelName(path));
}

//===----------------------------------------------------------------------===//
// The expanded form (ModelConfig.to_json)
//===----------------------------------------------------------------------===//

/// Strings of a config may hold lone surrogates (from `\u` escapes), which
/// UTF-8 output cannot carry; each becomes U+FFFD.
static std::string jsonString(StringRef text) {
  if (llvm::json::isUTF8(text))
    return text.str();
  std::string out;
  for (char32_t c : decodeWtf8(text))
    appendUtf8(out, c >= 0xD800 && c <= 0xDFFF ? 0xFFFD : c);
  return out;
}

llvm::json::Value ModelConfig::toExpandedJson() const {
  using llvm::json::Array;
  using llvm::json::Object;
  Array modalityList;
  for (const ModalityConfig &m : modalities)
    modalityList.push_back(Object{{"name", jsonString(m.name)},
                                  {"tokens", Array{m.begin, m.end}}});
  Array modLayers, layerList;
  for (const LayerConfig &layer : layers) {
    if (layer.mod)
      modLayers.push_back(layer.index);
    const AttentionConfig &a = layer.attention;
    const FfnConfig &f = layer.ffn;
    Object ffn{{"kind", f.kind == FfnConfig::Kind::MoE ? "moe" : "dense"},
               {"hidden", f.hidden},
               {"activation", f.activation == FfnConfig::Activation::GELU
                                  ? "gelu"
                                  : "swiglu"}};
    if (f.kind == FfnConfig::Kind::MoE) {
      Array groupList;
      for (const ExpertGroupConfig &g : f.groups) {
        Array names;
        for (int64_t id : g.modalities)
          names.push_back(jsonString(modalities[id].name));
        const bool ec = g.routing == ExpertGroupConfig::Routing::ExpertChoice;
        Object group{{"name", jsonString(g.name)},
                     {"modalities", std::move(names)},
                     {"experts", g.experts},
                     {"routing", ec ? "expert_choice" : "token_choice"}};
        if (ec)
          group["capacity_factor"] = g.capacityFactor;
        else
          group["top_k"] = g.topK;
        group["score"] = g.score == ExpertGroupConfig::Score::Softmax
                             ? "softmax"
                             : "sigmoid";
        group["renormalize"] = g.renormalize;
        groupList.push_back(std::move(group));
      }
      ffn["groups"] = std::move(groupList);
      ffn["lora"] = Object{{"rank", f.loraRank}, {"alpha", f.loraAlpha}};
    }
    layerList.push_back(Object{{"index", layer.index},
                               {"mod", layer.mod},
                               {"attention", Object{{"heads", a.heads},
                                                    {"kv_heads", a.kvHeads},
                                                    {"head_dim", a.headDim},
                                                    {"rope_theta", a.ropeTheta},
                                                    {"causal", a.causal}}},
                               {"ffn", std::move(ffn)}});
  }
  return Object{
      {"format", kFormat},
      {"name", jsonString(name)},
      {"source", jsonString(source)},
      {"description", jsonString(description)},
      {"vocab_size", vocabSize},
      {"modalities", std::move(modalityList)},
      {"d_model", dModel},
      {"num_layers", numLayers},
      {"norm",
       Object{{"kind", norm.kind == NormConfig::Kind::Layer ? "layer" : "rms"},
              {"eps", norm.eps},
              {"placement",
               norm.placement == NormConfig::Placement::Post ? "post" : "pre"},
              {"bias", norm.bias},
              {"final", norm.final}}},
      {"untie", Object{{"attention", untie.attention},
                       {"ffn", untie.ffn},
                       {"norms", untie.norms}}},
      {"mod", Object{{"layers", std::move(modLayers)},
                     {"capacity", mod.capacity},
                     {"gated", mod.gated}}},
      {"aux_routers",
       Object{{"enabled", auxRouters.enabled}, {"hidden", auxRouters.hidden}}},
      {"loss", Object{{"load_balancing", loss.loadBalancing},
                      {"router_z", loss.routerZ},
                      {"aux_router", loss.auxRouter}}},
      {"dtype", dtype},
      {"tie_embeddings", tieEmbeddings},
      {"init_std", initStd},
      {"layers", std::move(layerList)}};
}

//===----------------------------------------------------------------------===//
// Seeded initialisation
//===----------------------------------------------------------------------===//

/// Rounds \p value to IEEE half precision, to nearest even (overflow gives
/// infinity, NaN stays NaN).
static uint16_t floatToHalfBits(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000;
  x &= 0x7FFFFFFF;
  if (x > 0x7F800000) // NaN: keep it quiet.
    return sign | 0x7E00;
  if (x >= 0x47800000) // >= 65536 (or infinity): infinity.
    return sign | 0x7C00;
  if (x < 0x38800000) {
    // Subnormal or zero: adding 0.5 aligns the 10 mantissa bits at the
    // bottom; the float addition rounds to nearest even.
    float magic = 0.5f, f;
    std::memcpy(&f, &x, sizeof(f));
    f += magic;
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return sign | static_cast<uint16_t>(bits - 0x3F000000);
  }
  const uint32_t odd = (x >> 13) & 1;
  x += (static_cast<uint32_t>(15 - 127) << 23) + 0xFFF + odd;
  return sign | static_cast<uint16_t>(x >> 13); // Carries into infinity.
}

/// Rounds \p value to bfloat16, to nearest even.
static uint16_t floatToBFloat16Bits(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  if ((x & 0x7FFFFFFF) > 0x7F800000) // NaN: keep it quiet.
    return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

namespace {
/// Draws the elements of one tensor and stores them little-endian.
template <DType Storage> struct ElementWriter;
template <> struct ElementWriter<DType::F32> {
  static void store(uint8_t *p, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    llvm::support::endian::write32le(p, bits);
  }
};
template <> struct ElementWriter<DType::F64> {
  static void store(uint8_t *p, float v) {
    double d = v;
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    llvm::support::endian::write64le(p, bits);
  }
};
template <> struct ElementWriter<DType::F16> {
  static void store(uint8_t *p, float v) {
    llvm::support::endian::write16le(p, floatToHalfBits(v));
  }
};
template <> struct ElementWriter<DType::BF16> {
  static void store(uint8_t *p, float v) {
    llvm::support::endian::write16le(p, floatToBFloat16Bits(v));
  }
};
} // namespace

template <DType Storage>
static void fillTensor(std::vector<uint8_t> &bytes, uint64_t elements,
                       WeightInit init, float stddev, std::mt19937_64 &rng,
                       std::normal_distribution<float> &normal) {
  const size_t size = dtypeSize(Storage);
  uint8_t *p = bytes.data();
  switch (init) {
  case WeightInit::Normal:
    for (uint64_t i = 0; i < elements; ++i, p += size)
      ElementWriter<Storage>::store(p, normal(rng) * stddev);
    return;
  case WeightInit::Ones:
  case WeightInit::Zeros: {
    const float v = init == WeightInit::Ones ? 1.0f : 0.0f;
    for (uint64_t i = 0; i < elements; ++i, p += size)
      ElementWriter<Storage>::store(p, v);
    return;
  }
  }
}

llvm::Error moma::writeInitialWeights(const ModelConfig &config, uint64_t seed,
                                      StringRef path) {
  std::optional<DType> dtype =
      llvm::StringSwitch<std::optional<DType>>(config.dtype)
          .Case("f32", DType::F32)
          .Case("bf16", DType::BF16)
          .Case("f16", DType::F16)
          .Case("f64", DType::F64)
          .Default(std::nullopt);
  if (!dtype)
    return makeError(path + ": unknown model dtype '" + config.dtype + "'");
  if (!(config.initStd > 0))
    return makeError(path + ": init_std must be > 0");

  SafetensorsWriter writer;
  const std::string init =
      "normal(0, " + pythonFloatRepr(config.initStd) +
      ") matrices, ones norm weights, zeros norm biases and LoRA B; "
      "std::mt19937_64 seed " +
      std::to_string(seed) +
      " with std::normal_distribution<float>, canonical order";
  if (llvm::Error err = writer.setMetadata("format", "moma-weights"))
    return err;
  if (llvm::Error err = writer.setMetadata("model", jsonString(config.name)))
    return err;
  if (llvm::Error err = writer.setMetadata("seed", std::to_string(seed)))
    return err;
  if (llvm::Error err = writer.setMetadata("init", init))
    return err;

  // normal(0, std) draws z * std with z ~ normal(0, 1), as libstdc++'s
  // normal_distribution<float>(0, std) does, without requiring that std be
  // representable as a positive float.
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float stddev = static_cast<float>(config.initStd);
  const size_t elementSize = dtypeSize(*dtype);
  for (const WeightSpec &spec : listWeights(config)) {
    uint64_t elements = 1;
    bool overflow = false;
    for (int64_t dim : spec.shape) {
      if (dim < 0)
        overflow = true;
      elements = llvm::SaturatingMultiply(elements, static_cast<uint64_t>(dim),
                                          &overflow);
    }
    uint64_t byteCount =
        llvm::SaturatingMultiply<uint64_t>(elements, elementSize, &overflow);
    if (overflow || byteCount > std::numeric_limits<size_t>::max() / 2)
      return makeError(path + ": tensor '" + spec.name + "' " +
                       formatShape(spec.shape) + " is too large to write");
    std::vector<uint8_t> bytes(byteCount);
    switch (*dtype) {
    case DType::F32:
      fillTensor<DType::F32>(bytes, elements, spec.init, stddev, rng, normal);
      break;
    case DType::F64:
      fillTensor<DType::F64>(bytes, elements, spec.init, stddev, rng, normal);
      break;
    case DType::F16:
      fillTensor<DType::F16>(bytes, elements, spec.init, stddev, rng, normal);
      break;
    case DType::BF16:
      fillTensor<DType::BF16>(bytes, elements, spec.init, stddev, rng, normal);
      break;
    default:
      llvm_unreachable("not a float storage type");
    }
    if (llvm::Error err = writer.add(spec.name, *dtype, spec.shape, bytes))
      return err;
  }
  return writer.writeToFile(path);
}
