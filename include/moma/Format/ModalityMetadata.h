//===- ModalityMetadata.h - The modalities a program records ----*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The `modalities` and `modality_ranges` metadata of a program
/// (Program::metadata): what momac records and moma-run reads token files
/// by.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_MODALITYMETADATA_H
#define MOMA_FORMAT_MODALITYMETADATA_H

#include "absl/status/statusor.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moma::runtime {

/// A modality as a program records it: name and token range [begin, end).
struct TokenModality {
  /// The modality's name ("text").
  std::string name;
  /// The first token id of its range.
  int64_t begin = 0;
  /// One past its last token id.
  int64_t end = 0;
};

/// Parses the `modalities` and `modality_ranges` metadata of a program
/// ("text,image" and "0:64,64:128").
absl::StatusOr<std::vector<TokenModality>>
parseModalityMetadata(const std::string &names, const std::string &ranges);

/// Formats modalities as the two metadata strings (names, ranges).
std::pair<std::string, std::string>
formatModalityMetadata(const std::vector<TokenModality> &modalities);

} // namespace moma::runtime

#endif // MOMA_FORMAT_MODALITYMETADATA_H
