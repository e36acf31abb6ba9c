//===- DialectTest.cpp - Unit tests of the moma dialect helpers -----------===//

#include "dialects/moma/MomaOps.h"
#include "moma/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include "gtest/gtest.h"

using namespace mlir;
using namespace moma;

namespace {
ExpertGroupAttr expertChoice(MLIRContext &ctx, int64_t modality,
                             int64_t experts, double capacity) {
  return ExpertGroupAttr::get(
      &ctx, ArrayRef<int64_t>(modality), experts, RoutingKind::expert_choice, 0,
      llvm::APFloat(capacity), ScoreFunction::sigmoid, false);
}

ExpertGroupAttr tokenChoice(MLIRContext &ctx, int64_t modality, int64_t experts,
                            int64_t topK) {
  return ExpertGroupAttr::get(&ctx, ArrayRef<int64_t>(modality), experts,
                              RoutingKind::token_choice, topK,
                              llvm::APFloat(0.0), ScoreFunction::softmax, true);
}

struct MomaDialectTest : ::testing::Test {
  MomaDialectTest() {
    DialectRegistry registry;
    moma::registerAllDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }
  MLIRContext ctx;
};
} // namespace

TEST_F(MomaDialectTest, ExpertCapacityIsFloorOfShare) {
  // MoMa: capacity 1 over 4 experts, each expert takes b / 4 tokens.
  EXPECT_EQ(expertChoice(ctx, 0, 4, 1.0).getExpertCapacity(4096), 1024);
  EXPECT_EQ(expertChoice(ctx, 0, 4, 1.0).getExpertCapacity(7), 1);
  EXPECT_EQ(expertChoice(ctx, 0, 4, 1.0).getExpertCapacity(3), 0);
  EXPECT_EQ(expertChoice(ctx, 0, 8, 2.0).getExpertCapacity(100), 25);
  EXPECT_EQ(expertChoice(ctx, 0, 1, 1.0).getExpertCapacity(0), 0);
}

TEST_F(MomaDialectTest, RequiredSlotsBoundEveryGroup) {
  SmallVector<ExpertGroupAttr> moma = {expertChoice(ctx, 0, 4, 1.0),
                                       expertChoice(ctx, 1, 4, 1.0)};
  EXPECT_EQ(RouteOp::getRequiredSlots(moma, 16, /*withAux=*/false), 16);
  // With auxiliary routers every expert may take every token.
  EXPECT_EQ(RouteOp::getRequiredSlots(moma, 16, /*withAux=*/true), 64);
  SmallVector<ExpertGroupAttr> mixed = {tokenChoice(ctx, 0, 8, 2),
                                        expertChoice(ctx, 1, 4, 0.5)};
  EXPECT_EQ(RouteOp::getRequiredSlots(mixed, 10, false), 20);
  SmallVector<ExpertGroupAttr> half = {expertChoice(ctx, 0, 4, 0.5)};
  EXPECT_EQ(RouteOp::getRequiredSlots(half, 5, false), 3);
  EXPECT_EQ(getTotalExperts(mixed), 12);
  EXPECT_EQ(getMaxExperts(mixed), 8);
}

TEST_F(MomaDialectTest, ExpertGroupVerifierRejectsBadGroups) {
  auto loc = UnknownLoc::get(&ctx);
  auto emit = [&] { return emitError(loc); };
  // Diagnostics go to the context's default handler (stderr): fine here.
  auto check = [&](int64_t modality, int64_t experts, RoutingKind routing,
                   int64_t topK, double capacity) {
    return static_cast<bool>(ExpertGroupAttr::getChecked(
        emit, &ctx, ArrayRef<int64_t>{modality}, experts, routing, topK,
        llvm::APFloat(capacity), ScoreFunction::sigmoid, false));
  };
  EXPECT_FALSE(check(0, 4, RoutingKind::token_choice, 5, 0.0));
  EXPECT_FALSE(check(0, 4, RoutingKind::token_choice, 0, 0.0));
  EXPECT_FALSE(check(0, 4, RoutingKind::expert_choice, 0, 4.5));
  EXPECT_FALSE(check(0, 4, RoutingKind::expert_choice, 0, 0.0));
  EXPECT_FALSE(check(0, 0, RoutingKind::expert_choice, 0, 1.0));
  EXPECT_FALSE(check(-1, 4, RoutingKind::expert_choice, 0, 1.0));
  EXPECT_TRUE(check(1, 4, RoutingKind::expert_choice, 0, 4.0));
  EXPECT_TRUE(check(1, 4, RoutingKind::token_choice, 4, 0.0));
}

TEST_F(MomaDialectTest, DeclaredModalitiesAreFoundFromNestedOps) {
  const char *ir = R"mlir(
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
  func.func @f(%x: tensor<1x4x8xf32>, %w: tensor<8x1xf32>)
      -> (tensor<1x2xi32>, tensor<1x2xf32>) {
    %i, %g = moma.depth_route %x, %w {capacity_factor = 0.5 : f64}
        : (tensor<1x4x8xf32>, tensor<8x1xf32>) -> (tensor<1x2xi32>, tensor<1x2xf32>)
    return %i, %g : tensor<1x2xi32>, tensor<1x2xf32>
  }
})mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(ir, &ctx);
  ASSERT_TRUE(module);
  Operation *route = nullptr;
  module->walk([&](DepthRouteOp op) { route = op; });
  ASSERT_TRUE(route);
  auto modalities = getDeclaredModalities(route);
  ASSERT_TRUE(modalities.has_value());
  ASSERT_EQ(modalities->size(), 2u);
  EXPECT_EQ((*modalities)[1].getName().getValue(), "image");
  EXPECT_EQ((*modalities)[1].getTokenBegin(), 96);
  EXPECT_EQ((*modalities)[1].getTokenEnd(), 128);
  EXPECT_FALSE(getDeclaredModalities(module->getOperation()->getParentOp()));
}

TEST_F(MomaDialectTest, BuildersInferResultsOfTheOperandsType) {
  const char *ir = R"mlir(
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>]} {
  func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf32>,
      %s: tensor<2x8xf32>) {
    return
  }
})mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(ir, &ctx);
  ASSERT_TRUE(module);
  auto func = cast<func::FuncOp>(module->getBody()->front());
  Block &entry = func.getBody().front();
  Value x = entry.getArgument(0), w = entry.getArgument(1),
        s = entry.getArgument(2);
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Location loc = b.getUnknownLoc();
  auto norm = NormOp::create(b, loc, NormKind::rms, x, w, Value(), Value(),
                             llvm::APFloat(1.0e-5));
  auto scale = ScaleOp::create(b, loc, norm, s);
  auto detached = StopGradientOp::create(b, loc, scale);
  for (Operation *op :
       {norm.getOperation(), scale.getOperation(), detached.getOperation()})
    EXPECT_EQ(op->getResult(0).getType(), x.getType())
        << op->getName().getStringRef().str();
  EXPECT_TRUE(succeeded(verify(*module)));
}
