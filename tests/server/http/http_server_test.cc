#include "server/http/http_server.h"

#include <httplib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/loopback.h"

namespace selene::http {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kToken[] = "s3cret-token";

// A model-shaped path parameter, as REST v2 routes take them: names like "job-3" and
// "latest:classification".
constexpr char kModelPattern[] = "/v2/models/([^/]+)(?:/versions/([^/]+))?";

HttpRoute Route(std::string method, std::string pattern, HttpHandler handler, bool open = false) {
  HttpRoute route;
  route.method = std::move(method);
  route.pattern = std::move(pattern);
  route.handler = std::move(handler);
  route.open = open;
  return route;
}

// What the API's TokenAuth does, without it (server/http is below server/api).
Status CheckToken(const std::string* authorization) {
  if (authorization == nullptr) {
    return absl::UnauthenticatedError("missing bearer token (authorization: Bearer ...)");
  }
  if (*authorization != absl::StrCat("Bearer ", kToken)) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return OkStatus();
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = selene::testing::MakeTempDir("selene-http-server"); }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  // The routes every test serves: an echo of the path parameters and the body, a route that
  // throws, and an open health check.
  std::vector<HttpRoute> Routes() {
    std::vector<HttpRoute> routes;
    routes.push_back(Route("GET", kModelPattern, [](const HttpRequest& request) {
      return JsonResponse(
          absl::StrCat("{\"params\":", JsonString(absl::StrJoin(request.params, "|")), "}"));
    }));
    routes.push_back(Route("POST", "/v2/models/([^/]+)/infer", [this](const HttpRequest& request) {
      ++handled_;
      HttpResponse response;
      response.content_type = "text/plain";
      response.body = absl::StrCat(request.params[0], ":", request.body.size());
      return response;
    }));
    routes.push_back(Route("GET", "/throw", [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("the handler broke");
    }));
    routes.push_back(
        Route("GET", "/throw-int", [](const HttpRequest&) -> HttpResponse { throw 7; }));
    routes.push_back(Route(
        "GET", "/v2/health/live",
        [](const HttpRequest&) { return JsonResponse(R"({"live":true})"); },
        /*open=*/true));
    return routes;
  }

  void StartServer(HttpServerOptions options = {}) {
    auto server = HttpServer::Start("127.0.0.1:0", Routes(), std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }

  httplib::Client Client() const { return httplib::Client("127.0.0.1", server_->port()); }

  std::string dir_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> handled_{0};
};

TEST_F(HttpServerTest, RoutesGetThePathsCaptureGroups) {
  StartServer();
  httplib::Result plain = Client().Get("/v2/models/job-3");
  ASSERT_TRUE(plain) << httplib::to_string(plain.error());
  EXPECT_EQ(plain->status, 200);
  EXPECT_EQ(plain->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(plain->body, R"({"params":"job-3|"})");  // the optional group: empty
  httplib::Result alias = Client().Get("/v2/models/latest:classification/versions/1");
  ASSERT_TRUE(alias);
  EXPECT_EQ(alias->body, R"({"params":"latest:classification|1"})");
  // Percent-encoded as a client library may send it.
  httplib::Result encoded = Client().Get("/v2/models/latest%3Asegmentation");
  ASSERT_TRUE(encoded);
  EXPECT_EQ(encoded->body, R"({"params":"latest:segmentation|"})");
  httplib::Result head = Client().Head("/v2/models/job-3");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  httplib::Result post = Client().Post("/v2/models/job-3/infer", "abc", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, "job-3:3");
}

TEST_F(HttpServerTest, UnknownPathIs404AndAnotherMethodIs405WithAllow) {
  StartServer();
  httplib::Result unknown = Client().Get("/v3/nothing");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(unknown->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(unknown->body, R"({"error":"no such path: GET /v3/nothing"})");
  // The whole path must match: a longer one is unknown too.
  httplib::Result longer = Client().Get("/v2/models/m/versions/1/extra");
  ASSERT_TRUE(longer);
  EXPECT_EQ(longer->status, 404);
  httplib::Result wrong_method = Client().Delete("/v2/models/m");
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->get_header_value("Allow"), "GET, HEAD");
  EXPECT_EQ(wrong_method->body,
            R"json({"error":"DELETE /v2/models/m: method not allowed (allowed: GET, HEAD)"})json");
  httplib::Result get_infer = Client().Get("/v2/models/m/infer");
  ASSERT_TRUE(get_infer);
  // "/v2/models/m/infer" is no model path (the name cannot hold '/'), only the POST route's.
  EXPECT_EQ(get_infer->status, 405);
  EXPECT_EQ(get_infer->get_header_value("Allow"), "POST");
}

TEST_F(HttpServerTest, AnOversizedBodyIs413WithoutReachingTheHandlerAndServingGoesOn) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  StartServer(options);
  httplib::Result too_big =
      Client().Post("/v2/models/m/infer", std::string(4096, 'x'), "application/json");
  ASSERT_TRUE(too_big) << httplib::to_string(too_big.error());
  EXPECT_EQ(too_big->status, 413);
  EXPECT_EQ(too_big->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(too_big->body, R"({"error":"request body over the limit of 1024 bytes"})");
  EXPECT_EQ(handled_.load(), 0);
  httplib::Result at_limit =
      Client().Post("/v2/models/m/infer", std::string(1024, 'x'), "application/json");
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(at_limit->status, 200);
  EXPECT_EQ(at_limit->body, "m:1024");
  EXPECT_EQ(handled_.load(), 1);
}

TEST_F(HttpServerTest, AFormBodyOverTheLibrarysOwnCapIs413SayingToSendJson) {
  // curl -d sends application/x-www-form-urlencoded, which the library caps at 8 KiB whatever
  // the server's limit: the answer must say so rather than blame the server's limit.
  HttpServerOptions options;
  options.max_body_bytes = 1 << 20;
  StartServer(options);
  httplib::Result form = Client().Post("/v2/models/m/infer", std::string(10000, 'x'),
                                       "application/x-www-form-urlencoded");
  ASSERT_TRUE(form) << httplib::to_string(form.error());
  EXPECT_EQ(form->status, 413);
  EXPECT_THAT(form->body, HasSubstr("application/x-www-form-urlencoded is limited to 8192 bytes; "
                                    "send Content-Type: application/json"));
  EXPECT_EQ(handled_.load(), 0);
  httplib::Result json =
      Client().Post("/v2/models/m/infer", std::string(10000, 'x'), "application/json");
  ASSERT_TRUE(json);
  EXPECT_EQ(json->status, 200);
}

TEST_F(HttpServerTest, MalformedRequestsGetJsonErrors) {
  StartServer();
  EXPECT_THAT(selene::testing::RawFirstAnswer(server_->port(), "hello\r\n\r\n"),
              AllOf(StartsWith("HTTP/1.1 400"), HasSubstr("Content-Type: application/json"),
                    HasSubstr(R"({"error":"malformed HTTP request"})")));
  EXPECT_THAT(
      selene::testing::RawFirstAnswer(server_->port(), "BREW /v2/models/m HTTP/1.0\r\n\r\n"),
      StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(
      selene::testing::RawFirstAnswer(
          server_->port(), absl::StrCat("GET /", std::string(9000, 'a'), " HTTP/1.0\r\n\r\n")),
      AllOf(StartsWith("HTTP/1.1 414"), HasSubstr(R"({"error":"request line too long"})")));
  httplib::Result after = Client().Get("/v2/models/m");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(HttpServerTest, EveryRouteButTheOpenOnesNeedsTheToken) {
  HttpServerOptions options;
  options.authenticate = CheckToken;
  StartServer(options);

  httplib::Result none = Client().Get("/v2/models/m");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(none->body, R"json({"error":"missing bearer token (authorization: Bearer ...)"})json");

  httplib::Result wrong = Client().Get("/v2/models/m", {{"Authorization", "Bearer guess"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(wrong->body, R"({"error":"invalid bearer token"})");

  // A refused POST is not handled, and its body does not break the connection's next request.
  httplib::Client keep_alive("127.0.0.1", server_->port());
  keep_alive.set_keep_alive(true);
  httplib::Result refused = keep_alive.Post("/v2/models/m/infer", "{}", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  EXPECT_EQ(handled_.load(), 0);
  httplib::Result right =
      keep_alive.Post("/v2/models/m/infer", {{"Authorization", absl::StrCat("Bearer ", kToken)}},
                      "{}", "application/json");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(handled_.load(), 1);

  httplib::Result open = Client().Get("/v2/health/live");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->status, 200);
  EXPECT_EQ(open->body, R"({"live":true})");
  // An unknown path is 404 with or without a token: there is nothing to protect.
  httplib::Result unknown = Client().Get("/nothing");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
}

TEST_F(HttpServerTest, AThrowingHandlerIs500WithItsMessageAndServingGoesOn) {
  StartServer();
  httplib::Result thrown = Client().Get("/throw");
  ASSERT_TRUE(thrown);
  EXPECT_EQ(thrown->status, 500);
  EXPECT_EQ(thrown->body, R"({"error":"internal error: the handler broke"})");
  httplib::Result thrown_int = Client().Get("/throw-int");
  ASSERT_TRUE(thrown_int);
  EXPECT_EQ(thrown_int->status, 500);
  EXPECT_EQ(thrown_int->body, R"({"error":"internal error: unknown exception"})");
  httplib::Result after = Client().Get("/v2/health/live");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(HttpServerTest, RequestsAreServedAtOnceOnThePool) {
  // The first request's handler, once running, waits for the second's: on one thread the second
  // would queue behind it, and the first would give up (the bound keeps a failure from hanging).
  absl::Notification first_started;
  absl::Notification second_ran;
  std::vector<HttpRoute> routes;
  routes.push_back(Route("GET", "/first", [&](const HttpRequest&) {
    first_started.Notify();
    const bool ran = second_ran.WaitForNotificationWithTimeout(absl::Seconds(60));
    return JsonResponse(ran ? "true" : "false");
  }));
  routes.push_back(Route("GET", "/second", [&](const HttpRequest&) {
    second_ran.Notify();
    return JsonResponse("true");
  }));
  HttpServerOptions options;
  options.threads = 2;
  auto server = HttpServer::Start("127.0.0.1:0", std::move(routes), options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::string first_body;
  std::thread client([&first_body, port] {
    httplib::Result first = httplib::Client("127.0.0.1", port).Get("/first");
    if (first) first_body = first->body;
  });
  first_started.WaitForNotification();
  httplib::Result second = httplib::Client("127.0.0.1", port).Get("/second");
  client.join();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "true");
  EXPECT_EQ(first_body, "true");
}

TEST_F(HttpServerTest, ServesHttpsWithTheGivenCertificate) {
  const std::string cert = (fs::path(dir_) / "cert.pem").string();
  const std::string key = (fs::path(dir_) / "key.pem").string();
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
      key, " -out ", cert, " > /dev/null 2>&1");
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  HttpServerOptions options;
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  options.authenticate = CheckToken;
  StartServer(options);
  EXPECT_TRUE(server_->tls());

  httplib::SSLClient secure("127.0.0.1", server_->port());
  secure.set_ca_cert_path(cert.c_str());
  secure.enable_server_certificate_verification(true);
  httplib::Result live = secure.Get("/v2/health/live");
  ASSERT_TRUE(live) << httplib::to_string(live.error());
  EXPECT_EQ(live->status, 200);
  httplib::Result no_token = secure.Get("/v2/models/m");
  ASSERT_TRUE(no_token);
  EXPECT_EQ(no_token->status, 401);

  // Plain HTTP to the TLS port gets no HTTP answer; the server serves on.
  httplib::Result plain = Client().Get("/v2/health/live");
  EXPECT_FALSE(plain && plain->status == 200);
  httplib::Result again = secure.Get("/v2/health/live");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST_F(HttpServerTest, BadTlsFilesAndAHalfPairAreInvalidArguments) {
  const std::string junk = (fs::path(dir_) / "junk.pem").string();
  std::ofstream(junk) << "not a certificate\n";
  HttpServerOptions options;
  options.purpose = "REST";
  options.tls_cert_file = junk;
  options.tls_key_file = junk;
  auto bad = HttpServer::Start("127.0.0.1:0", Routes(), options);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("REST: TLS certificate " + junk));
  options.tls_key_file = "";
  auto half = HttpServer::Start("127.0.0.1:0", Routes(), options);
  EXPECT_EQ(half.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(half.status().message(), HasSubstr("both a certificate and a key file"));
}

TEST_F(HttpServerTest, BadAddressesAndATakenPortAreNamed) {
  StartServer();
  HttpServerOptions options;
  options.purpose = "REST";
  auto no_port = HttpServer::Start("localhost", Routes(), options);
  EXPECT_EQ(no_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(no_port.status().message(), HasSubstr("REST address 'localhost' is not host:port"));
  auto no_host = HttpServer::Start("no-such-host.invalid:0", Routes(), options);
  EXPECT_EQ(no_host.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(no_host.status().message(), HasSubstr("does not resolve"));
  auto taken = HttpServer::Start(absl::StrCat("127.0.0.1:", server_->port()), Routes(), options);
  EXPECT_EQ(taken.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(
      taken.status().message(),
      AllOf(HasSubstr(absl::StrCat("cannot listen for REST on 127.0.0.1:", server_->port())),
            HasSubstr("Address already in use")));
  // ":port" is every interface, loopback included.
  auto every = HttpServer::Start(":0", Routes(), options);
  ASSERT_TRUE(every.ok()) << every.status();
  httplib::Result live = httplib::Client("127.0.0.1", (*every)->port()).Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
}

TEST_F(HttpServerTest, StopRightAfterStartAndTwiceClosesThePort) {
  StartServer();
  const int port = server_->port();
  server_->Stop();
  server_->Stop();
  EXPECT_EQ(selene::testing::RawExchange(port, "GET /v2/health/live HTTP/1.0\r\n\r\n"), "");
}

}  // namespace
}  // namespace selene::http
