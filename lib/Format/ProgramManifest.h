//===- ProgramManifest.h - Reading program manifests ------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The manifest reader shared by the container (strict: modules name
/// sections) and program specs (lenient: modules name files, offsets may be
/// omitted). Internal to lib/Format: only translation units compiled with
/// exceptions may include this header (it includes nlohmann::json).
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_FORMAT_PROGRAMMANIFEST_H
#define MOMA_LIB_FORMAT_PROGRAMMANIFEST_H

#include "moma/Format/Program.h"

#include "lib/Format/Json.h"

#include "absl/status/statusor.h"

#include <functional>
#include <string>

namespace moma::runtime {

/// A JSON value whose objects keep the order of their keys.
using OrderedJson = nlohmann::ordered_json;

/// Supplies the bytes of the module described by \p entry; \p where names
/// the entry in messages ("modules[0]").
using ModuleLoader = std::function<absl::StatusOr<std::string>(
    const OrderedJson &entry, const std::string &where)>;

/// Reads the manifest \p root of a file (strict) or, when \p spec is set, of
/// a program spec (lenient, see parseProgramSpec()), taking module bytes from
/// \p loader. The result is not validated. Errors are InvalidArgument
/// statuses whose message names the JSON path; the caller sets the code.
absl::StatusOr<Program> readManifest(const OrderedJson &root, bool spec,
                                     ModuleLoader loader);

} // namespace moma::runtime

#endif // MOMA_LIB_FORMAT_PROGRAMMANIFEST_H
