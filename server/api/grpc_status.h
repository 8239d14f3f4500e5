// The one place where Selene's status (absl::Status) becomes a gRPC status: every service method
// returns its internal result through ToGrpcStatus, so codes and messages reach clients unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>

#include "common/status.h"

namespace selene::api {

// Same code (the canonical codes are shared), same message up to kMaxGrpcMessageBytes once
// percent-encoded (longer ones are cut, saying so). An unknown code becomes UNKNOWN.
grpc::Status ToGrpcStatus(const Status& status);

// gRPC sends the message percent-encoded in the grpc-message trailer (a byte outside printable
// ASCII, or '%', takes 3) and clients refuse trailers over 8 KiB by default, reporting
// RESOURCE_EXHAUSTED instead of the real status. The last line of defence against a message
// that echoes too much; the messages themselves cut what they echo (common/text_limits.h).
inline constexpr size_t kMaxGrpcMessageBytes = 4096;

// The code's canonical name, as metrics label it: "OK", "INVALID_ARGUMENT", ...
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace selene::api
