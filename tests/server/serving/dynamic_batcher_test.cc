// Tests server/serving/dynamic_batcher.h with a fake batch function: batches form up to the
// maximum, each answer reaches its own request, batching off, the queue bound, deadlines, and
// Stop() draining what is queued. The real forward pass is tested in inference_engine_test.cc.
#include "server/serving/dynamic_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace selene::serving {
namespace {

using ::testing::HasSubstr;

cv::Mat Pixel(int value) { return cv::Mat(1, 1, CV_8UC1, cv::Scalar(value)); }

// Output: the image's pixel value and the size of the batch it ran in.
StatusOr<std::vector<ModelOutput>> Echo(const std::vector<cv::Mat>& images) {
  std::vector<ModelOutput> out;
  for (const cv::Mat& image : images) {
    out.push_back(ModelOutput{
        {2}, {static_cast<float>(image.at<uchar>(0, 0)), static_cast<float>(images.size())}});
  }
  return out;
}

// A batch function that blocks until released, so tests can fill the queue behind it.
struct Gate {
  absl::Notification entered;
  absl::Notification release;
  std::atomic<int> calls{0};
  BatchFunction Function() {
    return [this](const std::vector<cv::Mat>& images) {
      if (calls.fetch_add(1) == 0) {
        entered.Notify();
        release.WaitForNotification();
      }
      return Echo(images);
    };
  }
};

TEST(DynamicBatcherTest, GathersUpToTheMaximumAndAnswersEachRequestWithItsOwnOutput) {
  DynamicBatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::Seconds(5);  // only a full batch runs early
  DynamicBatcher batcher(options, Echo);
  std::vector<StatusOr<ModelOutput>> results(8, InternalError("unset"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = batcher.Run(Pixel(10 + i)); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->values[0], 10 + i);
    EXPECT_EQ(results[i]->values[1], 4);  // ran in a full batch
  }
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 2);
  EXPECT_EQ(stats.requests, 8);
  EXPECT_EQ(stats.batch_size_counts[4], 2);
}

TEST(DynamicBatcherTest, ALoneRequestRunsAfterTheDelay) {
  DynamicBatcherOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Milliseconds(40);
  DynamicBatcher batcher(options, Echo);
  const absl::Time start = absl::Now();
  StatusOr<ModelOutput> out = batcher.Run(Pixel(3));
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->values[1], 1);
  EXPECT_GE(took, absl::Milliseconds(35));
  EXPECT_LT(took, absl::Seconds(2));
}

TEST(DynamicBatcherTest, ReportsEachBatchsSizeAndItsRequestsQueueWaits) {
  absl::Mutex mu;
  std::vector<BatchReport> reports;
  DynamicBatcherOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Milliseconds(40);
  options.on_batch = [&](const BatchReport& report) {
    absl::MutexLock lock(&mu);
    reports.push_back(report);
  };
  DynamicBatcher batcher(options, Echo);
  ASSERT_TRUE(batcher.Run(Pixel(1)).ok());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(reports.size(), 1u);  // reported before the answer
  EXPECT_EQ(reports[0].size, 1);
  ASSERT_EQ(reports[0].queue_waits.size(), 1u);
  EXPECT_GE(reports[0].queue_waits[0], absl::Milliseconds(35));  // it waited out the delay
  EXPECT_GE(reports[0].run_time, absl::ZeroDuration());
}

TEST(DynamicBatcherTest, BatchingOffRunsEveryRequestAloneWithoutWaiting) {
  DynamicBatcherOptions options;
  options.max_batch_size = 1;
  options.max_queue_delay = absl::Seconds(5);  // ignored: nothing to gather
  DynamicBatcher batcher(options, Echo);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      StatusOr<ModelOutput> out = batcher.Run(Pixel(i));
      if (out.ok() && out->values[0] == i && out->values[1] == 1) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(ok.load(), 6);
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 6);
  EXPECT_EQ(stats.batch_size_counts[1], 6);
}

TEST(DynamicBatcherTest, RefusesRequestsBeyondTheQueueBound) {
  Gate gate;
  DynamicBatcherOptions options;
  options.max_batch_size = 1;
  options.max_queue = 2;
  options.name = "model job-3";
  DynamicBatcher batcher(options, gate.Function());
  std::vector<StatusOr<ModelOutput>> results(4, InternalError("unset"));
  absl::Notification answered[4];
  auto submit = [&](int i) {
    batcher.Submit(Pixel(i), absl::InfiniteFuture(), [&, i](StatusOr<ModelOutput> out) {
      results[i] = std::move(out);
      answered[i].Notify();
    });
  };
  submit(0);
  gate.entered.WaitForNotification();  // the worker holds request 0
  submit(1);
  submit(2);
  submit(3);  // the queue holds 1 and 2
  ASSERT_TRUE(answered[3].HasBeenNotified());
  EXPECT_EQ(results[3].status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(results[3].status().message(), "model job-3: inference queue full (2 waiting)");
  gate.release.Notify();
  for (int i = 0; i < 3; ++i) {
    answered[i].WaitForNotification();
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->values[0], i);
  }
  EXPECT_EQ(batcher.stats().rejected_queue_full, 1);
}

TEST(DynamicBatcherTest, AnswersExpiredRequestsDeadlineExceededWithoutRunningThem) {
  Gate gate;
  DynamicBatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::ZeroDuration();
  DynamicBatcher batcher(options, gate.Function());
  StatusOr<ModelOutput> first = InternalError("unset");
  std::thread blocked([&] { first = batcher.Run(Pixel(1)); });
  gate.entered.WaitForNotification();
  StatusOr<ModelOutput> late = InternalError("unset");
  StatusOr<ModelOutput> patient = InternalError("unset");
  std::thread expiring([&] { late = batcher.Run(Pixel(2), absl::Now() + absl::Milliseconds(20)); });
  std::thread waiting([&] { patient = batcher.Run(Pixel(3)); });
  absl::SleepFor(absl::Milliseconds(80));
  gate.release.Notify();
  blocked.join();
  expiring.join();
  waiting.join();
  EXPECT_TRUE(first.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(patient.ok()) << patient.status();
  EXPECT_EQ(patient->values[1], 1);  // ran without the expired one
  EXPECT_EQ(batcher.stats().expired, 1);

  StatusOr<ModelOutput> past = batcher.Run(Pixel(4), absl::Now() - absl::Seconds(1));
  EXPECT_EQ(past.status().code(), StatusCode::kDeadlineExceeded);
}

TEST(DynamicBatcherTest, StopRunsWhatIsQueuedThenRefusesNewRequests) {
  Gate gate;
  DynamicBatcherOptions options;
  options.max_batch_size = 2;
  options.max_queue_delay = absl::Seconds(10);
  DynamicBatcher batcher(options, gate.Function());
  std::vector<StatusOr<ModelOutput>> results(5, InternalError("unset"));
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = batcher.Run(Pixel(0)); });
  // Request 0 alone waits out the long delay unless a second arrives: send one.
  threads.emplace_back([&] { results[1] = batcher.Run(Pixel(1)); });
  gate.entered.WaitForNotification();
  for (int i = 2; i < 5; ++i) threads.emplace_back([&, i] { results[i] = batcher.Run(Pixel(i)); });
  while (batcher.stats().queued < 3) absl::SleepFor(absl::Milliseconds(1));
  std::thread stopper([&] { batcher.Stop(); });
  absl::SleepFor(absl::Milliseconds(20));
  gate.release.Notify();
  stopper.join();  // returns only after the queue is drained, without waiting the 10 s delay
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_EQ(results[i]->values[0], i);
  }
  StatusOr<ModelOutput> after = batcher.Run(Pixel(9));
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
  batcher.Stop();  // idempotent
}

TEST(DynamicBatcherTest, ABatchFailureAnswersEveryRequestInIt) {
  DynamicBatcherOptions options;
  options.max_batch_size = 3;
  options.max_queue_delay = absl::Seconds(5);
  options.name = "model job-7";
  DynamicBatcher batcher(options,
                         [](const std::vector<cv::Mat>&) -> StatusOr<std::vector<ModelOutput>> {
                           return InternalError("model job-7: forward pass failed: out of memory");
                         });
  std::vector<StatusOr<ModelOutput>> results(3, InternalError("unset"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([&, i] { results[i] = batcher.Run(Pixel(i)); });
  for (std::thread& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_THAT(r.status().message(), HasSubstr("out of memory"));
  }
  // A function returning the wrong count is caught too.
  options.max_batch_size = 1;
  DynamicBatcher short_batcher(options, [](const std::vector<cv::Mat>&) {
    return StatusOr<std::vector<ModelOutput>>(std::vector<ModelOutput>{});
  });
  EXPECT_EQ(short_batcher.Run(Pixel(1), absl::Now() + absl::Seconds(30)).status().code(),
            StatusCode::kInternal);
}

}  // namespace
}  // namespace selene::serving
