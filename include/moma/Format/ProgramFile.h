//===- ProgramFile.h - Reading and writing programs (.momaprog) -*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The file format of compiled programs (lib/Format/ProgramFormat.md): the
/// container, the JSON manifest, validation and program specs.
///
/// The reader validates every field before returning a Program, so a Program
/// obtained from parseProgram() or readProgram() satisfies validateProgram():
/// every buffer lies inside the arena, every launch names a kernel its module
/// declares, and every buffer argument points into a buffer. Damaged or
/// foreign input yields an error status naming what was wrong; it never
/// causes an out-of-bounds read or a crash.
///
/// This header is safe to include from code compiled without exceptions.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_PROGRAMFILE_H
#define MOMA_FORMAT_PROGRAMFILE_H

#include "moma/Format/Program.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace moma::runtime {

/// The newest program format version this library reads and the one it
/// writes. Files with a larger version are rejected as "written by a newer
/// moma"; every older version (1: modules without alternative images; 2:
/// no CPU level; 3: no state buffers) is read too.
inline constexpr uint32_t kProgramFormatVersion = 4;

/// The eight bytes every program file starts with.
inline constexpr char kProgramMagic[8] = {'M', 'O', 'M', 'A',
                                          'P', 'R', 'O', 'G'};

/// Checks every rule of ProgramFormat.md ("Validation") on \p program:
/// targets and module formats agree, buffers are inside the arena and do not
/// overlap (scratch buffers may share bytes with other scratch buffers),
/// launches name declared kernels with valid grids, and buffer arguments
/// point into buffers. Returns an InvalidArgument error naming the offending
/// entry otherwise.
absl::Status validateProgram(const Program &program);

/// Serializes \p program into the bytes of a .momaprog file after validating
/// it.
absl::StatusOr<std::string> serializeProgram(const Program &program);

/// Parses and validates the bytes of a .momaprog file. \p sourceName (a path,
/// or "<memory>") prefixes every error message. Errors: DataLoss for damaged
/// or foreign bytes (bad magic, truncation, checksum mismatch, bad sections,
/// bad manifest), Unimplemented for a file written by a newer moma.
absl::StatusOr<Program> parseProgram(std::string_view bytes,
                                     std::string_view sourceName = "<memory>");

/// Reads and parses the .momaprog file at \p path (NotFound if it cannot be
/// opened).
absl::StatusOr<Program> readProgram(const std::string &path);

/// Writes \p program to \p path atomically: the bytes go to a temporary file
/// in the same directory, which is then renamed over \p path. On error no
/// file is left behind and an existing \p path is untouched.
absl::Status writeProgram(const Program &program, const std::string &path);

/// Builds a Program from a *program spec*: a manifest (ProgramFormat.md,
/// "Manifest") in which each module names a file ("path", relative to
/// \p baseDir) instead of a section, buffer offsets and sizes and the arena
/// size may be omitted (they are then laid out in order), buffer arguments
/// may name a buffer ("name") instead of an offset, and float scalars may
/// give a "value" instead of "bits". The result is validated.
absl::StatusOr<Program> parseProgramSpec(std::string_view specJson,
                                         const std::string &baseDir);

/// Returns the JSON manifest of \p program (as stored in a file, with
/// section numbers), indented when \p pretty is set.
std::string programManifestJson(const Program &program, bool pretty);

/// Returns the CRC-32 (IEEE 802.3, as zlib's crc32()) of \p data, continuing
/// from \p crc (pass 0 to start).
uint32_t crc32(std::string_view data, uint32_t crc = 0);

} // namespace moma::runtime

#endif // MOMA_FORMAT_PROGRAMFILE_H
