//===- RuntimeTestSupport.cpp - Helpers of the runtime tests --------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/FloatConversion.h"
#include "moma/Format/ProgramBuilder.h"
#include "moma/Format/ProgramFile.h"
#include "moma/Runtime/Runtime.h"

#include <algorithm>
#include <dlfcn.h>
#include <fstream>
#include <sstream>

namespace moma::runtime::test {

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

void fixChecksum(std::string &bytes) {
  setU32(bytes, bytes.size() - 4,
         crc32(std::string_view(bytes).substr(0, bytes.size() - 4)));
}

std::string packContainer(const std::string &manifest,
                          const std::vector<std::string> &modules,
                          uint32_t version) {
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
std::string safetensors(const std::string &header, const std::string &data) {
  std::string out;
  putU64(out, header.size());
  return out + header + data;
}
std::string kernelBytes() { return readFile(MOMA_TEST_CPU_KERNELS); }

std::vector<LaunchArg> vaddArgs(uint64_t a, uint64_t b, uint64_t c) {
  return {LaunchArg::buffer(a), LaunchArg::buffer(b), LaunchArg::buffer(c),
          LaunchArg::i32(kN)};
}

std::vector<LaunchArg> scaleArgs(uint64_t c, uint64_t y) {
  return {LaunchArg::buffer(c), LaunchArg::buffer(y), LaunchArg::f32(0.5f),
          LaunchArg::i64(kN), LaunchArg::f64(2.0)};
}

Program buildProgram(ProgramBuilder &builder) {
  absl::StatusOr<Program> program = builder.build();
  EXPECT_TRUE(program.ok()) << program.status();
  return program.ok() ? *program : Program();
}

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
  builder.addLaunch(0, "vadd", {1, 1, 1}, {1, 1, 1}, vaddArgs(a, b, c));
  builder.addLaunch(0, "scale", {1, 1, 1}, {1, 1, 1}, scaleArgs(c, y));
  builder.addLaunch(0, "count_calls", {1, 1, 1}, {1, 1, 1},
                    {LaunchArg::buffer(calls)});
  return buildProgram(builder);
}

std::string writeWeights(const TempDir &dir,
                         const std::vector<std::string> &names) {
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
bool haveCudaDriver() {
  void *handle = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle)
    ::dlclose(handle);
  return handle != nullptr;
}

} // namespace moma::runtime::test
