// Tests server/api/inference_service_impl.h through real stubs on an in-process server that has
// trained a tiny U-Net and a tiny classifier: every bad request gets its code and a message
// naming the problem while a valid request right after succeeds, and concurrent Segment calls
// are batched together yet answer exactly as one-by-one calls do (the batcher is held until all
// of them are queued, so the batches do not depend on how fast the threads arrive).
#include "server/api/inference_service_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/api/selene_server.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using serving::testing::EncodePng;
using serving::testing::TestImage;
using ::testing::HasSubstr;
using testing::TestClient;

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-inference-service");
    options_ = testing::TestServerOptions(dir_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  // Starts the server and trains one segmentation and one classification model.
  void StartAndTrain() {
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    client_ = std::make_unique<TestClient>(server_->address());
    segmenter_ = client_->SubmitOk(testing::MoonSpec("rocks", 2));
    classifier_ = client_->SubmitOk(testing::ClassifierSpec("shapes"));
    ASSERT_EQ(client_->WaitTerminal(segmenter_).state(), v1::JOB_STATE_SUCCEEDED);
    ASSERT_EQ(client_->WaitTerminal(classifier_).state(), v1::JOB_STATE_SUCCEEDED);
  }

  v1::SegmentRequest Request(const std::string& model, int width, int height, int seed) {
    v1::SegmentRequest request;
    request.set_model(model);
    request.set_image(EncodePng(TestImage(width, height, 3, seed)));
    return request;
  }

  // A valid Segment call succeeds.
  void ExpectServing() {
    v1::SegmentResponse response;
    const grpc::Status status = client_->Segment(Request(segmenter_, 40, 30, 1), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.width(), 40);
  }

  std::string dir_;
  SeleneServerOptions options_;
  std::unique_ptr<SeleneServer> server_;
  std::unique_ptr<TestClient> client_;
  std::string segmenter_;
  std::string classifier_;
};

TEST_F(InferenceServiceTest, BadRequestsGetTheirCodeAndTheServerKeepsServing) {
  options_.max_image_pixels = 64 * 64;
  ASSERT_NO_FATAL_FAILURE(StartAndTrain());
  ExpectServing();
  v1::SegmentResponse segmented;

  v1::SegmentRequest request = Request(segmenter_, 40, 30, 2);
  request.set_image("certainly not an image");
  grpc::Status status = client_->Segment(request, &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("cannot decode"));
  ExpectServing();

  status = client_->Segment(Request(segmenter_, 100, 80, 3), &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("100x80"));
  EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat(64 * 64)));
  ExpectServing();

  status = client_->Segment(Request("job-999", 40, 30, 4), &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("job-999"));
  ExpectServing();

  status = client_->Segment(Request("latest:multiclass_segmentation", 40, 30, 4), &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  ExpectServing();

  request = Request(segmenter_, 40, 30, 5);
  request.set_threshold(1.5);
  status = client_->Segment(request, &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("threshold"));
  ExpectServing();

  // The classifier is no segmentation model, nor the U-Net a classifier.
  status = client_->Segment(Request(classifier_, 40, 30, 6), &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr(classifier_));
  v1::ClassifyRequest classify;
  classify.set_model(segmenter_);
  classify.set_image(EncodePng(TestImage(32, 32, 3, 1)));
  v1::ClassifyResponse classified;
  status = client_->Classify(classify, &classified);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  classify.set_model("latest:classification");
  status = client_->Classify(classify, &classified);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(classified.model_job_id(), classifier_);
  EXPECT_EQ(classified.labels_size(), 5);  // top_k 0: five of the six shapes

  // A job that has not finished has no model yet.
  const std::string running = client_->SubmitOk(testing::MoonSpec("long", 100000));
  status = client_->Segment(Request(running, 40, 30, 7), &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr(running + " is "));
  EXPECT_THAT(status.error_message(), HasSubstr("its model is servable once it succeeds"));
  ExpectServing();
  v1::Job job;
  ASSERT_TRUE(client_->Cancel(running, &job).ok());
}

TEST_F(InferenceServiceTest, ConcurrentSegmentsAreBatchedAndMatchOneByOne) {
  constexpr int kRequests = 8;
  options_.max_batch_size = 4;
  options_.max_queue_delay = absl::Milliseconds(200);
  options_.inference_workers = kRequests;
  // Once armed, the model's batcher takes nothing until all the requests are queued: two full
  // batches of four then, however the machine schedules the client threads.
  // (Shared: the server, and so the batcher, outlives the test body.)
  auto gathering = std::make_shared<std::atomic<bool>>(false);
  options_.batcher_hold_dispatch = [gathering](int queued) {
    if (!*gathering) return false;
    if (queued < kRequests) return true;
    *gathering = false;
    return false;
  };
  ASSERT_NO_FATAL_FAILURE(StartAndTrain());
  std::vector<v1::SegmentRequest> requests;
  for (int i = 0; i < kRequests; ++i) {
    requests.push_back(Request(segmenter_, 30 + 3 * i, 50 - 2 * i, 10 + i));
    requests.back().set_return_probabilities(true);
  }
  // One by one first: each runs alone and at once (nothing else queued, no load to wait for).
  std::vector<v1::SegmentResponse> alone(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(client_->Segment(requests[i], &alone[i]).ok());
  }
  StatusOr<std::shared_ptr<serving::ServableModel>> model = server_->registry().Get(segmenter_);
  ASSERT_TRUE(model.ok()) << model.status();
  const serving::BatcherStats before = (*model)->batcher_stats();
  EXPECT_EQ(before.batches, kRequests);

  // Then all at once.
  *gathering = true;
  std::vector<v1::SegmentResponse> together(kRequests);
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      TestClient own(client_->channel(), "");
      statuses[i] = own.Segment(requests[i], &together[i]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  const serving::BatcherStats after = (*model)->batcher_stats();
  EXPECT_EQ(after.requests - before.requests, kRequests);
  EXPECT_EQ(after.batches - before.batches, 2);
  EXPECT_EQ(after.batch_size_counts[4] - before.batch_size_counts[4], 2);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(together[i].width(), 30 + 3 * i);
    EXPECT_EQ(together[i].height(), 50 - 2 * i);
    EXPECT_EQ(together[i].mask_png(), alone[i].mask_png()) << i;
    EXPECT_EQ(together[i].probability_png(), alone[i].probability_png()) << i;
  }
}

}  // namespace
}  // namespace selene::api
