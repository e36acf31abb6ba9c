//===- Json.cpp - Strict, bounded JSON parsing for the runtime ------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "lib/Format/Json.h"

#include "absl/status/status.h"

#include <set>
#include <string>
#include <vector>

namespace moma::runtime {
namespace {

/// Thrown from the parser callback to abort a parse with a message.
struct JsonRejection {
  std::string message;
};

template <typename JsonT>
absl::StatusOr<JsonT> parseStrict(std::string_view text) {
  std::vector<std::set<std::string>> openObjects;
  auto callback = [&](int depth, nlohmann::detail::parse_event_t event,
                      JsonT &parsed) -> bool {
    using Event = nlohmann::detail::parse_event_t;
    if (depth > kMaxJsonDepth)
      throw JsonRejection{"nesting deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels"};
    switch (event) {
    case Event::object_start:
      openObjects.emplace_back();
      break;
    case Event::object_end:
      if (!openObjects.empty())
        openObjects.pop_back();
      break;
    case Event::key: {
      const std::string &key = parsed.template get_ref<const std::string &>();
      if (!openObjects.empty() && !openObjects.back().insert(key).second)
        throw JsonRejection{"duplicate key \"" + key + "\""};
      break;
    }
    default:
      break;
    }
    return true;
  };
  try {
    return JsonT::parse(text.begin(), text.end(), callback,
                        /*allow_exceptions=*/true,
                        /*ignore_comments=*/false);
  } catch (const JsonRejection &rejection) {
    return absl::InvalidArgumentError("invalid JSON: " + rejection.message);
  } catch (const nlohmann::json::exception &error) {
    // nlohmann's messages look like "[json.exception.parse_error.101] parse
    // error at line 1, column 2: ..."; drop the bracketed id.
    std::string message = error.what();
    if (size_t close = message.find("] ");
        message.rfind("[json.", 0) == 0 && close != std::string::npos)
      message = message.substr(close + 2);
    return absl::InvalidArgumentError("invalid JSON: " + message);
  } catch (const std::exception &error) {
    return absl::InvalidArgumentError(std::string("invalid JSON: ") +
                                      error.what());
  }
}

} // namespace

absl::StatusOr<nlohmann::json> parseJson(std::string_view text) {
  return parseStrict<nlohmann::json>(text);
}

absl::StatusOr<nlohmann::ordered_json> parseOrderedJson(std::string_view text) {
  return parseStrict<nlohmann::ordered_json>(text);
}

} // namespace moma::runtime
