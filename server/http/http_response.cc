#include "server/http/http_response.h"

#include "absl/strings/str_cat.h"

namespace selene::http {

HttpResponse JsonResponse(std::string json, int status) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(json);
  return response;
}

HttpResponse ErrorResponse(int status, absl::string_view message) {
  return JsonResponse(
      absl::StrCat("{\"error\":", JsonString(std::string_view(message.data(), message.size())),
                   "}"),
      status);
}

HttpResponse ErrorResponse(const Status& status) {
  HttpResponse response = ErrorResponse(HttpStatusOf(status.code()), status.message());
  if (status.code() == StatusCode::kUnauthenticated) {
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
  }
  return response;
}

int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kCancelled:
      return 499;  // nginx's "client closed request": no standard code says it
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

}  // namespace selene::http
