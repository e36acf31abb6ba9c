//===- ToolsTest.cpp - Tests of moma-pack and moma-run --------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// moma-pack and moma-run driven as a user would, on the CPU: packing a
// spec, running, printing, checking and dumping buffers, and their errors.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/FloatConversion.h"

#include <cstdlib>
#include <sys/wait.h>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

/// Runs a shell command, returning its exit status and output (both
/// streams).
std::pair<int, std::string> run(const std::string &command,
                                const TempDir &dir) {
  std::string out = dir.file("output.txt");
  int status = std::system((command + " > " + out + " 2>&1").c_str());
  std::string text = readFile(out);
  ::unlink(out.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

TEST(RuntimeTools, PackAndRunOnTheCpu) {
  TempDir dir;
  const std::string bin = MOMA_TEST_TOOLS_DIR;
  writeFile(dir.file("kernels.so"), kernelBytes());
  writeFile(
      dir.file("spec.json"),
      R"({"target":"cpu","arena":{"alignment":64},)"
      R"("modules":[{"name":"k","format":"cpu-so","path":"kernels.so",)"
      R"("functions":["vadd","scale"]}],)"
      R"("buffers":[{"name":"a","role":"input","type":"f32","shape":[100]},)"
      R"({"name":"b","role":"weight","type":"f32","shape":[100]},)"
      R"({"name":"s","role":"weight","type":"bf16","shape":[2,2]},)"
      R"({"name":"c","role":"output","type":"f32","shape":[100]},)"
      R"({"name":"y","role":"output","type":"f32","shape":[100]}],)"
      R"("launches":[)"
      R"({"module":0,"function":"vadd","grid":[1,1,1],"block":[1,1,1],)"
      R"("args":[{"kind":"buffer","name":"a"},{"kind":"buffer","name":"b"},)"
      R"({"kind":"buffer","name":"c"},{"kind":"i32","value":100}]},)"
      R"({"module":0,"function":"scale","grid":[1,1,1],"block":[1,1,1],)"
      R"("args":[{"kind":"buffer","name":"c"},{"kind":"buffer","name":"y"},)"
      R"({"kind":"f32","value":0.5},{"kind":"i64","value":100},)"
      R"({"kind":"f64","value":2.0}]}]})");
  std::string weights = writeWeights(dir);
  std::vector<float> a(kN), y(kN);
  for (int i = 0; i < kN; ++i) {
    a[i] = 0.25f * i;
    y[i] = 0.5f * (a[i] + float(i % 7 - 3)) + 2.0f;
  }
  writeFile(dir.file("a.bin"), bytesOf(a));
  writeFile(dir.file("y.ref"), bytesOf(y));
  std::string program = dir.file("p.momaprog");

  auto [packStatus, packOut] =
      run(bin + "/moma-pack " + dir.file("spec.json") + " -o " + program, dir);
  ASSERT_EQ(packStatus, 0) << packOut;
  EXPECT_TRUE(contains(packOut, "target cpu, 1 module(s), 5 buffer(s)"));
  auto [showStatus, manifest] =
      run(bin + "/moma-pack --manifest " + program, dir);
  EXPECT_EQ(showStatus, 0);
  EXPECT_TRUE(contains(manifest, "\"function\": \"scale\"")) << manifest;

  std::string common = bin + "/moma-run " + program + " --weights " + weights +
                       " --input a=" + dir.file("a.bin");
  auto [runStatus, runOut] =
      run(common + " --repeat 3 --warmup 1 --print y:3 --expect y=" +
              dir.file("y.ref") + " --dump c=" + dir.file("c.bin"),
          dir);
  ASSERT_EQ(runStatus, 0) << runOut;
  EXPECT_TRUE(contains(runOut, "device cpu")) << runOut;
  EXPECT_TRUE(contains(runOut, "weights " + weights + ": 2 buffer(s) loaded"));
  EXPECT_TRUE(contains(runOut, "ran 3 time(s) (1 warm-up)")) << runOut;
  EXPECT_TRUE(contains(runOut, "y (f32 [100]) = [0.5, 1.125, 1.75, ...]"))
      << runOut;
  EXPECT_TRUE(contains(runOut, "expect y: OK (100 elements")) << runOut;
  std::string c = readFile(dir.file("c.bin"));
  ASSERT_EQ(c.size(), 400u);
  float c5;
  std::memcpy(&c5, c.data() + 20, 4);
  EXPECT_EQ(c5, 1.25f + float(5 % 7 - 3));

  // Errors: message and non-zero exit.
  writeFile(dir.file("short.bin"), "abc");
  auto [shortStatus, shortOut] =
      run(common + " --input a=" + dir.file("short.bin"), dir);
  EXPECT_EQ(shortStatus, 1);
  EXPECT_TRUE(contains(shortOut, "has 3 bytes, but buffer 'a' (f32 [100]) "
                                 "holds 400"))
      << shortOut;
  auto [extra, extraOut] = run(bin + "/moma-run " + program + " --weights " +
                                   writeWeights(dir, {"b", "s", "unused"}) +
                                   " --input a=" + dir.file("a.bin"),
                               dir);
  EXPECT_EQ(extra, 1);
  EXPECT_TRUE(contains(extraOut, "cannot load the weights: " +
                                     dir.file("b-s-unused.safetensors") +
                                     ": unexpected tensor 'unused'"))
      << extraOut;
  auto [noWeights, noWeightsOut] = run(bin + "/moma-run " + program, dir);
  EXPECT_EQ(noWeights, 1);
  EXPECT_TRUE(contains(noWeightsOut, "pass --weights")) << noWeightsOut;
  y[7] += 1;
  writeFile(dir.file("y.bad"), bytesOf(y));
  auto [expectStatus, expectOut] =
      run(common + " --expect y=" + dir.file("y.bad"), dir);
  EXPECT_EQ(expectStatus, 1);
  EXPECT_TRUE(contains(expectOut, "1 of 100 elements differ")) << expectOut;
  auto [usage, usageOut] = run(common + " --repeat 0", dir);
  EXPECT_EQ(usage, 2);
  EXPECT_TRUE(contains(usageOut, "--repeat expects an integer >= 1"));
  auto [damaged, damagedOut] =
      run(bin + "/moma-run " + dir.file("spec.json"), dir);
  EXPECT_EQ(damaged, 1);
  EXPECT_TRUE(contains(damagedOut, "not a moma program")) << damagedOut;
  if (!haveCudaDriver()) {
    auto [cuda, cudaOut] = run(common + " --device cuda", dir);
    EXPECT_EQ(cuda, 1);
    EXPECT_TRUE(contains(cudaOut, "no CUDA driver (libcuda.so.1 not found"))
        << cudaOut;
  }
  auto [badSpec, badSpecOut] = run(
      bin + "/moma-pack " + dir.file("a.bin") + " -o " + dir.file("x"), dir);
  EXPECT_EQ(badSpec, 1);
  EXPECT_TRUE(contains(badSpecOut, "invalid JSON")) << badSpecOut;
}

} // namespace
