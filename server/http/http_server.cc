#include "server/http/http_server.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/text_limits.h"

namespace selene::http {
namespace {

// Echoed paths are cut to this: a 404 need not repeat an 8 KiB request line.
constexpr size_t kMaxEchoedPath = 200;

struct HostPort {
  std::string host;
  int port = 0;
};

StatusOr<HostPort> SplitHostPort(const std::string& address, const std::string& purpose) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError(absl::StrCat(purpose, " address '", ForMessage(address),
                                             "' is not host:port (e.g. 0.0.0.0:8000 or :8000)"));
  }
  HostPort parts;
  parts.host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (parts.host.size() >= 2 && parts.host.front() == '[' && parts.host.back() == ']') {
    parts.host = parts.host.substr(1, parts.host.size() - 2);
  }
  // The library needs a host to resolve; "every interface" is the IPv4 wildcard.
  if (parts.host.empty()) parts.host = "0.0.0.0";
  if (!absl::SimpleAtoi(port, &parts.port) || parts.port < 0 || parts.port > 65535) {
    return InvalidArgumentError(absl::StrCat(purpose, " address '", ForMessage(address),
                                             "': port '", ForMessage(port),
                                             "' is not a number in 0..65535"));
  }
  return parts;
}

// The library only says whether it could bind. Binding a probe socket first, with the same
// options, names why not: an address that does not resolve is the caller's mistake
// (InvalidArgument), one in use or not of this host the environment's (Unavailable).
Status CheckBindable(const HostPort& parts, const std::string& address,
                     const std::string& purpose) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(parts.port);
  const int resolved = getaddrinfo(parts.host.c_str(), port.c_str(), &hints, &found);
  if (resolved != 0) {
    return InvalidArgumentError(absl::StrCat(purpose, " address '", ForMessage(address),
                                             "' does not resolve: ", gai_strerror(resolved)));
  }
  std::string failure = "no address to bind";
  bool bound = false;
  for (addrinfo* candidate = found; candidate != nullptr && !bound;
       candidate = candidate->ai_next) {
    const int fd =
        socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC, candidate->ai_protocol);
    if (fd < 0) {
      failure = std::strerror(errno);
      continue;
    }
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, candidate->ai_addr, candidate->ai_addrlen) == 0) {
      bound = true;
    } else {
      failure = std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (bound) return OkStatus();
  return absl::UnavailableError(
      absl::StrCat("cannot listen for ", purpose, " on ", address, ": ", failure));
}

// The library's default also sets SO_REUSEPORT, which would let a second server bind the same
// port and take half its connections; a taken port must be an error.
void SetSocketOptions(int fd) {
  const int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

void WriteResponse(HttpResponse response, httplib::Response& out) {
  out.status = response.status;
  for (const auto& [name, value] : response.headers) out.set_header(name, value);
  out.set_content(std::move(response.body), response.content_type);
}

// The body of the errors the library answers itself, before any route runs.
std::string LibraryErrorMessage(int status, size_t max_body_bytes) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 404:
      return "no such path";
    case 413:
      return absl::StrCat("request body over the limit of ", max_body_bytes, " bytes");
    case 414:
      return "request line too long";
    default:
      return absl::StrCat("HTTP error ", status);
  }
}

std::string ExceptionMessage(std::exception_ptr exception) {
  try {
    std::rethrow_exception(exception);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace

const std::string* HttpRequest::Header(const std::string& lower_case_name) const {
  const auto found = headers.find(lower_case_name);
  return found == headers.end() ? nullptr : &found->second;
}

HttpServer::HttpServer(std::vector<CompiledRoute> routes, HttpServerOptions options)
    : routes_(std::move(routes)), options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                        std::vector<HttpRoute> routes,
                                                        HttpServerOptions options) {
  SELENE_ASSIGN_OR_RETURN(HostPort parts, SplitHostPort(address, options.purpose));
  const bool tls = !options.tls_cert_file.empty();
  if (tls != !options.tls_key_file.empty()) {
    return InvalidArgumentError(
        absl::StrCat(options.purpose, ": TLS needs both a certificate and a key file, or neither"));
  }
  if (options.threads < 1) {
    return InvalidArgumentError(absl::StrCat(options.purpose, ": threads must be >= 1"));
  }
  std::vector<CompiledRoute> compiled;
  for (HttpRoute& route : routes) {
    try {
      std::regex regex(route.pattern, std::regex::ECMAScript);
      compiled.push_back({std::move(route), std::move(regex)});
    } catch (const std::regex_error& e) {
      return InvalidArgumentError(absl::StrCat("route pattern '", route.pattern,
                                               "' is not a regular expression: ", e.what()));
    }
  }

  std::unique_ptr<HttpServer> server(new HttpServer(std::move(compiled), std::move(options)));
  const HttpServerOptions& o = server->options_;
  if (tls) {
    server->server_ =
        std::make_unique<httplib::SSLServer>(o.tls_cert_file.c_str(), o.tls_key_file.c_str());
    server->tls_ = true;
    if (!server->server_->is_valid()) {
      return InvalidArgumentError(absl::StrCat(o.purpose, ": TLS certificate ", o.tls_cert_file,
                                               " and key ", o.tls_key_file,
                                               " cannot be loaded (PEM, unencrypted, a matching "
                                               "pair)"));
    }
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& library = *server->server_;
  library.set_socket_options(SetSocketOptions);
  library.set_tcp_nodelay(true);
  library.set_payload_max_length(o.max_body_bytes);
  library.set_read_timeout(o.io_timeout_s);
  library.set_write_timeout(o.io_timeout_s);
  library.set_keep_alive_timeout(o.idle_timeout_s);

  // Every request goes through Answer, which does the routing: the library's own would answer a
  // known path with another method 404, and its pre-routing hook, where a token check would go,
  // runs before the body is read and before any route is known to be open.
  const httplib::Server::Handler dispatch = [raw = server.get()](const httplib::Request& in,
                                                                 httplib::Response& out) {
    HttpRequest request;
    request.method = in.method;
    request.path = in.path;
    request.body = in.body;
    for (const auto& [name, value] : in.headers) {
      request.headers.emplace(absl::AsciiStrToLower(name), value);
    }
    WriteResponse(raw->Answer(request), out);
  };
  // Every method the library routes (HEAD goes to the GET handlers; others it answers 400).
  const std::string any_path = "[\\s\\S]*";
  library.Get(any_path, dispatch);
  library.Post(any_path, dispatch);
  library.Put(any_path, dispatch);
  library.Patch(any_path, dispatch);
  library.Delete(any_path, dispatch);
  library.Options(any_path, dispatch);
  // Errors the library answers itself (malformed request, body over the limit, a method it does
  // not route) get the same JSON body as the routes' errors; the routes' own bodies stay.
  const httplib::Server::HandlerWithResponse on_error =
      [max = o.max_body_bytes](const httplib::Request& in, httplib::Response& out) {
        if (!out.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = LibraryErrorMessage(out.status, max);
        // The library caps form bodies at its own compiled-in limit, whatever ours is; curl's
        // -d sends that content type unless told otherwise, so say what to do instead.
        if (out.status == 413 &&
            in.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
          message =
              absl::StrCat("a request body of Content-Type application/x-www-form-urlencoded ",
                           "is limited to ", CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH,
                           " bytes; send Content-Type: application/json");
        }
        WriteResponse(ErrorResponse(out.status, message), out);
        return httplib::Server::HandlerResponse::Handled;
      };
  library.set_error_handler(on_error);
  // Answer catches what handlers throw; this is for anything thrown around them.
  library.set_exception_handler(
      [](const httplib::Request&, httplib::Response& out, std::exception_ptr exception) {
        WriteResponse(
            ErrorResponse(500, absl::StrCat("internal error: ", ExceptionMessage(exception))), out);
      });

  SELENE_RETURN_IF_ERROR(CheckBindable(parts, address, o.purpose));
  if (parts.port == 0) {
    server->port_ = library.bind_to_any_port(parts.host);
  } else if (library.bind_to_port(parts.host, parts.port)) {
    server->port_ = parts.port;
  }
  if (server->port_ <= 0) {
    server->port_ = 0;
    return absl::UnavailableError(
        absl::StrCat("cannot listen for ", o.purpose, " on ", address, " (taken meanwhile?)"));
  }

  // The library's stop() does nothing until its accept loop has begun, so Start returns only
  // once it has: the loop creates its task queue right after it marks itself running.
  auto running = std::make_shared<absl::Notification>();
  const int threads = o.threads;
  library.new_task_queue = [running, threads] {
    running->Notify();
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server->thread_ = std::thread([raw = server.get(), running] {
    raw->server_->listen_after_bind();
    if (!running->HasBeenNotified()) running->Notify();  // it failed before its loop
  });
  running->WaitForNotification();
  return server;
}

void HttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpResponse HttpServer::Answer(HttpRequest& request) const {
  const std::string method = request.method == "HEAD" ? "GET" : request.method;
  std::vector<std::string> allowed;
  for (const CompiledRoute& compiled : routes_) {
    std::smatch match;
    if (!std::regex_match(request.path, match, compiled.regex)) continue;
    const HttpRoute& route = compiled.route;
    if (route.method != method) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
        allowed.push_back(route.method);
        if (route.method == "GET") allowed.push_back("HEAD");
      }
      continue;
    }
    if (!route.open && options_.authenticate) {
      if (Status status = options_.authenticate(request.Header("authorization")); !status.ok()) {
        return ErrorResponse(status);
      }
    }
    for (size_t group = 1; group < match.size(); ++group) {
      request.params.push_back(match[group].str());
    }
    try {
      return route.handler(request);
    } catch (const std::exception& e) {
      return ErrorResponse(500, absl::StrCat("internal error: ", e.what()));
    } catch (...) {
      return ErrorResponse(500, "internal error: unknown exception");
    }
  }
  const std::string target =
      absl::StrCat(request.method, " ", ForMessage(request.path, kMaxEchoedPath));
  if (allowed.empty()) return ErrorResponse(404, absl::StrCat("no such path: ", target));
  HttpResponse response = ErrorResponse(
      405,
      absl::StrCat(target, ": method not allowed (allowed: ", absl::StrJoin(allowed, ", "), ")"));
  response.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
  return response;
}

}  // namespace selene::http
