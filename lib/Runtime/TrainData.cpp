//===- TrainData.cpp - Training rows, packed corpora, batch order ---------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Runtime/TrainData.h"

#include "lib/Format/Strings.h"
#include "moma/Format/Files.h"
#include "moma/Format/ProgramFile.h"

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

#include <cstring>
#include <utility>

namespace moma::runtime {
namespace {

uint32_t getU32(std::string_view bytes, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = v << 8 | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

uint64_t getU64(std::string_view bytes, size_t at) {
  return getU32(bytes, at) | uint64_t(getU32(bytes, at + 4)) << 32;
}

/// Returns the index of the modality whose range holds \p id, or -1.
int32_t modalityOf(uint64_t id, const std::vector<TokenModality> &modalities) {
  for (size_t m = 0; m < modalities.size(); ++m)
    if (int64_t(id) >= modalities[m].begin && int64_t(id) < modalities[m].end)
      return static_cast<int32_t>(m);
  return -1;
}

std::string rangesText(const std::vector<TokenModality> &modalities) {
  std::string out;
  for (const TokenModality &m : modalities)
    out +=
        cat(out.empty() ? "" : ", ", m.name, " [", m.begin, ", ", m.end, ")");
  return out;
}

} // namespace

void TrainRows::fill(int64_t row, int64_t slot, std::vector<int32_t> &outIds,
                     std::vector<int32_t> &outModality,
                     std::vector<int32_t> &outTargets,
                     std::vector<int32_t> &outTargetModality) const {
  size_t from = size_t(row * length), to = size_t(slot * length);
  for (int64_t l = 0; l < length; ++l) {
    bool last = l + 1 == length;
    outIds[to + l] = ids[from + l];
    outModality[to + l] = modality[from + l];
    outTargets[to + l] = last ? -1 : ids[from + l + 1];
    outTargetModality[to + l] = last ? -1 : modality[from + l + 1];
  }
}

TrainRows rowsFromTokens(const TokenBatch &batch) {
  TrainRows rows;
  rows.rows = batch.batch;
  rows.length = batch.length;
  rows.ids = batch.ids;
  rows.modality = batch.modality;
  return rows;
}

absl::StatusOr<TrainRows>
parseCorpus(std::string_view bytes, const std::string &fileName,
            const std::vector<TokenModality> &modalities, int64_t length) {
  auto fail = [&](const std::string &message) {
    return absl::InvalidArgumentError(cat(fileName, ": ", message));
  };
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kCorpusMagic, 8) != 0)
    return fail("not a packed corpus (no MOMACORP magic)");
  constexpr size_t kHeader = 24;
  if (bytes.size() < kHeader + 4)
    return fail(cat("truncated: ", bytes.size(),
                    " bytes, shorter than the 28 of a header and checksum"));
  uint32_t version = getU32(bytes, 8);
  if (version != kCorpusVersion)
    return fail(cat("packed corpus version ", version,
                    " (this reader knows version ", kCorpusVersion, ")"));
  uint32_t endOfDocument = getU32(bytes, 12);
  uint64_t count = getU64(bytes, 16);
  if (count > (bytes.size() - kHeader - 4) / 4)
    return fail(cat("truncated: the header says ", count,
                    " tokens but the file has ", bytes.size(),
                    " bytes, room for ", (bytes.size() - kHeader - 4) / 4));
  uint64_t end = kHeader + 4 * count;
  if (bytes.size() != end + 4)
    return fail(cat("trailing data: the header says ", count, " tokens (",
                    end + 4, " bytes) but the file has ", bytes.size(),
                    " bytes"));
  uint32_t stored = getU32(bytes, end);
  uint32_t computed = crc32(bytes.substr(0, end));
  if (stored != computed)
    return fail(absl::StrFormat("checksum mismatch (stored 0x%08x, computed "
                                "0x%08x): the file is damaged",
                                stored, computed));
  if (modalityOf(endOfDocument, modalities) < 0)
    return fail(cat("the end-of-document id ", endOfDocument,
                    " is in no modality's range (", rangesText(modalities),
                    ")"));
  if (length <= 0 || count < uint64_t(length))
    return fail(cat("holds ", count, " tokens, fewer than one row of ", length,
                    " (momac --seq-len)"));
  TrainRows rows;
  rows.length = length;
  rows.rows = static_cast<int64_t>(count / uint64_t(length));
  size_t used = size_t(rows.rows * length);
  rows.ids.resize(used);
  rows.modality.resize(used);
  // Every token is checked, also those of the incomplete last row.
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t id = getU32(bytes, kHeader + 4 * i);
    int32_t m = modalityOf(id, modalities);
    if (m < 0)
      return fail(cat("token ", i, " (id ", id, ") is in no modality's range (",
                      rangesText(modalities), ")"));
    if (i < used) {
      rows.ids[i] = static_cast<int32_t>(id);
      rows.modality[i] = m;
    }
  }
  return rows;
}

absl::StatusOr<TrainRows>
readTrainRows(const std::string &path,
              const std::vector<TokenModality> &modalities, int64_t length) {
  absl::StatusOr<std::string> bytes = readFile(path);
  if (!bytes.ok())
    return bytes.status();
  // A token file is JSON text; a file that starts as moma's binary files do
  // is meant to be a corpus (and parseCorpus names its wrong magic).
  if (bytes->rfind("MOMA", 0) == 0)
    return parseCorpus(*bytes, path, modalities, length);
  absl::StatusOr<TokenBatch> batch = parseTokenFile(*bytes, path, modalities);
  if (!batch.ok())
    return batch.status();
  if (batch->length != length)
    return absl::InvalidArgumentError(
        cat(path, ": its sequences have ", batch->length,
            " tokens, but the program takes rows of ", length,
            " (momac --seq-len); every sequence of a training token file "
            "is one row"));
  return rowsFromTokens(*batch);
}

uint64_t SplitMix64::next() {
  state += 0x9E3779B97F4A7C15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

RowOrder::RowOrder(uint64_t rows, uint64_t seed, bool shuffle)
    : rows(rows), shuffle(shuffle), stream(seed), seed(seed) {
  startEpoch();
}

void RowOrder::startEpoch() {
  permutation.resize(rows);
  for (uint64_t i = 0; i < rows; ++i)
    permutation[i] = i;
  if (!shuffle)
    return;
  for (uint64_t i = rows - 1; i >= 1 && i < rows; --i)
    std::swap(permutation[i], permutation[stream.next() % (i + 1)]);
}

uint64_t RowOrder::rowAt(uint64_t position) {
  uint64_t wanted = position / rows;
  if (wanted < epoch) {
    // Start the stream over (only when asked for an earlier epoch).
    stream = SplitMix64(seed);
    epoch = 0;
    startEpoch();
  }
  while (epoch < wanted) {
    ++epoch;
    startEpoch();
  }
  return permutation[position % rows];
}

} // namespace moma::runtime
