//===- Tokens.cpp - Token files (moma-tokens/1) for the runtime -----------===//

#include "moma/Runtime/Tokens.h"

#include "lib/Format/Json.h"

#include "absl/status/status.h"

#include <fstream>
#include <sstream>

namespace moma::runtime {
namespace {
absl::Status fail(const std::string &file, const std::string &path,
                  const std::string &rule) {
  std::string where = path.empty() ? file : file + ": " + path;
  return absl::InvalidArgumentError(where + ": " + rule);
}

} // namespace

absl::StatusOr<TokenBatch>
parseTokenFile(const std::string &text, const std::string &fileName,
               const std::vector<TokenModality> &modalities) {
  absl::StatusOr<nlohmann::json> parsed = parseJson(text);
  if (!parsed.ok())
    return fail(fileName, "",
                "invalid JSON: " + std::string(parsed.status().message()));
  const nlohmann::json &root = *parsed;
  if (!root.is_object())
    return fail(fileName, "", "must be an object");
  for (const auto &item : root.items())
    if (item.key() != "format" && item.key() != "source" &&
        item.key() != "sequences")
      return fail(fileName, item.key(),
                  "unknown key (expected one of: format, source, sequences)");
  if (root.contains("format") &&
      (!root["format"].is_string() ||
       root["format"].get<std::string>() != "moma-tokens/1"))
    return fail(fileName, "format",
                "unsupported format (this reader knows 'moma-tokens/1')");
  if (root.contains("source") && !root["source"].is_string())
    return fail(fileName, "source", "must be a string");
  if (!root.contains("sequences"))
    return fail(fileName, "sequences", "required");
  const nlohmann::json &sequences = root["sequences"];
  if (!sequences.is_array() || sequences.empty())
    return fail(fileName, "sequences", "must be a non-empty list");

  TokenBatch batch;
  batch.batch = static_cast<int64_t>(sequences.size());
  std::vector<std::vector<int32_t>> ids(sequences.size()),
      mods(sequences.size());
  for (size_t b = 0; b < sequences.size(); ++b) {
    std::string seqPath = "sequences[" + std::to_string(b) + "]";
    const nlohmann::json &segments = sequences[b];
    if (!segments.is_array() || segments.empty())
      return fail(fileName, seqPath, "must be a non-empty list of segments");
    for (size_t s = 0; s < segments.size(); ++s) {
      std::string segPath = seqPath + "[" + std::to_string(s) + "]";
      const nlohmann::json &segment = segments[s];
      if (!segment.is_object())
        return fail(fileName, segPath, "must be an object");
      for (const auto &item : segment.items())
        if (item.key() != "modality" && item.key() != "tokens")
          return fail(fileName, segPath + "." + item.key(),
                      "unknown key (expected one of: modality, tokens)");
      if (!segment.contains("modality") || !segment["modality"].is_string())
        return fail(fileName, segPath + ".modality",
                    "required: a modality name");
      std::string name = segment["modality"].get<std::string>();
      int32_t modalityId = -1;
      for (size_t m = 0; m < modalities.size(); ++m)
        if (modalities[m].name == name)
          modalityId = static_cast<int32_t>(m);
      if (modalityId < 0)
        return fail(fileName, segPath + ".modality",
                    "unknown modality '" + name + "'");
      const TokenModality &modality = modalities[modalityId];
      if (!segment.contains("tokens") || !segment["tokens"].is_array() ||
          segment["tokens"].empty())
        return fail(fileName, segPath + ".tokens",
                    "must be a non-empty list of token ids");
      const nlohmann::json &tokens = segment["tokens"];
      for (size_t t = 0; t < tokens.size(); ++t) {
        std::string tokPath = segPath + ".tokens[" + std::to_string(t) + "]";
        if (!tokens[t].is_number_integer())
          return fail(fileName, tokPath, "must be an integer");
        int64_t id = tokens[t].get<int64_t>();
        if (id < modality.begin || id >= modality.end)
          return fail(fileName, tokPath,
                      "token " + std::to_string(id) +
                          " is not in the range of modality '" + name + "' [" +
                          std::to_string(modality.begin) + ", " +
                          std::to_string(modality.end) + ")");
        ids[b].push_back(static_cast<int32_t>(id));
        mods[b].push_back(modalityId);
      }
    }
    if (b > 0 && ids[b].size() != ids[0].size())
      return fail(fileName, seqPath,
                  "has " + std::to_string(ids[b].size()) +
                      " tokens but sequences[0] has " +
                      std::to_string(ids[0].size()) +
                      " (all sequences must have the same length)");
  }
  batch.length = static_cast<int64_t>(ids[0].size());
  for (size_t b = 0; b < ids.size(); ++b) {
    for (size_t l = 0; l < ids[b].size(); ++l) {
      bool last = l + 1 == ids[b].size();
      batch.ids.push_back(ids[b][l]);
      batch.modality.push_back(mods[b][l]);
      batch.targets.push_back(last ? -1 : ids[b][l + 1]);
      batch.targetModality.push_back(last ? -1 : mods[b][l + 1]);
    }
  }
  return batch;
}

absl::StatusOr<TokenBatch>
readTokenFile(const std::string &path,
              const std::vector<TokenModality> &modalities) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return absl::NotFoundError(path + ": cannot open the token file");
  std::ostringstream text;
  text << file.rdbuf();
  return parseTokenFile(text.str(), path, modalities);
}

} // namespace moma::runtime
