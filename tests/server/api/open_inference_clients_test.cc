// Proves the Open Inference Protocol (KServe v2: the gRPC service and the REST routes) with
// clients no one here wrote, each a script under tests/clients run as a child process: Python's
// grpcio with stubs generated from the proto at run time, Node's @grpc/grpc-js with
// @grpc/proto-loader, and curl. One in-process server with tokens on trains a tiny U-Net and a
// tiny classifier once for the suite (at the first test that runs, so a machine without any of
// the clients trains nothing); the answers the clients must give back are what selene.v1 Segment
// and Classify say for the same image. A test skips, naming what is missing, when its client is
// not installed (deploy/install-deps.sh installs all three).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/api/selene_server.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/child_process.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::selene::testing::ChildProcess;
using serving::testing::DecodeGreyPng;
using serving::testing::EncodePng;
using serving::testing::TestImage;
using ::testing::HasSubstr;
using testing::TestClient;

constexpr char kToken[] = "kserve-clients-s3cret";
constexpr int kWidth = 40;
constexpr int kHeight = 30;
constexpr int kTopK = 3;

// tests/clients/<relative> in the source tree.
std::string ClientPath(const std::string& relative) {
  return (fs::path(SELENE_SOURCE_DIR) / "tests" / "clients" / relative).string();
}

// The first executable `name` on PATH; "" when there is none.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (const absl::string_view dir : absl::StrSplit(path == nullptr ? "" : path, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

class OpenInferenceClientsTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    server_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Starts the suite's server and writes the expected answers, once; later calls reuse them.
  static void Serve() {
    if (attempted_) {
      ASSERT_NE(server_, nullptr) << "the suite's server failed to start in an earlier test";
      return;
    }
    attempted_ = true;
    dir_ = testing::MakeTempDir("selene-kserve-clients");
    SeleneServerOptions options = testing::TestServerOptions(dir_);
    options.token_file = dir_ + "/tokens";
    WriteFile(options.token_file, absl::StrCat("# the clients' token\n", kToken, "\n"));
    options.http_listen = "127.0.0.1:0";
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    TestClient client((*server)->address(), kToken);
    segmenter_ = client.SubmitOk(testing::MoonSpec("kserve-moon", 2));
    classifier_ = client.SubmitOk(testing::ClassifierSpec("kserve-shapes"));
    ASSERT_EQ(client.WaitTerminal(segmenter_).state(), v1::JOB_STATE_SUCCEEDED);
    ASSERT_EQ(client.WaitTerminal(classifier_).state(), v1::JOB_STATE_SUCCEEDED);
    ASSERT_NO_FATAL_FAILURE(WriteExpected(client));
    server_ = std::move(server).value();
  }

  // A threshold, as text, that splits the image's pixels between background and foreground: the
  // tiny model's probabilities lie under the default 0.5, and an all-background mask would prove
  // little. It lies between two levels of Segment's 8-bit probability map near the median, where
  // the fewest pixels are close to it.
  static std::string SplittingThreshold(TestClient& client, v1::SegmentRequest request) {
    request.set_return_probabilities(true);
    v1::SegmentResponse response;
    const grpc::Status status = client.Segment(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const cv::Mat probabilities = DecodeGreyPng(response.probability_png());
    EXPECT_EQ(probabilities.type(), CV_8UC1);
    if (probabilities.type() != CV_8UC1) return "";
    std::vector<int> histogram(256);
    for (size_t i = 0; i < probabilities.total(); ++i) ++histogram[probabilities.data[i]];
    const int pixels = static_cast<int>(probabilities.total());
    int best = -1;
    for (int level = 0, below = 0; level < 255; ++level) {
      below += histogram[level];  // pixels at this level or under
      if (below < pixels * 3 / 10 || below > pixels * 7 / 10) continue;
      if (best < 0 ||
          histogram[level] + histogram[level + 1] < histogram[best] + histogram[best + 1]) {
        best = level;
      }
    }
    EXPECT_GE(best, 0) << "no level splits the probabilities 30/70 or closer";
    return best < 0 ? "" : absl::StrFormat("%.4f", (best + 0.5) / 255);
  }

  // <dir>/expected: image.png, image.rgb (the same pixels, raw RGB rows), mask.bin (Segment's
  // mask as class ids at the splitting threshold: 0/255 become 0/1) and expected.json (sizes, that
  // threshold, class count, Classify's top-k).
  static void WriteExpected(TestClient& client) {
    const fs::path expected = fs::path(dir_) / "expected";
    fs::create_directories(expected);
    const cv::Mat bgr = TestImage(kWidth, kHeight, 3, 11);
    const std::string png = EncodePng(bgr);
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    WriteFile(expected / "image.png", png);
    WriteFile(expected / "image.rgb",
              std::string(reinterpret_cast<const char*>(rgb.data), rgb.total() * rgb.elemSize()));

    v1::SegmentRequest segment;
    segment.set_model(segmenter_);
    segment.set_image(png);
    const std::string threshold = SplittingThreshold(client, segment);
    ASSERT_FALSE(threshold.empty());
    segment.set_threshold(std::stod(threshold));
    v1::SegmentResponse segmented;
    grpc::Status status = client.Segment(segment, &segmented);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const cv::Mat mask = DecodeGreyPng(segmented.mask_png());
    ASSERT_EQ(mask.type(), CV_8UC1);
    ASSERT_EQ(mask.cols, kWidth);
    ASSERT_EQ(mask.rows, kHeight);
    std::string class_ids(reinterpret_cast<const char*>(mask.data), mask.total());
    for (char& pixel : class_ids) {
      ASSERT_TRUE(pixel == 0 || pixel == '\xff') << "a binary mask holds 0 and 255";
      pixel = pixel == 0 ? 0 : 1;
    }
    const auto foreground = std::count(class_ids.begin(), class_ids.end(), 1);
    ASSERT_GT(foreground, 0) << "threshold " << threshold;
    ASSERT_LT(foreground, static_cast<int64_t>(class_ids.size())) << "threshold " << threshold;
    WriteFile(expected / "mask.bin", class_ids);

    grpc::ClientContext context;
    client.Prepare(&context);
    v1::ListModelsResponse models;
    status = client.inference().ListModels(&context, v1::ListModelsRequest(), &models);
    ASSERT_TRUE(status.ok()) << status.error_message();
    int classes = 0;
    for (const v1::ModelInfo& model : models.models()) {
      if (model.job_id() == classifier_) classes = model.class_names_size();
    }
    ASSERT_GT(classes, kTopK);
    v1::ClassifyRequest classify;
    classify.set_model(classifier_);
    classify.set_image(png);
    classify.set_top_k(kTopK);
    v1::ClassifyResponse classified;
    status = client.Classify(classify, &classified);
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::string topk;
    for (const v1::LabelProbability& label : classified.labels()) {
      ASSERT_EQ(label.label().find_first_of("\"\\"), std::string::npos) << label.label();
      absl::StrAppend(&topk, topk.empty() ? "" : ", ",
                      absl::StrFormat(R"({"label": "%s", "index": %d, "probability": %.9g})",
                                      label.label(), label.class_index(), label.probability()));
    }
    WriteFile(expected / "expected.json",
              absl::StrFormat(
                  R"({"width": %d, "height": %d, "threshold": "%s", "classes": %d, "topk": [%s]})"
                  "\n",
                  kWidth, kHeight, threshold, classes, topk));
  }

  // Runs the client `argv` followed by the server's addresses, the model ids, the token and the
  // expected answers; expects it to exit 0, else prints everything it wrote.
  static void RunClient(std::vector<std::string> argv, const std::string& name) {
    argv.insert(argv.end(), {"--segmenter", segmenter_, "--classifier", classifier_, "--token",
                             kToken, "--expected", dir_ + "/expected"});
    ChildProcess child(argv, absl::StrCat(dir_, "/", name, ".log"));
    const std::optional<int> exit_status = child.Wait(absl::Minutes(5));
    const std::string log = child.Log();
    ASSERT_EQ(exit_status, std::optional<int>(0))
        << name << (exit_status.has_value() ? " failed" : " did not finish in 5 minutes")
        << "; its output:\n"
        << log;
    ASSERT_THAT(log, HasSubstr("all checks passed"));
    int checks = 0;
    for (const absl::string_view line : absl::StrSplit(log, '\n')) {
      checks += absl::StartsWith(line, "ok: ");
    }
    std::cout << name << ": " << checks << " checks passed\n";
  }

  static inline bool attempted_ = false;
  static inline std::string dir_;
  static inline std::unique_ptr<SeleneServer> server_;
  static inline std::string segmenter_;
  static inline std::string classifier_;
};

TEST_F(OpenInferenceClientsTest, PythonGrpcioClientWithProtocStubs) {
  const std::string python = "/usr/bin/python3";
  if (::access(python.c_str(), X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  for (const char* tool : {"protoc", "grpc_python_plugin"}) {
    if (FindOnPath(tool).empty()) {
      GTEST_SKIP() << "no " << tool
                   << " on PATH (Debian packages protobuf-compiler protobuf-compiler-grpc)";
    }
  }
  ChildProcess probe({python, "-c", "import grpc, google.protobuf"}, "/dev/null");
  if (probe.Wait(absl::Minutes(1)) != std::optional<int>(0)) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import grpc and google.protobuf (Debian packages "
                    "python3-grpcio python3-protobuf)";
  }
  ASSERT_NO_FATAL_FAILURE(Serve());
  RunClient({python, ClientPath("python/kserve_grpc_client.py"), "--grpc", server_->address()},
            "python");
}

TEST_F(OpenInferenceClientsTest, NodeGrpcJsClientWithProtoLoader) {
  const std::string node = FindOnPath("node");
  if (node.empty()) GTEST_SKIP() << "no node on PATH (deploy/install-deps.sh installs nodejs)";
  for (const char* package : {"grpc-js", "proto-loader"}) {
    const std::string installed = ClientPath(absl::StrCat("node/node_modules/@grpc/", package));
    if (!fs::exists(installed + "/package.json")) {
      GTEST_SKIP() << "no " << installed
                   << " (deploy/install-deps.sh runs npm ci in tests/clients/node)";
    }
  }
  ASSERT_NO_FATAL_FAILURE(Serve());
  RunClient({node, ClientPath("node/kserve_grpc_client.js"), "--grpc", server_->address()}, "node");
}

TEST_F(OpenInferenceClientsTest, CurlRestClient) {
  if (FindOnPath("curl").empty()) GTEST_SKIP() << "no curl on PATH";
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  ASSERT_NO_FATAL_FAILURE(Serve());
  RunClient({ClientPath("curl/kserve_rest.sh"), "--http", server_->http_address()}, "curl");
}

}  // namespace
}  // namespace selene::api
