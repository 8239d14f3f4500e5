#include "server/api/open_inference_rest.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/api/guarded.h"
#include "server/api/open_inference_json.h"

namespace selene::api {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using http::HttpRoute;

// Groups: the model's name, then its version ("" when the path names none).
constexpr char kModel[] = "/v2/models/([^/]+)(?:/versions/([^/]+))?";

HttpRoute Route(const char* method, std::string pattern, http::HttpHandler handler,
                bool open = false) {
  HttpRoute route;
  route.method = method;
  route.pattern = std::move(pattern);
  route.handler = std::move(handler);
  route.open = open;
  return route;
}

// A name/version request from the path's groups.
template <typename Request>
Request ModelRequest(const HttpRequest& http) {
  Request request;
  request.set_name(http.params.at(0));
  request.set_version(http.params.at(1));
  return request;
}

// The core's answer (`call()`, a StatusOr<Response>) as JSON, or its error.
template <typename Response, typename Call, typename ToJson>
HttpResponse Answer(const char* method, Call call, ToJson to_json) {
  StatusOr<Response> result = Guarded<StatusOr<Response>>(method, call);
  if (!result.ok()) return http::ErrorResponse(result.status());
  return http::JsonResponse(to_json(*result));
}

HttpResponse Infer(serving::OpenInference* core, const OpenInferenceRestOptions& options,
                   const HttpRequest& http) {
  const absl::Time started = absl::Now();
  const std::string& model = http.params.at(0);
  std::string job_id;
  StatusOr<std::string> answer = [&]() -> StatusOr<std::string> {
    if (options.ready && !options.ready()) {
      return absl::UnavailableError("selene-server is shutting down");
    }
    if (http.Header("inference-header-content-length") != nullptr) {
      return InvalidArgumentError(
          "binary tensor data (Triton's Inference-Header-Content-Length) is not supported; send "
          "the whole request as JSON");
    }
    SELENE_ASSIGN_OR_RETURN(inference::ModelInferRequest request,
                            ParseInferRequestJson(http.body, model, http.params.at(1)));
    // REST has no deadline; the request runs until it is answered.
    SELENE_ASSIGN_OR_RETURN(inference::ModelInferResponse response,
                            Guarded<StatusOr<inference::ModelInferResponse>>(
                                "ModelInfer", [&] { return core->ModelInfer(request); }));
    const auto job = response.parameters().find("job_id");
    if (job != response.parameters().end()) job_id = job->second.string_param();
    return InferResponseJson(response);
  }();
  if (options.metrics != nullptr) {
    // The job that answered; the name asked for when none did (as Segment records it).
    options.metrics->OnInferenceRequest("ModelInfer", answer.ok() ? job_id : model,
                                        answer.status().code(), absl::Now() - started);
  }
  if (!answer.ok()) return http::ErrorResponse(answer.status());
  return http::JsonResponse(*std::move(answer));
}

}  // namespace

std::vector<HttpRoute> OpenInferenceRoutes(serving::OpenInference* core,
                                           OpenInferenceRestOptions options) {
  const std::string model = kModel;
  std::vector<HttpRoute> routes;
  routes.push_back(Route(
      "GET", "/v2/health/live",
      [](const HttpRequest&) { return http::JsonResponse(R"({"live":true})"); },
      /*open=*/true));
  routes.push_back(Route(
      "GET", "/v2/health/ready",
      [ready = options.ready](const HttpRequest&) {
        if (ready && !ready()) return http::JsonResponse(R"({"ready":false})", 503);
        return http::JsonResponse(R"({"ready":true})");
      },
      /*open=*/true));
  routes.push_back(Route("GET", "/v2", [core](const HttpRequest&) {
    return http::JsonResponse(ServerMetadataJson(core->ServerMetadata()));
  }));
  // Before the model routes, whose name group would take "stats".
  routes.push_back(Route("GET", "/v2/models/stats", [core](const HttpRequest&) {
    return Answer<inference::ModelStatisticsResponse>(
        "ModelStatistics", [core] { return core->ModelStatistics({}); },
        [](const inference::ModelStatisticsResponse& r) { return ProtoJson(r); });
  }));
  routes.push_back(Route("GET", model, [core](const HttpRequest& http) {
    return Answer<inference::ModelMetadataResponse>(
        "ModelMetadata",
        [&] { return core->ModelMetadata(ModelRequest<inference::ModelMetadataRequest>(http)); },
        [](const inference::ModelMetadataResponse& r) { return ModelMetadataJson(r); });
  }));
  routes.push_back(Route("GET", model + "/ready", [core](const HttpRequest& http) {
    StatusOr<inference::ModelReadyResponse> result =
        Guarded<StatusOr<inference::ModelReadyResponse>>("ModelReady", [&] {
          return core->ModelReady(ModelRequest<inference::ModelReadyRequest>(http));
        });
    if (!result.ok()) return http::ErrorResponse(result.status());
    // KServe: the status says it, 200 ready or 4xx not.
    return http::JsonResponse(absl::StrCat("{\"name\":", JsonString(http.params[0]),
                                           ",\"ready\":", result->ready() ? "true" : "false", "}"),
                              result->ready() ? 200 : 400);
  }));
  routes.push_back(Route("GET", model + "/config", [core](const HttpRequest& http) {
    return Answer<inference::ModelConfigResponse>(
        "ModelConfig",
        [&] { return core->ModelConfig(ModelRequest<inference::ModelConfigRequest>(http)); },
        // Triton answers the configuration itself, not the response around it.
        [](const inference::ModelConfigResponse& r) { return ProtoJson(r.config()); });
  }));
  routes.push_back(Route("GET", model + "/stats", [core](const HttpRequest& http) {
    return Answer<inference::ModelStatisticsResponse>(
        "ModelStatistics",
        [&] {
          return core->ModelStatistics(ModelRequest<inference::ModelStatisticsRequest>(http));
        },
        [](const inference::ModelStatisticsResponse& r) { return ProtoJson(r); });
  }));
  routes.push_back(Route("POST", model + "/infer", [core, options](const HttpRequest& http) {
    return Infer(core, options, http);
  }));
  return routes;
}

}  // namespace selene::api
