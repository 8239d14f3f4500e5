// The whole server's metrics, proved with real tools: an in-process server trains a tiny job and
// answers a good and a bad Segment; its GET /metrics answer has the values that work implies,
// passes `promtool check metrics`, and a real Prometheus server (Debian's `prometheus`) scraping
// it on loopback reports the target up and the same values through its HTTP API. The tools are
// installed by deploy/install-deps.sh; without them those parts skip with a message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/api/selene_server.h"
#include "server/metrics/text_format.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/child_process.h"
#include "tests/testing/files.h"
#include "tests/testing/loopback.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPromtool[] = "/usr/bin/promtool";
constexpr char kPrometheus[] = "/usr/bin/prometheus";

// The value of the sample line that starts with `series` ("name" or "name{labels}") in a
// text-format scrape; NaN when there is none.
double SampleValue(const std::string& scrape, const std::string& series) {
  const std::string prefix = "\n" + series + " ";
  const size_t at = ("\n" + scrape).find(prefix);
  if (at == std::string::npos) return std::nan("");
  const size_t start = at + prefix.size() - 1;
  double value = std::nan("");
  if (!absl::SimpleAtod(scrape.substr(start, scrape.find('\n', start) - start), &value)) {
    return std::nan("");
  }
  return value;
}

// The single value of an instant query's result from Prometheus's JSON answer, e.g.
// {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[t,"1"]}]}}
// NaN when the result is empty or not one sample.
double QueryValue(int prometheus_port, const std::string& query) {
  std::string encoded;
  for (char c : query) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      encoded += c;
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", static_cast<unsigned char>(c));
      encoded += hex;
    }
  }
  const selene::testing::HttpResponse answer =
      selene::testing::HttpGet(prometheus_port, "/api/v1/query?query=" + encoded);
  const std::string& body = answer.body;
  if (answer.status != 200 || body.find("\"status\":\"success\"") == std::string::npos) {
    return std::nan("");
  }
  const size_t value = body.find("\"value\":[");
  if (value == std::string::npos || body.find("\"value\":[", value + 1) != std::string::npos) {
    return std::nan("");
  }
  const size_t quote = body.find('"', body.find(',', value) + 1);
  double parsed = std::nan("");
  absl::SimpleAtod(body.substr(quote + 1, body.find('"', quote + 1) - quote - 1), &parsed);
  return parsed;
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-metrics-endpoint");
    SeleneServerOptions options = testing::TestServerOptions(dir_);
    options.metrics_listen = "127.0.0.1:0";
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    ASSERT_GT(server_->metrics_port(), 0);
    EXPECT_EQ(server_->metrics_address(), absl::StrCat("127.0.0.1:", server_->metrics_port()));

    // A tiny job to the end, then one good and one bad Segment.
    testing::TestClient client(server_->address());
    job_ = client.SubmitOk(testing::MoonSpec("metrics-moon", kEpochs));
    ASSERT_EQ(client.WaitTerminal(job_).state(), v1::JOB_STATE_SUCCEEDED);
    v1::SegmentRequest request;
    request.set_model(job_);
    request.set_image(serving::testing::EncodePng(serving::testing::TestImage(40, 30, 3, 1)));
    v1::SegmentResponse response;
    ASSERT_TRUE(client.Segment(request, &response).ok());
    request.set_model("job-404");
    EXPECT_EQ(client.Segment(request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }

  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  std::string Scrape() {
    const selene::testing::HttpResponse answer =
        selene::testing::HttpGet(server_->metrics_port(), "/metrics");
    EXPECT_EQ(answer.status, 200);
    EXPECT_THAT(answer.headers, HasSubstr(metrics::kTextFormatContentType));
    return answer.body;
  }

  static constexpr int kEpochs = 2;
  std::string dir_;
  std::unique_ptr<SeleneServer> server_;
  std::string job_;
};

TEST_F(MetricsEndpointTest, ScrapeHasTheValuesTheWorkImpliesAndPassesPromtool) {
  const std::string scrape = Scrape();
  EXPECT_EQ(SampleValue(scrape, "selene_jobs{state=\"succeeded\"}"), 1);
  EXPECT_EQ(SampleValue(scrape, "selene_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(SampleValue(scrape, "selene_jobs_submitted_total"), 1);
  EXPECT_EQ(SampleValue(scrape, "selene_jobs_finished_total{outcome=\"succeeded\"}"), 1);
  EXPECT_EQ(SampleValue(scrape, "selene_job_queue_wait_seconds_count"), 1);
  EXPECT_EQ(SampleValue(scrape, "selene_models_loaded"), 1);

  // MoonSpec: batch 4; every step reports its batch, so images and steps agree.
  const double images = SampleValue(scrape, "selene_training_images_total{device=\"cpu\"}");
  const double steps = SampleValue(scrape, "selene_training_step_seconds_count{device=\"cpu\"}");
  EXPECT_GT(images, 0);
  EXPECT_EQ(std::fmod(images, kEpochs), 0) << "the same train set each epoch";
  EXPECT_LE(images, steps * 4);
  EXPECT_GT(images, (steps - kEpochs) * 4);  // only each epoch's last batch may be short
  EXPECT_GT(SampleValue(scrape, "selene_training_step_seconds_sum{device=\"cpu\"}"), 0);

  // The job ended: its running series are gone.
  EXPECT_THAT(scrape, Not(HasSubstr("selene_job_epoch{")));
  EXPECT_THAT(scrape, Not(HasSubstr("selene_job_validation_metric{")));

  const std::string ok = absl::StrCat("selene_inference_requests_total{method=\"Segment\",model=\"",
                                      job_, "\",code=\"OK\"}");
  EXPECT_EQ(SampleValue(scrape, ok), 1);
  EXPECT_EQ(SampleValue(scrape,
                        "selene_inference_requests_total{method=\"Segment\",model=\"job-"
                        "404\",code=\"NOT_FOUND\"}"),
            1);
  EXPECT_EQ(SampleValue(scrape, "selene_inference_request_seconds_count{method=\"Segment\"}"), 2);
  EXPECT_EQ(SampleValue(scrape, "selene_inference_batch_size_count"), 1);
  EXPECT_EQ(SampleValue(scrape, "selene_inference_queue_seconds_count"), 1);
  EXPECT_EQ(SampleValue(scrape,
                        "grpc_server_handled_total{grpc_type=\"unary\",grpc_service="
                        "\"selene.v1.TrainingService\",grpc_method=\"SubmitJob\","
                        "grpc_code=\"OK\"}"),
            1);
  EXPECT_EQ(SampleValue(scrape,
                        "grpc_server_handled_total{grpc_type=\"unary\",grpc_service="
                        "\"selene.v1.InferenceService\",grpc_method=\"Segment\","
                        "grpc_code=\"NOT_FOUND\"}"),
            1);
  EXPECT_EQ(SampleValue(scrape,
                        "grpc_server_handling_seconds_bucket{grpc_type=\"unary\","
                        "grpc_service=\"selene.v1.InferenceService\",grpc_method="
                        "\"Segment\",le=\"+Inf\"}"),
            2);
  EXPECT_GT(SampleValue(scrape, "process_resident_memory_bytes"), 10 << 20);
  EXPECT_GT(SampleValue(scrape, "process_cpu_seconds_total"), 0);

  if (!fs::exists(kPromtool)) GTEST_SKIP() << kPromtool << " absent (Debian package prometheus)";
  const std::string file = (fs::path(dir_) / "scrape.txt").string();
  std::ofstream(file) << scrape;
  const std::string report = (fs::path(dir_) / "promtool.txt").string();
  const int status = std::system(
      absl::StrCat(kPromtool, " check metrics < ", file, " > ", report, " 2>&1").c_str());
  EXPECT_EQ(status, 0) << testing::ReadFile(report);
  EXPECT_EQ(testing::ReadFile(report), "") << "promtool found problems (lint)";
}

TEST_F(MetricsEndpointTest, ARealPrometheusScrapesItAndAnswersQueries) {
  if (!fs::exists(kPrometheus)) {
    GTEST_SKIP() << kPrometheus << " absent (Debian package prometheus)";
  }
  const int port = selene::testing::UnusedLoopbackPort();
  const std::string config = (fs::path(dir_) / "prometheus.yml").string();
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        << "scrape_configs:\n  - job_name: selene\n    static_configs:\n"
                        << "      - targets: ['127.0.0.1:" << server_->metrics_port() << "']\n";
  selene::testing::ChildProcess prometheus(
      {kPrometheus, "--config.file=" + config,
       "--storage.tsdb.path=" + (fs::path(dir_) / "tsdb").string(),
       absl::StrCat("--web.listen-address=127.0.0.1:", port)},
      (fs::path(dir_) / "prometheus.log").string());

  // Up once the first scrape has landed; a minute covers a slow start on a busy machine.
  double up = std::nan("");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       !(up == 1) && absl::Now() < deadline && prometheus.running();) {
    absl::SleepFor(absl::Milliseconds(500));
    up = QueryValue(port, "up{job=\"selene\"}");
  }
  ASSERT_EQ(up, 1) << prometheus.Log();
  EXPECT_EQ(QueryValue(port, "selene_jobs_submitted_total{job=\"selene\"}"), 1);
  EXPECT_EQ(QueryValue(port, "selene_jobs{job=\"selene\",state=\"succeeded\"}"), 1);
  EXPECT_EQ(QueryValue(port, absl::StrCat("selene_inference_requests_total{code=\"OK\",model=\"",
                                          job_, "\"}")),
            1);
  EXPECT_EQ(QueryValue(port, "sum(grpc_server_handled_total{grpc_method=\"Segment\"})"), 2);
}

}  // namespace
}  // namespace selene::api
