// What an HTTP route answers, and the one place where a Selene status becomes an HTTP status and
// the error body every route sends: {"error": "<message>"}, the form of KServe v2 REST errors.
// Free of the HTTP library, so the routes above (REST v2, /metrics) never include it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/json_string.h"  // JsonString: answers are JSON
#include "common/status.h"

namespace selene::http {

inline constexpr char kJsonContentType[] = "application/json";

struct HttpResponse {
  int status = 200;
  std::string content_type = kJsonContentType;
  std::string body;
  // Extra headers (Allow, WWW-Authenticate, ...); Content-Type and Content-Length are set from
  // the fields above.
  std::vector<std::pair<std::string, std::string>> headers;
};

// 200 with `json` as the body.
HttpResponse JsonResponse(std::string json, int status = 200);

// {"error": message} with `status`.
HttpResponse ErrorResponse(int status, absl::string_view message);
// The same for a failed status, its code mapped by HttpStatusOf. UNAUTHENTICATED adds
// WWW-Authenticate: Bearer, as RFC 6750 asks of a 401.
HttpResponse ErrorResponse(const Status& status);

// InvalidArgument and FailedPrecondition 400, Unauthenticated 401, PermissionDenied 403,
// NotFound 404, AlreadyExists and Aborted 409, ResourceExhausted 429, Cancelled 499,
// Unimplemented 501, Unavailable 503, DeadlineExceeded 504, anything else 500; OK 200.
int HttpStatusOf(StatusCode code);

}  // namespace selene::http
