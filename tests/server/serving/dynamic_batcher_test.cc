// Tests server/serving/dynamic_batcher.h with a fake batch function: batches form up to the
// maximum, each answer reaches its own request, a lone request on an idle batcher runs without
// waiting while requests under load wait to batch, batching off, the queue bound, deadlines, and
// Stop() draining what is queued. The real forward pass is tested in inference_engine_test.cc.
//
// Batches are formed deterministically: a Gate holds the first batch's run while the test queues
// requests behind it, rather than counting on concurrent threads to arrive within the delay.
// Whether the worker waited for companions is read from its BatchReport, not from a clock; where
// only a full batch should run early the delay is minutes, so no scheduling hiccup can end it.
#include "server/serving/dynamic_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

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

// A batch function whose first call blocks until released, so tests can fill the queue behind it.
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

// Requests submitted one by one from the test thread (request i's image is Pixel(i)), so the
// test decides what is queued when; their answers are kept.
class Requests {
 public:
  explicit Requests(int n) : results_(n, InternalError("unset")), answered_(n) {}
  void Submit(DynamicBatcher& batcher, int i) {
    batcher.Submit(Pixel(i), absl::InfiniteFuture(), [this, i](StatusOr<ModelOutput> out) {
      results_[i] = std::move(out);
      answered_[i].Notify();
    });
  }
  const StatusOr<ModelOutput>& Wait(int i) {
    answered_[i].WaitForNotification();
    return results_[i];
  }

 private:
  std::vector<StatusOr<ModelOutput>> results_;
  std::vector<absl::Notification> answered_;
};

// Each batch's report, kept for the test.
struct Reports {
  absl::Mutex mu;
  std::vector<BatchReport> reports ABSL_GUARDED_BY(mu);
  std::function<void(const BatchReport&)> Callback() {
    return [this](const BatchReport& report) {
      absl::MutexLock lock(&mu);
      reports.push_back(report);
    };
  }
  std::vector<BatchReport> Get() {
    absl::MutexLock lock(&mu);
    return reports;
  }
};

TEST(DynamicBatcherTest, GathersUpToTheMaximumAndAnswersEachRequestWithItsOwnOutput) {
  Gate gate;
  DynamicBatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::Minutes(10);  // only a full batch runs early
  DynamicBatcher batcher(options, gate.Function());
  Requests requests(9);
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();  // request 0 runs alone; 1-8 queue behind it
  for (int i = 1; i < 9; ++i) requests.Submit(batcher, i);
  gate.release.Notify();
  ASSERT_TRUE(requests.Wait(0).ok());
  EXPECT_EQ(requests.Wait(0)->values[1], 1);
  for (int i = 1; i < 9; ++i) {
    const StatusOr<ModelOutput>& out = requests.Wait(i);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->values[0], i);
    EXPECT_EQ(out->values[1], 4);  // ran in a full batch
  }
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 3);
  EXPECT_EQ(stats.requests, 9);
  EXPECT_EQ(stats.batch_size_counts[1], 1);
  EXPECT_EQ(stats.batch_size_counts[4], 2);
}

// Traffic one at a time (each request sent after the previous one's answer, as one client does)
// never has companions coming: waiting for them would only add the delay to every request.
TEST(DynamicBatcherTest, ALoneRequestOnAnIdleBatcherRunsWithoutWaitingTheDelay) {
  Reports reports;
  DynamicBatcherOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Seconds(3);
  options.on_batch = reports.Callback();
  DynamicBatcher batcher(options, Echo);
  for (int i = 0; i < 3; ++i) {
    StatusOr<ModelOutput> out = batcher.Run(Pixel(i));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->values[0], i);
    EXPECT_EQ(out->values[1], 1);
  }
  const std::vector<BatchReport> got = reports.Get();
  ASSERT_EQ(got.size(), 3u);
  for (const BatchReport& report : got) {
    ASSERT_EQ(report.queue_waits.size(), 1u);
    EXPECT_FALSE(report.waited_for_companions);
  }
  EXPECT_EQ(batcher.stats().batch_size_counts[1], 3);
}

// Under load the worker waits for companions: requests that arrived while a batch ran, and the
// clients of a batch of several (who send again only once answered), make the next request wait.
TEST(DynamicBatcherTest, UnderLoadALoneQueuedRequestWaitsForCompanions) {
  Gate gate;
  DynamicBatcherOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::Minutes(10);  // only a full batch runs early
  DynamicBatcher batcher(options, gate.Function());
  Requests requests(9);
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();
  requests.Submit(batcher, 1);  // arrives while request 0 runs: load
  gate.release.Notify();
  ASSERT_TRUE(requests.Wait(0).ok());
  for (int i = 2; i < 5; ++i) requests.Submit(batcher, i);  // request 1 waits for these
  for (int i = 1; i < 5; ++i) {
    const StatusOr<ModelOutput>& out = requests.Wait(i);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->values[0], i);
    EXPECT_EQ(out->values[1], 4);
  }
  // All answered, nothing queued: the batch of four says its clients are coming back.
  for (int i = 5; i < 9; ++i) requests.Submit(batcher, i);
  for (int i = 5; i < 9; ++i) {
    const StatusOr<ModelOutput>& out = requests.Wait(i);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->values[1], 4);
  }
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batch_size_counts[1], 1);
  EXPECT_EQ(stats.batch_size_counts[4], 2);
}

// The evidence of load lasts one batch: after a burst the first lone request waits out the delay
// (nobody joins it), and the next one, the load gone, runs at once.
TEST(DynamicBatcherTest, AfterLoadOneLoneRequestWaitsThenTheNextRunsAtOnce) {
  Gate gate;
  Reports reports;
  DynamicBatcherOptions options;
  options.max_batch_size = 2;  // requests 1 and 2 make a full batch and run at once
  options.max_queue_delay = absl::Seconds(1);
  options.on_batch = reports.Callback();
  DynamicBatcher batcher(options, gate.Function());
  Requests requests(3);
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();
  requests.Submit(batcher, 1);
  requests.Submit(batcher, 2);
  gate.release.Notify();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(requests.Wait(i).ok());
  ASSERT_TRUE(batcher.Run(Pixel(3)).ok());
  ASSERT_TRUE(batcher.Run(Pixel(4)).ok());
  const std::vector<BatchReport> got = reports.Get();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[1].size, 2);  // requests 1 and 2, queued behind request 0 (which ran at once)
  EXPECT_FALSE(got[0].waited_for_companions);
  // Request 3 waited, a batch of 2 before it, the whole delay (nobody came); request 4, the load
  // gone, did not.
  ASSERT_EQ(got[2].size, 1);
  EXPECT_TRUE(got[2].waited_for_companions);
  EXPECT_GE(got[2].queue_waits[0], options.max_queue_delay);
  ASSERT_EQ(got[3].size, 1);
  EXPECT_FALSE(got[3].waited_for_companions);
}

TEST(DynamicBatcherTest, ReportsEachBatchsSizeAndItsRequestsQueueWaits) {
  Gate gate;
  Reports reports;
  DynamicBatcherOptions options;
  options.max_batch_size = 2;
  options.max_queue_delay = absl::Minutes(10);  // only a full batch runs early
  options.on_batch = reports.Callback();
  DynamicBatcher batcher(options, gate.Function());
  Requests requests(3);
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();
  requests.Submit(batcher, 1);
  requests.Submit(batcher, 2);
  absl::SleepFor(absl::Milliseconds(40));  // requests 1 and 2 wait at least this long
  gate.release.Notify();
  // Each batch is reported before its answers.
  ASSERT_TRUE(requests.Wait(0).ok());
  EXPECT_GE(reports.Get().size(), 1u);
  ASSERT_TRUE(requests.Wait(2).ok());
  const std::vector<BatchReport> got = reports.Get();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].size, 1);
  ASSERT_EQ(got[0].queue_waits.size(), 1u);
  EXPECT_GE(got[0].run_time, absl::Milliseconds(40));  // held by the gate
  EXPECT_EQ(got[1].size, 2);
  ASSERT_EQ(got[1].queue_waits.size(), 2u);
  for (absl::Duration wait : got[1].queue_waits) EXPECT_GE(wait, absl::Milliseconds(40));
  EXPECT_GE(got[1].run_time, absl::ZeroDuration());
}

TEST(DynamicBatcherTest, BatchingOffRunsEveryRequestAloneWithoutWaiting) {
  Reports reports;
  DynamicBatcherOptions options;
  options.max_batch_size = 1;
  options.max_queue_delay = absl::Minutes(10);  // ignored: nothing to gather
  options.on_batch = reports.Callback();
  DynamicBatcher batcher(options, Echo);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      StatusOr<ModelOutput> out = batcher.Run(Pixel(i));
      if (out.ok() && out->values[0] == i && out->values[1] == 1) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  for (const BatchReport& report : reports.Get()) EXPECT_FALSE(report.waited_for_companions);
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
  Requests requests(3);  // 0 and 2: no deadline
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();  // request 0 runs; the next two queue behind it
  const absl::Time deadline = absl::Now() + absl::Milliseconds(100);
  StatusOr<ModelOutput> late = InternalError("unset");
  absl::Notification late_answered;
  batcher.Submit(Pixel(1), deadline, [&](StatusOr<ModelOutput> out) {
    late = std::move(out);
    late_answered.Notify();
  });
  requests.Submit(batcher, 2);
  // Waits on the clock itself, not on another thread: the deadline has passed when the worker
  // takes its next batch.
  while (absl::Now() <= deadline) absl::SleepFor(deadline - absl::Now() + absl::Milliseconds(1));
  gate.release.Notify();
  EXPECT_TRUE(requests.Wait(0).ok());
  late_answered.WaitForNotification();
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  const StatusOr<ModelOutput>& patient = requests.Wait(2);
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
  options.max_queue_delay = absl::Minutes(10);
  DynamicBatcher batcher(options, gate.Function());
  Requests requests(4);
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();
  // Behind request 0: a full batch (1, 2), then request 3 alone, which after a batch of two would
  // wait the 10 minute delay for a companion were the batcher not stopping (whether Stop comes
  // before that wait or during it).
  for (int i = 1; i < 4; ++i) requests.Submit(batcher, i);
  const absl::Time start = absl::Now();
  std::thread stopper([&] { batcher.Stop(); });
  gate.release.Notify();
  stopper.join();  // returns only after the queue is drained, without waiting out the delay
  EXPECT_LT(absl::Now() - start, options.max_queue_delay / 2);
  for (int i = 0; i < 4; ++i) {
    const StatusOr<ModelOutput>& out = requests.Wait(i);
    ASSERT_TRUE(out.ok()) << i << ": " << out.status();
    EXPECT_EQ(out->values[0], i);
  }
  EXPECT_EQ(batcher.stats().batch_size_counts[2], 1);
  StatusOr<ModelOutput> after = batcher.Run(Pixel(9));
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
  batcher.Stop();  // idempotent
}

// The seams tests use to make batches deterministic: hold_dispatch keeps requests queued until
// enough have arrived, before_batch holds a taken batch in flight.
TEST(DynamicBatcherTest, TestSeamsHoldTheQueueAndTheBatch) {
  DynamicBatcherOptions options;
  options.max_batch_size = 3;
  options.max_queue_delay = absl::Minutes(10);  // only a full batch runs early
  bool released = false;                        // only touched under the batcher's lock
  options.hold_dispatch = [&released](int queued) {
    if (queued >= 6) released = true;
    return !released;
  };
  absl::Notification first_batch_held;
  absl::Notification let_go;
  std::atomic<int> batches_seen{0};
  options.before_batch = [&](int size) {
    EXPECT_EQ(size, 3);
    if (batches_seen.fetch_add(1) == 0) {
      first_batch_held.Notify();
      let_go.WaitForNotification();
    }
  };
  DynamicBatcher batcher(options, Echo);
  Requests requests(6);
  for (int i = 0; i < 6; ++i) requests.Submit(batcher, i);
  first_batch_held.WaitForNotification();
  BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 0);  // held before the batch function
  EXPECT_EQ(stats.queued, 3);
  let_go.Notify();
  for (int i = 0; i < 6; ++i) {
    const StatusOr<ModelOutput>& out = requests.Wait(i);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->values[0], i);
    EXPECT_EQ(out->values[1], 3);
  }
  stats = batcher.stats();
  EXPECT_EQ(stats.batches, 2);
  EXPECT_EQ(stats.batch_size_counts[3], 2);
}

// Stop ends a hold that would otherwise never let go, and the queued requests still run.
TEST(DynamicBatcherTest, StopEndsAHold) {
  DynamicBatcherOptions options;
  options.max_batch_size = 4;
  options.hold_dispatch = [](int) { return true; };
  DynamicBatcher batcher(options, Echo);
  Requests requests(2);
  requests.Submit(batcher, 0);
  requests.Submit(batcher, 1);
  batcher.Stop();
  for (int i = 0; i < 2; ++i) {
    const StatusOr<ModelOutput>& out = requests.Wait(i);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->values[1], 2);
  }
}

TEST(DynamicBatcherTest, ABatchFailureAnswersEveryRequestInIt) {
  Gate gate;
  const BatchFunction gated = gate.Function();
  DynamicBatcherOptions options;
  options.max_batch_size = 3;
  options.max_queue_delay = absl::Minutes(10);  // only a full batch runs early
  options.name = "model job-7";
  DynamicBatcher batcher(
      options, [&gated](const std::vector<cv::Mat>& images) -> StatusOr<std::vector<ModelOutput>> {
        (void)gated(images);  // the first call waits for the gate
        return InternalError("model job-7: forward pass failed: out of memory");
      });
  Requests requests(4);
  requests.Submit(batcher, 0);
  gate.entered.WaitForNotification();
  for (int i = 1; i < 4; ++i) requests.Submit(batcher, i);  // one batch of three behind it
  gate.release.Notify();
  for (int i = 0; i < 4; ++i) {
    const StatusOr<ModelOutput>& r = requests.Wait(i);
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_THAT(r.status().message(), HasSubstr("out of memory"));
  }
  EXPECT_EQ(batcher.stats().batch_size_counts[3], 1);
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
