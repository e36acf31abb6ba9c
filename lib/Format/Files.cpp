//===- Files.cpp - Whole-file reads and atomic writes ---------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/Files.h"

#include "lib/Format/Strings.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace moma::runtime {

absl::StatusOr<std::string> readFile(const std::string &path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode))
    return absl::InvalidArgumentError(cat(path, ": is a directory"));
  FILE *file = std::fopen(path.c_str(), "rb");
  if (!file) {
    std::string message = cat(path, ": cannot open: ", std::strerror(errno));
    return errno == ENOENT ? absl::NotFoundError(message)
                           : absl::PermissionDeniedError(message);
  }
  std::string data;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), file)) > 0)
    data.append(chunk, n);
  bool failed = std::ferror(file);
  std::fclose(file);
  if (failed)
    return absl::PermissionDeniedError(cat(path, ": read error"));
  return data;
}

absl::Status writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0)
      return absl::PermissionDeniedError(
          written < 0 ? std::strerror(errno) : "the write made no progress");
    data.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

absl::Status writeFileAtomically(const std::string &path,
                                 std::string_view data) {
  std::string temp = path + ".tmp-XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0)
    return absl::PermissionDeniedError(cat(path,
                                           ": cannot create a temporary file ",
                                           temp, ": ", std::strerror(errno)));
  auto fail = [&](std::string_view what, std::string_view reason) {
    ::close(fd);
    ::unlink(name.data());
    return absl::PermissionDeniedError(cat(path, ": ", what, ": ", reason));
  };
  if (absl::Status status = writeAll(fd, data); !status.ok())
    return fail("write failed", std::string(status.message()));
  // mkstemp creates the file 0600; give it the usual permissions.
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  if (::fsync(fd) != 0)
    return fail("fsync failed", std::strerror(errno));
  if (::close(fd) != 0) {
    int saved = errno;
    ::unlink(name.data());
    return absl::PermissionDeniedError(
        cat(path, ": close failed: ", std::strerror(saved)));
  }
  if (::rename(name.data(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(name.data());
    return absl::PermissionDeniedError(
        cat(path, ": rename failed: ", std::strerror(saved)));
  }
  return absl::OkStatus();
}

} // namespace moma::runtime
