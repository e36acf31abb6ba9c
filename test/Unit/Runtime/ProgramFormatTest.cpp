//===- ProgramFormatTest.cpp - Tests of the program format ----------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The program format (lib/Format): round trips, every rejection of the
// container and the manifest, crash-freedom on damaged bytes, module image
// selection, the builder, the validator and program specs.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/ProgramBuilder.h"
#include "moma/Format/ProgramFile.h"

#include <cmath>
#include <random>
#include <sys/stat.h>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

/// Returns \p text with the single occurrence of \p from replaced by \p to.
std::string replaced(std::string text, const std::string &from,
                     const std::string &to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "'" << from << "' not in the text";
  if (at == std::string::npos)
    return text;
  EXPECT_EQ(text.find(from, at + 1), std::string::npos)
      << "'" << from << "' occurs twice";
  return text.replace(at, from.size(), to);
}

/// Parses a file built from \p manifest and expects an error of \p code whose
/// message contains \p needle.
void expectRejected(const std::string &bytes, absl::StatusCode code,
                    const std::string &needle) {
  absl::StatusOr<Program> program = parseProgram(bytes, "test.momaprog");
  ASSERT_FALSE(program.ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(program.status().code(), code) << program.status();
  EXPECT_NE(std::string(program.status().message()).find(needle),
            std::string::npos)
      << "message: " << program.status().message()
      << "\nexpected to contain: " << needle;
  EXPECT_EQ(std::string(program.status().message()).rfind("test.momaprog", 0),
            0u)
      << "the message should name the file: " << program.status().message();
}

void expectManifestRejected(const std::string &manifest,
                            const std::string &needle) {
  expectRejected(packContainer(manifest, {kPtx}), absl::StatusCode::kDataLoss,
                 needle);
}

/// A program exercising every field, for round trips.
Program makeRichProgram() {
  ProgramBuilder builder(Target::Sm90a, 128);
  builder.addModule(ModuleFormat::Ptx, "// ptx one\n", {"first", "second"},
                    "attention");
  builder.addModule(ModuleFormat::Cubin,
                    std::string("\x7f"
                                "ELF\0\1\2",
                                7),
                    {"gemm"});
  builder.addModuleAlternative(0, ModuleFormat::Cubin,
                               "\x7f"
                               "ELF one");
  builder.addModuleAlternative(1, ModuleFormat::Ptx, "// ptx of gemm\n");
  uint64_t x =
      builder.addBuffer("x", BufferRole::Input, ElementType::BF16, {2, 3, 4});
  uint64_t w =
      builder.addBuffer("w", BufferRole::Weight, ElementType::F16, {4, 4});
  uint64_t s1 =
      builder.addBuffer("s1", BufferRole::Scratch, ElementType::F64, {8});
  builder.addBufferAt("s2", BufferRole::Scratch, ElementType::I64, {4}, s1);
  builder.addBuffer("scalar", BufferRole::Weight, ElementType::I32, {});
  uint64_t y =
      builder.addBuffer("y", BufferRole::Output, ElementType::F32, {2, 0, 5});
  builder.addBuffer("empty", BufferRole::Output, ElementType::F32, {0});
  builder.addLaunch(0, "second", {7, 2, 3}, {32, 4, 2},
                    {LaunchArg::buffer(x), LaunchArg::buffer(w + 2),
                     LaunchArg::i32(-5), LaunchArg::i64(-(int64_t(1) << 40)),
                     LaunchArg::f32(NAN), LaunchArg::f64(-INFINITY),
                     LaunchArg::f32(0.1f), LaunchArg::f64(1e-300)},
                    100 * 1024);
  builder.addLaunch(1, "gemm", {1, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(s1), LaunchArg::buffer(y)});
  return buildProgram(builder);
}

void expectSamePrograms(const Program &a, const Program &b) {
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.cpuLevel, b.cpuLevel);
  EXPECT_EQ(a.arenaSize, b.arenaSize);
  EXPECT_EQ(a.arenaAlignment, b.arenaAlignment);
  ASSERT_EQ(a.modules.size(), b.modules.size());
  for (size_t i = 0; i < a.modules.size(); ++i) {
    EXPECT_EQ(a.modules[i].name, b.modules[i].name);
    EXPECT_EQ(a.modules[i].format, b.modules[i].format);
    EXPECT_EQ(a.modules[i].functions, b.modules[i].functions);
    EXPECT_EQ(a.modules[i].bytes, b.modules[i].bytes);
    ASSERT_EQ(a.modules[i].alternatives.size(),
              b.modules[i].alternatives.size());
    for (size_t j = 0; j < a.modules[i].alternatives.size(); ++j) {
      EXPECT_EQ(a.modules[i].alternatives[j].format,
                b.modules[i].alternatives[j].format);
      EXPECT_EQ(a.modules[i].alternatives[j].bytes,
                b.modules[i].alternatives[j].bytes);
    }
  }
  ASSERT_EQ(a.buffers.size(), b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    EXPECT_EQ(a.buffers[i].name, b.buffers[i].name);
    EXPECT_EQ(a.buffers[i].role, b.buffers[i].role);
    EXPECT_EQ(a.buffers[i].type, b.buffers[i].type);
    EXPECT_EQ(a.buffers[i].shape, b.buffers[i].shape);
    EXPECT_EQ(a.buffers[i].offset, b.buffers[i].offset);
    EXPECT_EQ(a.buffers[i].byteSize, b.buffers[i].byteSize);
  }
  ASSERT_EQ(a.launches.size(), b.launches.size());
  for (size_t i = 0; i < a.launches.size(); ++i) {
    const Launch &x = a.launches[i], &y = b.launches[i];
    EXPECT_EQ(x.module, y.module);
    EXPECT_EQ(x.function, y.function);
    EXPECT_EQ(x.grid.x, y.grid.x);
    EXPECT_EQ(x.grid.y, y.grid.y);
    EXPECT_EQ(x.grid.z, y.grid.z);
    EXPECT_EQ(x.block.x, y.block.x);
    EXPECT_EQ(x.block.y, y.block.y);
    EXPECT_EQ(x.block.z, y.block.z);
    EXPECT_EQ(x.sharedMemBytes, y.sharedMemBytes);
    ASSERT_EQ(x.args.size(), y.args.size());
    for (size_t j = 0; j < x.args.size(); ++j) {
      EXPECT_EQ(x.args[j].kind, y.args[j].kind);
      EXPECT_EQ(x.args[j].offset, y.args[j].offset);
      EXPECT_EQ(x.args[j].scalarType, y.args[j].scalarType);
      EXPECT_EQ(x.args[j].bits, y.args[j].bits);
    }
  }
}

//===----------------------------------------------------------------------===//
// Program format
//===----------------------------------------------------------------------===//

TEST(ProgramFormat, Crc32MatchesZlib) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("6789", crc32("12345")), 0xCBF43926u);
}

TEST(ProgramFormat, RoundTripInMemory) {
  Program program = makeRichProgram();
  absl::StatusOr<std::string> bytes = serializeProgram(program);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->substr(0, 8), "MOMAPROG");
  absl::StatusOr<Program> parsed = parseProgram(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  expectSamePrograms(program, *parsed);
  // Serialization is deterministic.
  absl::StatusOr<std::string> again = serializeProgram(*parsed);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*bytes, *again);
  // Float scalars keep their exact bits, NaN included.
  EXPECT_EQ(parsed->launches[0].args[4].bits, 0x7fc00000u);
}

TEST(ProgramFormat, RoundTripThroughFileIsAtomic) {
  TempDir dir;
  Program program = makeRichProgram();
  std::string path = dir.file("p.momaprog");
  ASSERT_TRUE(writeProgram(program, path).ok());
  absl::StatusOr<Program> parsed = readProgram(path);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  expectSamePrograms(program, *parsed);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"p.momaprog"});

  // An invalid program is not written, and the old file stays.
  std::string before = readFile(path);
  Program invalid = program;
  invalid.buffers[0].offset = 1u << 30;
  absl::Status status = writeProgram(invalid, path);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(readFile(path), before);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"p.momaprog"});

  // A missing directory is an error, not a crash.
  EXPECT_FALSE(writeProgram(program, dir.file("no/such/dir.momaprog")).ok());
  EXPECT_EQ(readProgram(dir.file("missing.momaprog")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ProgramFormat, IndependentPackerMatchesTheSpec) {
  // A file assembled from the documented layout alone is accepted.
  absl::StatusOr<Program> program =
      parseProgram(packContainer(kManifest, {kPtx}));
  ASSERT_TRUE(program.ok()) << program.status();
  EXPECT_EQ(program->target, Target::Sm90);
  EXPECT_EQ(program->modules[0].bytes, kPtx);
  EXPECT_EQ(program->buffers[2].name, "c");
  EXPECT_EQ(program->launches[0].args[3].bits, 4u);
}

TEST(ProgramFormat, RejectsForeignAndTruncatedFiles) {
  expectRejected("", absl::StatusCode::kDataLoss, "not a moma program");
  expectRejected("MOMA", absl::StatusCode::kDataLoss, "not a moma program");
  expectRejected(std::string("\x7f"
                             "ELF\2\1\1\0\0\0\0\0\0\0\0\0",
                             16),
                 absl::StatusCode::kDataLoss, "not a moma program");
  std::string good = packContainer(kManifest, {kPtx});
  std::string bad = good;
  bad[7] = 'X';
  expectRejected(bad, absl::StatusCode::kDataLoss, "not a moma program");
  expectRejected(good.substr(0, 10), absl::StatusCode::kDataLoss, "truncated");
  expectRejected(good.substr(0, 30), absl::StatusCode::kDataLoss, "truncated");
  expectRejected(good.substr(0, good.size() - 1), absl::StatusCode::kDataLoss,
                 "truncated: the header says");
  expectRejected(good + "x", absl::StatusCode::kDataLoss, "trailing data");
  // Every prefix is rejected without reading past it.
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(parseProgram(std::string_view(good).substr(0, n)).ok()) << n;
}

TEST(ProgramFormat, RejectsNewerVersion) {
  std::string bytes = packContainer(kManifest, {kPtx}, /*version=*/5);
  expectRejected(bytes, absl::StatusCode::kUnimplemented,
                 "written by a newer moma (program format version 5; this "
                 "runtime reads versions up to 4)");
  // The version is checked before the checksum: a newer layout may differ.
  bytes[40] ^= 1;
  expectRejected(bytes, absl::StatusCode::kUnimplemented, "newer moma");
  expectRejected(packContainer(kManifest, {kPtx}, /*version=*/0),
                 absl::StatusCode::kDataLoss, "version 0");
}

TEST(ProgramFormat, ModuleAlternatives) {
  // Version 2: a module lists other images of its kernels, each in its own
  // section.
  const std::string withCubin = replaced(
      kManifest, R"("functions":["vadd"]})",
      R"("functions":["vadd"],"alternatives":[{"format":"cubin","section":2}]})");
  const std::string cubin = "\x7f"
                            "ELF cubin";
  absl::StatusOr<Program> program =
      parseProgram(packContainer(withCubin, {kPtx, cubin}, /*version=*/2));
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_EQ(program->modules[0].alternatives.size(), 1u);
  EXPECT_EQ(program->modules[0].alternatives[0].format, ModuleFormat::Cubin);
  EXPECT_EQ(program->modules[0].alternatives[0].bytes, cubin);
  // The writer numbers sections module by module, each image followed by
  // its alternatives, and writes the current version.
  absl::StatusOr<std::string> bytes = serializeProgram(*program);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(getU64(*bytes, 8) & 0xffffffffu, kProgramFormatVersion);
  EXPECT_NE(programManifestJson(*program, false)
                .find(R"("alternatives":[{"format":"cubin","section":2}])"),
            std::string::npos)
      << programManifestJson(*program, false);

  // Version 1 files are read, but had no alternatives.
  EXPECT_TRUE(parseProgram(packContainer(kManifest, {kPtx}, 1)).ok());
  expectRejected(packContainer(withCubin, {kPtx, cubin}, /*version=*/1),
                 absl::StatusCode::kDataLoss,
                 "module 0 has alternative images, which program format "
                 "version 1 does not have");

  auto rejected = [&](const std::string &manifest,
                      const std::vector<std::string> &sections,
                      const std::string &needle) {
    expectRejected(packContainer(manifest, sections, 2),
                   absl::StatusCode::kDataLoss, needle);
  };
  rejected(replaced(withCubin,
                    R"("alternatives":[{"format":"cubin","section":2}])",
                    R"("alternatives":{"format":"cubin"})"),
           {kPtx}, "manifest.modules[0].alternatives: expected an array");
  rejected(replaced(withCubin, R"("section":2})", R"("section":2,"arch":"x"})"),
           {kPtx, cubin},
           "manifest.modules[0].alternatives[0]: unknown key \"arch\"");
  rejected(replaced(withCubin, R"({"format":"cubin","section":2})",
                    R"({"format":"sass","section":2})"),
           {kPtx, cubin},
           "manifest.modules[0].alternatives[0].format: unknown module format "
           "\"sass\"");
  rejected(replaced(withCubin, R"("section":2})", R"("section":1})"), {kPtx},
           "alternatives[0].section: section 1 is used twice");
  rejected(withCubin, {kPtx},
           "alternatives[0].section: 2 is not a module "
           "section");
  rejected(withCubin, {kPtx, cubin, cubin}, "section 3 is not used");
  rejected(replaced(withCubin, R"({"format":"cubin","section":2})",
                    R"({"format":"ptx","section":2})"),
           {kPtx, kPtx},
           "module 0 ('k'): alternative 0: a second 'ptx' image (each format "
           "at most once per module)");
  rejected(replaced(withCubin, R"({"format":"cubin","section":2})",
                    R"({"format":"cpu-so","section":2})"),
           {kPtx, cubin},
           "alternative 0: format 'cpu-so' cannot run on target 'sm_90'");
  rejected(withCubin, {kPtx, ""}, "alternative 0: the image is empty");

  // Only GPU modules carry alternatives.
  ProgramBuilder cpu(Target::Cpu, 64);
  cpu.addModule(ModuleFormat::CpuSo, "x", {"k"});
  cpu.addModuleAlternative(0, ModuleFormat::Ptx, "// ptx\n");
  absl::StatusOr<Program> built = cpu.build();
  ASSERT_FALSE(built.ok());
  EXPECT_NE(std::string(built.status().message())
                .find("module 0: only GPU modules carry alternative images"),
            std::string::npos)
      << built.status();
}

TEST(ProgramFormat, StateRole) {
  // Version 4: buffers of role "state" (a training program's optimizer
  // moments), which persist between runs.
  EXPECT_EQ(bufferRoleName(BufferRole::State), "state");
  EXPECT_EQ(parseBufferRole("state"), BufferRole::State);
  const std::string withState =
      replaced(kManifest, R"({"name":"b","role":"weight")",
               R"({"name":"b","role":"state")");
  absl::StatusOr<Program> program =
      parseProgram(packContainer(withState, {kPtx}, /*version=*/4));
  ASSERT_TRUE(program.ok()) << program.status();
  EXPECT_EQ(program->buffers[1].role, BufferRole::State);
  // The writer keeps the role and writes version 4.
  absl::StatusOr<std::string> bytes = serializeProgram(*program);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(getU64(*bytes, 8) & 0xffffffffu, 4u);
  EXPECT_NE(programManifestJson(*program, false)
                .find(R"({"name":"b","role":"state","type":"f32")"),
            std::string::npos)
      << programManifestJson(*program, false);
  absl::StatusOr<Program> again = parseProgram(*bytes);
  ASSERT_TRUE(again.ok()) << again.status();
  expectSamePrograms(*program, *again);

  // Older versions had no state buffers; their other roles still load.
  for (uint32_t version : {1u, 2u, 3u}) {
    expectRejected(packContainer(withState, {kPtx}, version),
                   absl::StatusCode::kDataLoss,
                   "buffer 'b' has role \"state\", which program format "
                   "version " +
                       std::to_string(version) +
                       " does not have (it came with version 4)");
    EXPECT_TRUE(parseProgram(packContainer(kManifest, {kPtx}, version)).ok())
        << version;
  }
  // An unknown role names the five known ones.
  expectRejected(packContainer(replaced(kManifest, R"("role":"weight")",
                                        R"("role":"moment")"),
                               {kPtx}, 4),
                 absl::StatusCode::kDataLoss,
                 "manifest.buffers[1].role: unknown role \"moment\" (expected "
                 "input, weight, output, scratch or state)");
  // State buffers may not overlap other buffers (only scratch may).
  expectRejected(packContainer(replaced(withState, R"("offset":256,"size":16)",
                                        R"("offset":0,"size":16)"),
                               {kPtx}, 4),
                 absl::StatusCode::kDataLoss, "overlaps");
}

/// A valid manifest of a CPU program with one cpu-so module, whose target
/// key is followed by \p extra (e.g. a "cpu" key).
std::string cpuManifest(const std::string &extra = "") {
  std::string manifest =
      replaced(kManifest, R"("target":"sm_90",)", R"("target":"cpu",)" + extra);
  return replaced(manifest, R"("format":"ptx")", R"("format":"cpu-so")");
}

TEST(ProgramFormat, CpuLevel) {
  // Version 3: a CPU program records the CPU level its kernels need.
  for (CpuLevel level : {CpuLevel::X86_64, CpuLevel::X86_64_V2,
                         CpuLevel::X86_64_V3, CpuLevel::X86_64_V4}) {
    std::string name(cpuLevelName(level));
    EXPECT_EQ(parseCpuLevel(name), level) << name;
    absl::StatusOr<Program> program = parseProgram(packContainer(
        cpuManifest(R"("cpu":")" + name + R"(",)"), {kPtx}, /*version=*/3));
    ASSERT_TRUE(program.ok()) << program.status();
    EXPECT_EQ(program->cpuLevel, name);
    EXPECT_EQ(program->requiredCpuLevel(), level);
    // The writer keeps it, right after the target.
    EXPECT_NE(programManifestJson(*program, false)
                  .find(R"({"target":"cpu","cpu":")" + name + R"(",)"),
              std::string::npos)
        << programManifestJson(*program, false);
    absl::StatusOr<std::string> bytes = serializeProgram(*program);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<Program> again = parseProgram(*bytes);
    ASSERT_TRUE(again.ok()) << again.status();
    expectSamePrograms(*program, *again);
  }
  EXPECT_EQ(parseCpuLevel("x86-64-v5"), std::nullopt);
  EXPECT_EQ(parseCpuLevel("X86-64-V3"), std::nullopt);

  // Absent means x86-64, and older files (no key) keep loading.
  for (uint32_t version : {1u, 2u, 3u}) {
    absl::StatusOr<Program> old =
        parseProgram(packContainer(cpuManifest(), {kPtx}, version));
    ASSERT_TRUE(old.ok()) << old.status();
    EXPECT_EQ(old->cpuLevel, "");
    EXPECT_EQ(old->requiredCpuLevel(), CpuLevel::X86_64);
    EXPECT_EQ(programManifestJson(*old, false).find(R"("cpu":)"),
              std::string::npos);
  }

  // The key came with version 3; its value is a known level, on a CPU
  // program only.
  expectRejected(packContainer(cpuManifest(R"("cpu":"x86-64-v3",)"), {kPtx},
                               /*version=*/2),
                 absl::StatusCode::kDataLoss,
                 "the manifest records a CPU level (\"cpu\"), which program "
                 "format version 2 does not have (it came with version 3)");
  auto rejected = [&](const std::string &manifest, const std::string &needle) {
    expectRejected(packContainer(manifest, {kPtx}, 3),
                   absl::StatusCode::kDataLoss, needle);
  };
  rejected(cpuManifest(R"("cpu":3,)"), "manifest.cpu: expected a string");
  rejected(cpuManifest(R"("cpu":"x86-64-v5",)"),
           "invalid program: \"cpu\": unknown CPU level 'x86-64-v5' "
           "(expected x86-64, x86-64-v2, x86-64-v3 or x86-64-v4)");
  rejected(cpuManifest(R"("cpu":"",)"),
           "manifest.cpu: expected a CPU level, not \"\"");
  rejected(replaced(kManifest, R"("target":"sm_90",)",
                    R"("target":"sm_90","cpu":"x86-64-v3",)"),
           "invalid program: \"cpu\": CPU level 'x86-64-v3' on a program "
           "for target 'sm_90' (only 'cpu' programs record a CPU level)");

  // The builder sets it; build() and the writer validate it.
  ProgramBuilder builder(Target::Cpu, 64);
  builder.addModule(ModuleFormat::CpuSo, "x", {"k"});
  builder.setCpuLevel("x86-64-v4");
  absl::StatusOr<Program> built = builder.build();
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->cpuLevel, "x86-64-v4");
  builder.setCpuLevel("avx2");
  built = builder.build();
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().message(),
            "\"cpu\": unknown CPU level 'avx2' (expected x86-64, x86-64-v2, "
            "x86-64-v3 or x86-64-v4)");
  ProgramBuilder gpu(Target::Sm80);
  gpu.addModule(ModuleFormat::Ptx, "// ptx\n", {"k"});
  gpu.setCpuLevel("x86-64-v3");
  built = gpu.build();
  ASSERT_FALSE(built.ok());
  EXPECT_NE(std::string(built.status().message())
                .find("CPU level 'x86-64-v3' on a program for target 'sm_80'"),
            std::string::npos)
      << built.status();
  Program invalid = makeRichProgram();
  invalid.cpuLevel = "x86-64";
  EXPECT_FALSE(serializeProgram(invalid).ok());
}

TEST(ProgramFormat, SelectsModuleImages) {
  KernelModule ptxOnly;
  ptxOnly.format = ModuleFormat::Ptx;
  ptxOnly.bytes = "ptx";
  KernelModule both = ptxOnly;
  both.alternatives.push_back({ModuleFormat::Cubin, "cubin"});
  KernelModule cubinOnly;
  cubinOnly.format = ModuleFormat::Cubin;
  cubinOnly.bytes = "cubin";
  auto formats = [](const KernelModule &module, Target target, int cc,
                    ImagePreference preference = ImagePreference::Auto) {
    std::string out;
    for (const ImageChoice &choice :
         selectModuleImages(module, target, cc / 10, cc % 10, preference))
      out += (out.empty() ? "" : ",") +
             std::string(moduleFormatName(choice.format)) + "=" + *choice.bytes;
    return out;
  };
  using P = ImagePreference;
  // The cubin first where it runs: same major version, at least the minor.
  EXPECT_EQ(formats(both, Target::Sm90, 90), "cubin=cubin,ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm80, 80), "cubin=cubin,ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm80, 86), "cubin=cubin,ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm80, 89), "cubin=cubin,ptx=ptx");
  // PTX on newer majors, nothing on older GPUs.
  EXPECT_EQ(formats(both, Target::Sm80, 90), "ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm90, 100), "ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm90, 89), "");
  EXPECT_EQ(formats(cubinOnly, Target::Sm80, 90), "");
  // sm_90a code runs on 9.0 only.
  EXPECT_EQ(formats(both, Target::Sm90a, 90), "cubin=cubin,ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm90a, 100), "");
  EXPECT_EQ(formats(ptxOnly, Target::Sm90a, 100), "");
  // Preferences restrict the formats.
  EXPECT_EQ(formats(both, Target::Sm90, 90, P::Ptx), "ptx=ptx");
  EXPECT_EQ(formats(both, Target::Sm90, 90, P::Cubin), "cubin=cubin");
  EXPECT_EQ(formats(ptxOnly, Target::Sm90, 90, P::Cubin), "");
  EXPECT_EQ(formats(both, Target::Sm80, 90, P::Cubin), "");
  // The image order inside the module does not matter; CPU modules have no
  // GPU images.
  KernelModule reversed = cubinOnly;
  reversed.alternatives.push_back({ModuleFormat::Ptx, "ptx"});
  EXPECT_EQ(formats(reversed, Target::Sm90, 90), "cubin=cubin,ptx=ptx");
  KernelModule so;
  so.format = ModuleFormat::CpuSo;
  so.bytes = "so";
  EXPECT_EQ(formats(so, Target::Cpu, 90), "");
}

TEST(ProgramFormat, RejectsChecksumMismatch) {
  std::string bytes = packContainer(kManifest, {kPtx});
  bytes[bytes.size() / 2] ^= 0x20;
  expectRejected(bytes, absl::StatusCode::kDataLoss, "checksum mismatch");
  std::string tail = packContainer(kManifest, {kPtx});
  tail.back() ^= 1;
  expectRejected(tail, absl::StatusCode::kDataLoss, "the file is damaged");
}

TEST(ProgramFormat, RejectsBadContainerFields) {
  const std::string good = packContainer(kManifest, {kPtx});
  auto edited = [&](size_t at, uint64_t value, int width) {
    std::string bytes = good;
    if (width == 4)
      setU32(bytes, at, static_cast<uint32_t>(value));
    else
      setU64(bytes, at, value);
    fixChecksum(bytes);
    return bytes;
  };
  expectRejected(edited(12, 1, 4), absl::StatusCode::kDataLoss,
                 "unknown header flags");
  expectRejected(edited(28, 7, 4), absl::StatusCode::kDataLoss,
                 "reserved header field");
  expectRejected(edited(24, 0, 4), absl::StatusCode::kDataLoss,
                 "invalid section count 0");
  expectRejected(edited(24, 1000, 4), absl::StatusCode::kDataLoss,
                 "section table (1000 entries) extends past the end");
  // Section 1 (the module): kind, bounds.
  const size_t entry1 = 32 + 24;
  expectRejected(edited(entry1, 9, 4), absl::StatusCode::kDataLoss,
                 "section 1 has unknown kind 9");
  expectRejected(edited(entry1 + 4, 1, 4), absl::StatusCode::kDataLoss,
                 "section 1: the reserved field");
  expectRejected(edited(entry1 + 16, 1u << 20, 8), absl::StatusCode::kDataLoss,
                 "section 1 (bytes [");
  expectRejected(edited(entry1 + 16, ~uint64_t(0), 8),
                 absl::StatusCode::kDataLoss, "lies outside the data area");
  expectRejected(edited(entry1 + 8, ~uint64_t(0) - 3, 8),
                 absl::StatusCode::kDataLoss, "lies outside the data area");
  expectRejected(edited(entry1 + 8, 8, 8), absl::StatusCode::kDataLoss,
                 "lies outside the data area");
  expectRejected(edited(32, 2, 4), absl::StatusCode::kDataLoss,
                 "section 0 is not the manifest");
  expectRejected(edited(entry1, 1, 4), absl::StatusCode::kDataLoss,
                 "second manifest");
  // Overlapping sections: the module starts inside the manifest.
  expectRejected(edited(entry1 + 8, getU64(good, 32 + 8) + 1, 8),
                 absl::StatusCode::kDataLoss, "two sections overlap");
  // A module section that no module uses, and one used twice.
  expectRejected(packContainer(kManifest, {kPtx, kPtx}),
                 absl::StatusCode::kDataLoss,
                 "section 2 is not used by any module");
  std::string twice =
      replaced(kManifest, R"("functions":["vadd"]}])",
               R"("functions":["vadd"]},{"format":"ptx","section":1,)"
               R"("functions":["vadd"]}])");
  expectManifestRejected(twice, "section 1 is used twice");
  expectManifestRejected(
      replaced(kManifest, R"("section":1)", R"("section":0)"),
      "0 is not a module section");
}

TEST(ProgramFormat, RejectsMalformedManifests) {
  expectManifestRejected("{", "the manifest is invalid JSON");
  expectManifestRejected("[]", "manifest: expected an object");
  expectManifestRejected(std::string(100, '[') + std::string(100, ']'),
                         "nesting deeper than 32");
  expectManifestRejected(replaced(kManifest, R"("target":"sm_90",)",
                                  R"("target":"sm_90","target":"cpu",)"),
                         "duplicate key \"target\"");
  expectManifestRejected(
      replaced(kManifest, R"("target":"sm_90",)", R"("targte":"sm_90",)"),
      "unknown key \"targte\"");
  expectManifestRejected(replaced(kManifest, R"("target":"sm_90",)", ""),
                         "missing key \"target\"");
  expectManifestRejected(replaced(kManifest, R"("sm_90")", R"("sm_75")"),
                         "unknown target \"sm_75\"");
  expectManifestRejected(
      replaced(kManifest, R"("format":"ptx")", R"("format":"elf")"),
      "unknown module format \"elf\"");
  expectManifestRejected(
      replaced(kManifest, R"("role":"input")", R"("role":"in")"),
      "unknown role \"in\"");
  expectManifestRejected(replaced(kManifest,
                                  R"("type":"f32","shape":[4],"offset":0)",
                                  R"("type":"f8","shape":[4],"offset":0)"),
                         "unknown element type \"f8\"");
  expectManifestRejected(replaced(kManifest, R"("shape":[4],"offset":0)",
                                  R"("shape":[-4],"offset":0)"),
                         "buffers[0].shape[0]: expected a non-negative");
  expectManifestRejected(
      replaced(kManifest, R"("size":1024)", R"("size":"1024")"),
      "arena.size: expected a non-negative integer");
  expectManifestRejected(
      replaced(kManifest, R"("alignment":256)", R"("alignment":96)"),
      "not a power of two");
  expectManifestRejected(
      replaced(kManifest, R"("grid":[1,1,1])", R"("grid":[1,1])"),
      "expected three integers");
  expectManifestRejected(
      replaced(kManifest, R"("grid":[1,1,1])", R"("grid":[4294967296,1,1])"),
      "exceeds 4294967295");
  expectManifestRejected(replaced(kManifest, R"({"kind":"i32","value":4})",
                                  R"({"kind":"i32","value":3000000000})"),
                         "does not fit in an i32");
  expectManifestRejected(replaced(kManifest, R"({"kind":"i32","value":4})",
                                  R"({"kind":"f32","value":4.0})"),
                         "unknown key \"value\"");
  expectManifestRejected(replaced(kManifest, R"({"kind":"i32","value":4})",
                                  R"({"kind":"f32","bits":4294967296})"),
                         "exceeds 4294967295");
  expectManifestRejected(replaced(kManifest, R"({"kind":"i32","value":4})",
                                  R"({"kind":"u8","value":4})"),
                         "unknown argument kind \"u8\"");
}

TEST(ProgramFormat, RejectsInconsistentPrograms) {
  // Buffers outside the arena, misaligned, mis-sized, overlapping.
  expectManifestRejected(replaced(kManifest, R"("offset":512,"size":16})",
                                  R"("offset":1020,"size":16})"),
                         "bytes [1020, 1036) lie outside the arena of 1024");
  expectManifestRejected(
      replaced(kManifest, R"("offset":512,"size":16})",
               R"("offset":18446744073709551608,"size":16})"),
      "offset + size overflows");
  expectManifestRejected(replaced(kManifest, R"("offset":512,"size":16})",
                                  R"("offset":514,"size":16})"),
                         "is not a multiple of the element size 4");
  expectManifestRejected(replaced(kManifest, R"("offset":512,"size":16})",
                                  R"("offset":512,"size":20})"),
                         "size 20 bytes does not match 4 x f32 (16 bytes)");
  expectManifestRejected(replaced(kManifest, R"("offset":512,"size":16})",
                                  R"("offset":264,"size":16})"),
                         "overlaps buffer 'b'");
  expectManifestRejected(replaced(kManifest, R"("name":"c")", R"("name":"a")"),
                         "another buffer has the same name");
  expectManifestRejected(
      replaced(kManifest, R"("name":"c")", R"("name":"c\n")"),
      "the name contains the byte 0x0a");
  // Scratch buffers may share bytes with each other, not with others.
  std::string scratch = kManifest;
  scratch = replaced(scratch, R"("role":"weight")", R"("role":"scratch")");
  scratch = replaced(scratch, R"("role":"output")", R"("role":"scratch")");
  scratch = replaced(scratch, R"("offset":512,"size":16})",
                     R"("offset":260,"size":16})");
  scratch = replaced(scratch, R"({"kind":"buffer","offset":512})",
                     R"({"kind":"buffer","offset":260})");
  absl::StatusOr<Program> shared = parseProgram(packContainer(scratch, {kPtx}));
  EXPECT_TRUE(shared.ok()) << shared.status();
  expectManifestRejected(
      replaced(kManifest,
               R"("role":"output","type":"f32","shape":[4],"offset":512)",
               R"("role":"scratch","type":"f32","shape":[4],"offset":8)"),
      "only scratch buffers may share bytes");

  // Launches: kernel references, geometry, arguments.
  expectManifestRejected(replaced(kManifest, R"("module":0)", R"("module":5)"),
                         "module index 5 is out of range (the program has 1 "
                         "modules)");
  expectManifestRejected(
      replaced(kManifest, R"("function":"vadd")", R"("function":"vsub")"),
      "module 0 declares no kernel 'vsub'");
  expectManifestRejected(
      replaced(kManifest, R"("block":[4,1,1])", R"("block":[0,1,1])"),
      "must be at least 1 in every dimension");
  expectManifestRejected(
      replaced(kManifest, R"("block":[4,1,1])", R"("block":[64,32,1])"),
      "exceeds the GPU limits");
  expectManifestRejected(replaced(kManifest, R"("shared_memory_bytes":0)",
                                  R"("shared_memory_bytes":300000)"),
                         "bytes of dynamic shared memory exceed");
  expectManifestRejected(replaced(kManifest,
                                  R"({"kind":"buffer","offset":512})",
                                  R"({"kind":"buffer","offset":4096})"),
                         "argument 2: buffer offset 4096 is outside the "
                         "arena of 1024 bytes");
  expectManifestRejected(replaced(kManifest,
                                  R"({"kind":"buffer","offset":512})",
                                  R"({"kind":"buffer","offset":600})"),
                         "argument 2: buffer offset 600 does not point into "
                         "any buffer");
  // An interior pointer is fine.
  EXPECT_TRUE(
      parseProgram(
          packContainer(replaced(kManifest, R"({"kind":"buffer","offset":512})",
                                 R"({"kind":"buffer","offset":520})"),
                        {kPtx}))
          .ok());
  // Module formats must match the target.
  expectManifestRejected(
      replaced(kManifest, R"("format":"ptx")", R"("format":"cpu-so")"),
      "format 'cpu-so' cannot run on target 'sm_90'");
  expectRejected(packContainer(kManifest, {""}), absl::StatusCode::kDataLoss,
                 "the module is empty");
  expectManifestRejected(replaced(kManifest, R"("functions":["vadd"])",
                                  R"("functions":["vadd","vadd"])"),
                         "kernel 'vadd' is declared twice");
}

TEST(ProgramFormat, SurvivesRandomDamage) {
  // Random byte edits with a recomputed checksum reach the section and
  // manifest checks; none may crash, and most must be rejected.
  ProgramBuilder cpu(Target::Cpu, 64);
  cpu.addModule(ModuleFormat::CpuSo, "so", {"k"});
  cpu.addBuffer("a", BufferRole::Input, ElementType::F32, {4});
  cpu.addLaunch(0, "k", {1, 1, 1}, {1, 1, 1}, {LaunchArg::buffer(0)});
  cpu.setCpuLevel("x86-64-v3");
  const std::string goods[] = {*serializeProgram(makeRichProgram()),
                               *serializeProgram(buildProgram(cpu))};
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = goods[trial % 2];
    int edits = 1 + trial % 3;
    for (int e = 0; e < edits; ++e) {
      size_t at = 8 + rng() % (bytes.size() - 12);
      bytes[at] = static_cast<char>(rng());
    }
    fixChecksum(bytes);
    absl::StatusOr<Program> program = parseProgram(bytes);
    if (program.ok()) {
      ++accepted; // e.g. an edit inside module bytes or padding
      EXPECT_TRUE(validateProgram(*program).ok());
    }
  }
  EXPECT_LT(accepted, 3000);
}

TEST(ProgramFormat, BuilderAndValidatorErrors) {
  ProgramBuilder builder(Target::Cpu, 64);
  builder.addModule(ModuleFormat::CpuSo, "x", {"k"});
  builder.addBuffer("a", BufferRole::Input, ElementType::F32, {4});
  builder.addBuffer("a", BufferRole::Output, ElementType::F32, {4});
  absl::StatusOr<Program> program = builder.build();
  ASSERT_FALSE(program.ok());
  EXPECT_NE(std::string(program.status().message()).find("same name"),
            std::string::npos);

  ProgramBuilder small(Target::Cpu, 64);
  small.addModule(ModuleFormat::CpuSo, "x", {"k"});
  small.addBuffer("a", BufferRole::Input, ElementType::F32, {64});
  small.setArenaSize(128);
  EXPECT_FALSE(small.build().ok());

  ProgramBuilder huge(Target::Cpu, 64);
  huge.addBuffer("a", BufferRole::Input, ElementType::F64,
                 {int64_t(1) << 40, int64_t(1) << 40});
  EXPECT_FALSE(huge.build().ok());

  Program invalid = makeRichProgram();
  invalid.launches[0].function = "third";
  absl::StatusOr<std::string> bytes = serializeProgram(invalid);
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(std::string(bytes.status().message())
                .find("cannot write an invalid program: launch 0 ('third'): "
                      "module 0 declares no kernel 'third'"),
            std::string::npos)
      << bytes.status();
}

TEST(ProgramFormat, ProgramSpecs) {
  TempDir dir;
  writeFile(dir.file("k.ptx"), kPtx);
  std::string spec =
      R"({"target":"sm_80","arena":{"alignment":256},)"
      R"("modules":[{"format":"ptx","path":"k.ptx","functions":["vadd"]}],)"
      R"("buffers":[{"name":"a","role":"input","type":"f16","shape":[3]},)"
      R"({"name":"c","role":"output","type":"f32","shape":[2,2]}],)"
      R"("launches":[{"module":0,"function":"vadd","grid":[1,1,1],)"
      R"("block":[1,1,1],"args":[{"kind":"buffer","name":"c"},)"
      R"({"kind":"f32","value":0.5},{"kind":"f64","bits":0}]}]})";
  absl::StatusOr<Program> program = parseProgramSpec(spec, dir.path);
  ASSERT_TRUE(program.ok()) << program.status();
  EXPECT_EQ(program->modules[0].bytes, kPtx);
  EXPECT_EQ(program->buffers[0].byteSize, 6u);
  EXPECT_EQ(program->buffers[1].offset, 256u);
  EXPECT_EQ(program->arenaSize, 512u);
  EXPECT_EQ(program->launches[0].args[0].offset, 256u);
  EXPECT_EQ(program->launches[0].args[1].bits, 0x3f000000u);

  absl::StatusOr<Program> missing =
      parseProgramSpec(replaced(spec, "k.ptx", "nope.ptx"), dir.path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("nope.ptx"),
            std::string::npos);
  absl::StatusOr<Program> badName = parseProgramSpec(
      replaced(spec, R"("name":"c"})", R"("name":"d"})"), dir.path);
  ASSERT_FALSE(badName.ok());
  EXPECT_NE(std::string(badName.status().message()).find("no buffer named 'd'"),
            std::string::npos);
  // Alternatives name files too.
  writeFile(dir.file("k.cubin"), "\x7f"
                                 "ELF");
  absl::StatusOr<Program> withCubin = parseProgramSpec(
      replaced(spec, R"("path":"k.ptx")",
               R"("path":"k.ptx","alternatives":[{"format":"cubin",)"
               R"("path":"k.cubin"}])"),
      dir.path);
  ASSERT_TRUE(withCubin.ok()) << withCubin.status();
  ASSERT_EQ(withCubin->modules[0].alternatives.size(), 1u);
  EXPECT_EQ(withCubin->modules[0].alternatives[0].bytes, "\x7f"
                                                         "ELF");
  // Specs are the manifest schema: "path" and "section" do not mix.
  EXPECT_FALSE(
      parseProgramSpec(replaced(spec, R"("path":"k.ptx")", R"("section":1)"),
                       dir.path)
          .ok());
}

} // namespace
