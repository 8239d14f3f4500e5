// The status type every floor returns. In the full build it *is* absl::Status, so the API edge
// converts one type only. The engine-only build (LibTorch and nothing else, e.g. on a CUDA box)
// gets a minimal stand-in with the same spelling for the subset the engine uses.
#pragma once

#include "common/build_config.h"

#if SELENE_HAVE_ABSL
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace selene {
using Status = absl::Status;
template <typename T>
using StatusOr = absl::StatusOr<T>;
using StatusCode = absl::StatusCode;
using absl::CancelledError;
using absl::FailedPreconditionError;
using absl::InternalError;
using absl::InvalidArgumentError;
using absl::NotFoundError;
using absl::OkStatus;
using absl::OutOfRangeError;
using absl::ResourceExhaustedError;
}  // namespace selene

#else
#include "common/status_standalone.h"
#endif

// Returns early from the calling function when `expr` is not OK.
#define SELENE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::selene::Status selene_status_ = (expr);        \
    if (!selene_status_.ok()) return selene_status_; \
  } while (0)

#define SELENE_STATUS_CONCAT_INNER_(a, b) a##b
#define SELENE_STATUS_CONCAT_(a, b) SELENE_STATUS_CONCAT_INNER_(a, b)

// `SELENE_ASSIGN_OR_RETURN(auto x, MakeX());` assigns the value or returns the error.
#define SELENE_ASSIGN_OR_RETURN(lhs, expr) \
  SELENE_ASSIGN_OR_RETURN_IMPL_(SELENE_STATUS_CONCAT_(selene_statusor_, __LINE__), lhs, expr)
#define SELENE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return statusor.status();            \
  lhs = std::move(statusor).value()
