//===- Errors.h - Runtime error statuses ------------------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// How the absl::Status values of lib/Format and lib/Runtime carry the C
/// API's moma_status code (moma/Runtime/Runtime.h declares the codes).
///
/// Most errors map from their canonical absl code (InvalidArgument, NotFound,
/// DataLoss for a damaged program, Unimplemented, ResourceExhausted, ...).
/// The few that need a finer distinction (a damaged weight file, a missing
/// CUDA driver, a failing device) carry the moma_status code as a payload.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_LIB_FORMAT_ERRORS_H
#define MOMA_LIB_FORMAT_ERRORS_H

#include "moma/Runtime/Runtime.h"

#include "absl/status/status.h"

#include <string>

namespace moma::runtime {

/// Returns an error status whose C API code is \p code and whose message is
/// \p message. \p code must not be MOMA_STATUS_OK.
absl::Status makeError(moma_status code, std::string message);

/// Returns the C API code of \p status (MOMA_STATUS_OK for an OK status).
moma_status toMomaStatus(const absl::Status &status);

/// Returns \p status with \p prefix and ": " prepended to its message,
/// keeping its code and payloads.
absl::Status withPrefix(const absl::Status &status, const std::string &prefix);

} // namespace moma::runtime

#endif // MOMA_LIB_FORMAT_ERRORS_H
