//===- SafetensorsWriter.cpp - LLVM-free safetensors writer ---------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/SafetensorsWriter.h"
#include "moma/Format/Files.h"

#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

namespace moma::runtime {

absl::Status SafetensorsFileWriter::add(std::string_view name, DType dtype,
                                        const std::vector<int64_t> &shape,
                                        std::string_view bytes) {
  std::string quoted = "'" + std::string(name) + "'";
  if (name.empty() || name == "__metadata__")
    return absl::InvalidArgumentError(
        absl::StrCat("invalid tensor name ", quoted));
  if (entries.count(name))
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", quoted, " added twice"));
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0)
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", quoted, " has a negative dimension"));
    count *= static_cast<uint64_t>(dim);
  }
  if (count * dtypeSize(dtype) != bytes.size())
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", quoted, " has ", bytes.size(),
        " bytes, its shape and dtype need ", count * dtypeSize(dtype)));
  entries.emplace(std::string(name), Entry{dtype, shape, std::string(bytes)});
  return absl::OkStatus();
}

void SafetensorsFileWriter::setMetadata(std::string_view key,
                                        std::string_view value) {
  metadata[std::string(key)] = std::string(value);
}

std::string SafetensorsFileWriter::serialize() const {
  // nlohmann::ordered_json keeps insertion order: metadata, then the tensors
  // in sorted name order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto &[key, value] : metadata)
      meta[key] = value;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto &[name, entry] : entries) {
    header[name] = {{"dtype", std::string(dtypeName(entry.dtype))},
                    {"shape", entry.shape},
                    {"data_offsets", {offset, offset + entry.bytes.size()}}};
    offset += entry.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  uint64_t size = text.size();
  for (int i = 0; i < 8; ++i)
    file[i] = static_cast<char>((size >> (8 * i)) & 0xff);
  file += text;
  for (const auto &[name, entry] : entries)
    file += entry.bytes;
  return file;
}

absl::Status SafetensorsFileWriter::writeToFile(const std::string &path) const {
  return writeFileAtomically(path, serialize());
}

} // namespace moma::runtime
