// A small HTTP/1.1 server on cpp-httplib (Debian's libcpp-httplib): the REST v2 routes
// (--http_listen) and the Prometheus scrape (--metrics_listen) run on it. It adds what both need
// around the library: "host:port" addresses with named errors, a fixed thread pool, optional TLS
// from PEM files, bearer authentication on every route not marked open, a request body limit,
// and errors as JSON ({"error": "..."}: 400 bad request, 401 no or wrong token, 404 unknown
// path, 405 known path with another method, 413 body over the limit, 500 a handler that threw,
// the server serving on). The library stays inside http_server.cc: its class layouts depend on
// the compile definitions of its pkg-config file, which only that file has to get right.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "server/http/http_response.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace selene::http {

struct HttpRequest {
  std::string method;  // as sent: "GET", "HEAD", "POST", ...
  std::string path;    // without the query string, percent-decoded
  // The route pattern's capture groups, in order ("/v2/models/([^/]+)" on "/v2/models/m": {"m"}).
  std::vector<std::string> params;
  absl::string_view body;  // valid during the handler call
  // Header names in lower case; a header sent twice keeps its first value.
  std::map<std::string, std::string> headers;

  // The header's value, or nullptr; `lower_case_name` as in `headers`.
  const std::string* Header(const std::string& lower_case_name) const;
};

// Called on one of the server's threads; several at once. An exception it throws is answered
// 500 with its message.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpRoute {
  std::string method;  // "GET" (which answers HEAD too), "POST", "PUT", "DELETE", ...
  // An ECMAScript regular expression that must match the whole path; its groups become
  // HttpRequest::params.
  std::string pattern;
  HttpHandler handler;
  // Served without authentication (health checks, like gRPC's health service).
  bool open = false;
};

struct HttpServerOptions {
  // What the server is for, in error messages: "cannot listen for <purpose> on ...".
  std::string purpose = "HTTP";
  // PEM files; both (HTTPS) or neither (plain HTTP).
  std::string tls_cert_file;
  std::string tls_key_file;
  // Asked with the Authorization header's value (nullptr when there is none) before every route
  // that is not open; a failed status is the answer (UNAUTHENTICATED: 401). Unset: no check.
  std::function<Status(const std::string* authorization)> authenticate;
  // Larger request bodies are answered 413 without calling a handler.
  size_t max_body_bytes = size_t{1} << 20;
  // Connections served at once; a keep-alive connection holds its thread until it goes idle
  // for idle_timeout_s.
  int threads = 4;
  int idle_timeout_s = 5;
  // A request (or answer) stalling longer than this between bytes ends its connection.
  int io_timeout_s = 10;
};

class HttpServer {
 public:
  // Listens on `address` ("host:port", "[v6]:port", or ":port" for every IPv4 interface; port 0
  // picks a free one) and serves `routes`, tried in order. InvalidArgument for an address that
  // does not parse or resolve, or TLS files that cannot be loaded; Unavailable when the address
  // cannot be bound (the port is in use, or not an address of this host).
  static StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address,
                                                     std::vector<HttpRoute> routes,
                                                     HttpServerOptions options = {});

  // Stop()s.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }
  bool tls() const { return tls_; }

  // Closes the port, lets the requests being served finish, and joins every thread. Idempotent;
  // not to be called from two threads at once, nor from a handler.
  void Stop();

 private:
  struct CompiledRoute {
    HttpRoute route;
    std::regex regex;
  };

  HttpServer(std::vector<CompiledRoute> routes, HttpServerOptions options);
  // What `request` gets: the route whose pattern and method match, after authentication.
  HttpResponse Answer(HttpRequest& request) const;

  const std::vector<CompiledRoute> routes_;
  const HttpServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  bool tls_ = false;
  int port_ = 0;
  std::thread thread_;  // runs the library's accept loop
};

}  // namespace selene::http
