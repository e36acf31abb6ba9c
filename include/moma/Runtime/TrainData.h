//===- TrainData.h - Training rows, packed corpora, batch order -*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The data side of training (examples/Training.md, "Data"): a list of rows
/// of L tokens read from a moma-tokens/1 file or a moma-corpus/1 packed
/// corpus, and the seeded order (SplitMix64 + Fisher-Yates) in which
/// moma-train and the reference's `train` draw them. LLVM-free, like the
/// rest of the runtime.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_RUNTIME_TRAINDATA_H
#define MOMA_RUNTIME_TRAINDATA_H

#include "moma/Format/ModalityMetadata.h"
#include "moma/Runtime/Tokens.h"

#include "absl/status/statusor.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

/// The eight bytes every packed corpus starts with.
inline constexpr char kCorpusMagic[8] = {'M', 'O', 'M', 'A',
                                         'C', 'O', 'R', 'P'};
/// The packed corpus version this library reads.
inline constexpr uint32_t kCorpusVersion = 1;

/// R rows of L tokens each, row-major, with every token's modality id.
struct TrainRows {
  /// The number of rows R.
  int64_t rows = 0;
  /// The tokens per row L.
  int64_t length = 0;
  /// R x L token ids.
  std::vector<int32_t> ids;
  /// R x L modality ids (indices into the program's modalities).
  std::vector<int32_t> modality;

  /// Writes the model inputs of row \p row at row \p slot of [*, L] arrays:
  /// the ids and modalities, and the targets, each position's next token and
  /// its modality (-1 at the row's last position), as in a token file.
  void fill(int64_t row, int64_t slot, std::vector<int32_t> &ids,
            std::vector<int32_t> &modality, std::vector<int32_t> &targets,
            std::vector<int32_t> &targetModality) const;
};

/// The rows of a token batch (every sequence one row).
TrainRows rowsFromTokens(const TokenBatch &batch);

/// Parses a moma-corpus/1 file's bytes into rows of \p length tokens: the
/// consecutive windows [rL, (r+1)L) of its N tokens, r < N / L. Each token's
/// modality is the one whose id range holds it. Errors name \p fileName and
/// the problem: a foreign file (magic), another version, a truncated file
/// or trailing data, a checksum mismatch, a token (by index) or the
/// end-of-document id in no modality's range, fewer than \p length tokens.
absl::StatusOr<TrainRows>
parseCorpus(std::string_view bytes, const std::string &fileName,
            const std::vector<TokenModality> &modalities, int64_t length);

/// Reads the training rows at \p path: a packed corpus when the file starts
/// with "MOMA" (as kCorpusMagic does), otherwise a moma-tokens/1 file, whose
/// sequences must all have \p length tokens.
absl::StatusOr<TrainRows>
readTrainRows(const std::string &path,
              const std::vector<TokenModality> &modalities, int64_t length);

/// SplitMix64 (Steele, Lea and Flood 2014): the stream of 64-bit numbers the
/// batch order draws from. SplitMix64(0) starts 0xE220A8397B1DCDAF,
/// 0x6E789E6AA1B965F4, 0x06C45D188009454F.
class SplitMix64 {
public:
  /// Starts the stream at \p seed.
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  /// Returns the next number of the stream.
  uint64_t next();

private:
  uint64_t state;
};

/// The row stream of training (examples/Training.md, "Batch order"): epoch
/// after epoch, each a permutation of the R rows, Fisher-Yates shuffled from
/// one SplitMix64 stream (or the identity when not shuffling).
class RowOrder {
public:
  /// The order of \p rows rows (> 0), shuffled from \p seed if \p shuffle.
  RowOrder(uint64_t rows, uint64_t seed, bool shuffle);
  /// Returns the row at stream position \p position. Positions may be asked
  /// in any order; asking them in increasing order is linear time.
  uint64_t rowAt(uint64_t position);

private:
  void startEpoch();

  uint64_t rows;
  bool shuffle;
  SplitMix64 stream;
  uint64_t seed;
  uint64_t epoch = 0; // the epoch `permutation` holds
  std::vector<uint64_t> permutation;
};

} // namespace moma::runtime

#endif // MOMA_RUNTIME_TRAINDATA_H
