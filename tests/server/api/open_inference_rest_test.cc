// Tests server/api/open_inference_rest.h over real HTTP (cpp-httplib's client) against an
// in-process server that has trained a tiny U-Net and a tiny classifier: health, metadata,
// configuration and statistics; an infer with a UINT8 JSON tensor whose mask is Segment's for
// the same image (and the same again with the PNG sent base64 as BYTES); classification top-k
// through the output parameter equal to Classify's labels; the infer counted in the metrics; bad
// requests answered with their HTTP status and a message naming the problem; the bearer token;
// readiness while draining.
#include "server/api/open_inference_rest.h"

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/api/selene_server.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
namespace pb = ::google::protobuf;
using serving::testing::DecodeGreyPng;
using serving::testing::EncodePng;
using serving::testing::TestImage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestClient;

constexpr char kToken[] = "rest-token";

// An HTTP answer with its body parsed, when it is a JSON object.
struct Answer {
  int status = 0;  // 0: no HTTP answer
  std::string body;
  pb::Struct json;
};

const pb::Value& Field(const pb::Struct& object, const std::string& key) {
  static const pb::Value* const kNull = new pb::Value();
  const auto found = object.fields().find(key);
  return found == object.fields().end() ? *kNull : found->second;
}

// The JSON request body of an infer with the image as a UINT8 [1, H, W, 3] tensor, RGB; `extra`:
// more members of the request object ("outputs": ..., "parameters": ...).
std::string Uint8ImageRequest(const cv::Mat& bgr, const std::string& extra = "") {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  std::vector<int> pixels(rgb.data, rgb.data + rgb.total() * 3);
  return absl::StrCat(R"({"id":"r1","inputs":[{"name":"image","datatype":"UINT8","shape":[1,)",
                      rgb.rows, ",", rgb.cols, R"(,3],"data":[)", absl::StrJoin(pixels, ","), "]}]",
                      extra.empty() ? "" : ",", extra, "}");
}

// The same with the encoded image, base64, as a BYTES tensor.
std::string Base64PngRequest(const std::string& png, const std::string& extra = "") {
  return absl::StrCat(R"({"inputs":[{"name":"image_bytes","datatype":"BYTES","shape":[1],)",
                      R"("parameters":{"content_type":"base64"},"data":[")",
                      absl::Base64Escape(png), R"("]}])", extra.empty() ? "" : ",", extra, "}");
}

// A threshold between two of the probabilities Segment returned (8-bit, rounded), near their
// median: the tiny model's mask at 0.5 may well be empty, which would prove little.
double MedianThreshold(const std::string& probability_png) {
  const cv::Mat probabilities = DecodeGreyPng(probability_png);
  std::vector<uchar> values(probabilities.data, probabilities.data + probabilities.total());
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  const uchar below = values[values.size() > 1 ? values.size() / 2 - 1 : 0];
  return (below + 0.5) / 255.0;
}

class OpenInferenceRestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-open-inference-rest");
    options_ = testing::TestServerOptions(dir_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  void Start() {
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    ASSERT_GT(server_->http_port(), 0);
    EXPECT_EQ(server_->http_address(), absl::StrCat("127.0.0.1:", server_->http_port()));
    client_ = std::make_unique<TestClient>(server_->address(), token_);
  }

  // Starts the server and trains one segmentation and one classification model.
  void StartAndTrain() {
    ASSERT_NO_FATAL_FAILURE(Start());
    segmenter_ = client_->SubmitOk(testing::MoonSpec("rocks", 2));
    classifier_ = client_->SubmitOk(testing::ClassifierSpec("shapes"));
    ASSERT_EQ(client_->WaitTerminal(segmenter_).state(), v1::JOB_STATE_SUCCEEDED);
    ASSERT_EQ(client_->WaitTerminal(classifier_).state(), v1::JOB_STATE_SUCCEEDED);
  }

  httplib::Headers Headers(bool with_token) const {
    if (!with_token || token_.empty()) return {};
    return {{"Authorization", absl::StrCat("Bearer ", token_)}};
  }

  static Answer Parse(const httplib::Result& result) {
    Answer answer;
    if (!result) return answer;
    answer.status = result->status;
    answer.body = result->body;
    if (!pb::util::JsonStringToMessage(answer.body, &answer.json).ok()) answer.json.Clear();
    return answer;
  }

  Answer Get(const std::string& path, bool with_token = true) const {
    return Parse(httplib::Client("127.0.0.1", server_->http_port()).Get(path, Headers(with_token)));
  }
  Answer Post(const std::string& path, const std::string& body, bool with_token = true) const {
    return Parse(httplib::Client("127.0.0.1", server_->http_port())
                     .Post(path, Headers(with_token), body, "application/json"));
  }

  std::string dir_;
  std::string token_;
  SeleneServerOptions options_;
  std::unique_ptr<SeleneServer> server_;
  std::unique_ptr<TestClient> client_;
  std::string segmenter_;
  std::string classifier_;
};

TEST_F(OpenInferenceRestTest, HealthMetadataAndInferAnswerLikeTheGrpcCalls) {
  ASSERT_NO_FATAL_FAILURE(StartAndTrain());

  Answer live = Get("/v2/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, R"({"live":true})");
  Answer ready = Get("/v2/health/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, R"({"ready":true})");
  Answer server = Get("/v2");
  EXPECT_EQ(server.status, 200);
  EXPECT_EQ(Field(server.json, "name").string_value(), "selene");
  EXPECT_THAT(server.body, HasSubstr(R"("extensions":["classification",)"));

  Answer metadata = Get("/v2/models/" + segmenter_);
  ASSERT_EQ(metadata.status, 200) << metadata.body;
  EXPECT_EQ(Field(metadata.json, "name").string_value(), segmenter_);
  EXPECT_THAT(metadata.body, HasSubstr(R"("versions":["1"])"));
  EXPECT_THAT(metadata.body,
              HasSubstr(R"("inputs":[{"name":"image","datatype":"UINT8","shape":[-1,-1,-1,3]},)"));
  EXPECT_THAT(metadata.body, HasSubstr(R"({"name":"mask","datatype":"UINT8","shape":[-1,-1,-1]})"));
  EXPECT_EQ(Get("/v2/models/" + segmenter_ + "/versions/1").body, metadata.body);
  Answer model_ready = Get("/v2/models/latest%3Aclassification/ready");
  EXPECT_EQ(model_ready.status, 200);
  EXPECT_EQ(model_ready.body, R"({"name":"latest:classification","ready":true})");
  Answer config = Get("/v2/models/" + classifier_ + "/config");
  ASSERT_EQ(config.status, 200) << config.body;
  EXPECT_EQ(Field(config.json, "name").string_value(), classifier_);
  EXPECT_EQ(Field(config.json, "max_batch_size").number_value(), options_.max_batch_size);

  // A UINT8 tensor of the pixels: Segment's mask, as class ids (Segment's PNG has 0/255), at a
  // threshold sent as a JSON number (it arrives as the string InferParameter can hold).
  const cv::Mat image = TestImage(40, 30, 3, 1);
  v1::SegmentRequest segment;
  segment.set_model(segmenter_);
  segment.set_image(EncodePng(image));
  segment.set_return_probabilities(true);
  v1::SegmentResponse segmented;
  ASSERT_TRUE(client_->Segment(segment, &segmented).ok());
  const std::string threshold = absl::StrCat(MedianThreshold(segmented.probability_png()));
  double threshold_value = 0;
  ASSERT_TRUE(absl::SimpleAtod(threshold, &threshold_value));
  segment.set_threshold(threshold_value);
  ASSERT_TRUE(client_->Segment(segment, &segmented).ok());
  const std::string parameters = absl::StrCat(R"("parameters":{"threshold":)", threshold, "}");
  const cv::Mat grpc_mask = DecodeGreyPng(segmented.mask_png());
  ASSERT_EQ(grpc_mask.total(), 40u * 30u);
  std::vector<double> expected_mask;
  for (size_t i = 0; i < grpc_mask.total(); ++i) expected_mask.push_back(grpc_mask.data[i] / 255);

  Answer inferred =
      Post("/v2/models/" + segmenter_ + "/infer", Uint8ImageRequest(image, parameters));
  ASSERT_EQ(inferred.status, 200) << inferred.body.substr(0, 500);
  EXPECT_EQ(Field(inferred.json, "model_name").string_value(), segmenter_);
  EXPECT_EQ(Field(inferred.json, "model_version").string_value(), "1");
  EXPECT_EQ(Field(inferred.json, "id").string_value(), "r1");
  const pb::ListValue& outputs = Field(inferred.json, "outputs").list_value();
  ASSERT_EQ(outputs.values_size(), 1);
  const pb::Struct& mask = outputs.values(0).struct_value();
  EXPECT_EQ(Field(mask, "name").string_value(), "mask");
  EXPECT_EQ(Field(mask, "datatype").string_value(), "UINT8");
  EXPECT_THAT(Field(mask, "shape").list_value().values(),
              ElementsAre(::testing::Property(&pb::Value::number_value, 1),
                          ::testing::Property(&pb::Value::number_value, 30),
                          ::testing::Property(&pb::Value::number_value, 40)));
  std::vector<double> rest_mask;
  for (const pb::Value& v : Field(mask, "data").list_value().values()) {
    rest_mask.push_back(v.number_value());
  }
  EXPECT_EQ(rest_mask, expected_mask);
  EXPECT_GT(std::count(rest_mask.begin(), rest_mask.end(), 1.0), 0) << threshold;
  EXPECT_GT(std::count(rest_mask.begin(), rest_mask.end(), 0.0), 0) << threshold;

  // The PNG itself, base64 in a BYTES tensor (an alias this time): the same mask.
  Answer from_png = Post("/v2/models/latest%3Abinary_segmentation/infer",
                         Base64PngRequest(EncodePng(image), parameters));
  ASSERT_EQ(from_png.status, 200) << from_png.body.substr(0, 500);
  EXPECT_EQ(Field(Field(from_png.json, "parameters").struct_value(), "job_id").string_value(),
            segmenter_);
  std::vector<double> png_mask;
  for (const pb::Value& v :
       Field(Field(from_png.json, "outputs").list_value().values(0).struct_value(), "data")
           .list_value()
           .values()) {
    png_mask.push_back(v.number_value());
  }
  EXPECT_EQ(png_mask, expected_mask);

  // Classification top-k through the output parameter: Classify's labels, best first.
  const cv::Mat shape_image = TestImage(32, 32, 3, 5);
  v1::ClassifyRequest classify;
  classify.set_model(classifier_);
  classify.set_image(EncodePng(shape_image));
  classify.set_top_k(3);
  v1::ClassifyResponse classified;
  ASSERT_TRUE(client_->Classify(classify, &classified).ok());
  Answer top =
      Post("/v2/models/" + classifier_ + "/infer",
           Uint8ImageRequest(
               shape_image,
               R"("outputs":[{"name":"probabilities","parameters":{"classification":3}}])"));
  ASSERT_EQ(top.status, 200) << top.body;
  const pb::Struct& labels = Field(top.json, "outputs").list_value().values(0).struct_value();
  EXPECT_EQ(Field(labels, "datatype").string_value(), "BYTES");
  const pb::ListValue& data = Field(labels, "data").list_value();
  ASSERT_EQ(data.values_size(), 3);
  ASSERT_EQ(classified.labels_size(), 3);
  for (int i = 0; i < 3; ++i) {
    // "value:index:label"
    const std::vector<std::string> parts = absl::StrSplit(data.values(i).string_value(), ':');
    ASSERT_EQ(parts.size(), 3u) << data.values(i).string_value();
    double probability = 0;
    ASSERT_TRUE(absl::SimpleAtod(parts[0], &probability));
    EXPECT_NEAR(probability, classified.labels(i).probability(), 1e-6);
    EXPECT_EQ(parts[1], absl::StrCat(classified.labels(i).class_index()));
    EXPECT_EQ(parts[2], classified.labels(i).label());
  }

  // Counted like Segment, under the job that answered.
  const std::string scrape = server_->metrics().Scrape();
  EXPECT_THAT(scrape, HasSubstr(absl::StrCat(
                          "selene_inference_requests_total{method=\"ModelInfer\",model=\"",
                          segmenter_, "\",code=\"OK\"} 2")));
  EXPECT_THAT(scrape, HasSubstr(absl::StrCat(
                          "selene_inference_requests_total{method=\"ModelInfer\",model=\"",
                          classifier_, "\",code=\"OK\"} 1")));

  Answer stats = Get("/v2/models/" + segmenter_ + "/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  EXPECT_THAT(stats.body, HasSubstr(R"("inference_count":"2")"));  // 64-bit: a JSON string
  Answer all_stats = Get("/v2/models/stats");
  ASSERT_EQ(all_stats.status, 200);
  EXPECT_EQ(Field(all_stats.json, "model_stats").list_value().values_size(), 2);
}

TEST_F(OpenInferenceRestTest, BadRequestsGetTheirStatusAndAMessageAndServingGoesOn) {
  options_.max_message_bytes = int64_t{1} << 20;  // the smallest --max_message_mb
  ASSERT_NO_FATAL_FAILURE(StartAndTrain());
  const std::string infer = "/v2/models/" + segmenter_ + "/infer";
  const std::string good = Uint8ImageRequest(TestImage(20, 16, 3, 2));
  ASSERT_EQ(Post(infer, good).status, 200);

  Answer bad_json = Post(infer, R"({"inputs": [{"name": "image",)");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_THAT(Field(bad_json.json, "error").string_value(),
              HasSubstr("the request body is not valid JSON"));

  // An FP32 tensor parses; the model wants UINT8, and says so naming the input.
  Answer wrong_type = Post(
      infer, R"({"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,1,3],"data":[1,2,3]}]})");
  EXPECT_EQ(wrong_type.status, 400);
  EXPECT_THAT(Field(wrong_type.json, "error").string_value(),
              HasSubstr("input \"image\" has datatype FP32; expected UINT8"));

  Answer short_data =
      Post(infer,
           R"({"inputs":[{"name":"image","datatype":"UINT8","shape":[1,2,2,3],"data":[1,2,3]}]})");
  EXPECT_EQ(short_data.status, 400);
  EXPECT_THAT(Field(short_data.json, "error").string_value(),
              HasSubstr("input \"image\": \"data\" holds 3 elements; shape [1, 2, 2, 3] needs 12"));

  Answer unknown_model = Post("/v2/models/job-999/infer", good);
  EXPECT_EQ(unknown_model.status, 404);
  EXPECT_THAT(Field(unknown_model.json, "error").string_value(), HasSubstr("job-999"));
  EXPECT_EQ(Get("/v2/models/job-999").status, 404);
  EXPECT_EQ(Get("/v2/models/job-999/ready").status, 404);
  EXPECT_EQ(Get("/v2/models/" + segmenter_ + "/versions/2").status, 404);

  Answer unknown_output =
      Post(infer, Uint8ImageRequest(TestImage(20, 16, 3, 2), R"("outputs":[{"name":"labels"}])"));
  EXPECT_EQ(unknown_output.status, 400);
  EXPECT_THAT(Field(unknown_output.json, "error").string_value(),
              HasSubstr("no output \"labels\""));

  EXPECT_EQ(Get("/v2/nothing").status, 404);
  Answer get_infer = Get(infer);
  EXPECT_EQ(get_infer.status, 405);

  Answer binary = Parse(httplib::Client("127.0.0.1", server_->http_port())
                            .Post(infer, {{"Inference-Header-Content-Length", "10"}}, good,
                                  "application/octet-stream"));
  EXPECT_EQ(binary.status, 400);
  EXPECT_THAT(Field(binary.json, "error").string_value(), HasSubstr("binary tensor data"));

  // Over --max_message_mb: 413 before any parsing.
  Answer too_big = Post(infer, std::string(options_.max_message_bytes + 1, ' '));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_THAT(Field(too_big.json, "error").string_value(), HasSubstr("over the limit"));

  Answer after = Post(infer, good);
  EXPECT_EQ(after.status, 200);
  EXPECT_THAT(server_->metrics().Scrape(),
              HasSubstr("selene_inference_requests_total{method=\"ModelInfer\",model=\"job-"
                        "999\",code=\"NOT_FOUND\"} 1"));
}

TEST_F(OpenInferenceRestTest, TheTokenGuardsAllButHealthAndDrainingIsNotReady) {
  token_ = kToken;
  const std::string tokens = dir_ + "/tokens.txt";
  std::ofstream(tokens) << kToken << "\n";
  options_.token_file = tokens;
  ASSERT_NO_FATAL_FAILURE(Start());

  Answer none = Get("/v2/models/job-1", /*with_token=*/false);
  EXPECT_EQ(none.status, 401);
  EXPECT_THAT(Field(none.json, "error").string_value(), HasSubstr("missing bearer token"));
  Answer no_token_infer = Post("/v2/models/job-1/infer", "{}", /*with_token=*/false);
  EXPECT_EQ(no_token_infer.status, 401);
  EXPECT_EQ(Get("/v2", /*with_token=*/false).status, 401);
  Answer wrong = Parse(httplib::Client("127.0.0.1", server_->http_port())
                           .Get("/v2", {{"Authorization", "Bearer nope"}}));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_THAT(Field(wrong.json, "error").string_value(), HasSubstr("invalid bearer token"));
  EXPECT_EQ(Get("/v2/health/live", /*with_token=*/false).status, 200);
  EXPECT_EQ(Get("/v2/health/ready", /*with_token=*/false).status, 200);
  EXPECT_EQ(Get("/v2").status, 200);
  EXPECT_EQ(Get("/v2/models/job-1").status, 404);  // with the token: on to the model lookup

  // Once the server drains: not ready, and new infer requests refused; metadata still answers.
  server_->inference_calls().StartDraining();
  Answer draining = Get("/v2/health/ready", /*with_token=*/false);
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, R"({"ready":false})");
  Answer refused = Post("/v2/models/job-1/infer", "{}");
  EXPECT_EQ(refused.status, 503);
  EXPECT_THAT(Field(refused.json, "error").string_value(), HasSubstr("shutting down"));
  EXPECT_EQ(Get("/v2").status, 200);

  // Shutdown closes the port.
  const int port = server_->http_port();
  ASSERT_TRUE(server_->Shutdown().ok());
  EXPECT_FALSE(httplib::Client("127.0.0.1", port).Get("/v2/health/live"));
}

TEST_F(OpenInferenceRestTest, ServesHttpsWithTheGrpcCertificate) {
  const std::string cert = dir_ + "/cert.pem";
  const std::string key = dir_ + "/key.pem";
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
      key, " -out ", cert, " > /dev/null 2>&1");
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  options_.tls_cert_file = cert;
  options_.tls_key_file = key;
  StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options_);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(server).value();

  httplib::SSLClient secure("127.0.0.1", server_->http_port());
  secure.set_ca_cert_path(cert.c_str());
  secure.enable_server_certificate_verification(true);
  httplib::Result live = secure.Get("/v2/health/live");
  ASSERT_TRUE(live) << httplib::to_string(live.error());
  EXPECT_EQ(live->status, 200);
  httplib::Result metadata = secure.Get("/v2");
  ASSERT_TRUE(metadata);
  EXPECT_EQ(metadata->status, 200);
  // Plain HTTP gets no answer from the TLS port.
  httplib::Result plain = httplib::Client("127.0.0.1", server_->http_port()).Get("/v2/health/live");
  EXPECT_FALSE(plain && plain->status == 200);
}

TEST_F(OpenInferenceRestTest, StartupFailuresNameTheHttpAddress) {
  options_.http_listen = "nonsense";
  StatusOr<std::unique_ptr<SeleneServer>> bad = SeleneServer::Start(options_);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--http_listen: REST address 'nonsense'"));

  options_ = testing::TestServerOptions(dir_ + "/first");
  ASSERT_NO_FATAL_FAILURE(Start());
  SeleneServerOptions second = testing::TestServerOptions(dir_ + "/second");
  second.http_listen = server_->http_address();
  StatusOr<std::unique_ptr<SeleneServer>> taken = SeleneServer::Start(second);
  EXPECT_EQ(taken.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(taken.status().message(),
              HasSubstr("cannot listen for REST on " + server_->http_address()));

  // Empty: no REST at all.
  SeleneServerOptions off = testing::TestServerOptions(dir_ + "/third");
  off.http_listen = "";
  StatusOr<std::unique_ptr<SeleneServer>> without = SeleneServer::Start(off);
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ((*without)->http_port(), 0);
  EXPECT_EQ((*without)->http_address(), "");
}

}  // namespace
}  // namespace selene::api
