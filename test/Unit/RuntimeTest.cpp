//===- RuntimeTest.cpp - Tests of the program format and the runtime ------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The program format (round trip, every rejection, crash-freedom on damaged
// bytes), the runtime's safetensors reader and float conversions, the C API
// end to end on the CPU (a kernel shared object built by CMake from
// RuntimeTestKernels.c), the no-driver path of the CUDA device, and the
// moma-pack / moma-run tools.
//
// This file is compiled with LLVM's flags (no exceptions); the runtime
// headers it includes are exception-free.
//
//===----------------------------------------------------------------------===//

#include "moma/Runtime/Runtime.h"
#include "moma/Runtime/Files.h"
#include "moma/Runtime/Program.h"

#include "lib/Runtime/FloatConversion.h"
#include "lib/Runtime/SafetensorsReader.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <dlfcn.h>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace moma::runtime;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// A fresh temporary directory, removed (with its files) at destruction.
class TempDir {
public:
  TempDir() {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/')
      base += '/';
    std::string pattern = base + "moma-runtime-test-XXXXXX";
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    EXPECT_NE(::mkdtemp(name.data()), nullptr);
    path = name.data();
  }
  ~TempDir() {
    for (const std::string &file : list())
      ::unlink((path + "/" + file).c_str());
    ::rmdir(path.c_str());
  }
  /// Returns the names of the files in the directory.
  std::vector<std::string> list() const {
    std::vector<std::string> names;
    if (DIR *dir = ::opendir(path.c_str())) {
      while (dirent *entry = ::readdir(dir))
        if (std::strcmp(entry->d_name, ".") && std::strcmp(entry->d_name, ".."))
          names.push_back(entry->d_name);
      ::closedir(dir);
    }
    return names;
  }
  std::string file(const std::string &name) const { return path + "/" + name; }

  std::string path;
};

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void writeFile(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

void putU32(std::string &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void putU64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void setU32(std::string &out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out[at + i] = static_cast<char>(v >> (8 * i));
}
void setU64(std::string &out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out[at + i] = static_cast<char>(v >> (8 * i));
}
uint64_t getU64(const std::string &in, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

/// Recomputes the trailing CRC-32 of a program file after an edit.
void fixChecksum(std::string &bytes) {
  setU32(bytes, bytes.size() - 4,
         crc32(std::string_view(bytes).substr(0, bytes.size() - 4)));
}

/// Assembles a program file from a manifest and module sections, following
/// ProgramFormat.md independently of Program.cpp (sections unaligned, to show
/// that readers go by the table).
std::string packContainer(const std::string &manifest,
                          const std::vector<std::string> &modules,
                          uint32_t version = 1) {
  std::vector<std::string> sections = {manifest};
  sections.insert(sections.end(), modules.begin(), modules.end());
  std::string out = "MOMAPROG";
  putU32(out, version);
  putU32(out, 0);
  putU64(out, 0);
  putU32(out, static_cast<uint32_t>(sections.size()));
  putU32(out, 0);
  uint64_t offset = 32 + 24 * sections.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    putU32(out, i == 0 ? 1 : 2);
    putU32(out, 0);
    putU64(out, offset);
    putU64(out, sections[i].size());
    offset += sections[i].size();
  }
  for (const std::string &section : sections)
    out += section;
  setU64(out, 16, out.size() + 4);
  putU32(out, crc32(out));
  return out;
}

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

/// A valid manifest for a GPU program with one PTX module.
const std::string kManifest =
    R"({"target":"sm_90","arena":{"size":1024,"alignment":256},)"
    R"("modules":[{"name":"k","format":"ptx","section":1,"functions":["vadd"]}],)"
    R"("buffers":[)"
    R"({"name":"a","role":"input","type":"f32","shape":[4],"offset":0,"size":16},)"
    R"({"name":"b","role":"weight","type":"f32","shape":[4],"offset":256,"size":16},)"
    R"({"name":"c","role":"output","type":"f32","shape":[4],"offset":512,"size":16}],)"
    R"("launches":[{"module":0,"function":"vadd","grid":[1,1,1],"block":[4,1,1],)"
    R"("shared_memory_bytes":0,"args":[{"kind":"buffer","offset":0},)"
    R"({"kind":"buffer","offset":256},{"kind":"buffer","offset":512},)"
    R"({"kind":"i32","value":4}]}]})";
const std::string kPtx = "// not real PTX: the format does not look inside\n";

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
  absl::StatusOr<Program> program = builder.build();
  EXPECT_TRUE(program.ok()) << program.status();
  return program.ok() ? *program : Program();
}

void expectSamePrograms(const Program &a, const Program &b) {
  EXPECT_EQ(a.target, b.target);
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
  std::string bytes = packContainer(kManifest, {kPtx}, /*version=*/3);
  expectRejected(bytes, absl::StatusCode::kUnimplemented,
                 "written by a newer moma (program format version 3; this "
                 "runtime reads versions up to 2)");
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
  EXPECT_EQ(getU64(*bytes, 8) & 0xffffffffu, 2u);
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
  const std::string good = *serializeProgram(makeRichProgram());
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = good;
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

//===----------------------------------------------------------------------===//
// Float conversions and the safetensors reader
//===----------------------------------------------------------------------===//

TEST(RuntimeFiles, ReadsAndReplacesWholeFiles) {
  TempDir dir;
  std::string path = dir.file("data.bin");
  std::string bytes("a\0b\xff", 4);
  ASSERT_TRUE(writeFileAtomically(path, bytes).ok());
  absl::StatusOr<std::string> read = moma::runtime::readFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  // Replacing leaves only the new file; the temporary is renamed away.
  ASSERT_TRUE(writeFileAtomically(path, "new").ok());
  EXPECT_EQ(*moma::runtime::readFile(path), "new");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"data.bin"});
  // Errors name the path, with the code of the cause.
  absl::StatusOr<std::string> missing =
      moma::runtime::readFile(dir.file("missing"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(missing.status().message()),
            dir.file("missing") + ": cannot open: No such file or directory");
  EXPECT_EQ(moma::runtime::readFile(dir.path).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status nowhere = writeFileAtomically(dir.file("no/such/file"), "x");
  EXPECT_EQ(nowhere.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::string(nowhere.message()).rfind(dir.file("no/such/file"), 0),
            0u);
  // Writing onto a directory fails at the rename and leaves nothing.
  ::mkdir(dir.file("sub").c_str(), 0700);
  ::mkdir(dir.file("sub/d").c_str(), 0700);
  absl::Status onto = writeFileAtomically(dir.file("sub/d"), "x");
  EXPECT_NE(std::string(onto.message()).find("rename failed"),
            std::string::npos)
      << onto;
  ::rmdir(dir.file("sub/d").c_str());
  EXPECT_EQ(::rmdir(dir.file("sub").c_str()), 0) << "a temporary was left";
  // writeAll reports a bad descriptor.
  EXPECT_FALSE(writeAll(-1, "x").ok());
}

TEST(FloatConversion, HalfAndBFloat16) {
  EXPECT_EQ(doubleToHalf(1.0), 0x3c00);
  EXPECT_EQ(doubleToHalf(-2.0), 0xc000);
  EXPECT_EQ(doubleToHalf(65504.0), 0x7bff);
  EXPECT_EQ(doubleToHalf(65520.0), 0x7c00); // rounds up to infinity
  EXPECT_EQ(doubleToHalf(65519.99), 0x7bff);
  EXPECT_EQ(doubleToHalf(std::ldexp(1.0, -24)), 0x0001);
  EXPECT_EQ(doubleToHalf(std::ldexp(1.0, -25)), 0x0000); // tie to even
  EXPECT_EQ(doubleToHalf(std::ldexp(1.5, -25)), 0x0001);
  EXPECT_EQ(doubleToHalf(std::ldexp(1023.5, -24)), 0x0400); // to min normal
  EXPECT_EQ(doubleToHalf(1e-300), 0x0000);
  EXPECT_EQ(doubleToHalf(-0.0), 0x8000);
  EXPECT_EQ(doubleToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(doubleToHalf(NAN) & 0x7e00, 0x7e00);
  EXPECT_EQ(doubleToBFloat16(1.0), 0x3f80);
  EXPECT_EQ(doubleToBFloat16(1.0 + std::ldexp(1.0, -8)), 0x3f80);
  EXPECT_EQ(doubleToBFloat16(1.0 + 3 * std::ldexp(1.0, -8)), 0x3f82);
  EXPECT_EQ(doubleToBFloat16(3.0e38), 0x7f62);
  EXPECT_EQ(doubleToBFloat16(1e39), 0x7f80);
  EXPECT_EQ(halfToDouble(0x3555), 0.333251953125);
  EXPECT_EQ(bfloat16ToDouble(0xc0a0), -5.0);
  EXPECT_TRUE(std::isnan(halfToDouble(0x7e00)));
  // Every finite pattern round-trips.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    uint16_t h = static_cast<uint16_t>(bits);
    if ((h & 0x7c00) != 0x7c00)
      EXPECT_EQ(doubleToHalf(halfToDouble(h)), h) << bits;
    if ((h & 0x7f80) != 0x7f80)
      EXPECT_EQ(doubleToBFloat16(bfloat16ToDouble(h)), h) << bits;
  }
}

/// Builds a safetensors file from a header text and data bytes.
std::string safetensors(const std::string &header, const std::string &data) {
  std::string out;
  putU64(out, header.size());
  return out + header + data;
}

template <typename T> std::string bytesOf(const std::vector<T> &values) {
  return std::string(reinterpret_cast<const char *>(values.data()),
                     values.size() * sizeof(T));
}

BufferDesc buffer(const std::string &name, ElementType type,
                  std::vector<int64_t> shape) {
  BufferDesc desc;
  desc.name = name;
  desc.role = BufferRole::Weight;
  desc.type = type;
  desc.shape = std::move(shape);
  uint64_t size = type == ElementType::F64 || type == ElementType::I64    ? 8
                  : type == ElementType::F16 || type == ElementType::BF16 ? 2
                                                                          : 4;
  desc.byteSize = desc.numElements() * size;
  return desc;
}

TEST(RuntimeSafetensors, ReadsAndConverts) {
  std::vector<uint16_t> half = {0x3c00, 0xc000, 0x3555, 0x0001};
  std::vector<float> f32 = {1.0f, 1.00390625f, -3.5f, 1e-3f};
  std::vector<int64_t> i64 = {1, -2, 3000000000LL};
  std::string data = bytesOf(half) + bytesOf(f32) + bytesOf(i64);
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("f":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},)"
      R"("i":{"dtype":"I64","shape":[3],"data_offsets":[24,48]}})";
  auto file = SafetensorsFile::fromBytes(safetensors(header, data), "w.st");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), 3u);
  ASSERT_NE((*file)->find("h"), nullptr);
  EXPECT_EQ((*file)->find("nope"), nullptr);

  std::vector<float> out(4);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("h"),
                                buffer("h", ElementType::F32, {2, 2}),
                                out.data())
                  .ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.333251953125f,
                                     std::ldexp(1.0f, -24)}));
  std::vector<uint16_t> bf(4);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("f"),
                                buffer("f", ElementType::BF16, {4}), bf.data())
                  .ok());
  EXPECT_EQ(bf[0], 0x3f80);
  EXPECT_EQ(bf[1], 0x3f80); // 1 + 2^-8 rounds to even
  EXPECT_EQ(bf[2], 0xc060);
  std::vector<double> f64(4);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("f"),
                                buffer("f", ElementType::F64, {4}), f64.data())
                  .ok());
  EXPECT_EQ(f64[3], double(1e-3f));
  std::vector<int64_t> ints(3);
  ASSERT_TRUE((*file)
                  ->convertInto(*(*file)->find("i"),
                                buffer("i", ElementType::I64, {3}), ints.data())
                  .ok());
  EXPECT_EQ(ints, i64);

  // Conversion errors name the tensor.
  std::vector<int32_t> narrow(3);
  absl::Status range = (*file)->convertInto(
      *(*file)->find("i"), buffer("i", ElementType::I32, {3}), narrow.data());
  EXPECT_NE(std::string(range.message())
                .find("tensor 'i': element 2 (3000000000) does not fit"),
            std::string::npos)
      << range;
  absl::Status shape = (*file)->convertInto(
      *(*file)->find("f"), buffer("f", ElementType::F32, {2, 2}), out.data());
  EXPECT_NE(std::string(shape.message())
                .find("tensor 'f' has shape [4], but buffer 'f' expects "
                      "[2, 2]"),
            std::string::npos)
      << shape;
  absl::Status kind = (*file)->convertInto(
      *(*file)->find("i"), buffer("i", ElementType::F32, {3}), out.data());
  EXPECT_NE(std::string(kind.message())
                .find("has dtype I64, which cannot be "
                      "loaded into buffer 'i' of type "
                      "f32"),
            std::string::npos)
      << kind;
}

void expectSafetensorsRejected(const std::string &bytes,
                               const std::string &needle) {
  auto file = SafetensorsFile::fromBytes(bytes, "w.safetensors");
  ASSERT_FALSE(file.ok()) << "accepted; expected: " << needle;
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(file.status().message()).find(needle),
            std::string::npos)
      << "message: " << file.status().message()
      << "\nexpected to contain: " << needle;
}

TEST(RuntimeSafetensors, RejectsDamagedFiles) {
  const std::string data(16, '\0');
  auto one = [&](const std::string &entry) {
    return safetensors("{\"t\":" + entry + "}", data);
  };
  expectSafetensorsRejected("", "too short for the header length");
  expectSafetensorsRejected(std::string("\x05\0\0\0\0\0\0\0{}", 10),
                            "truncated");
  std::string hugeLength;
  putU64(hugeLength, ~uint64_t(0));
  expectSafetensorsRejected(hugeLength + "{}", "exceeds the limit");
  expectSafetensorsRejected(safetensors("{", ""), "the header is invalid JSON");
  expectSafetensorsRejected(safetensors("[]", ""), "not a JSON object");
  expectSafetensorsRejected(
      safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  data),
      "duplicate key \"t\"");
  expectSafetensorsRejected(one("3"), "tensor 't': expected an object");
  expectSafetensorsRejected(
      one(R"({"dtype":"F31","shape":[1],"data_offsets":[0,4]})"),
      "tensor 't': unknown dtype \"F31\"");
  expectSafetensorsRejected(one(R"({"shape":[1],"data_offsets":[0,4]})"),
                            "tensor 't': missing string \"dtype\"");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"),
      "tensor 't': the shape holds a value");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1})"),
      "tensor 't': unknown key \"x\"");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})"),
      "\"data_offsets\" is not a pair");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[2],"data_offsets":[12,20]})"),
      "data_offsets [12, 20] lie outside the data buffer of 16 bytes");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[2],"data_offsets":[8,4]})"),
      "lie outside");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
      "8 bytes do not match F32 [3] (12 bytes)");
  expectSafetensorsRejected(
      one(R"({"dtype":"F32","shape":[4294967296,4294967296],)"
          R"("data_offsets":[0,8]})"),
      "the shape is too large");
  expectSafetensorsRejected(
      safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  data),
      "tensors 'a' and 'b' overlap");
  expectSafetensorsRejected(safetensors(R"({"__metadata__":{"a":1}})", ""),
                            "__metadata__ entry 'a' is not a string");

  // Whitespace padding after the header is allowed, as the format permits.
  EXPECT_TRUE(SafetensorsFile::fromBytes(safetensors("{}   ", ""), "x").ok());
  // Random damage never crashes.
  std::string good =
      safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[8,16]}})",
                  data);
  std::mt19937 rng(99);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = good;
    bytes[rng() % bytes.size()] = static_cast<char>(rng());
    (void)SafetensorsFile::fromBytes(bytes, "fuzz");
    (void)SafetensorsFile::fromBytes(bytes.substr(0, rng() % bytes.size()),
                                     "fuzz");
  }
}

//===----------------------------------------------------------------------===//
// The C API on the CPU
//===----------------------------------------------------------------------===//

constexpr int kN = 100;

std::string kernelBytes() { return readFile(MOMA_TEST_CPU_KERNELS); }

/// A CPU program: c = a + b (vadd), y = 0.5 * c + 2 (scale), and a call
/// counter; b and s are weights.
Program makeCpuProgram() {
  ProgramBuilder builder(Target::Cpu, 64);
  builder.addModule(ModuleFormat::CpuSo, kernelBytes(),
                    {"vadd", "scale", "count_calls"}, "test-kernels");
  uint64_t a =
      builder.addBuffer("a", BufferRole::Input, ElementType::F32, {kN});
  uint64_t b =
      builder.addBuffer("b", BufferRole::Weight, ElementType::F32, {kN});
  builder.addBuffer("s", BufferRole::Weight, ElementType::BF16, {2, 2});
  uint64_t c =
      builder.addBuffer("c", BufferRole::Output, ElementType::F32, {kN});
  uint64_t y =
      builder.addBuffer("y", BufferRole::Output, ElementType::F32, {kN});
  uint64_t calls =
      builder.addBuffer("calls", BufferRole::Output, ElementType::I64, {});
  builder.addLaunch(0, "vadd", {1, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(a), LaunchArg::buffer(b),
                     LaunchArg::buffer(c), LaunchArg::i32(kN)});
  builder.addLaunch(0, "scale", {1, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(c), LaunchArg::buffer(y),
                     LaunchArg::f32(0.5f), LaunchArg::i64(kN),
                     LaunchArg::f64(2.0)});
  builder.addLaunch(0, "count_calls", {1, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(calls)});
  absl::StatusOr<Program> program = builder.build();
  EXPECT_TRUE(program.ok()) << program.status();
  return *program;
}

/// Writes a weights file holding the tensors \p names of: b (stored as F16)
/// and s (F32), the weights of makeCpuProgram, and "unused", which no program
/// takes. The file is named after them ("b-s.safetensors").
std::string writeWeights(const TempDir &dir,
                         const std::vector<std::string> &names = {"b", "s"}) {
  std::vector<uint16_t> b(kN);
  for (int i = 0; i < kN; ++i)
    b[i] = doubleToHalf(i % 7 - 3);
  std::vector<float> s = {1.0f, 2.0f, -0.5f, 1.00390625f};
  struct Tensor {
    std::string name, dtype, shape, bytes;
  };
  const Tensor tensors[] = {{"b", "F16", "[100]", bytesOf(b)},
                            {"s", "F32", "[2,2]", bytesOf(s)},
                            {"unused", "I8", "[2]", "xy"}};
  std::string header, data, file;
  for (const Tensor &tensor : tensors) {
    if (std::find(names.begin(), names.end(), tensor.name) == names.end())
      continue;
    header += (header.empty() ? "{" : ",") + ("\"" + tensor.name) +
              "\":{\"dtype\":\"" + tensor.dtype +
              "\",\"shape\":" + tensor.shape + ",\"data_offsets\":[" +
              std::to_string(data.size()) + "," +
              std::to_string(data.size() + tensor.bytes.size()) + "]}";
    data += tensor.bytes;
    file += (file.empty() ? "" : "-") + tensor.name;
  }
  std::string path = dir.file(file + ".safetensors");
  writeFile(path, safetensors(header + "}", data));
  return path;
}

std::string lastError() { return moma_last_error(); }

bool contains(const std::string &text, const std::string &needle) {
  return text.find(needle) != std::string::npos;
}

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
  EXPECT_EQ(moma_program_format_version(), 2u);

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

bool haveCudaDriver() {
  void *handle = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle)
    ::dlclose(handle);
  return handle != nullptr;
}

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
  builder.addLaunch(0, "vadd", {1, 1, 1}, {128, 1, 1},
                    {LaunchArg::buffer(a), LaunchArg::buffer(b),
                     LaunchArg::buffer(c), LaunchArg::i32(kN)});
  builder.addLaunch(0, "scale", {4, 1, 1}, {32, 1, 1},
                    {LaunchArg::buffer(c), LaunchArg::buffer(y),
                     LaunchArg::f32(0.5f), LaunchArg::i64(kN),
                     LaunchArg::f64(2.0)});
  builder.addLaunch(0, "vadd", {kN, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(y), LaunchArg::buffer(b),
                     LaunchArg::buffer(z), LaunchArg::i32(kN)},
                    64 * 1024);
  absl::StatusOr<Program> program = builder.build();
  EXPECT_TRUE(program.ok()) << program.status();
  return *program;
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

//===----------------------------------------------------------------------===//
// moma-pack and moma-run
//===----------------------------------------------------------------------===//

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
