// Loopback networking for tests: a free port, and a plain HTTP/1.1 GET.
#pragma once

#include <string>

namespace selene::testing {

// A loopback port nothing listens on: bound, read back and released.
int UnusedLoopbackPort();

struct HttpResponse {
  int status = 0;  // 0 when the exchange failed (nothing listening, no HTTP answer)
  std::string headers;
  std::string body;
};

// Sends `request` as is to 127.0.0.1:port and returns everything answered until the server
// closes; "" when nothing listens.
std::string RawExchange(int port, const std::string& request);

// Sends `request` as is and returns the first answer: its head and as many body bytes as its
// Content-Length says, without waiting for the server to close (one that keeps the connection
// open after an error would hold RawExchange for its keep-alive timeout); "" when nothing
// listens or no whole answer came within 10 s.
std::string RawFirstAnswer(int port, const std::string& request);

// GET `target` ("/metrics", "/api/v1/query?query=up") from 127.0.0.1:port as HTTP/1.0 (so the
// answer is never chunked), reading until the server closes.
HttpResponse HttpGet(int port, const std::string& target);

}  // namespace selene::testing
