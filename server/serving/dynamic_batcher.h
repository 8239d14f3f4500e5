// Dynamic batching for one model: requests (images already resized to the model's input) wait in
// a bounded queue; one worker thread takes the oldest, gathers more for up to max_queue_delay
// (counted from the oldest's arrival) or until max_batch_size, and runs one batch function call
// for all of them. Torch-free: the batch function (ServableModel's forward pass) is given in.
//
// The worker waits for companions only when there is evidence of concurrent load: more than one
// request is queued, or the previous batch held more than one request, or requests arrived while
// it ran. Otherwise a lone request runs at once. Waiting always would make one-at-a-time traffic
// pay the whole delay for companions that never come (at concurrency 1 the next request is sent
// only after this one is answered): measured over gRPC, 47-76% overhead over the forward pass
// instead of about 10%. Each piece of the evidence is needed under load:
// - requests arriving during a run: with two clients the second's request arrives while the
//   first's runs; without waiting, the two would take turns in batches of one for ever;
// - the previous batch's size: closed-loop clients answered together send their next requests
//   together, but only after the batch ran, so the queue is empty when the worker looks; the
//   batch they came from says they are coming back.
// Evidence lasts one batch: after a burst, the first lone request pays the delay once, and its
// batch of one with nothing behind it ends the waiting. After an idle period the first request
// of a new burst runs at once and the rest, arriving during its run, batch behind it.
//
// One worker per loaded model rather than one for all models: a slow model then never holds up
// another's queue, and the registry bounds the loaded models (so the workers) to a few. Each
// worker narrows its own OpenMP team to inference_threads, so inference and training sharing the
// CPU each get a fixed share instead of oversubscribing it.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status.h"

namespace selene::serving {

// What one batch was, for metrics: reported before its requests are answered.
struct BatchReport {
  int size = 0;                             // requests in the batch
  std::vector<absl::Duration> queue_waits;  // each request's time from Submit to the batch's run
  absl::Duration run_time;                  // the batch function's call
  // Whether the worker waited for companions before taking it (it saw concurrent load), which
  // tells a batch that gathered from one that ran at once without measuring time.
  bool waited_for_companions = false;
};

struct DynamicBatcherOptions {
  int max_batch_size = 8;  // 1 = batching off: each request runs alone, without waiting
  // Longest wait for companions, from the oldest request's arrival; waited only under load.
  absl::Duration max_queue_delay = absl::Milliseconds(5);
  int max_queue = 64;          // waiting requests beyond this are refused (ResourceExhausted)
  int inference_threads = 1;   // the worker's intra-op (OpenMP) threads; <= 0 leaves torch's own
  std::string name = "model";  // for messages: "model job-3"
  // Called on the worker thread after each batch ran (optional); must be quick and not throw.
  std::function<void(const BatchReport&)> on_batch;

  // Test seams, unset in production: they let a test decide what a batch holds and when it runs
  // instead of counting on threads to arrive within the delay.
  // While hold_dispatch(queued) is true the worker takes no batch (Stop ends the hold). It is
  // evaluated under the batcher's lock whenever the queue changes, so it must be quick and
  // depend on nothing but its argument and state it keeps itself.
  std::function<bool(int queued)> hold_dispatch;
  // Called on the worker thread with each batch's size before the batch function runs; it may
  // block, holding the batch's requests (and those queued behind) in flight.
  std::function<void(int size)> before_batch;
};

// One image's raw model output, e.g. logits [1, H, W] or [K].
struct ModelOutput {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Runs a batch: images are what Submit was given, in order. Returns one output per image, or an
// error for the whole batch. Called on the worker thread only; must not throw.
using BatchFunction =
    std::function<StatusOr<std::vector<ModelOutput>>(const std::vector<cv::Mat>& images)>;

using OutputCallback = std::function<void(StatusOr<ModelOutput>)>;

struct BatcherStats {
  int64_t batches = 0;                     // batch function calls
  int64_t requests = 0;                    // requests that ran in them
  std::vector<int64_t> batch_size_counts;  // [s] = batches of s requests, s in 1..max_batch_size
  // Time spent running batches, in all and by batch size ([s] as batch_size_counts), and the
  // requests' waits from Submit to their batch's run: Triton's ModelStatistics report them.
  absl::Duration run_time;
  std::vector<absl::Duration> batch_size_run_times;
  absl::Duration queue_wait;
  int64_t rejected_queue_full = 0;
  int64_t expired = 0;  // answered DeadlineExceeded without running
  int64_t queued = 0;   // waiting now
};

class DynamicBatcher {
 public:
  // Starts the worker thread.
  DynamicBatcher(DynamicBatcherOptions options, BatchFunction run_batch);
  // Stop()s.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `image`; `done` is called exactly once, on the worker thread (or on this thread when
  // the request is refused at once: queue full, stopped, deadline already passed). A request
  // whose deadline passes before its batch runs is answered DeadlineExceeded and skipped.
  void Submit(cv::Mat image, absl::Time deadline, OutputCallback done);

  // Submit and wait for the answer.
  StatusOr<ModelOutput> Run(cv::Mat image, absl::Time deadline = absl::InfiniteFuture());

  // Refuses new requests (Unavailable), runs those already queued, then joins the worker.
  // Idempotent.
  void Stop();

  BatcherStats stats() const;
  const DynamicBatcherOptions& options() const { return options_; }

 private:
  struct Request {
    cv::Mat image;
    absl::Time deadline;
    absl::Time arrival;
    OutputCallback done;
  };

  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // HasWorkOrStopping, and no hold_dispatch holding the queue back.
  bool MayDispatch() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool BatchFullOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop();
  // Waits for the next batch; empty when stopped with nothing left. `*waited`: whether it waited
  // for companions.
  std::vector<Request> NextBatch(bool* waited);
  void RunBatch(std::vector<Request> batch, bool waited);

  const DynamicBatcherOptions options_;
  const BatchFunction run_batch_;

  mutable absl::Mutex mu_;
  std::deque<Request> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Whether the last batch held more than one request or requests arrived while it ran: the
  // evidence of concurrent load that makes the next lone request wait for companions.
  bool load_seen_ ABSL_GUARDED_BY(mu_) = false;
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex join_mu_;  // serialises Stop() callers around the join
  std::thread worker_;   // owned: joined by Stop()
};

}  // namespace selene::serving
