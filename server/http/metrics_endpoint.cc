#include "server/http/metrics_endpoint.h"

#include <utility>
#include <vector>

#include "server/metrics/text_format.h"

namespace selene::http {

HttpRoute MetricsRoute(const metrics::Registry* registry) {
  HttpRoute route;
  route.method = "GET";
  route.pattern = "/metrics";
  route.open = true;
  route.handler = [registry](const HttpRequest&) {
    HttpResponse response;
    response.content_type = metrics::kTextFormatContentType;
    response.body = registry->Scrape();
    return response;
  };
  return route;
}

StatusOr<std::unique_ptr<HttpServer>> StartMetricsEndpoint(const std::string& address,
                                                           const metrics::Registry* registry) {
  HttpServerOptions options;
  options.purpose = "metrics";
  // A scrape sends no body; a small pool, since scrapes come every few seconds.
  options.max_body_bytes = 16 * 1024;
  options.threads = 2;
  std::vector<HttpRoute> routes;
  routes.push_back(MetricsRoute(registry));
  return HttpServer::Start(address, std::move(routes), std::move(options));
}

}  // namespace selene::http
