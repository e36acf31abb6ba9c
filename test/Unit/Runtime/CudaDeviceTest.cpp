//===- CudaDeviceTest.cpp - Tests of the CUDA device ----------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The CUDA back end of the C API without a GPU: the no-driver path, and
// sessions on a stand-in driver (FakeCudaDriver.c) that checks every call.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/ProgramBuilder.h"
#include "moma/Format/ProgramFile.h"
#include "moma/Runtime/Runtime.h"

#include <cstdlib>
#include <dlfcn.h>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

TEST(RuntimeCApi, CudaWithoutDriver) {
  if (haveCudaDriver())
    GTEST_SKIP() << "a CUDA driver is installed; see test/Integration";
  ::unsetenv("MOMA_LIBCUDA");
  std::string gpu = packContainer(kManifest, {kPtx});
  moma_program program = nullptr;
  ASSERT_EQ(moma_program_load_from_memory(gpu.data(), gpu.size(), &program),
            MOMA_STATUS_OK);
  moma_session session = nullptr;
  EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CUDA, 0, &session),
            MOMA_STATUS_NO_CUDA_DRIVER);
  EXPECT_EQ(session, nullptr);
  EXPECT_TRUE(contains(lastError(), "no CUDA driver (libcuda.so.1 not found"))
      << lastError();
  // A second attempt gives the same answer (failures are not cached).
  EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CUDA, 0, &session),
            MOMA_STATUS_NO_CUDA_DRIVER);

  // The CUDA stub library: found, every symbol present, cuInit refuses.
  const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (::access(stub, R_OK) == 0) {
    ::setenv("MOMA_LIBCUDA", stub, 1);
    EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CUDA, 0, &session),
              MOMA_STATUS_NO_CUDA_DRIVER);
    EXPECT_TRUE(contains(lastError(), "is the CUDA stub library"))
        << lastError();
    ::unsetenv("MOMA_LIBCUDA");
  }
  // A library that is not a CUDA driver at all.
  ::setenv("MOMA_LIBCUDA", MOMA_TEST_CPU_KERNELS, 1);
  EXPECT_EQ(moma_session_create(program, MOMA_DEVICE_CUDA, 0, &session),
            MOMA_STATUS_NO_CUDA_DRIVER);
  EXPECT_TRUE(contains(lastError(), "it lacks cuInit")) << lastError();
  ::unsetenv("MOMA_LIBCUDA");
  moma_program_free(program);
}

/// Reads a counter of the fake driver (FakeCudaDriver.c).
int fakeCounter(const char *name) {
  void *handle = ::dlopen(MOMA_TEST_FAKE_CUDA, RTLD_NOW | RTLD_NOLOAD);
  if (!handle)
    return -1;
  auto counter = reinterpret_cast<int (*)()>(::dlsym(handle, name));
  int value = counter ? counter() : -1;
  ::dlclose(handle);
  return value;
}

/// A GPU program with the kernels of test/Integration/Inputs/vadd.ptx:
/// c = a + b; y = 0.5 * c + 2; z = y + b (with 64 KiB of dynamic shared
/// memory). The arena alignment exceeds cuMemAlloc's 256 bytes.
Program makeGpuProgram(Target target, ModuleFormat format,
                       const std::string &image,
                       std::vector<std::string> functions = {"vadd", "scale"}) {
  ProgramBuilder builder(target, 512);
  builder.addModule(format, image, std::move(functions), "vadd");
  uint64_t a =
      builder.addBuffer("a", BufferRole::Input, ElementType::F32, {kN});
  uint64_t b =
      builder.addBuffer("b", BufferRole::Weight, ElementType::F32, {kN});
  uint64_t c =
      builder.addBuffer("c", BufferRole::Output, ElementType::F32, {kN});
  uint64_t y =
      builder.addBuffer("y", BufferRole::Output, ElementType::F32, {kN});
  uint64_t z =
      builder.addBuffer("z", BufferRole::Output, ElementType::F32, {kN});
  builder.addLaunch(0, "vadd", {1, 1, 1}, {128, 1, 1}, vaddArgs(a, b, c));
  builder.addLaunch(0, "scale", {4, 1, 1}, {32, 1, 1}, scaleArgs(c, y));
  builder.addLaunch(0, "vadd", {kN, 1, 1}, {1, 1, 1}, vaddArgs(y, b, z),
                    64 * 1024);
  return buildProgram(builder);
}

/// Loads \p program into a handle.
moma_program load(const Program &program) {
  absl::StatusOr<std::string> bytes = serializeProgram(program);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  moma_program handle = nullptr;
  EXPECT_EQ(
      moma_program_load_from_memory(bytes->data(), bytes->size(), &handle),
      MOMA_STATUS_OK)
      << lastError();
  return handle;
}

/// Expects that creating a CUDA session for \p program fails with \p code
/// and a message containing \p needle.
void expectCudaSessionFails(const Program &program, moma_status code,
                            const std::string &needle) {
  moma_program handle = load(program);
  moma_session session = nullptr;
  EXPECT_EQ(moma_session_create(handle, MOMA_DEVICE_CUDA, 0, &session), code)
      << lastError();
  EXPECT_EQ(session, nullptr);
  EXPECT_TRUE(contains(lastError(), needle)) << lastError();
  moma_program_free(handle);
}

TEST(RuntimeCApi, CudaBackEndWithAFakeDriver) {
  TempDir dir;
  ::setenv("MOMA_LIBCUDA", MOMA_TEST_FAKE_CUDA, 1);
  ::unsetenv("FAKE_CUDA_CC");
  moma_program program =
      load(makeGpuProgram(Target::Sm80, ModuleFormat::Ptx, "// ptx\n"));
  moma_session session = nullptr;
  ASSERT_EQ(moma_session_create(program, MOMA_DEVICE_CUDA, 0, &session),
            MOMA_STATUS_OK)
      << lastError();
  EXPECT_STREQ(moma_session_device_name(session),
               "cuda:0 (Fake GPU, sm_90, driver 13.0; ptx)");
  int threads = 0;
  EXPECT_EQ(moma_session_cpu_threads(session, &threads),
            MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(), "it has no thread count")) << lastError();
  size_t loaded = 0;
  ASSERT_EQ(moma_session_load_weights(session, writeWeights(dir, {"b"}).c_str(),
                                      &loaded),
            MOMA_STATUS_OK)
      << lastError();
  EXPECT_EQ(loaded, 1u);

  auto check = [&](float shift) {
    std::vector<float> a(kN), c(kN), y(kN), z(kN);
    for (int i = 0; i < kN; ++i)
      a[i] = 0.25f * i + shift;
    ASSERT_EQ(moma_session_set_buffer(session, "a", a.data(), kN * 4),
              MOMA_STATUS_OK);
    ASSERT_EQ(moma_session_run(session), MOMA_STATUS_OK) << lastError();
    ASSERT_EQ(moma_session_get_buffer(session, "c", c.data(), kN * 4),
              MOMA_STATUS_OK);
    ASSERT_EQ(moma_session_get_buffer(session, "y", y.data(), kN * 4),
              MOMA_STATUS_OK);
    ASSERT_EQ(moma_session_get_buffer(session, "z", z.data(), kN * 4),
              MOMA_STATUS_OK);
    for (int i = 0; i < kN; ++i) {
      float b = float(i % 7 - 3);
      ASSERT_EQ(c[i], a[i] + b) << i;
      ASSERT_EQ(y[i], 0.5f * c[i] + 2.0f) << i;
      ASSERT_EQ(z[i], y[i] + b) << i;
    }
    double ms = 0;
    ASSERT_EQ(moma_session_last_run_ms(session, &ms), MOMA_STATUS_OK);
    EXPECT_EQ(ms, 0.25);
  };
  int launches = fakeCounter("fake_cuda_kernel_launches");
  int graphs = fakeCounter("fake_cuda_graph_launches");
  check(0);
  EXPECT_EQ(fakeCounter("fake_cuda_kernel_launches"), launches + 3);
  // Graph replay: captured once, then replayed, reading the current inputs.
  ASSERT_EQ(moma_session_use_graph(session, 1), MOMA_STATUS_OK);
  check(1);
  check(2);
  check(3);
  EXPECT_EQ(fakeCounter("fake_cuda_kernel_launches"), launches + 3);
  EXPECT_EQ(fakeCounter("fake_cuda_graph_launches"), graphs + 3);
  ASSERT_EQ(moma_session_use_graph(session, 0), MOMA_STATUS_OK);
  check(4);
  EXPECT_EQ(fakeCounter("fake_cuda_kernel_launches"), launches + 6);
  moma_session_free(session);
  moma_program_free(program);
  EXPECT_EQ(fakeCounter("fake_cuda_live_allocations"), 0);

  // Device errors carry the driver's names and logs.
  expectCudaSessionFails(
      makeGpuProgram(Target::Sm80, ModuleFormat::Ptx,
                     "this is not an instruction"),
      MOMA_STATUS_DEVICE_ERROR,
      "module 0 ('vadd') (ptx) does not load: CUDA_ERROR_INVALID_PTX (fake "
      "driver error): ptxas fatal: syntax error");
  expectCudaSessionFails(makeGpuProgram(Target::Sm80, ModuleFormat::Ptx,
                                        "// ptx\n", {"vadd", "scale", "gemm"}),
                         MOMA_STATUS_DEVICE_ERROR,
                         "kernel 'gemm' not found: CUDA_ERROR_NOT_FOUND");
  expectCudaSessionFails(makeCpuProgram(), MOMA_STATUS_UNSUPPORTED,
                         "the program targets cpu");
  {
    moma_program handle =
        load(makeGpuProgram(Target::Sm80, ModuleFormat::Ptx, "// ptx\n"));
    moma_session none = nullptr;
    EXPECT_EQ(moma_session_create(handle, MOMA_DEVICE_CUDA, 3, &none),
              MOMA_STATUS_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(lastError(), "CUDA device 3 does not exist"));
    moma_program_free(handle);
  }
  // Targets against compute capabilities: PTX runs on newer GPUs, sm_90a
  // only on 9.0, a cubin only within its major version.
  ::setenv("FAKE_CUDA_CC", "80", 1);
  expectCudaSessionFails(
      makeGpuProgram(Target::Sm90, ModuleFormat::Ptx, "// ptx\n"),
      MOMA_STATUS_UNSUPPORTED,
      "the program targets sm_90 (ptx), but cuda:0 "
      "(Fake GPU, sm_80, driver 13.0) cannot run it");
  ::setenv("FAKE_CUDA_CC", "100", 1);
  expectCudaSessionFails(
      makeGpuProgram(Target::Sm90a, ModuleFormat::Ptx, "// ptx\n"),
      MOMA_STATUS_UNSUPPORTED, "sm_90a needs compute capability 9.0");
  expectCudaSessionFails(
      makeGpuProgram(Target::Sm90, ModuleFormat::Cubin, "ELF"),
      MOMA_STATUS_UNSUPPORTED, "a cubin needs the same major");
  moma_program newer =
      load(makeGpuProgram(Target::Sm90, ModuleFormat::Ptx, "// ptx\n"));
  ASSERT_EQ(moma_session_create(newer, MOMA_DEVICE_CUDA, 0, &session),
            MOMA_STATUS_OK)
      << lastError();
  moma_session_free(session);
  moma_program_free(newer);
  EXPECT_EQ(fakeCounter("fake_cuda_live_allocations"), 0);
  ::unsetenv("FAKE_CUDA_CC");
  ::unsetenv("MOMA_LIBCUDA");
}

/// Creates a CUDA session for \p program with \p image; returns the status
/// and, on success, the device name.
std::pair<moma_status, std::string> cudaSession(const Program &program,
                                                moma_kernel_image image) {
  moma_program handle = load(program);
  moma_session session = nullptr;
  moma_session_options options = {};
  options.kernel_image = image;
  moma_status status = moma_session_create_with_options(
      handle, MOMA_DEVICE_CUDA, 0, &options, &session);
  std::string name =
      status == MOMA_STATUS_OK ? moma_session_device_name(session) : "";
  EXPECT_EQ(status == MOMA_STATUS_OK, session != nullptr);
  moma_session_free(session);
  moma_program_free(handle);
  return {status, name};
}

TEST(RuntimeCApi, CudaKernelImages) {
  ::setenv("MOMA_LIBCUDA", MOMA_TEST_FAKE_CUDA, 1);
  ::unsetenv("FAKE_CUDA_CC");
  Program sm90 = makeGpuProgram(Target::Sm90, ModuleFormat::Ptx, "// ptx\n");
  sm90.modules[0].alternatives.push_back({ModuleFormat::Cubin, "ELF cubin"});
  const std::string gpu = "cuda:0 (Fake GPU, sm_90, driver 13.0; ";
  using Result = std::pair<moma_status, std::string>;
  // The cubin where it runs, unless the PTX is asked for.
  EXPECT_EQ(cudaSession(sm90, MOMA_KERNEL_IMAGE_AUTO),
            Result(MOMA_STATUS_OK, gpu + "cubin)"));
  EXPECT_EQ(cudaSession(sm90, MOMA_KERNEL_IMAGE_PTX),
            Result(MOMA_STATUS_OK, gpu + "ptx)"));
  EXPECT_EQ(cudaSession(sm90, MOMA_KERNEL_IMAGE_CUBIN),
            Result(MOMA_STATUS_OK, gpu + "cubin)"));
  // A cubin the driver rejects falls back to the PTX, unless only cubins
  // may load; then both the format and the driver's log are named.
  Program badCubin = sm90;
  badCubin.modules[0].alternatives[0].bytes = "this is not an instruction";
  EXPECT_EQ(cudaSession(badCubin, MOMA_KERNEL_IMAGE_AUTO),
            Result(MOMA_STATUS_OK, gpu + "ptx)"));
  EXPECT_EQ(cudaSession(badCubin, MOMA_KERNEL_IMAGE_CUBIN).first,
            MOMA_STATUS_DEVICE_ERROR);
  EXPECT_TRUE(contains(lastError(), "module 0 ('vadd') (cubin) does not "
                                    "load: CUDA_ERROR_INVALID_PTX (fake "
                                    "driver error): ptxas fatal"))
      << lastError();
  Program bothBad = badCubin;
  bothBad.modules[0].bytes = "this is not an instruction";
  EXPECT_EQ(cudaSession(bothBad, MOMA_KERNEL_IMAGE_AUTO).first,
            MOMA_STATUS_DEVICE_ERROR);
  EXPECT_TRUE(contains(lastError(), "(cubin) does not load")) << lastError();
  EXPECT_TRUE(contains(lastError(), "; module 0 ('vadd') (ptx) does not load"))
      << lastError();
  // Asking for a format the program lacks, or one this GPU cannot run.
  EXPECT_EQ(cudaSession(makeGpuProgram(Target::Sm90, ModuleFormat::Ptx, "p"),
                        MOMA_KERNEL_IMAGE_CUBIN)
                .first,
            MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(),
                       "module 0 has no cubin image that cuda:0 (Fake GPU, "
                       "sm_90, driver 13.0) can run (it has ptx), and only "
                       "cubin was asked for"))
      << lastError();
  ::setenv("FAKE_CUDA_CC", "100", 1);
  EXPECT_EQ(cudaSession(sm90, MOMA_KERNEL_IMAGE_AUTO),
            Result(MOMA_STATUS_OK, "cuda:0 (Fake GPU, sm_100, driver 13.0; "
                                   "ptx)"));
  EXPECT_EQ(cudaSession(sm90, MOMA_KERNEL_IMAGE_CUBIN).first,
            MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(), "it has ptx, cubin")) << lastError();
  ::setenv("FAKE_CUDA_CC", "80", 1);
  EXPECT_EQ(cudaSession(sm90, MOMA_KERNEL_IMAGE_AUTO).first,
            MOMA_STATUS_UNSUPPORTED);
  EXPECT_TRUE(contains(lastError(),
                       "the program targets sm_90 (ptx, cubin), but cuda:0 "
                       "(Fake GPU, sm_80, driver 13.0) cannot run it (PTX "
                       "needs at least the target's compute capability)"))
      << lastError();
  ::unsetenv("FAKE_CUDA_CC");
  EXPECT_EQ(fakeCounter("fake_cuda_live_allocations"), 0);

  // Bad options: an unknown choice, and a choice for a CPU session.
  moma_program handle = load(sm90);
  moma_session session = nullptr;
  moma_session_options options = {};
  options.kernel_image = static_cast<moma_kernel_image>(7);
  EXPECT_EQ(moma_session_create_with_options(handle, MOMA_DEVICE_CUDA, 0,
                                             &options, &session),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(lastError(), "unknown kernel image choice 7"));
  moma_program_free(handle);
  handle = load(makeCpuProgram());
  options.kernel_image = MOMA_KERNEL_IMAGE_PTX;
  EXPECT_EQ(moma_session_create_with_options(handle, MOMA_DEVICE_CPU, 0,
                                             &options, &session),
            MOMA_STATUS_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(lastError(), "applies to CUDA sessions only"));
  EXPECT_EQ(session, nullptr);
  moma_program_free(handle);
  ::unsetenv("MOMA_LIBCUDA");
}

} // namespace
