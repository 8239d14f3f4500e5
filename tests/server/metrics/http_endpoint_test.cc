#include "server/metrics/http_endpoint.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/text_format.h"
#include "tests/testing/loopback.h"

namespace selene::metrics {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Exchange(int port, const std::string& request) {
  return selene::testing::RawExchange(port, request);
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddCounter("selene_test_total", "A test counter.").Get().Increment(41);
    auto server = MetricsHttpServer::Start("127.0.0.1:0", &registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }

  Registry registry_;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpServerTest, GetMetricsAnswersTheRegistryInTheTextFormat) {
  registry_.AddGauge("selene_late_gauge", "Added after start.").Get().Set(1);
  const std::string answer =
      Exchange(server_->port(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(answer, HasSubstr(absl::StrCat("Content-Type: ", kTextFormatContentType)));
  const std::string body = registry_.Scrape();
  EXPECT_THAT(answer, HasSubstr(absl::StrCat("Content-Length: ", body.size(), "\r\n")));
  EXPECT_THAT(answer, EndsWith("\r\n\r\n" + body));
  EXPECT_THAT(body, HasSubstr("selene_test_total 41\n"));
  EXPECT_THAT(body, HasSubstr("selene_late_gauge 1\n"));
}

TEST_F(MetricsHttpServerTest, QueryStringsAndHeadAreServed) {
  EXPECT_THAT(Exchange(server_->port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
              HasSubstr("selene_test_total 41"));
  const std::string head = Exchange(server_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(head, EndsWith("\r\n\r\n"));  // headers only
}

TEST_F(MetricsHttpServerTest, OtherPathsMethodsAndGarbageGetHttpErrorsAndServingGoesOn) {
  EXPECT_THAT(Exchange(server_->port(), "GET / HTTP/1.1\r\n\r\n"),
              AllOf(StartsWith("HTTP/1.1 404 Not Found"), HasSubstr("metrics are at /metrics")));
  EXPECT_THAT(Exchange(server_->port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
              AllOf(StartsWith("HTTP/1.1 405"), HasSubstr("Allow: GET, HEAD")));
  EXPECT_THAT(Exchange(server_->port(), "hello\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(Exchange(server_->port(), std::string(20000, 'x')), StartsWith("HTTP/1.1 431"));
  EXPECT_THAT(Exchange(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              HasSubstr("selene_test_total 41"));
}

TEST_F(MetricsHttpServerTest, StopIsIdempotentAndClosesThePort) {
  const int port = server_->port();
  server_->Stop();
  server_->Stop();
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "");
}

TEST_F(MetricsHttpServerTest, BadAddressesAndATakenPortAreNamed) {
  Registry registry;
  auto no_port = MetricsHttpServer::Start("localhost", &registry);
  EXPECT_EQ(no_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(no_port.status().message(), HasSubstr("'localhost' is not host:port"));
  auto bad_port = MetricsHttpServer::Start("127.0.0.1:99999", &registry);
  EXPECT_THAT(bad_port.status().message(), HasSubstr("port '99999'"));
  auto taken = MetricsHttpServer::Start(absl::StrCat("127.0.0.1:", server_->port()), &registry);
  EXPECT_EQ(taken.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(taken.status().message(), HasSubstr("Address already in use"));
}

}  // namespace
}  // namespace selene::metrics
