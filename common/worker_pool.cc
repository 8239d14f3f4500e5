#include "common/worker_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace selene {

WorkerPool::WorkerPool(std::string name, int threads, int max_pending)
    : name_(std::move(name)), max_pending_(std::max(1, max_pending)) {
  const int count = std::max(1, threads);
  workers_.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) workers_.emplace_back([this] { WorkLoop(); });
}

WorkerPool::~WorkerPool() { Shutdown(); }

Status WorkerPool::Schedule(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError(absl::StrCat(name_, ": server shutting down"));
  }
  if (static_cast<int>(tasks_.size()) >= max_pending_) {
    return absl::ResourceExhaustedError(absl::StrCat(name_, ": server overloaded: ", tasks_.size(),
                                                     " requests waiting; retry later"));
  }
  tasks_.push_back(std::move(task));
  return OkStatus();
}

void WorkerPool::Shutdown() {
  absl::MutexLock join_lock(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

int WorkerPool::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(tasks_.size());
}

void WorkerPool::WorkLoop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasTaskOrStopping));
      // Queued tasks run even when stopping: each one answers a call the server must finish.
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace selene
