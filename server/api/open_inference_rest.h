// The Open Inference Protocol over HTTP/REST ("KServe v2", with Triton's configuration and
// statistics extensions), as routes for http::HttpServer (--http_listen). Every answer comes
// from serving::OpenInference, the same object behind the gRPC service, so both protocols answer
// alike; this file only maps paths to calls, JSON to protos (open_inference_json.h) and statuses
// to HTTP (400 bad request, 401, 404 unknown model, 429, 503 draining, 504, 500).
//
//   GET  /v2                                   server metadata
//   GET  /v2/health/live                       200 {"live":true}             (no token needed)
//   GET  /v2/health/ready                      200 {"ready":true}, 503 while draining (no token)
//   GET  /v2/models/stats                      statistics of every loaded model
//   GET  /v2/models/{m}[/versions/{v}]         model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready   200 {"name","ready":true}, 400 when not ready
//   GET  /v2/models/{m}[/versions/{v}]/config  Triton's model configuration
//   GET  /v2/models/{m}[/versions/{v}]/stats   Triton's statistics of one model
//   POST /v2/models/{m}[/versions/{v}]/infer   inference
//
// A model name is a job id or an alias ("latest", "latest:classification"); ':' may come
// percent-encoded. Infer requests are counted in the server's inference metrics (method
// "ModelInfer", like the gRPC call).
#pragma once

#include <functional>
#include <vector>

#include "server/api/server_metrics.h"
#include "server/http/http_server.h"
#include "server/serving/open_inference.h"

namespace selene::api {

struct OpenInferenceRestOptions {
  // False once the server drains: /v2/health/ready answers 503 and new infer requests are
  // refused (503), while those already running finish. Unset: always ready.
  std::function<bool()> ready;
  ServerMetrics* metrics = nullptr;  // nullptr: nothing recorded
};

// The routes, health ones open, the rest behind the server's authentication. `open_inference`
// (and `options.metrics`) must outlive the server that serves them.
std::vector<http::HttpRoute> OpenInferenceRoutes(serving::OpenInference* open_inference,
                                                 OpenInferenceRestOptions options);

}  // namespace selene::api
