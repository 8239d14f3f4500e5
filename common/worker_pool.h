// A fixed set of threads that run queued tasks: where the InferenceService runs the inference
// engine, which blocks (decoding, then waiting for the model's batch), so gRPC's own callback
// threads stay free to accept the concurrent requests the dynamic batcher needs to form batches.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace selene {

// Thread-safe.
class WorkerPool {
 public:
  // Starts `threads` (at least 1) workers; at most `max_pending` tasks (at least 1) wait.
  // `name` is for messages ("inference").
  WorkerPool(std::string name, int threads, int max_pending);
  // Shutdown().
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` (which must not throw). ResourceExhausted when max_pending tasks are waiting
  // already, Unavailable after Shutdown: then the task is not run and the caller answers.
  Status Schedule(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses new tasks, runs every queued one, then joins the workers. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  int threads() const { return static_cast<int>(workers_.size()); }
  int pending() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void WorkLoop() ABSL_LOCKS_EXCLUDED(mu_);
  bool HasTaskOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !tasks_.empty() || stopping_;
  }

  const std::string name_;
  const int max_pending_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex join_mu_;               // serialises Shutdown callers around the joins
  std::vector<std::thread> workers_;  // owned: joined by Shutdown
};

}  // namespace selene
