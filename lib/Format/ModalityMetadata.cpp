//===- ModalityMetadata.cpp - The modalities a program records ------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/ModalityMetadata.h"

#include "absl/status/status.h"

#include <sstream>

namespace moma::runtime {
namespace {

bool parseInt(const std::string &text, int64_t &value) {
  if (text.empty())
    return false;
  size_t used = 0;
  try {
    value = std::stoll(text, &used);
  } catch (...) {
    return false;
  }
  return used == text.size();
}

std::vector<std::string> split(const std::string &text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(text);
  while (std::getline(stream, part, separator))
    parts.push_back(part);
  return parts;
}
} // namespace

absl::StatusOr<std::vector<TokenModality>>
parseModalityMetadata(const std::string &names, const std::string &ranges) {
  std::vector<std::string> nameList = split(names, ',');
  std::vector<std::string> rangeList = split(ranges, ',');
  if (nameList.empty() || nameList.size() != rangeList.size())
    return absl::InvalidArgumentError(
        "the program's modality metadata is malformed ('" + names + "', '" +
        ranges + "')");
  std::vector<TokenModality> modalities;
  for (size_t i = 0; i < nameList.size(); ++i) {
    std::vector<std::string> bounds = split(rangeList[i], ':');
    TokenModality modality;
    modality.name = nameList[i];
    if (bounds.size() != 2 || !parseInt(bounds[0], modality.begin) ||
        !parseInt(bounds[1], modality.end) || modality.begin < 0 ||
        modality.begin >= modality.end || modality.name.empty())
      return absl::InvalidArgumentError(
          "the program's modality metadata is malformed at '" + nameList[i] +
          "' ('" + rangeList[i] + "')");
    modalities.push_back(std::move(modality));
  }
  return modalities;
}

std::pair<std::string, std::string>
formatModalityMetadata(const std::vector<TokenModality> &modalities) {
  std::string names, ranges;
  for (size_t i = 0; i < modalities.size(); ++i) {
    if (i) {
      names += ",";
      ranges += ",";
    }
    names += modalities[i].name;
    ranges += std::to_string(modalities[i].begin) + ":" +
              std::to_string(modalities[i].end);
  }
  return {names, ranges};
}

} // namespace moma::runtime
