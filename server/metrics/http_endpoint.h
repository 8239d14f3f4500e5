// The scrape endpoint: a minimal HTTP/1.1 server answering `GET /metrics` with the registry in
// the text format, on its own address (--metrics_listen) and its own thread, so a scrape never
// competes with gRPC calls for their threads. One request per connection (Connection: close);
// scrapes come every few seconds, so connections are served one at a time, each bounded by a
// socket timeout so a stuck client cannot hold the endpoint.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "server/metrics/registry.h"

namespace selene::metrics {

class MetricsHttpServer {
 public:
  // Listens on `address` ("host:port", "[v6]:port" or ":port" for every interface; port 0 picks a
  // free one) and serves `registry`, which must outlive the server. InvalidArgument for an
  // address that does not parse or resolve; Unavailable when it cannot be bound (port in use).
  static StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                            const Registry* registry);

  // Stop()s.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }

  // Finishes the request being served, joins the thread and closes the port. Idempotent; not
  // to be called from two threads at once.
  void Stop();

 private:
  MetricsHttpServer(const Registry* registry, int listen_fd, int wake_fd, int port);
  void ServeLoop();
  void ServeConnection(int fd);

  const Registry* const registry_;
  int listen_fd_;      // -1 once Stop() closed it
  const int wake_fd_;  // an eventfd: written by Stop() to end the poll
  const int port_;
  std::thread thread_;
};

}  // namespace selene::metrics
