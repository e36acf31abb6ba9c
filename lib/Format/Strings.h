//===- Strings.h - Message building for the runtime -------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// cat(): concatenation of strings and numbers into a message. Debian's absl
/// (20220623) is built with its own absl::string_view, which absl::StrCat
/// requires, while the runtime's API uses std::string_view; cat() takes both.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_FORMAT_STRINGS_H
#define MOMA_LIB_FORMAT_STRINGS_H

#include "absl/strings/string_view.h"

#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

namespace moma::runtime {
namespace detail {

inline void append(std::string &out, const char *text) { out += text; }
inline void append(std::string &out, const std::string &text) { out += text; }
inline void append(std::string &out, std::string_view text) { out += text; }
inline void append(std::string &out, absl::string_view text) {
  out.append(text.data(), text.size());
}
inline void append(std::string &out, char c) { out += c; }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T> &&
                                                  !std::is_same_v<T, char>>>
void append(std::string &out, T value) {
  if constexpr (std::is_same_v<T, bool>) {
    out += value ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    out += std::to_string(value);
  } else {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", static_cast<double>(value));
    out += text;
  }
}

} // namespace detail

/// Returns the concatenation of \p parts: strings (std::string, const char *,
/// std::string_view, absl::string_view), characters, integers (decimal) and
/// floating-point numbers (%g).
template <typename... Parts> std::string cat(const Parts &...parts) {
  std::string out;
  (detail::append(out, parts), ...);
  return out;
}

} // namespace moma::runtime

#endif // MOMA_LIB_FORMAT_STRINGS_H
