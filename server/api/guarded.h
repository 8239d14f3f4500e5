// Runs a service method's body so that no exception leaves the API floor: whatever escapes the
// layers below (torch, OpenCV, the standard library) becomes an Internal status naming the
// method, and the server keeps serving.
#pragma once

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace selene::api {

// `Result` is a Status or StatusOr<T> that `body` returns.
template <typename Result, typename Body>
Result Guarded(const char* method, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat(method, ": ", e.what()));
  } catch (...) {
    return InternalError(absl::StrCat(method, ": unknown exception"));
  }
}

}  // namespace selene::api
