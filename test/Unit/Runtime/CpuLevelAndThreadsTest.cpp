//===- CpuLevelAndThreadsTest.cpp - CPU levels and threads of sessions ----===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// What a CPU session checks and sets before it runs kernels: the host CPU
// against the program's CPU level (refused before any module loads; the
// test hook MOMA_CPU_HIDE_FEATURES plays an older CPU), and the thread count
// it hands to modules that export moma_cpu_set_threads (a module built by
// CMake from RuntimeTestThreads.c that records it).
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/ProgramBuilder.h"
#include "moma/Format/ProgramFile.h"
#include "moma/Runtime/Runtime.h"

#include <cstdlib>
#include <optional>
#include <sched.h>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

/// Sets MOMA_CPU_HIDE_FEATURES for the lifetime of the object.
class HiddenCpuFeatures {
public:
  explicit HiddenCpuFeatures(const char *features) {
    ::setenv("MOMA_CPU_HIDE_FEATURES", features, 1);
  }
  ~HiddenCpuFeatures() { ::unsetenv("MOMA_CPU_HIDE_FEATURES"); }
};

/// Loads \p program through the C API (expecting it valid).
moma_program load(const Program &program) {
  absl::StatusOr<std::string> bytes = serializeProgram(program);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  moma_program handle = nullptr;
  if (bytes.ok())
    EXPECT_EQ(
        moma_program_load_from_memory(bytes->data(), bytes->size(), &handle),
        MOMA_STATUS_OK)
        << lastError();
  return handle;
}

/// A CPU program of one module (\p bytes, declaring \p kernel) at CPU level
/// \p level ("" records none), launching \p kernel on a two-element i32
/// output "threads".
Program makeProgram(const std::string &bytes, const std::string &kernel,
                    const std::string &level) {
  ProgramBuilder builder(Target::Cpu, 64);
  builder.addModule(ModuleFormat::CpuSo, bytes, {kernel});
  if (!level.empty())
    builder.setCpuLevel(level);
  uint64_t out =
      builder.addBuffer("threads", BufferRole::Output, ElementType::I32, {2});
  builder.addLaunch(0, kernel, {1, 1, 1}, {1, 1, 1}, {LaunchArg::buffer(out)});
  return buildProgram(builder);
}

/// The test module that records its thread count.
Program threadsProgram(const std::string &level = "") {
  return makeProgram(readFile(MOMA_TEST_CPU_THREADS), "report_threads", level);
}

/// Creates a CPU session of \p program with \p options; returns its status.
moma_status createSession(moma_program program,
                          const moma_session_options *options,
                          moma_session *session) {
  *session = nullptr;
  return moma_session_create_with_options(program, MOMA_DEVICE_CPU, 0, options,
                                          session);
}

/// Returns whether the compiler's own level check passes on this CPU.
bool hostReaches(CpuLevel level) {
  __builtin_cpu_init();
  switch (level) {
  case CpuLevel::X86_64:
    return __builtin_cpu_supports("x86-64");
  case CpuLevel::X86_64_V2:
    return __builtin_cpu_supports("x86-64-v2");
  case CpuLevel::X86_64_V3:
    return __builtin_cpu_supports("x86-64-v3");
  case CpuLevel::X86_64_V4:
    return __builtin_cpu_supports("x86-64-v4");
  }
  return false;
}

//===----------------------------------------------------------------------===//
// CPU levels
//===----------------------------------------------------------------------===//

TEST(CpuLevel, ProgramsReportTheirLevel) {
  moma_program v4 = load(threadsProgram("x86-64-v4"));
  moma_program none = load(threadsProgram());
  std::string gpu = packContainer(kManifest, {kPtx});
  moma_program sm90 = nullptr;
  ASSERT_EQ(moma_program_load_from_memory(gpu.data(), gpu.size(), &sm90),
            MOMA_STATUS_OK);
  EXPECT_STREQ(moma_program_cpu_level(v4), "x86-64-v4");
  EXPECT_STREQ(moma_program_cpu_level(none), "x86-64");
  EXPECT_STREQ(moma_program_cpu_level(sm90), "");
  EXPECT_STREQ(moma_program_cpu_level(nullptr), "");
  EXPECT_STREQ(moma_status_name(MOMA_STATUS_UNSUPPORTED_CPU),
               "MOMA_STATUS_UNSUPPORTED_CPU");
  moma_program_free(v4);
  moma_program_free(none);
  moma_program_free(sm90);
}

TEST(CpuLevel, SessionsAgreeWithTheCompilersCheck) {
  // A session of each level is accepted exactly when the compiler's
  // __builtin_cpu_supports("x86-64-vN") says this CPU reaches the level.
  for (CpuLevel level : {CpuLevel::X86_64, CpuLevel::X86_64_V2,
                         CpuLevel::X86_64_V3, CpuLevel::X86_64_V4}) {
    std::string name(cpuLevelName(level));
    moma_program program = load(threadsProgram(name));
    moma_session session = nullptr;
    moma_status status = createSession(program, nullptr, &session);
    if (hostReaches(level)) {
      EXPECT_EQ(status, MOMA_STATUS_OK) << name << ": " << lastError();
      EXPECT_EQ(moma_session_run(session), MOMA_STATUS_OK) << lastError();
    } else {
      EXPECT_EQ(status, MOMA_STATUS_UNSUPPORTED_CPU) << name;
      EXPECT_TRUE(contains(lastError(), "this program needs an " + name))
          << lastError();
    }
    moma_session_free(session);
    moma_program_free(program);
  }
}

TEST(CpuLevel, RefusesACpuWithoutTheFeaturesBeforeLoading) {
  // The module is not even a shared object: the check comes before dlopen.
  moma_program program = load(makeProgram("garbage", "k", "x86-64-v4"));
  moma_session session = nullptr;
  {
    HiddenCpuFeatures hidden("avx512f, avx512bw");
    EXPECT_EQ(createSession(program, nullptr, &session),
              MOMA_STATUS_UNSUPPORTED_CPU);
    EXPECT_EQ(session, nullptr);
    EXPECT_EQ(lastError(),
              "this program needs an x86-64-v4 CPU (x86-64-v3 and AVX-512F, "
              "AVX-512BW, AVX-512CD, AVX-512DQ, AVX-512VL); this CPU lacks "
              "avx512f, avx512bw (MOMA_CPU_HIDE_FEATURES hides avx512f, "
              "avx512bw)");
  }
  if (hostReaches(CpuLevel::X86_64_V4)) {
    // Without the hook the CPU passes and dlopen gets to reject the bytes.
    EXPECT_EQ(createSession(program, nullptr, &session),
              MOMA_STATUS_DEVICE_ERROR);
    EXPECT_TRUE(contains(lastError(), "the cpu-so module does not load"))
        << lastError();
  }
  moma_program_free(program);

  // Features of lower levels count too; v2 names only its own.
  for (const auto &[level, hide, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"x86-64-v3", "sse4.2",
            "this program needs an x86-64-v3 CPU (x86-64-v2 and AVX, AVX2, "
            "BMI1, BMI2, F16C, FMA, LZCNT, MOVBE, OSXSAVE); this CPU lacks "
            "sse4.2 (MOMA_CPU_HIDE_FEATURES hides sse4.2)"},
           {"x86-64-v2", "popcnt,cmpxchg16b",
            "this program needs an x86-64-v2 CPU (CMPXCHG16B, LAHF-SAHF, "
            "POPCNT, SSE3, SSSE3, SSE4.1, SSE4.2); this CPU lacks cmpxchg16b, "
            "popcnt (MOMA_CPU_HIDE_FEATURES hides popcnt, cmpxchg16b)"}}) {
    HiddenCpuFeatures hidden(hide.c_str());
    moma_program p = load(threadsProgram(level));
    EXPECT_EQ(createSession(p, nullptr, &session), MOMA_STATUS_UNSUPPORTED_CPU);
    EXPECT_EQ(lastError(), message);
    moma_program_free(p);
  }
}

TEST(CpuLevel, AcceptsAProgramBelowTheHiddenFeatures) {
  if (!hostReaches(CpuLevel::X86_64_V3))
    GTEST_SKIP() << "this CPU is not x86-64-v3";
  // An AVX2 machine without AVX-512 runs x86-64-v3 programs, and any CPU
  // runs programs that record no level.
  HiddenCpuFeatures hidden("avx512f,avx512bw,avx512cd,avx512dq,avx512vl,,");
  for (const std::string level : {"x86-64-v3", ""}) {
    moma_program program = load(threadsProgram(level));
    moma_session session = nullptr;
    ASSERT_EQ(createSession(program, nullptr, &session), MOMA_STATUS_OK)
        << lastError();
    EXPECT_EQ(moma_session_run(session), MOMA_STATUS_OK) << lastError();
    moma_session_free(session);
    moma_program_free(program);
  }
}

TEST(CpuLevel, RejectsUnknownHiddenFeatures) {
  HiddenCpuFeatures hidden("avx2,avx9");
  moma_program program = load(threadsProgram());
  moma_session session = nullptr;
  EXPECT_EQ(createSession(program, nullptr, &session),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(lastError(), "MOMA_CPU_HIDE_FEATURES: unknown CPU "
                                    "feature 'avx9' (known: cmpxchg16b, "
                                    "lahf_lm, popcnt,"))
      << lastError();
  moma_program_free(program);
}

//===----------------------------------------------------------------------===//
// Threads
//===----------------------------------------------------------------------===//

/// Runs a session of \p program made with \p options and returns the
/// "threads" output and moma_session_cpu_threads; std::nullopt on failure.
std::optional<std::tuple<int32_t, int32_t, int>>
runThreads(const Program &program, const moma_session_options *options,
           int runs = 1) {
  moma_program handle = load(program);
  moma_session session = nullptr;
  std::optional<std::tuple<int32_t, int32_t, int>> result;
  if (createSession(handle, options, &session) == MOMA_STATUS_OK) {
    int32_t out[2] = {0, 0};
    int threads = 0;
    bool ok = moma_session_cpu_threads(session, &threads) == MOMA_STATUS_OK;
    for (int i = 0; i < runs; ++i)
      ok = ok && moma_session_run(session) == MOMA_STATUS_OK;
    if (ok &&
        moma_session_get_buffer(session, "threads", out, 8) == MOMA_STATUS_OK)
      result = std::make_tuple(out[0], out[1], threads);
  }
  EXPECT_TRUE(result) << lastError();
  moma_session_free(session);
  moma_program_free(handle);
  return result;
}

TEST(CpuThreads, DefaultIsEveryCore) {
  cpu_set_t set;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(set), &set), 0);
  int cores = CPU_COUNT(&set);
  ASSERT_GT(cores, 0);
  // No options, and zero-initialised options, are the same: every core.
  moma_session_options zero = {};
  const moma_session_options *choices[] = {nullptr, &zero};
  for (const moma_session_options *options : choices) {
    auto result = runThreads(threadsProgram(), options);
    ASSERT_TRUE(result);
    auto [threads, calls, reported] = *result;
    EXPECT_EQ(threads, cores);
    EXPECT_EQ(calls, 2); // after loading, and before the run
    EXPECT_EQ(reported, cores);
  }
}

TEST(CpuThreads, ExplicitCountsReachTheModule) {
  for (int n : {1, 3, 64}) {
    moma_session_options options = {};
    options.cpu_threads = n;
    auto result = runThreads(threadsProgram(), &options, /*runs=*/3);
    ASSERT_TRUE(result);
    auto [threads, calls, reported] = *result;
    EXPECT_EQ(threads, n);
    EXPECT_EQ(calls, 4); // after loading, and before each of three runs
    EXPECT_EQ(reported, n);
  }
}

TEST(CpuThreads, ModulesWithoutTheSetterRunOnOneThread) {
  // An older program (no moma_cpu_set_threads) still loads and runs; its
  // kernels run on the calling thread, whatever the options say.
  moma_session_options options = {};
  options.cpu_threads = 4;
  moma_program program = load(makeCpuProgram());
  moma_session session = nullptr;
  ASSERT_EQ(createSession(program, &options, &session), MOMA_STATUS_OK)
      << lastError();
  int threads = 0;
  ASSERT_EQ(moma_session_cpu_threads(session, &threads), MOMA_STATUS_OK);
  EXPECT_EQ(threads, 1);
  EXPECT_EQ(moma_session_cpu_threads(session, nullptr),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(moma_session_cpu_threads(nullptr, &threads),
            MOMA_STATUS_INVALID_ARGUMENT);
  moma_session_free(session);
  moma_program_free(program);
}

TEST(CpuThreads, RejectsBadCounts) {
  moma_program program = load(threadsProgram());
  moma_session session = nullptr;
  moma_session_options options = {};
  options.cpu_threads = -2;
  EXPECT_EQ(createSession(program, &options, &session),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(lastError(), "cpu_threads is -2; expected a positive thread "
                         "count, or 0 for every core");
  // A thread count is for CPU sessions; the check needs no CUDA driver.
  options.cpu_threads = 2;
  EXPECT_EQ(moma_session_create_with_options(program, MOMA_DEVICE_CUDA, 0,
                                             &options, &session),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(lastError(),
            "a thread count (cpu_threads) applies to CPU sessions only");
  moma_program_free(program);
}

} // namespace
