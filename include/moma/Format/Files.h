//===- Files.h - Whole-file reads and atomic writes -------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The file I/O the runtime and its tools share: reading a whole file,
/// writing a whole buffer to a descriptor, and replacing a file atomically.
/// Errors are absl statuses whose messages start with the path.
///
/// This header is safe to include from code compiled without exceptions.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_FILES_H
#define MOMA_FORMAT_FILES_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include <string>
#include <string_view>

namespace moma::runtime {

/// Returns the bytes of the file at \p path. Errors: "PATH: cannot open:
/// REASON" (NotFound when it does not exist, PermissionDenied otherwise),
/// "PATH: is a directory" (InvalidArgument), "PATH: read error".
absl::StatusOr<std::string> readFile(const std::string &path);

/// Writes all of \p data to the descriptor \p fd, resuming after
/// interrupted and partial writes. The error message is the system's
/// reason.
absl::Status writeAll(int fd, std::string_view data);

/// Replaces the file at \p path by \p data atomically: the bytes go to a
/// temporary file beside it (`PATH.tmp-XXXXXX`), which is flushed to disk,
/// given the permissions of a new file (0666 less the umask) and renamed
/// over \p path. On error no file is left behind and an existing \p path is
/// untouched. Errors: PermissionDenied, "PATH: WHAT: REASON".
absl::Status writeFileAtomically(const std::string &path,
                                 std::string_view data);

} // namespace moma::runtime

#endif // MOMA_FORMAT_FILES_H
