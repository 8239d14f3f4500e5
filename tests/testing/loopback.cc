#include "tests/testing/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace selene::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// A socket connected to the loopback `port` with `request` sent and a 10 s receive timeout, or
// -1 when nothing listens there.
int ConnectAndSend(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address = Loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  return fd;
}

}  // namespace

int UnusedLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = Loopback(0);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string RawExchange(int port, const std::string& request) {
  const int fd = ConnectAndSend(port, request);
  if (fd < 0) return "";
  std::string answer;
  char buffer[8192];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, n);
  ::close(fd);
  return answer;
}

std::string RawFirstAnswer(int port, const std::string& request) {
  const int fd = ConnectAndSend(port, request);
  if (fd < 0) return "";
  std::string answer;
  char buffer[8192];
  while (true) {
    const size_t head_end = answer.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      // Header names are case-insensitive; servers write "Content-Length".
      size_t length = 0;
      for (const char* name : {"\r\nContent-Length: ", "\r\ncontent-length: "}) {
        const size_t at = answer.find(name);
        if (at != std::string::npos && at < head_end) {
          length = std::strtoul(answer.c_str() + at + std::strlen(name), nullptr, 10);
        }
      }
      if (answer.size() >= head_end + 4 + length) {
        answer.resize(head_end + 4 + length);
        break;
      }
    }
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      answer.clear();
      break;
    }
    answer.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

HttpResponse HttpGet(int port, const std::string& target) {
  HttpResponse response;
  const std::string answer =
      RawExchange(port, "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  const size_t head_end = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) return response;
  response.status = std::atoi(answer.c_str() + answer.find(' ') + 1);
  response.headers = answer.substr(0, head_end);
  response.body = answer.substr(head_end + 4);
  return response;
}

}  // namespace selene::testing
