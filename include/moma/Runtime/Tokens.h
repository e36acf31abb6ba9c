//===- Tokens.h - Token files (moma-tokens/1) for the runtime ---*- C++ -*-===//
//
// Reads a batch of mixed-modal sequences (examples/README.md, "Token file
// format") into the four i32 inputs of a compiled model: token ids, their
// modality ids, and the next-token targets with their modalities (-1 at the
// last position).
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_RUNTIME_TOKENS_H
#define MOMA_RUNTIME_TOKENS_H

#include "moma/Format/ModalityMetadata.h"

#include "absl/status/statusor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moma::runtime {

/// The row-major [batch, length] inputs of one token batch.
struct TokenBatch {
  int64_t batch = 0;
  int64_t length = 0;
  std::vector<int32_t> ids, modality, targets, targetModality;
};

/// Parses a moma-tokens/1 document. Errors name the file, the JSON path and
/// the rule, like the reference (`sequences[0][2].tokens[3]: token 5 is not
/// in the range of modality 'image' [64, 128)`).
absl::StatusOr<TokenBatch>
parseTokenFile(const std::string &text, const std::string &fileName,
               const std::vector<TokenModality> &modalities);

/// Reads and parses `path`.
absl::StatusOr<TokenBatch>
readTokenFile(const std::string &path,
              const std::vector<TokenModality> &modalities);

} // namespace moma::runtime

#endif // MOMA_RUNTIME_TOKENS_H
