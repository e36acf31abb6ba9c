//===- CApiCpuTest.cpp - Tests of the C API on the CPU --------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The runtime's C API end to end on the CPU device (a kernel shared object
// built by CMake from RuntimeTestKernels.c): loading programs and weights,
// buffers, runs, and the errors of each.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/ProgramBuilder.h"
#include "moma/Format/ProgramFile.h"
#include "moma/Runtime/Runtime.h"

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

TEST(RuntimeCApi, RunsACpuProgramEndToEnd) {
  TempDir dir;
  std::string path = dir.file("cpu.momaprog");
  ASSERT_TRUE(writeProgram(makeCpuProgram(), path).ok());

  moma_program program = nullptr;
  ASSERT_EQ(moma_program_load(path.c_str(), &program), MOMA_STATUS_OK)
      << lastError();
  EXPECT_EQ(lastError(), "");
  EXPECT_STREQ(moma_program_target(program), "cpu");
  EXPECT_EQ(moma_program_num_buffers(program), 6u);
  EXPECT_EQ(moma_program_num_launches(program), 3u);
  EXPECT_EQ(moma_program_num_modules(program), 1u);
  moma_buffer_info info;
  ASSERT_EQ(moma_program_find_buffer(program, "s", &info), MOMA_STATUS_OK);
  EXPECT_EQ(info.role, MOMA_ROLE_WEIGHT);
  EXPECT_EQ(info.dtype, MOMA_DTYPE_BF16);
  ASSERT_EQ(info.rank, 2u);
  EXPECT_EQ(info.shape[1], 2);
  EXPECT_EQ(info.byte_size, 8u);
  EXPECT_EQ(moma_program_find_buffer(program, "zz", &info),
            MOMA_STATUS_NOT_FOUND);
  EXPECT_TRUE(contains(lastError(), "no buffer named 'zz'"));

  moma_session session = nullptr;
  ASSERT_EQ(moma_session_create(program, MOMA_DEVICE_CPU, 0, &session),
            MOMA_STATUS_OK)
      << lastError();
  // The session keeps the program alive.
  moma_program_free(program);
  EXPECT_STREQ(moma_session_device_name(session), "cpu");

  size_t loaded = 0;
  ASSERT_EQ(
      moma_session_load_weights(session, writeWeights(dir).c_str(), &loaded),
      MOMA_STATUS_OK)
      << lastError();
  EXPECT_EQ(loaded, 2u);
  std::vector<uint16_t> s(4);
  ASSERT_EQ(moma_session_get_buffer(session, "s", s.data(), 8), MOMA_STATUS_OK);
  EXPECT_EQ(s, (std::vector<uint16_t>{0x3f80, 0x4000, 0xbf00, 0x3f80}));

  std::vector<float> a(kN);
  for (int i = 0; i < kN; ++i)
    a[i] = 0.25f * i;
  ASSERT_EQ(moma_session_set_buffer(session, "a", a.data(), a.size() * 4),
            MOMA_STATUS_OK);
  double ms = 0;
  EXPECT_EQ(moma_session_last_run_ms(session, &ms),
            MOMA_STATUS_INVALID_ARGUMENT);
  for (int run = 1; run <= 2; ++run) {
    ASSERT_EQ(moma_session_run(session), MOMA_STATUS_OK) << lastError();
    ASSERT_EQ(moma_session_last_run_ms(session, &ms), MOMA_STATUS_OK);
    EXPECT_GE(ms, 0.0);
    std::vector<float> c(kN), y(kN);
    ASSERT_EQ(moma_session_get_buffer(session, "c", c.data(), kN * 4),
              MOMA_STATUS_OK);
    ASSERT_EQ(moma_session_get_buffer(session, "y", y.data(), kN * 4),
              MOMA_STATUS_OK);
    for (int i = 0; i < kN; ++i) {
      ASSERT_EQ(c[i], a[i] + float(i % 7 - 3)) << i;
      ASSERT_EQ(y[i], 0.5f * c[i] + 2.0f) << i;
    }
    int64_t calls = 0;
    ASSERT_EQ(moma_session_get_buffer(session, "calls", &calls, 8),
              MOMA_STATUS_OK);
    EXPECT_EQ(calls, run); // each launch calls its kernel exactly once
  }

  // Errors name what was wrong.
  EXPECT_EQ(moma_session_set_buffer(session, "a", a.data(), 12),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(lastError(), "buffer 'a' holds 400 bytes"));
  EXPECT_EQ(moma_session_set_buffer(session, "nope", a.data(), 4),
            MOMA_STATUS_NOT_FOUND);
  EXPECT_EQ(moma_session_set_buffer(session, "a", nullptr, 400),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(moma_session_use_graph(session, 1), MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(), "not available on the cpu device"));
  EXPECT_EQ(moma_session_use_graph(session, 0), MOMA_STATUS_OK);
  EXPECT_EQ(lastError(), "");
  moma_session_free(session);
}

TEST(RuntimeCApi, StateBuffersPersistAndWeightsReadBack) {
  // A stand-in for a training program: each run adds the input to a state
  // buffer (m += a) and to a weight (b += a, an update in place) and counts
  // itself in an i64 state buffer.
  ProgramBuilder builder(Target::Cpu, 64);
  builder.addModule(ModuleFormat::CpuSo, kernelBytes(), {"vadd", "count_calls"},
                    "test-kernels");
  uint64_t a =
      builder.addBuffer("a", BufferRole::Input, ElementType::F32, {kN});
  uint64_t b =
      builder.addBuffer("b", BufferRole::Weight, ElementType::F32, {kN});
  uint64_t m =
      builder.addBuffer("m", BufferRole::State, ElementType::F32, {kN});
  uint64_t calls =
      builder.addBuffer("calls", BufferRole::State, ElementType::I64, {});
  builder.addLaunch(0, "vadd", {1, 1, 1}, {1, 1, 1}, vaddArgs(a, m, m));
  builder.addLaunch(0, "vadd", {1, 1, 1}, {1, 1, 1}, vaddArgs(a, b, b));
  builder.addLaunch(0, "count_calls", {1, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(calls)});
  Program built = buildProgram(builder);
  absl::StatusOr<std::string> bytes = serializeProgram(built);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  moma_program program = nullptr;
  ASSERT_EQ(
      moma_program_load_from_memory(bytes->data(), bytes->size(), &program),
      MOMA_STATUS_OK)
      << lastError();
  moma_buffer_info info;
  ASSERT_EQ(moma_program_find_buffer(program, "m", &info), MOMA_STATUS_OK);
  EXPECT_EQ(info.role, MOMA_ROLE_STATE);
  moma_session session = nullptr;
  ASSERT_EQ(moma_session_create(program, MOMA_DEVICE_CPU, 0, &session),
            MOMA_STATUS_OK)
      << lastError();

  // A session starts with zero state.
  std::vector<float> state(kN, -1.0f);
  int64_t count = -1;
  ASSERT_EQ(moma_session_get_buffer(session, "m", state.data(), kN * 4),
            MOMA_STATUS_OK);
  EXPECT_EQ(state, std::vector<float>(kN, 0.0f));
  ASSERT_EQ(moma_session_get_buffer(session, "calls", &count, 8),
            MOMA_STATUS_OK);
  EXPECT_EQ(count, 0);

  // Weights files hold no state: the weight alone loads, a state tensor is
  // not the program's.
  TempDir dir;
  size_t loaded = 0;
  ASSERT_EQ(moma_session_load_weights(session, writeWeights(dir, {"b"}).c_str(),
                                      &loaded),
            MOMA_STATUS_OK)
      << lastError();
  EXPECT_EQ(loaded, 1u);
  std::vector<float> b0(kN);
  ASSERT_EQ(moma_session_get_buffer(session, "b", b0.data(), kN * 4),
            MOMA_STATUS_OK);

  std::vector<float> input(kN);
  for (int i = 0; i < kN; ++i)
    input[i] = 0.5f * i;
  ASSERT_EQ(moma_session_set_buffer(session, "a", input.data(), kN * 4),
            MOMA_STATUS_OK);
  for (int run = 0; run < 2; ++run)
    ASSERT_EQ(moma_session_run(session), MOMA_STATUS_OK) << lastError();
  // State and weights persist between runs, and both read back.
  std::vector<float> weights(kN);
  ASSERT_EQ(moma_session_get_buffer(session, "m", state.data(), kN * 4),
            MOMA_STATUS_OK);
  ASSERT_EQ(moma_session_get_buffer(session, "b", weights.data(), kN * 4),
            MOMA_STATUS_OK);
  ASSERT_EQ(moma_session_get_buffer(session, "calls", &count, 8),
            MOMA_STATUS_OK);
  EXPECT_EQ(count, 2);
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(state[i], 2 * input[i]) << i;
    EXPECT_EQ(weights[i], b0[i] + input[i] + input[i]) << i;
  }

  // The caller sets state (a resume) and the next run continues from it.
  std::vector<float> resumed(kN, 1.0f);
  int64_t resumedCount = 10;
  ASSERT_EQ(moma_session_set_buffer(session, "m", resumed.data(), kN * 4),
            MOMA_STATUS_OK);
  ASSERT_EQ(moma_session_set_buffer(session, "calls", &resumedCount, 8),
            MOMA_STATUS_OK);
  EXPECT_EQ(moma_session_set_buffer(session, "calls", &resumedCount, 4),
            MOMA_STATUS_INVALID_ARGUMENT);
  ASSERT_EQ(moma_session_run(session), MOMA_STATUS_OK) << lastError();
  ASSERT_EQ(moma_session_get_buffer(session, "m", state.data(), kN * 4),
            MOMA_STATUS_OK);
  ASSERT_EQ(moma_session_get_buffer(session, "calls", &count, 8),
            MOMA_STATUS_OK);
  EXPECT_EQ(count, 11);
  for (int i = 0; i < kN; ++i)
    EXPECT_EQ(state[i], 1.0f + input[i]) << i;
  moma_session_free(session);
  moma_program_free(program);
}

TEST(RuntimeCApi, WeightErrors) {
  TempDir dir;
  absl::StatusOr<std::string> bytes = serializeProgram(makeCpuProgram());
  ASSERT_TRUE(bytes.ok());
  moma_program program = nullptr;
  ASSERT_EQ(
      moma_program_load_from_memory(bytes->data(), bytes->size(), &program),
      MOMA_STATUS_OK);
  moma_session session = nullptr;
  ASSERT_EQ(moma_session_create(program, MOMA_DEVICE_CPU, 0, &session),
            MOMA_STATUS_OK);

  EXPECT_EQ(
      moma_session_load_weights(session, dir.file("none").c_str(), nullptr),
      MOMA_STATUS_NOT_FOUND);
  std::string missing = dir.file("missing.safetensors");
  writeFile(missing, safetensors(R"({"b":{"dtype":"F32","shape":[100],)"
                                 R"("data_offsets":[0,400]}})",
                                 std::string(400, '\0')));
  EXPECT_EQ(moma_session_load_weights(session, missing.c_str(), nullptr),
            MOMA_STATUS_NOT_FOUND);
  EXPECT_TRUE(contains(lastError(), "no tensor 's' for weight buffer 's'"));
  std::string shape = dir.file("shape.safetensors");
  writeFile(shape, safetensors(R"({"b":{"dtype":"F32","shape":[10,10],)"
                               R"("data_offsets":[0,400]},"s":{"dtype":"F32",)"
                               R"("shape":[4],"data_offsets":[400,416]}})",
                               std::string(416, '\0')));
  EXPECT_EQ(moma_session_load_weights(session, shape.c_str(), nullptr),
            MOMA_STATUS_INVALID_WEIGHTS);
  EXPECT_TRUE(contains(lastError(), "tensor 'b' has shape [10, 10], but "
                                    "buffer 'b' expects [100]"));
  // A tensor no weight buffer takes is an error too (the file is probably
  // another model's), named like the reference names it; no buffer changes.
  size_t loaded = 1;
  EXPECT_EQ(
      moma_session_load_weights(
          session, writeWeights(dir, {"b", "s", "unused"}).c_str(), &loaded),
      MOMA_STATUS_INVALID_WEIGHTS);
  EXPECT_EQ(loaded, 0u);
  EXPECT_TRUE(contains(lastError(),
                       dir.file("b-s-unused.safetensors") +
                           ": unexpected tensor 'unused' (not a weight buffer "
                           "of the program; 1 unexpected in all)"))
      << lastError();
  std::string damaged = dir.file("damaged.safetensors");
  writeFile(damaged, safetensors(std::string(16, ' ') + "{not json", ""));
  EXPECT_EQ(moma_session_load_weights(session, damaged.c_str(), nullptr),
            MOMA_STATUS_INVALID_WEIGHTS);
  EXPECT_TRUE(contains(lastError(), damaged));
  moma_session_free(session);
  moma_program_free(program);
}

TEST(RuntimeCApi, ProgramAndDeviceErrors) {
  moma_program program = nullptr;
  EXPECT_EQ(moma_program_load("/nonexistent/p.momaprog", &program),
            MOMA_STATUS_NOT_FOUND);
  EXPECT_EQ(program, nullptr);
  EXPECT_EQ(moma_program_load(nullptr, &program), MOMA_STATUS_INVALID_ARGUMENT);
  std::string garbage = "definitely not a program";
  EXPECT_EQ(
      moma_program_load_from_memory(garbage.data(), garbage.size(), &program),
      MOMA_STATUS_INVALID_PROGRAM);
  EXPECT_TRUE(contains(lastError(), "not a moma program"));
  std::string newer = packContainer(kManifest, {kPtx}, 7);
  EXPECT_EQ(moma_program_load_from_memory(newer.data(), newer.size(), &program),
            MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(), "written by a newer moma"));
  EXPECT_STREQ(moma_status_name(MOMA_STATUS_NO_CUDA_DRIVER),
               "MOMA_STATUS_NO_CUDA_DRIVER");
  EXPECT_EQ(moma_program_format_version(), 4u);

  // A GPU program does not run on the CPU.
  std::string gpu = packContainer(kManifest, {kPtx});
  ASSERT_EQ(moma_program_load_from_memory(gpu.data(), gpu.size(), &program),
            MOMA_STATUS_OK);
  moma_session session = nullptr;
  EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CPU, 0, &session),
            MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(), "targets sm_90"));
  EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CPU, 1, &session),
            MOMA_STATUS_INVALID_ARGUMENT);
  moma_program_free(program);

  // A cpu-so module that is not a shared object, or lacks a kernel.
  for (const auto &[bytes, needle] :
       std::vector<std::pair<std::string, std::string>>{
           {"garbage", "the cpu-so module does not load"},
           {kernelBytes(), "kernel 'missing_kernel' is not defined"}}) {
    ProgramBuilder builder(Target::Cpu, 64);
    builder.addModule(ModuleFormat::CpuSo, bytes, {"vadd", "missing_kernel"});
    absl::StatusOr<std::string> file = serializeProgram(*builder.build());
    ASSERT_TRUE(file.ok());
    ASSERT_EQ(
        moma_program_load_from_memory(file->data(), file->size(), &program),
        MOMA_STATUS_OK);
    EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CPU, 0, &session),
              MOMA_STATUS_DEVICE_ERROR);
    EXPECT_TRUE(contains(lastError(), needle)) << lastError();
    moma_program_free(program);
  }
}

} // namespace
