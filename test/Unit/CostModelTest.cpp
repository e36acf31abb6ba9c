//===- CostModelTest.cpp - The kernel layer's target and cost model -------===//
//
// Properties every tiling chooseMatmulTiling returns must have on every
// target (registers, lanes, cache capacity, time bounds), and the choices
// padding waste must steer, and the vocabulary chunk of the fused LM head
// and cross-entropy.
//
//===----------------------------------------------------------------------===//

#include "passes/Kernels/CostModel.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace moma;

namespace {

const char *const kTargets[] = {"x86-64-v3", "x86-64-v4", "sm_80", "sm_90",
                                "sm_90a"};

/// Shapes of the models: tiny and paper-size projections, experts, LM
/// heads, small and odd sizes, and untied (grouped) products.
std::vector<MatmulShape> shapes() {
  std::vector<MatmulShape> list;
  for (int64_t m : {1, 7, 16, 128, 4096})
    for (int64_t n : {1, 8, 17, 24, 100, 1024, 32000})
      for (int64_t k : {3, 32, 2048})
        for (int64_t groups : {1, 8}) {
          MatmulShape shape;
          shape.m = m;
          shape.n = n;
          shape.k = k;
          shape.groups = groups;
          list.push_back(shape);
        }
  MatmulShape bf16{512, 1024, 256, 1, 16};
  list.push_back(bf16);
  return list;
}

TargetModel target(const char *name) {
  std::optional<TargetModel> model = TargetModel::get(name);
  EXPECT_TRUE(model.has_value()) << name;
  return model.value_or(TargetModel());
}

TEST(CostModelTest, KnownTargetsHaveTheirFigures) {
  for (const char *name : kTargets) {
    TargetModel model = target(name);
    EXPECT_EQ(model.name, name);
    EXPECT_GT(model.peakFlops, 0) << name;
    EXPECT_GT(model.bytesPerSecond, 0) << name;
    EXPECT_GT(model.clockHertz, 0) << name;
    EXPECT_EQ(model.isGpu, name[0] == 's') << name;
  }
  EXPECT_EQ(target("x86-64-v3").lanes(), 8u);
  EXPECT_EQ(target("x86-64-v4").lanes(), 16u);
  EXPECT_EQ(target("x86-64-v4").vectorRegisters, 32u);
}

TEST(CostModelTest, UnknownTargetNamesAreRejected) {
  for (const char *name : {"", "cpu", "x86-64", "x86-64-v2", "X86-64-V3",
                           "sm_75", "SM_90", "sm_90 ", "sm_100"})
    EXPECT_FALSE(TargetModel::get(name).has_value()) << "'" << name << "'";
}

TEST(CostModelTest, RegisterTileFitsTheRegisterFile) {
  for (const char *name : kTargets) {
    TargetModel model = target(name);
    for (const MatmulShape &shape : shapes()) {
      MatmulTiling tiling = chooseMatmulTiling(model, shape);
      ASSERT_GE(tiling.mr, 1);
      ASSERT_GE(tiling.nr, 1);
      int64_t nrVectors =
          (tiling.nr + model.lanes() - 1) / int64_t(model.lanes());
      // Accumulators, one k step of B vectors, one broadcast of A.
      EXPECT_LE(tiling.mr * nrVectors + nrVectors + 1,
                int64_t(model.vectorRegisters))
          << name << " " << shape.m << "x" << shape.n << "x" << shape.k;
    }
  }
}

TEST(CostModelTest, NrIsAMultipleOfTheLanes) {
  for (const char *name : {"x86-64-v3", "x86-64-v4"}) {
    TargetModel model = target(name);
    for (const MatmulShape &shape : shapes()) {
      MatmulTiling tiling = chooseMatmulTiling(model, shape);
      EXPECT_EQ(tiling.nr % model.lanes(), 0)
          << name << " n " << shape.n << ": nr " << tiling.nr;
    }
  }
}

TEST(CostModelTest, CacheBlocksFitHalfTheirCache) {
  for (const char *name : {"x86-64-v3", "x86-64-v4"}) {
    TargetModel model = target(name);
    for (const MatmulShape &shape : shapes()) {
      MatmulTiling tiling = chooseMatmulTiling(model, shape);
      int64_t bytes = shape.elementBits / 8;
      std::string what = std::string(name) + " " + std::to_string(shape.m) +
                         "x" + std::to_string(shape.n) + "x" +
                         std::to_string(shape.k);
      EXPECT_LE(tiling.kc, shape.k) << what;
      EXPECT_LE(tiling.kc * tiling.nr * bytes, model.l1Bytes / 2) << what;
      EXPECT_LE(tiling.mc * tiling.kc * bytes, model.l2Bytes / 2) << what;
      EXPECT_EQ(tiling.mc % tiling.mr, 0) << what;
      // The largest blocks that fit: a deep K fills the L1 half.
      if (shape.k >= 2048)
        EXPECT_GT((tiling.kc + 8) * tiling.nr * bytes, model.l1Bytes / 2)
            << what;
    }
  }
}

TEST(CostModelTest, PaddingWasteSteersTheChoice) {
  TargetModel v3 = target("x86-64-v3");
  auto nrFor = [&](int64_t n) {
    return chooseMatmulTiling(v3, MatmulShape{256, n, 256, 1, 32}).nr;
  };
  // One vector of 8 lanes: a wider tile would pad half of every row.
  EXPECT_EQ(nrFor(8), 8);
  // 24 columns: three vectors exactly; 16 would pad to 32.
  EXPECT_EQ(nrFor(24), 24);
  // Wide N: the chosen tile divides N, so no lane is wasted.
  EXPECT_EQ(1024 % nrFor(1024), 0);
  // 40 columns: five vectors of 8 beat wider tiles that pad to 48 or 64,
  // though a one-vector tile is load-bound; 48 columns: two 24-wide tiles.
  EXPECT_EQ(nrFor(40), 8);
  EXPECT_EQ(nrFor(48), 24);
}

TEST(CostModelTest, PairedHalvesSplitTheRegisterTile) {
  // SwiGLU's gate.up product: each tile holds as many columns of the gate
  // half as of the up half, so nr is an even number of vectors, and the
  // padding is counted per half.
  for (const char *name : {"x86-64-v3", "x86-64-v4"}) {
    TargetModel model = target(name);
    int64_t lanes = model.lanes();
    for (int64_t half : {8, 24, 40, 1024, 1000}) {
      MatmulShape shape{512, 2 * half, 256, 1, 32};
      shape.pairedHalves = true;
      MatmulTiling tiling = chooseMatmulTiling(model, shape);
      std::string what = std::string(name) + " half " + std::to_string(half);
      EXPECT_EQ(tiling.nr % (2 * lanes), 0) << what;
      EXPECT_LE(tiling.mr * (tiling.nr / lanes) + tiling.nr / lanes + 1,
                model.vectorRegisters)
          << what;
      // A half of one vector's width is not padded to two.
      if (half == lanes)
        EXPECT_EQ(tiling.nr, 2 * lanes) << what;
    }
  }
  // Unpaired, 24 columns on 8 lanes is three vectors; paired halves of 24
  // cannot split an odd count, and a 2 x 8 tile pads nothing.
  TargetModel v3 = target("x86-64-v3");
  MatmulShape paired{256, 48, 256, 1, 32};
  paired.pairedHalves = true;
  EXPECT_EQ(chooseMatmulTiling(v3, paired).nr, 16);
}

TEST(CostModelTest, EstimateIsAtLeastBothBounds) {
  for (const char *name : kTargets) {
    TargetModel model = target(name);
    for (const MatmulShape &shape : shapes()) {
      MatmulTiling tiling = chooseMatmulTiling(model, shape);
      double flops = 2.0 * shape.m * shape.n * shape.k;
      EXPECT_DOUBLE_EQ(tiling.flops, flops);
      double bytes = shape.elementBits / 8 *
                     (double(shape.m) * shape.k +
                      double(shape.groups) * shape.k * shape.n +
                      double(shape.m) * shape.n);
      EXPECT_DOUBLE_EQ(tiling.bytes, bytes);
      EXPECT_GE(tiling.seconds, flops / model.peakFlops * (1 - 1e-12)) << name;
      EXPECT_GE(tiling.seconds, bytes / model.bytesPerSecond * (1 - 1e-12))
          << name;
    }
  }
}

/// The rows of the logits block chooseVocabChunk keeps in L2 on `model`.
int64_t blockRows(const TargetModel &model, int64_t rows, int64_t vocab,
                  int64_t dModel) {
  if (model.isGpu)
    return rows;
  return std::min(
      rows,
      chooseMatmulTiling(model, MatmulShape{rows, vocab, dModel, 1, 32}).mc);
}

TEST(CostModelTest, VocabChunkDividesTheVocabularyAndFitsHalfOfL2) {
  for (const char *name : kTargets) {
    TargetModel model = target(name);
    for (int64_t rows : {1, 32, 512, 4096, 65536})
      for (int64_t vocab : {128, 4096, 32000, 41216, 65536, 66560})
        for (int64_t dModel : {64, 256, 2048}) {
          int64_t chunk = chooseVocabChunk(model, rows, vocab, dModel);
          std::string what = std::string(name) + " " + std::to_string(rows) +
                             "x" + std::to_string(vocab) + "x" +
                             std::to_string(dModel);
          ASSERT_GT(chunk, 0) << what;
          EXPECT_EQ(vocab % chunk, 0) << what;
          int64_t bound = std::max<int64_t>(
              1,
              model.l2Bytes / 2 / (blockRows(model, rows, vocab, dModel) * 4));
          if (chunk != vocab)
            EXPECT_LE(chunk, bound) << what;
          // The whole vocabulary only when it fits, or as the fallback of a
          // vocabulary without a divisor near the bound.
          if (vocab > bound && chunk == vocab)
            ADD_FAILURE() << what << ": these vocabularies all have divisors";
        }
  }
}

TEST(CostModelTest, VocabChunkChoices) {
  TargetModel v3 = target("x86-64-v3"), v4 = target("x86-64-v4");
  TargetModel sm90 = target("sm_90");
  // The benchmark's MoMa (2 x 256 tokens, d_model 256, vocabulary 4096):
  // on x86-64-v3 the matmul's mc rows by Vc f32 columns fill half of the
  // 256 KiB L2, Vc a multiple of the 16-column register tile.
  MatmulTiling v3Tiling =
      chooseMatmulTiling(v3, MatmulShape{512, 4096, 256, 1, 32});
  int64_t v3Chunk = chooseVocabChunk(v3, 512, 4096, 256);
  EXPECT_EQ(v3Chunk % v3Tiling.nr, 0);
  EXPECT_LE(v3Tiling.mc * v3Chunk * 4, v3.l2Bytes / 2);
  EXPECT_GT(v3Tiling.mc * v3Chunk * 2 * 4, v3.l2Bytes / 2);
  EXPECT_EQ(v3Chunk, 256);
  // A larger L2 takes wider chunks.
  EXPECT_GE(chooseVocabChunk(v4, 512, 4096, 256), v3Chunk);
  // A tiny vocabulary is one chunk.
  EXPECT_EQ(chooseVocabChunk(v3, 64, 128, 64), 128);
  // The GPU holds every row: 4096 tokens x 65536 words on sm_90 (50 MiB
  // L2): chunks of 1024 columns, 64 of them.
  EXPECT_EQ(chooseVocabChunk(sm90, 4096, 65536, 2048), 1024);
  // A prime vocabulary has no useful divisor: one chunk.
  EXPECT_EQ(chooseVocabChunk(v3, 512, 65521, 256), 65521);
  // 41216 = 2^8 * 7 * 23: the largest multiple of the register tile's nr
  // under the bound.
  int64_t odd = chooseVocabChunk(v3, 512, 41216, 256);
  EXPECT_EQ(41216 % odd, 0);
  EXPECT_EQ(
      odd % chooseMatmulTiling(v3, MatmulShape{512, 41216, 256, 1, 32}).nr, 0);
}

} // namespace
