//===- FilesTest.cpp - Tests of whole-file reads and writes ---------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// readFile, writeAll and writeFileAtomically (moma/Format/Files.h).
//
//===----------------------------------------------------------------------===//

#include "test/Unit/Runtime/RuntimeTestSupport.h"

#include "moma/Format/Files.h"

#include <sys/stat.h>

#include "gtest/gtest.h"

using namespace moma::runtime;
using namespace moma::runtime::test;

namespace {

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

} // namespace
