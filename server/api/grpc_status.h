// The one place where Selene's status (absl::Status) becomes a gRPC status: every service method
// returns its internal result through ToGrpcStatus, so codes and messages reach clients unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "common/status.h"

namespace selene::api {

// Same code (the canonical codes are shared), same message. An unknown code becomes UNKNOWN.
grpc::Status ToGrpcStatus(const Status& status);

// The code's canonical name, as metrics label it: "OK", "INVALID_ARGUMENT", ...
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace selene::api
