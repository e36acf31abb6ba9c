//===- TrainDataTest.cpp - Tests of training rows and batch order ---------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The numbers here are also in examples/Training.md ("Batch order"), so that
// the reference's `train` can check the same ones.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/ProgramFile.h"
#include "moma/Runtime/TrainData.h"

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

const std::vector<TokenModality> kModalities = {{"text", 0, 8},
                                                {"image", 8, 16}};

/// A packed corpus of \p tokens, ended by its checksum.
std::string corpus(const std::vector<uint32_t> &tokens,
                   uint32_t endOfDocument = 0) {
  std::string out = "MOMACORP";
  putU32(out, 1);
  putU32(out, endOfDocument);
  putU64(out, tokens.size());
  for (uint32_t t : tokens)
    putU32(out, t);
  putU32(out, crc32(out));
  return out;
}

void expectError(const absl::StatusOr<TrainRows> &rows,
                 const std::string &needle) {
  ASSERT_FALSE(rows.ok());
  EXPECT_TRUE(contains(std::string(rows.status().message()), needle))
      << rows.status();
}

TEST(TrainData, SplitMix64TestVector) {
  SplitMix64 stream(0);
  EXPECT_EQ(stream.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(stream.next(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(stream.next(), 0x06C45D188009454Full);
}

TEST(TrainData, SeededPermutations) {
  // Seed 42, 10 rows: epoch 0 then epoch 1, from the same stream.
  RowOrder order(10, 42, /*shuffle=*/true);
  std::vector<uint64_t> stream;
  for (uint64_t i = 0; i < 20; ++i)
    stream.push_back(order.rowAt(i));
  EXPECT_EQ(stream, (std::vector<uint64_t>{0, 9, 5, 8, 6, 4, 7, 2, 1, 3, //
                                           0, 9, 3, 2, 5, 7, 1, 6, 8, 4}));
  // Asking again, out of order (a resume), gives the same rows.
  EXPECT_EQ(order.rowAt(3), 8u);
  EXPECT_EQ(order.rowAt(17), 6u);
  RowOrder fresh(10, 42, true);
  EXPECT_EQ(fresh.rowAt(12), 3u);

  RowOrder five(5, 1, true);
  std::vector<uint64_t> first;
  for (uint64_t i = 0; i < 5; ++i)
    first.push_back(five.rowAt(i));
  EXPECT_EQ(first, (std::vector<uint64_t>{2, 1, 4, 3, 0}));

  // --shuffle=none: every epoch is the identity; one row is always row 0.
  RowOrder none(3, 42, false);
  for (uint64_t i = 0; i < 7; ++i)
    EXPECT_EQ(none.rowAt(i), i % 3);
  RowOrder one(1, 7, true);
  EXPECT_EQ(one.rowAt(5), 0u);
}

TEST(TrainData, PackedCorpusRows) {
  // 7 tokens in rows of 3: two rows, the seventh token left over.
  absl::StatusOr<TrainRows> rows =
      parseCorpus(corpus({1, 2, 9, 0, 10, 11, 3}), "c.bin", kModalities, 3);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2);
  EXPECT_EQ(rows->ids, (std::vector<int32_t>{1, 2, 9, 0, 10, 11}));
  EXPECT_EQ(rows->modality, (std::vector<int32_t>{0, 0, 1, 0, 1, 1}));
  // A row's targets are its next tokens, -1 at its last position.
  std::vector<int32_t> ids(6), mod(6), targets(6), targetMod(6);
  rows->fill(1, 0, ids, mod, targets, targetMod);
  rows->fill(0, 1, ids, mod, targets, targetMod);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 10, 11, 1, 2, 9}));
  EXPECT_EQ(targets, (std::vector<int32_t>{10, 11, -1, 2, 9, -1}));
  EXPECT_EQ(targetMod, (std::vector<int32_t>{1, 1, -1, 0, 1, -1}));
}

TEST(TrainData, DamagedCorpora) {
  std::string good = corpus({1, 2, 9, 0, 10, 11});
  expectError(parseCorpus("MOMAPROG" + good.substr(8), "c", kModalities, 3),
              "c: not a packed corpus (no MOMACORP magic)");
  expectError(parseCorpus(good.substr(0, 20), "c", kModalities, 3),
              "truncated: 20 bytes");
  expectError(parseCorpus(good.substr(0, good.size() - 4), "c", kModalities, 3),
              "truncated: the header says 6 tokens but the file has 48 bytes");
  expectError(parseCorpus(good + "x", "c", kModalities, 3),
              "trailing data: the header says 6 tokens (52 bytes) but the file "
              "has 53 bytes");
  std::string flipped = good;
  flipped[30] ^= 1;
  expectError(parseCorpus(flipped, "c", kModalities, 3),
              "checksum mismatch (stored 0x");
  std::string newer = good;
  setU32(newer, 8, 2);
  expectError(parseCorpus(newer, "c", kModalities, 3),
              "packed corpus version 2 (this reader knows version 1)");
  expectError(parseCorpus(corpus({1, 2, 16, 3}), "c", kModalities, 2),
              "token 2 (id 16) is in no modality's range (text [0, 8), image "
              "[8, 16))");
  expectError(parseCorpus(corpus({1, 2, 3, 4}, 99), "c", kModalities, 2),
              "the end-of-document id 99 is in no modality's range");
  expectError(parseCorpus(corpus({1, 2}), "c", kModalities, 3),
              "holds 2 tokens, fewer than one row of 3");
  // Every prefix is rejected without reading past it.
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(parseCorpus(good.substr(0, n), "c", kModalities, 3).ok()) << n;
}

TEST(TrainData, TokenFileRows) {
  TempDir dir;
  std::string path = dir.file("t.json");
  writeFile(path, R"({"format": "moma-tokens/1", "sequences": [)"
                  R"([{"modality": "text", "tokens": [1, 2]},)"
                  R"( {"modality": "image", "tokens": [9]}],)"
                  R"([{"modality": "image", "tokens": [8, 10, 11]}]]})");
  absl::StatusOr<TrainRows> rows = readTrainRows(path, kModalities, 3);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2);
  EXPECT_EQ(rows->ids, (std::vector<int32_t>{1, 2, 9, 8, 10, 11}));
  EXPECT_EQ(rows->modality, (std::vector<int32_t>{0, 0, 1, 1, 1, 1}));
  expectError(readTrainRows(path, kModalities, 4),
              "t.json: its sequences have 3 tokens, but the program takes "
              "rows of 4 (momac --seq-len)");
  // A packed corpus is told by its magic, whatever its name.
  writeFile(path, corpus({1, 2, 3, 4}));
  rows = readTrainRows(path, kModalities, 2);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2);
  writeFile(path, "MOMAPROG and more");
  expectError(readTrainRows(path, kModalities, 2),
              "not a packed corpus (no MOMACORP magic)");
  expectError(readTrainRows(dir.file("missing"), kModalities, 2), "missing");
}

} // namespace
