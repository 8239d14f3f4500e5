#include "server/http/metrics_endpoint.h"

#include <httplib.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/text_format.h"
#include "tests/testing/loopback.h"

namespace selene::http {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddCounter("selene_test_total", "A test counter.").Get().Increment(41);
    auto server = StartMetricsEndpoint("127.0.0.1:0", &registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }

  httplib::Client Client() const { return httplib::Client("127.0.0.1", server_->port()); }

  metrics::Registry registry_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(MetricsEndpointTest, GetMetricsAnswersTheRegistryInTheTextFormat) {
  registry_.AddGauge("selene_late_gauge", "Added after start.").Get().Set(1);
  httplib::Result answer = Client().Get("/metrics");
  ASSERT_TRUE(answer) << httplib::to_string(answer.error());
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->get_header_value("Content-Type"), metrics::kTextFormatContentType);
  EXPECT_EQ(answer->body, registry_.Scrape());
  EXPECT_THAT(answer->body, HasSubstr("selene_test_total 41\n"));
  EXPECT_THAT(answer->body, HasSubstr("selene_late_gauge 1\n"));
}

TEST_F(MetricsEndpointTest, QueryStringsHeadAndHttp10AreServed) {
  httplib::Result with_query = Client().Get("/metrics?x=1");
  ASSERT_TRUE(with_query);
  EXPECT_THAT(with_query->body, HasSubstr("selene_test_total 41"));
  httplib::Result head = Client().Head("/metrics");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  // What the old endpoint's scrapers (and tests/testing/loopback.h) send.
  const selene::testing::HttpResponse old_style =
      selene::testing::HttpGet(server_->port(), "/metrics");
  EXPECT_EQ(old_style.status, 200);
  EXPECT_THAT(old_style.body, HasSubstr("selene_test_total 41"));
}

TEST_F(MetricsEndpointTest, OtherPathsMethodsAndGarbageGetJsonErrorsAndServingGoesOn) {
  httplib::Result root = Client().Get("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 404);
  EXPECT_EQ(root->body, R"({"error":"no such path: GET /"})");
  httplib::Result post = Client().Post("/metrics", "", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  EXPECT_THAT(
      selene::testing::RawFirstAnswer(server_->port(), "hello\r\n\r\n"),
      AllOf(StartsWith("HTTP/1.1 400"), HasSubstr(R"({"error":"malformed HTTP request"})")));
  EXPECT_THAT(
      selene::testing::RawFirstAnswer(server_->port(), std::string(20000, 'x') + "\r\n\r\n"),
      StartsWith("HTTP/1.1 414"));
  httplib::Result after = Client().Get("/metrics");
  ASSERT_TRUE(after);
  EXPECT_THAT(after->body, HasSubstr("selene_test_total 41"));
}

TEST_F(MetricsEndpointTest, StopIsIdempotentAndClosesThePort) {
  const int port = server_->port();
  server_->Stop();
  server_->Stop();
  EXPECT_EQ(selene::testing::RawExchange(port, "GET /metrics HTTP/1.0\r\n\r\n"), "");
}

TEST_F(MetricsEndpointTest, BadAddressesAndATakenPortAreNamed) {
  metrics::Registry registry;
  auto no_port = StartMetricsEndpoint("localhost", &registry);
  EXPECT_EQ(no_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(no_port.status().message(),
              HasSubstr("metrics address 'localhost' is not host:port"));
  auto bad_port = StartMetricsEndpoint("127.0.0.1:99999", &registry);
  EXPECT_EQ(bad_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_port.status().message(), HasSubstr("port '99999'"));
  auto taken = StartMetricsEndpoint(absl::StrCat("127.0.0.1:", server_->port()), &registry);
  EXPECT_EQ(taken.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(
      taken.status().message(),
      AllOf(HasSubstr(absl::StrCat("cannot listen for metrics on 127.0.0.1:", server_->port())),
            HasSubstr("Address already in use")));
}

}  // namespace
}  // namespace selene::http
