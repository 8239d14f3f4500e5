// Tests server/serving/inference_engine.h end to end on tiny models: masks at the input's own
// size, thresholds, probabilities, multi-class shares, classification top-k, refusals, and that
// concurrent batched requests answer exactly as one-by-one requests.
#include "server/serving/inference_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/server/serving/serving_test_models.h"

namespace selene::serving {
namespace {

using testing::DecodeGreyPng;
using testing::EncodePng;
using testing::FakeCatalog;
using ::testing::HasSubstr;
using testing::TestImage;

ModelRegistryOptions Unbatched() {
  ModelRegistryOptions options;
  options.batcher.max_batch_size = 1;
  return options;
}

// Holds the worker in the first batch that runs after Arm() until Release(), through the
// batcher's on_batch callback (which runs on the worker; a test may make it slow): requests sent
// meanwhile queue behind that batch and run together, whatever the threads' timing. Without it,
// a lone request on an idle batcher runs at once and the others batch only if they arrive while
// it runs.
class BatchHold {
 public:
  std::function<void(const BatchReport&)> Callback() {
    return [this](const BatchReport&) {
      absl::MutexLock lock(&mu_);
      if (!armed_) return;
      armed_ = false;
      mu_.Await(absl::Condition(&released_));
    };
  }
  void Arm() {
    absl::MutexLock lock(&mu_);
    armed_ = true;
    released_ = false;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

 private:
  absl::Mutex mu_;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

// Waits until `requests` requests sent after `before` are in the batcher: run (the held batch)
// or queued behind it.
void AwaitInBatcher(const ServableModel& model, const BatcherStats& before, int requests) {
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  for (;;) {
    const BatcherStats stats = model.batcher_stats();
    if (stats.requests - before.requests + stats.queued >= requests) return;
    ASSERT_LT(absl::Now(), give_up) << "the requests never reached the batcher";
    absl::SleepFor(absl::Milliseconds(1));
  }
}

class InferenceEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::AddOneModelPerTask(catalog_); }

  v1::SegmentResponse Segment(InferenceEngine& engine, const std::string& model,
                              const cv::Mat& image, bool probabilities = false) {
    v1::SegmentRequest request;
    request.set_model(model);
    request.set_image(EncodePng(image));
    request.set_return_probabilities(probabilities);
    StatusOr<v1::SegmentResponse> response = engine.Segment(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::SegmentResponse();
  }

  FakeCatalog catalog_;
  ModelRegistry registry_{&catalog_, Unbatched()};
  InferenceEngine engine_{&registry_};
};

TEST_F(InferenceEngineTest, BinaryMaskIsTheThresholdedLogitsInTheImagesRgbOrder) {
  const cv::Mat bgr = TestImage(32, 32, 3, 1);
  const v1::SegmentResponse response = Segment(engine_, "job-1", bgr);
  EXPECT_EQ(response.model_job_id(), "job-1");
  EXPECT_EQ(response.task(), v1::TASK_BINARY_SEGMENTATION);
  EXPECT_GT(response.inference_ms(), 0.0);
  const cv::Mat mask = DecodeGreyPng(response.mask_png());
  ASSERT_EQ(mask.type(), CV_8UC1);
  ASSERT_EQ(mask.size(), cv::Size(32, 32));

  // The same image through the forward pass directly, in RGB: at the model's size no resizing
  // happens, so the mask is exactly logit >= 0.
  StatusOr<std::shared_ptr<ServableModel>> model = registry_.Get("job-1");
  ASSERT_TRUE(model.ok());
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  StatusOr<std::vector<ModelOutput>> logits = (*model)->RunBatch({rgb});
  ASSERT_TRUE(logits.ok()) << logits.status();
  int64_t foreground = 0;
  for (int y = 0; y < 32; ++y) {
    for (int x = 0; x < 32; ++x) {
      const bool on = (*logits)[0].values[y * 32 + x] >= 0.0f;
      foreground += on;
      ASSERT_EQ(mask.at<uchar>(y, x), on ? 255 : 0) << x << "," << y;
    }
  }
  EXPECT_DOUBLE_EQ(response.foreground_fraction(), foreground / 1024.0);
  // The random model is not trivially constant, so the comparison means something.
  EXPECT_GT(foreground, 0);
  EXPECT_LT(foreground, 1024);
}

TEST_F(InferenceEngineTest, AnImageOfAnotherSizeGetsAMaskOfThatSize) {
  for (const char* model : {"job-1", "job-2"}) {
    SCOPED_TRACE(model);
    const v1::SegmentResponse response = Segment(engine_, model, TestImage(50, 37, 3, 2), true);
    EXPECT_EQ(response.width(), 50);
    EXPECT_EQ(response.height(), 37);
    EXPECT_EQ(DecodeGreyPng(response.mask_png()).size(), cv::Size(50, 37));
    EXPECT_EQ(DecodeGreyPng(response.probability_png()).size(), cv::Size(50, 37));
  }
  // Grey input into an RGB model, and a larger image than the model's input.
  const v1::SegmentResponse grey = Segment(engine_, "job-1", TestImage(97, 64, 1, 3));
  EXPECT_EQ(DecodeGreyPng(grey.mask_png()).size(), cv::Size(97, 64));
}

TEST_F(InferenceEngineTest, LogitsAreResizedBilinearlyBeforeThresholding) {
  const cv::Mat bgr = TestImage(50, 37, 3, 9);
  const v1::SegmentResponse response = Segment(engine_, "job-1", bgr, true);
  const cv::Mat mask = DecodeGreyPng(response.mask_png());
  const cv::Mat probability = DecodeGreyPng(response.probability_png());
  ASSERT_EQ(mask.size(), cv::Size(50, 37));

  // The expectation built independently: the model's 32x32 logits, resized with OpenCV.
  StatusOr<std::shared_ptr<ServableModel>> model = registry_.Get("job-1");
  ASSERT_TRUE(model.ok());
  cv::Mat rgb;
  cv::Mat input;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::resize(rgb, input, cv::Size(32, 32), 0, 0, cv::INTER_AREA);  // shrinking: area
  StatusOr<std::vector<ModelOutput>> logits = (*model)->RunBatch({input});
  ASSERT_TRUE(logits.ok()) << logits.status();
  cv::Mat small(32, 32, CV_32FC1, (*logits)[0].values.data());
  cv::Mat resized;
  cv::resize(small, resized, mask.size(), 0, 0, cv::INTER_LINEAR);
  int64_t mismatches = 0;
  int64_t foreground = 0;
  for (int y = 0; y < mask.rows; ++y) {
    for (int x = 0; x < mask.cols; ++x) {
      const float logit = resized.at<float>(y, x);
      foreground += logit >= 0.0f;
      // Rounding in the two interpolations may differ in the last bits.
      if (std::abs(logit) > 1e-4f) mismatches += (mask.at<uchar>(y, x) == 255) != (logit >= 0.0f);
      const double expected = 255.0 / (1.0 + std::exp(-double{logit}));
      EXPECT_NEAR(probability.at<uchar>(y, x), expected, 0.5 + 1e-3);
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(foreground, 0);
  EXPECT_LT(foreground, 50 * 37);
}

TEST_F(InferenceEngineTest, ThresholdMovesTheMaskAndMustLieInTheOpenUnitInterval) {
  const cv::Mat image = TestImage(40, 40, 3, 4);
  v1::SegmentRequest request;
  request.set_model("job-1");
  request.set_image(EncodePng(image));
  request.set_return_probabilities(true);
  StatusOr<v1::SegmentResponse> middle = engine_.Segment(request);
  request.set_threshold(0.9);
  StatusOr<v1::SegmentResponse> strict = engine_.Segment(request);
  ASSERT_TRUE(middle.ok() && strict.ok());
  EXPECT_LE(strict->foreground_fraction(), middle->foreground_fraction());

  // The mask agrees with the probabilities: foreground exactly where p >= 0.5 (byte >= 128).
  const cv::Mat mask = DecodeGreyPng(middle->mask_png());
  const cv::Mat probability = DecodeGreyPng(middle->probability_png());
  int64_t disagree = 0;
  for (int y = 0; y < mask.rows; ++y) {
    for (int x = 0; x < mask.cols; ++x) {
      disagree += (mask.at<uchar>(y, x) == 255) != (probability.at<uchar>(y, x) >= 128);
    }
  }
  EXPECT_EQ(disagree, 0);

  for (double bad : {0.0, 1.0, 1.5, -0.2, std::nan("")}) {
    request.set_threshold(bad);
    StatusOr<v1::SegmentResponse> refused = engine_.Segment(request);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("threshold"));
  }
}

TEST_F(InferenceEngineTest, MultiClassMaskHoldsClassIdsAndSharesSumToOne) {
  const v1::SegmentResponse response = Segment(engine_, "job-2", TestImage(45, 30, 3, 5), true);
  EXPECT_EQ(response.task(), v1::TASK_MULTICLASS_SEGMENTATION);
  const cv::Mat mask = DecodeGreyPng(response.mask_png());
  ASSERT_EQ(mask.size(), cv::Size(45, 30));
  double max_id = 0;
  cv::minMaxLoc(mask, nullptr, &max_id);
  EXPECT_LE(max_id, 3);
  ASSERT_EQ(response.class_shares_size(), 4);
  double total = 0;
  int id = 0;  // the classes in id order: each share is its id's share of the mask's pixels
  for (const char* name : {"background", "disc", "square", "triangle"}) {
    ASSERT_TRUE(response.class_shares().contains(name)) << name;
    const double share = response.class_shares().at(name);
    EXPECT_NEAR(share, cv::countNonZero(mask == id) / static_cast<double>(mask.total()), 1e-12)
        << name;
    total += share;
    ++id;
  }
  EXPECT_NEAR(total, 1.0, 1e-9);
  EXPECT_NEAR(response.class_shares().at("disc"),
              cv::countNonZero(mask == 1) / static_cast<double>(mask.total()), 1e-12);
  // The chosen class's probability is at least 1 / classes.
  double min_probability = 0;
  cv::minMaxLoc(DecodeGreyPng(response.probability_png()), &min_probability);
  EXPECT_GE(min_probability, std::floor(255.0 / 4));
}

TEST_F(InferenceEngineTest, ClassifyReturnsTopKMostProbableFirst) {
  v1::ClassifyRequest request;
  request.set_model("latest:classification");
  request.set_image(EncodePng(TestImage(64, 64, 3, 6)));
  request.set_top_k(2);
  StatusOr<v1::ClassifyResponse> two = engine_.Classify(request);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->model_job_id(), "job-3");
  ASSERT_EQ(two->labels_size(), 2);
  EXPECT_GE(two->labels(0).probability(), two->labels(1).probability());
  EXPECT_LE(two->labels(0).probability() + two->labels(1).probability(), 1.0 + 1e-12);

  request.set_top_k(0);  // default 5, capped at the 4 classes
  StatusOr<v1::ClassifyResponse> all = engine_.Classify(request);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->labels_size(), 4);
  double sum = 0;
  std::vector<bool> seen(4, false);
  const std::vector<std::string> names = {"disc", "square", "triangle", "star"};
  for (int i = 0; i < 4; ++i) {
    const v1::LabelProbability& label = all->labels(i);
    if (i > 0) {
      EXPECT_GE(all->labels(i - 1).probability(), label.probability());
    }
    EXPECT_EQ(label.label(), names[label.class_index()]);
    seen[label.class_index()] = true;
    sum += label.probability();
  }
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 4);
  EXPECT_EQ(all->labels(0).class_index(), two->labels(0).class_index());

  request.set_top_k(-1);
  EXPECT_EQ(engine_.Classify(request).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(InferenceEngineTest, RefusesWrongTasksUnknownModelsAndBadImagesWithTheirCodes) {
  v1::ClassifyRequest classify;
  classify.set_model("job-1");
  classify.set_image(EncodePng(TestImage(32, 32, 3, 7)));
  StatusOr<v1::ClassifyResponse> wrong = engine_.Classify(classify);
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("model job-1 is a binary_segmentation model"));

  v1::SegmentRequest segment;
  segment.set_model("job-3");
  segment.set_image(EncodePng(TestImage(32, 32, 3, 7)));
  StatusOr<v1::SegmentResponse> wrong_segment = engine_.Segment(segment);
  EXPECT_EQ(wrong_segment.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_segment.status().message(), HasSubstr("model job-3 is a classification model"));

  segment.set_model("job-42");
  EXPECT_EQ(engine_.Segment(segment).status().code(), StatusCode::kNotFound);

  segment.set_model("job-1");
  segment.set_image("GIF89a but not really");
  StatusOr<v1::SegmentResponse> garbage = engine_.Segment(segment);
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(garbage.status().message(), HasSubstr("cannot decode 21 bytes"));

  segment.set_image("");
  EXPECT_EQ(engine_.Segment(segment).status().code(), StatusCode::kInvalidArgument);

  InferenceEngineOptions small;
  small.max_image_pixels = 1000;
  InferenceEngine limited(&registry_, small);
  segment.set_image(EncodePng(TestImage(50, 37, 3, 8)));
  StatusOr<v1::SegmentResponse> big = limited.Segment(segment);
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), HasSubstr("50x37"));
  EXPECT_THAT(big.status().message(), HasSubstr("limit of 1000"));

  StatusOr<v1::SegmentResponse> late = engine_.Segment(segment, absl::Now() - absl::Seconds(1));
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(InferenceEngineTest, ListModelsFiltersByTask) {
  v1::ListModelsRequest request;
  StatusOr<v1::ListModelsResponse> all = engine_.ListModels(request);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->models_size(), 3);
  EXPECT_EQ(all->models(0).job_id(), "job-3");
  request.set_task(v1::TASK_MULTICLASS_SEGMENTATION);
  StatusOr<v1::ListModelsResponse> multi = engine_.ListModels(request);
  ASSERT_TRUE(multi.ok());
  ASSERT_EQ(multi->models_size(), 1);
  EXPECT_EQ(multi->models(0).job_id(), "job-2");
  EXPECT_EQ(multi->models(0).class_names_size(), 4);
}

// The test: concurrent Segment calls with batching return the same masks as one-by-one
// calls, and the logits agree to 1e-5.
TEST_F(InferenceEngineTest, ConcurrentBatchedCallsAnswerExactlyAsOneByOneCalls) {
  BatchHold hold;
  ModelRegistryOptions batched_options;
  batched_options.batcher.max_batch_size = 8;
  // Long enough for every queued request to join under load; full batches run at once anyway.
  batched_options.batcher.max_queue_delay = absl::Milliseconds(500);
  batched_options.batcher.on_batch = hold.Callback();
  ModelRegistry batched_registry(&catalog_, batched_options);
  InferenceEngine batched(&batched_registry);

  for (const char* model : {"job-1", "job-2"}) {
    SCOPED_TRACE(model);
    constexpr int kRequests = 8;
    std::vector<cv::Mat> images;
    for (int i = 0; i < kRequests; ++i) {
      images.push_back(TestImage(24 + 7 * i, 40 - 2 * i, 3, 10 + i));  // sizes differ
    }
    std::vector<v1::SegmentResponse> alone;
    for (const cv::Mat& image : images) alone.push_back(Segment(engine_, model, image, true));

    StatusOr<std::shared_ptr<ServableModel>> loaded = batched_registry.Get(model);
    ASSERT_TRUE(loaded.ok());
    std::vector<v1::SegmentResponse> together(kRequests);
    std::vector<std::thread> threads;
    hold.Arm();
    for (int i = 0; i < kRequests; ++i) {
      threads.emplace_back([&, i] { together[i] = Segment(batched, model, images[i], true); });
    }
    AwaitInBatcher(**loaded, BatcherStats(), kRequests);
    hold.Release();
    for (std::thread& t : threads) t.join();

    for (int i = 0; i < kRequests; ++i) {
      const cv::Mat a = DecodeGreyPng(alone[i].mask_png());
      const cv::Mat b = DecodeGreyPng(together[i].mask_png());
      ASSERT_EQ(a.size(), images[i].size());
      ASSERT_EQ(b.size(), images[i].size());
      EXPECT_EQ(cv::countNonZero(a != b), 0) << "request " << i;
      const cv::Mat pa = DecodeGreyPng(alone[i].probability_png());
      const cv::Mat pb = DecodeGreyPng(together[i].probability_png());
      EXPECT_EQ(cv::countNonZero(pa != pb), 0) << "request " << i;
    }
    // The masks are not trivial: foreground and background (binary), several classes.
    int varied = 0;
    for (const v1::SegmentResponse& response : alone) {
      const cv::Mat mask = DecodeGreyPng(response.mask_png());
      double low = 0;
      double high = 0;
      cv::minMaxLoc(mask, &low, &high);
      varied += high > low;
    }
    EXPECT_GE(varied, kRequests / 2);

    const BatcherStats stats = (*loaded)->batcher_stats();
    EXPECT_EQ(stats.requests, kRequests);
    EXPECT_LT(stats.batches, kRequests) << "no batch formed";
  }

  // The logits themselves: batched forward passes against single-image ones.
  StatusOr<std::shared_ptr<ServableModel>> model = batched_registry.Get("job-2");
  ASSERT_TRUE(model.ok());
  const BatcherStats before = (*model)->batcher_stats();
  std::vector<cv::Mat> inputs;
  for (int i = 0; i < 8; ++i) inputs.push_back(TestImage(32, 32, 3, 30 + i));
  std::vector<StatusOr<ModelOutput>> batched_out(inputs.size(), InternalError("unset"));
  std::vector<std::thread> threads;
  hold.Arm();
  for (size_t i = 0; i < inputs.size(); ++i) {
    threads.emplace_back([&, i] { batched_out[i] = (*model)->Infer(inputs[i]); });
  }
  AwaitInBatcher(**model, before, static_cast<int>(inputs.size()));
  hold.Release();
  for (std::thread& t : threads) t.join();
  EXPECT_LT((*model)->batcher_stats().batches - before.batches,
            static_cast<int64_t>(inputs.size()));
  StatusOr<std::shared_ptr<ServableModel>> reference = registry_.Get("job-2");
  ASSERT_TRUE(reference.ok());
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(batched_out[i].ok()) << batched_out[i].status();
    StatusOr<std::vector<ModelOutput>> single = (*reference)->RunBatch({inputs[i]});
    ASSERT_TRUE(single.ok());
    ASSERT_EQ((*single)[0].values.size(), batched_out[i]->values.size());
    float max_diff = 0;
    for (size_t j = 0; j < batched_out[i]->values.size(); ++j) {
      max_diff = std::max(max_diff, std::abs((*single)[0].values[j] - batched_out[i]->values[j]));
    }
    EXPECT_LE(max_diff, 1e-5f) << "request " << i;
  }
}

}  // namespace
}  // namespace selene::serving
