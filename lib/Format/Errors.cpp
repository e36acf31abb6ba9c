//===- Errors.cpp - Runtime error statuses --------------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "lib/Format/Errors.h"
#include "lib/Format/Strings.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace moma::runtime {
namespace {

/// The payload key under which an error carries its moma_status code.
constexpr char kPayloadUrl[] = "type.moma.dev/moma_status";

absl::StatusCode canonicalCode(moma_status code) {
  switch (code) {
  case MOMA_STATUS_OK:
    return absl::StatusCode::kOk;
  case MOMA_STATUS_INVALID_ARGUMENT:
    return absl::StatusCode::kInvalidArgument;
  case MOMA_STATUS_NOT_FOUND:
    return absl::StatusCode::kNotFound;
  case MOMA_STATUS_INVALID_PROGRAM:
  case MOMA_STATUS_INVALID_WEIGHTS:
    return absl::StatusCode::kDataLoss;
  case MOMA_STATUS_UNSUPPORTED:
    return absl::StatusCode::kUnimplemented;
  case MOMA_STATUS_NO_CUDA_DRIVER:
    return absl::StatusCode::kUnavailable;
  case MOMA_STATUS_DEVICE_ERROR:
    return absl::StatusCode::kAborted;
  case MOMA_STATUS_OUT_OF_MEMORY:
    return absl::StatusCode::kResourceExhausted;
  case MOMA_STATUS_IO_ERROR:
    return absl::StatusCode::kPermissionDenied;
  case MOMA_STATUS_INTERNAL:
    return absl::StatusCode::kInternal;
  case MOMA_STATUS_UNSUPPORTED_CPU:
    return absl::StatusCode::kFailedPrecondition;
  }
  return absl::StatusCode::kInternal;
}

} // namespace

absl::Status makeError(moma_status code, std::string message) {
  if (code == MOMA_STATUS_OK)
    code = MOMA_STATUS_INTERNAL;
  absl::Status status(canonicalCode(code), message);
  std::string text = cat(int(code));
  status.SetPayload(kPayloadUrl, absl::Cord(absl::string_view(text)));
  return status;
}

moma_status toMomaStatus(const absl::Status &status) {
  if (status.ok())
    return MOMA_STATUS_OK;
  if (auto payload = status.GetPayload(kPayloadUrl)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*payload), &code) &&
        code > MOMA_STATUS_OK && code <= MOMA_STATUS_UNSUPPORTED_CPU)
      return static_cast<moma_status>(code);
  }
  switch (status.code()) {
  case absl::StatusCode::kInvalidArgument:
  case absl::StatusCode::kOutOfRange:
  case absl::StatusCode::kAlreadyExists:
  case absl::StatusCode::kFailedPrecondition:
    return MOMA_STATUS_INVALID_ARGUMENT;
  case absl::StatusCode::kNotFound:
    return MOMA_STATUS_NOT_FOUND;
  case absl::StatusCode::kDataLoss:
    return MOMA_STATUS_INVALID_PROGRAM;
  case absl::StatusCode::kUnimplemented:
    return MOMA_STATUS_UNSUPPORTED;
  case absl::StatusCode::kUnavailable:
    return MOMA_STATUS_NO_CUDA_DRIVER;
  case absl::StatusCode::kAborted:
    return MOMA_STATUS_DEVICE_ERROR;
  case absl::StatusCode::kResourceExhausted:
    return MOMA_STATUS_OUT_OF_MEMORY;
  case absl::StatusCode::kPermissionDenied:
    return MOMA_STATUS_IO_ERROR;
  default:
    return MOMA_STATUS_INTERNAL;
  }
}

absl::Status withPrefix(const absl::Status &status, const std::string &prefix) {
  if (status.ok())
    return status;
  absl::Status result(status.code(), cat(prefix, ": ", status.message()));
  status.ForEachPayload([&](auto url, const absl::Cord &payload) {
    result.SetPayload(url, payload);
  });
  return result;
}

} // namespace moma::runtime
