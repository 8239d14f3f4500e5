// Tests server/api/open_inference_service.h through the generated inference.GRPCInferenceService
// stub on an in-process server that trained a tiny U-Net, with bearer tokens on: probes answer
// without a token and everything else needs one; ModelInfer answers as Segment does and is
// counted in the inference metrics with its code; Triton RPCs Selene does not declare are
// UNIMPLEMENTED; and once the server drains, ServerReady says so and ModelInfer is refused.
// The protocol's semantics (tensors, errors, statistics) are tested in
// tests/server/serving/open_inference_test.cc, and clients no one here wrote drive it in
// open_inference_clients_test.cc.
#include "server/api/open_inference_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/api/selene_server.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using serving::testing::DecodeGreyPng;
using serving::testing::EncodePng;
using serving::testing::TestImage;
using ::testing::HasSubstr;
using testing::TestClient;

constexpr char kToken[] = "s3cret";

class OpenInferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-open-inference-service");
    options_ = testing::TestServerOptions(dir_);
    options_.token_file = (fs::path(dir_) / "tokens").string();
    std::ofstream(options_.token_file) << kToken << "\n";
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    client_ = std::make_unique<TestClient>(server_->address(), kToken);
    stub_ = inference::GRPCInferenceService::NewStub(client_->channel());
  }
  void TearDown() override {
    stub_.reset();
    client_.reset();
    server_.reset();
    fs::remove_all(dir_);
  }

  void Train() {
    segmenter_ = client_->SubmitOk(testing::MoonSpec("rocks", 2));
    ASSERT_EQ(client_->WaitTerminal(segmenter_).state(), v1::JOB_STATE_SUCCEEDED);
  }

  // A context with the token (unless `with_token` is false) and a deadline.
  std::unique_ptr<grpc::ClientContext> Context(bool with_token = true) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (with_token) {
      client_->Prepare(context.get());
    } else {
      context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    }
    return context;
  }

  inference::ModelInferRequest InferRequest(const std::string& model, const cv::Mat& bgr) {
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    inference::ModelInferRequest request;
    request.set_model_name(model);
    request.set_id("request-7");
    auto* input = request.add_inputs();
    input->set_name("image");
    input->set_datatype("UINT8");
    for (int64_t d : {int64_t{1}, int64_t{rgb.rows}, int64_t{rgb.cols}, int64_t{3}}) {
      input->add_shape(d);
    }
    request.add_raw_input_contents(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3);
    return request;
  }

  std::string dir_;
  SeleneServerOptions options_;
  std::unique_ptr<SeleneServer> server_;
  std::unique_ptr<TestClient> client_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::string segmenter_;
};

TEST_F(OpenInferenceServiceTest, ProbesAreOpenAndEverythingElseNeedsTheToken) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(Context(false).get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(Context(false).get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  inference::ServerMetadataResponse metadata;
  grpc::Status status = stub_->ServerMetadata(Context(false).get(), {}, &metadata);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("missing bearer token"));
  inference::ModelInferResponse inferred;
  status = stub_->ModelInfer(Context(false).get(), InferRequest("latest", TestImage(8, 8, 3, 1)),
                             &inferred);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  status = stub_->ServerMetadata(Context().get(), {}, &metadata);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(metadata.name(), "selene");
  // Nothing trained yet: no model answers to "latest".
  inference::ModelMetadataRequest request;
  request.set_name("latest");
  inference::ModelMetadataResponse model;
  EXPECT_EQ(stub_->ModelMetadata(Context().get(), request, &model).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Triton's repository and shared-memory RPCs are not Selene's.
  testing::RawCall repository(client_->channel(),
                              "/inference.GRPCInferenceService/RepositoryIndex");
  EXPECT_EQ(repository.Send("").error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(OpenInferenceServiceTest, ModelInferAnswersAsSegmentAndIsCountedInTheMetrics) {
  ASSERT_NO_FATAL_FAILURE(Train());
  const cv::Mat image = TestImage(40, 30, 3, 2);
  inference::ModelInferResponse response;
  grpc::Status status =
      stub_->ModelInfer(Context().get(), InferRequest("latest", image), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "request-7");
  EXPECT_EQ(response.parameters().at("job_id").string_param(), segmenter_);
  ASSERT_EQ(response.outputs_size(), 1);
  ASSERT_EQ(response.raw_output_contents_size(), 1);

  v1::SegmentRequest segment;
  segment.set_model(segmenter_);
  segment.set_image(EncodePng(image));
  v1::SegmentResponse segmented;
  status = client_->Segment(segment, &segmented);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const cv::Mat expected = DecodeGreyPng(segmented.mask_png()) / 255;
  const cv::Mat got(30, 40, CV_8UC1, response.mutable_raw_output_contents(0)->data());
  EXPECT_EQ(cv::countNonZero(expected != got), 0);

  inference::ModelInferRequest wrong = InferRequest(segmenter_, image);
  wrong.mutable_inputs(0)->set_datatype("FP32");
  status = stub_->ModelInfer(Context().get(), wrong, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("input \"image\" has datatype FP32"));
  status = stub_->ModelInfer(Context().get(), InferRequest("job-404", image), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  const std::string scrape = server_->metrics().Scrape();
  EXPECT_THAT(scrape,
              HasSubstr(absl::StrCat("selene_inference_requests_total{method=\"ModelInfer\","
                                     "model=\"",
                                     segmenter_, "\",code=\"OK\"} 1")));
  EXPECT_THAT(scrape,
              HasSubstr(absl::StrCat("selene_inference_requests_total{method=\"ModelInfer\","
                                     "model=\"",
                                     segmenter_, "\",code=\"INVALID_ARGUMENT\"} 1")));
  EXPECT_THAT(scrape, HasSubstr("selene_inference_requests_total{method=\"ModelInfer\","
                                "model=\"job-404\",code=\"NOT_FOUND\"} 1"));

  // The statistics saw the one image that was inferred.
  inference::ModelStatisticsRequest stats_request;
  stats_request.set_name(segmenter_);
  inference::ModelStatisticsResponse stats;
  status = stub_->ModelStatistics(Context().get(), stats_request, &stats);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(stats.model_stats_size(), 1);
  EXPECT_EQ(stats.model_stats(0).inference_count(), 1u);
}

TEST_F(OpenInferenceServiceTest, ADrainingServerIsNotReadyAndRefusesInference) {
  server_->inference_calls().StartDraining();
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(Context(false).get(), {}, &ready).ok());
  EXPECT_FALSE(ready.ready());
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(Context(false).get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ModelInferResponse response;
  const grpc::Status status =
      stub_->ModelInfer(Context().get(), InferRequest("latest", TestImage(8, 8, 3, 3)), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
}

}  // namespace
}  // namespace selene::api
