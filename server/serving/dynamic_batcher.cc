#include "server/serving/dynamic_batcher.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

// OpenMP's team size for the calling thread alone (as in server/train/batch_loader.cc). Weak so
// the library links without OpenMP too; LibTorch loads the runtime it was built with.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace selene::serving {

DynamicBatcher::DynamicBatcher(DynamicBatcherOptions options, BatchFunction run_batch)
    : options_([&options] {
        options.max_batch_size = std::max(1, options.max_batch_size);
        options.max_queue = std::max(1, options.max_queue);
        if (options.max_queue_delay < absl::ZeroDuration()) {
          options.max_queue_delay = absl::ZeroDuration();
        }
        return std::move(options);
      }()),
      run_batch_(std::move(run_batch)) {
  stats_.batch_size_counts.assign(static_cast<size_t>(options_.max_batch_size) + 1, 0);
  stats_.batch_size_run_times.assign(static_cast<size_t>(options_.max_batch_size) + 1,
                                     absl::ZeroDuration());
  worker_ = std::thread([this] { WorkerLoop(); });
}

DynamicBatcher::~DynamicBatcher() { Stop(); }

void DynamicBatcher::Submit(cv::Mat image, absl::Time deadline, OutputCallback done) {
  Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::UnavailableError(
          absl::StrCat(options_.name, " is unloading; retry the request to load it again"));
    } else if (static_cast<int>(queue_.size()) >= options_.max_queue) {
      ++stats_.rejected_queue_full;
      refused = ResourceExhaustedError(
          absl::StrCat(options_.name, ": inference queue full (", queue_.size(), " waiting)"));
    } else if (absl::Now() >= deadline) {
      ++stats_.expired;
      refused = absl::DeadlineExceededError(
          absl::StrCat(options_.name, ": the request's deadline passed before it was queued"));
    } else {
      queue_.push_back(Request{std::move(image), deadline, absl::Now(), std::move(done)});
      return;
    }
  }
  done(refused);
}

StatusOr<ModelOutput> DynamicBatcher::Run(cv::Mat image, absl::Time deadline) {
  absl::Notification answered;
  StatusOr<ModelOutput> result = InternalError("unanswered");
  Submit(std::move(image), deadline, [&](StatusOr<ModelOutput> output) {
    result = std::move(output);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

void DynamicBatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  absl::MutexLock join_lock(&join_mu_);
  if (worker_.joinable()) worker_.join();
}

BatcherStats DynamicBatcher::stats() const {
  absl::MutexLock lock(&mu_);
  BatcherStats stats = stats_;
  stats.queued = static_cast<int64_t>(queue_.size());
  return stats;
}

bool DynamicBatcher::HasWorkOrStopping() const { return stopping_ || !queue_.empty(); }

bool DynamicBatcher::MayDispatch() const {
  if (!HasWorkOrStopping()) return false;
  return stopping_ || !options_.hold_dispatch ||
         !options_.hold_dispatch(static_cast<int>(queue_.size()));
}

bool DynamicBatcher::BatchFullOrStopping() const {
  return stopping_ || static_cast<int>(queue_.size()) >= options_.max_batch_size;
}

void DynamicBatcher::WorkerLoop() {
  if (options_.inference_threads > 0) {
    // torch sizes a thread's OpenMP team on its first parallel use; narrow it afterwards, for
    // this thread only, so the global setting (training's) stays as it is.
    (void)at::get_num_threads();
    if (&omp_set_num_threads != nullptr) omp_set_num_threads(options_.inference_threads);
  }
  for (;;) {
    bool waited = false;
    std::vector<Request> batch = NextBatch(&waited);
    if (batch.empty()) {
      absl::MutexLock lock(&mu_);
      if (stopping_ && queue_.empty()) return;
      continue;  // every request taken had expired
    }
    RunBatch(std::move(batch), waited);
  }
}

std::vector<DynamicBatcher::Request> DynamicBatcher::NextBatch(bool* waited) {
  std::vector<Request> batch;
  std::vector<Request> expired;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &DynamicBatcher::MayDispatch));
    if (queue_.empty()) return batch;
    const size_t max_batch = static_cast<size_t>(options_.max_batch_size);
    // Wait only under load (see the header): a lone request on an idle worker runs at once.
    const bool under_load = queue_.size() > 1 || load_seen_;
    *waited = max_batch > 1 && !stopping_ && queue_.size() < max_batch && under_load;
    if (*waited) {
      // The delay counts from the oldest request's arrival: a request that already waited while
      // the previous batch ran does not wait again.
      const absl::Time gather_until = queue_.front().arrival + options_.max_queue_delay;
      mu_.AwaitWithDeadline(absl::Condition(this, &DynamicBatcher::BatchFullOrStopping),
                            gather_until);
    }
    const absl::Time now = absl::Now();
    while (!queue_.empty() && batch.size() < max_batch) {
      Request request = std::move(queue_.front());
      queue_.pop_front();
      if (request.deadline <= now) {
        expired.push_back(std::move(request));
      } else {
        batch.push_back(std::move(request));
      }
    }
    stats_.expired += static_cast<int64_t>(expired.size());
  }
  for (Request& request : expired) {
    request.done(absl::DeadlineExceededError(
        absl::StrCat(options_.name, ": the request's deadline passed while it waited in the ",
                     "inference queue")));
  }
  return batch;
}

void DynamicBatcher::RunBatch(std::vector<Request> batch, bool waited) {
  std::vector<cv::Mat> images;
  images.reserve(batch.size());
  for (const Request& request : batch) images.push_back(request.image);

  if (options_.before_batch) options_.before_batch(static_cast<int>(batch.size()));
  StatusOr<std::vector<ModelOutput>> outputs = InternalError("batch function did not run");
  const absl::Time started = absl::Now();
  try {
    outputs = run_batch_(images);
  } catch (const std::exception& e) {
    outputs = InternalError(absl::StrCat(options_.name, ": inference failed: ", e.what()));
  }
  const absl::Duration run_time = absl::Now() - started;
  if (outputs.ok() && outputs->size() != batch.size()) {
    outputs = InternalError(absl::StrCat(options_.name, ": the batch of ", batch.size(),
                                         " images returned ", outputs->size(), " outputs"));
  }
  {
    absl::MutexLock lock(&mu_);
    ++stats_.batches;
    stats_.requests += static_cast<int64_t>(batch.size());
    ++stats_.batch_size_counts[batch.size()];
    stats_.run_time += run_time;
    stats_.batch_size_run_times[batch.size()] += run_time;
    for (const Request& request : batch) stats_.queue_wait += started - request.arrival;
    // Judged before the answers go out: a one-at-a-time client sends its next request only after
    // its answer, so it is never counted as having arrived during the run.
    load_seen_ = batch.size() > 1 || !queue_.empty();
  }
  if (options_.on_batch) {
    BatchReport report;
    report.size = static_cast<int>(batch.size());
    report.run_time = run_time;
    report.waited_for_companions = waited;
    for (const Request& request : batch) report.queue_waits.push_back(started - request.arrival);
    options_.on_batch(report);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (outputs.ok()) {
      batch[i].done(std::move((*outputs)[i]));
    } else {
      batch[i].done(outputs.status());
    }
  }
}

}  // namespace selene::serving
