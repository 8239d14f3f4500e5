// The Prometheus scrape endpoint: `GET /metrics` (and HEAD) answering the registry in the text
// format, on its own address (--metrics_listen) and its own two threads, so a scrape never
// competes with gRPC or REST calls for theirs. Open, like the text format expects of a scrape
// target; anything else is answered as HttpServer answers it (404, 405, ...).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "server/http/http_server.h"
#include "server/metrics/registry.h"

namespace selene::http {

// The route alone, for a server that serves more than metrics.
HttpRoute MetricsRoute(const metrics::Registry* registry);

// Listens on `address` (as HttpServer::Start: "host:port", port 0 picks a free one) and serves
// `registry`, which must outlive the server. InvalidArgument for an address that does not parse
// or resolve ("metrics address '...'"); Unavailable when it cannot be bound ("cannot listen for
// metrics on ...").
StatusOr<std::unique_ptr<HttpServer>> StartMetricsEndpoint(const std::string& address,
                                                           const metrics::Registry* registry);

}  // namespace selene::http
