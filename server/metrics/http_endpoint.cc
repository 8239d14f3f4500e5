#include "server/metrics/http_endpoint.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/metrics/text_format.h"

namespace selene::metrics {
namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;
constexpr int kSocketTimeoutSeconds = 5;

struct HostPort {
  std::string host;  // "" = every interface
  std::string port;
};

StatusOr<HostPort> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' is not host:port (e.g. 0.0.0.0:9464)"));
  }
  HostPort parts{address.substr(0, colon), address.substr(colon + 1)};
  if (parts.host.size() >= 2 && parts.host.front() == '[' && parts.host.back() == ']') {
    parts.host = parts.host.substr(1, parts.host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(parts.port, &port) || port < 0 || port > 65535) {
    return InvalidArgumentError(absl::StrCat("metrics address '", address, "': port '", parts.port,
                                             "' is not a number in 0..65535"));
  }
  return parts;
}

std::string ErrnoText() { return std::strerror(errno); }

void SetTimeouts(int fd) {
  timeval timeout{kSocketTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

std::string Response(absl::string_view status, absl::string_view content_type,
                     absl::string_view body, bool include_body,
                     absl::string_view extra_headers = "") {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                      "Connection: close\r\n\r\n", include_body ? body : "");
}

}  // namespace

StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& address,
                                                                      const Registry* registry) {
  SELENE_ASSIGN_OR_RETURN(HostPort parts, SplitHostPort(address));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int resolved = getaddrinfo(parts.host.empty() ? nullptr : parts.host.c_str(),
                                   parts.port.c_str(), &hints, &found);
  if (resolved != 0) {
    return InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' does not resolve: ", gai_strerror(resolved)));
  }
  std::string failure;
  int listen_fd = -1;
  for (addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    const int fd =
        socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC, candidate->ai_protocol);
    if (fd < 0) {
      failure = ErrnoText();
      continue;
    }
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, candidate->ai_addr, candidate->ai_addrlen) == 0 && listen(fd, 16) == 0) {
      listen_fd = fd;
      break;
    }
    failure = ErrnoText();
    close(fd);
  }
  freeaddrinfo(found);
  if (listen_fd < 0) {
    return Status(StatusCode::kUnavailable,
                  absl::StrCat("cannot listen for metrics on ", address, ": ", failure));
  }

  sockaddr_storage bound{};
  socklen_t bound_size = sizeof(bound);
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &bound_size);
  int port = 0;
  char port_text[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&bound), bound_size, nullptr, 0, port_text,
                  sizeof(port_text), NI_NUMERICSERV) == 0) {
    absl::SimpleAtoi(port_text, &port);
  }
  const int wake_fd = eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    close(listen_fd);
    return InternalError(absl::StrCat("eventfd: ", ErrnoText()));
  }
  auto server =
      std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(registry, listen_fd, wake_fd, port));
  server->thread_ = std::thread([raw = server.get()] { raw->ServeLoop(); });
  return server;
}

MetricsHttpServer::MetricsHttpServer(const Registry* registry, int listen_fd, int wake_fd, int port)
    : registry_(registry), listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port) {}

MetricsHttpServer::~MetricsHttpServer() {
  Stop();
  close(wake_fd_);
}

void MetricsHttpServer::Stop() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // The eventfd counter cannot overflow from a few writes; nothing else can fail here.
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

void MetricsHttpServer::ServeLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // Stop()
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the client went away, or out of descriptors for a moment
    SetTimeouts(fd);
    ServeConnection(fd);
    close(fd);
  }
}

void MetricsHttpServer::ServeConnection(int fd) {
  // Read the request head; the body (there is none for GET) is ignored.
  std::string request;
  char buffer[4096];
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() > kMaxRequestBytes) {
      SendAll(fd, Response("431 Request Header Fields Too Large", "text/plain",
                           "request head over 16 KiB\n", true));
      return;
    }
    const ssize_t received = recv(fd, buffer, sizeof(buffer), 0);
    if (received < 0 && errno == EINTR) continue;
    if (received <= 0) return;  // closed or timed out before a whole head
    request.append(buffer, static_cast<size_t>(received));
  }
  const std::string request_line = request.substr(0, request.find("\r\n"));
  const std::vector<std::string> parts = absl::StrSplit(request_line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/")) {
    SendAll(fd, Response("400 Bad Request", "text/plain", "not an HTTP/1.x request line\n", true));
    return;
  }
  const std::string& method = parts[0];
  const absl::string_view path = absl::string_view(parts[1]).substr(0, parts[1].find('?'));
  const bool head = method == "HEAD";
  if (path != "/metrics") {
    SendAll(fd,
            Response("404 Not Found", "text/plain", "not found: metrics are at /metrics\n", !head));
    return;
  }
  if (method != "GET" && !head) {
    SendAll(fd, Response("405 Method Not Allowed", "text/plain", "use GET /metrics\n", true,
                         "Allow: GET, HEAD\r\n"));
    return;
  }
  SendAll(fd, Response("200 OK", kTextFormatContentType, registry_->Scrape(), !head));
}

}  // namespace selene::metrics
