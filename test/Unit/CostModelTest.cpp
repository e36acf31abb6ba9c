//===- CostModelTest.cpp - The kernel layer's target and cost model -------===//
//
// Properties every tiling chooseMatmulTiling returns must have on every
// target (registers, lanes, cache capacity, time bounds), and the choices
// padding waste must steer.
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

} // namespace
