//===- RuntimeTestSupport.h - Helpers of the runtime tests ------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// What the runtime's unit tests share: temporary directories, whole files,
/// little-endian fields, hand-made program and safetensors files, and the
/// CPU test program (kernels from RuntimeTestKernels.c).
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_TEST_UNIT_RUNTIME_RUNTIMETESTSUPPORT_H
#define MOMA_TEST_UNIT_RUNTIME_RUNTIMETESTSUPPORT_H

#include "moma/Format/Program.h"
#include "moma/Format/ProgramBuilder.h"

#include <cstdint>
#include <cstring>
#include <dirent.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "gtest/gtest.h"

namespace moma::runtime::test {

/// A fresh temporary directory, removed (with its files) at destruction.
class TempDir {
public:
  /// Creates the directory under GoogleTest's temporary directory.
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
  /// Removes the files in the directory, then the directory.
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
  /// Returns the path of the file \p name in the directory.
  std::string file(const std::string &name) const { return path + "/" + name; }

  /// The directory's path.
  std::string path;
};

/// Returns the bytes of the file at \p path ("" if it cannot be read).
std::string readFile(const std::string &path);
/// Writes \p data to the file at \p path.
void writeFile(const std::string &path, const std::string &data);

/// Appends \p v, little-endian.
void putU32(std::string &out, uint32_t v);
/// Appends \p v, little-endian.
void putU64(std::string &out, uint64_t v);
/// Overwrites the 4 bytes at \p at with \p v, little-endian.
void setU32(std::string &out, size_t at, uint32_t v);
/// Overwrites the 8 bytes at \p at with \p v, little-endian.
void setU64(std::string &out, size_t at, uint64_t v);
/// Reads the little-endian 8 bytes at \p at.
uint64_t getU64(const std::string &in, size_t at);

/// Recomputes the trailing CRC-32 of a program file after an edit.
void fixChecksum(std::string &bytes);

/// Assembles a program file from a manifest and module sections, following
/// ProgramFormat.md independently of lib/Format (sections unaligned, to show
/// that readers go by the table).
std::string packContainer(const std::string &manifest,
                          const std::vector<std::string> &modules,
                          uint32_t version = 1);

/// A valid manifest for a GPU program with one PTX module.
extern const std::string kManifest;
/// The module bytes packed with kManifest.
extern const std::string kPtx;

/// Builds a safetensors file from a header text and data bytes.
std::string safetensors(const std::string &header, const std::string &data);

/// Returns the bytes of \p values.
template <typename T> std::string bytesOf(const std::vector<T> &values) {
  return std::string(reinterpret_cast<const char *>(values.data()),
                     values.size() * sizeof(T));
}

/// The number of elements of the vectors of makeCpuProgram.
constexpr int kN = 100;

/// Returns the bytes of the CPU kernels' shared object
/// (RuntimeTestKernels.c).
std::string kernelBytes();

/// The arguments of the test kernel vadd (RuntimeTestKernels.c, and the fake
/// CUDA module's): c = a + b over kN f32 elements, given arena offsets.
std::vector<LaunchArg> vaddArgs(uint64_t a, uint64_t b, uint64_t c);

/// The arguments of the test kernel scale: y = 0.5 * c + 2 over kN f32
/// elements, given arena offsets.
std::vector<LaunchArg> scaleArgs(uint64_t c, uint64_t y);

/// Returns the program \p builder holds, expecting it valid (an empty
/// Program when it is not).
Program buildProgram(ProgramBuilder &builder);

/// A CPU program: c = a + b (vadd), y = 0.5 * c + 2 (scale), and a call
/// counter; b and s are weights.
Program makeCpuProgram();

/// Writes a weights file holding the tensors \p names of: b (stored as F16)
/// and s (F32), the weights of makeCpuProgram, and "unused", which no program
/// takes. The file is named after them ("b-s.safetensors").
std::string writeWeights(const TempDir &dir,
                         const std::vector<std::string> &names = {"b", "s"});

/// Returns the calling thread's last runtime error message.
std::string lastError();

/// Returns whether \p text contains \p needle.
bool contains(const std::string &text, const std::string &needle);

/// Returns whether a CUDA driver (libcuda.so.1) can be opened.
bool haveCudaDriver();

} // namespace moma::runtime::test

#endif // MOMA_TEST_UNIT_RUNTIME_RUNTIMETESTSUPPORT_H
