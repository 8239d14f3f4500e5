#include "server/api/job_watcher.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/api/finished_write_reactor.h"
#include "server/api/grpc_status.h"

namespace selene::api {
namespace {

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

bool IsTerminalChange(const v1::JobEvent& event) {
  return event.has_state_change() && IsTerminal(event.state_change().to_state());
}

}  // namespace

// One WatchJob call. Owned by the watcher's map until gRPC calls OnDone; the pump queue and the
// hub's callback hold extra references only while they use it.
class JobWatcher::Stream final : public grpc::ServerWriteReactor<v1::JobEvent>,
                                 public std::enable_shared_from_this<JobWatcher::Stream> {
 public:
  Stream(JobWatcher* watcher, std::string job_id, int64_t after_sequence)
      : watcher_(watcher),
        job_id_(std::move(job_id)),
        last_sent_(after_sequence),
        last_fetched_(after_sequence) {}

  void SetSubscription(std::unique_ptr<events::JobEventHub::Subscription> subscription) {
    absl::MutexLock lock(&mu_);
    subscription_ = std::move(subscription);
  }

  // On the pump thread: reads the next batch from the store when nothing is buffered and starts
  // writing it, unless a write is already under way (its OnWriteDone continues).
  void Advance() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_ || writing_) return;
    if (shutdown_requested_) return FinishLocked(ShutdownStatus());
    if (buffer_.empty()) {
      StatusOr<std::vector<v1::JobEvent>> events =
          watcher_->store_->Events(job_id_, last_fetched_, kBatchSize);
      if (!events.ok()) return FinishLocked(ToGrpcStatus(events.status()));
      for (v1::JobEvent& event : *events) {
        last_fetched_ = event.sequence();
        buffer_.push_back(std::move(event));
      }
    }
    if (buffer_.empty()) return;  // the hub wakes us for the next event
    writing_ = true;
    StartWrite(&buffer_.front());
  }

  void EndForShutdown() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    shutdown_requested_ = true;
    // A write under way finishes first, so the sequence in the message counts it.
    if (!writing_) FinishLocked(ShutdownStatus());
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        // The client went away or the deadline passed: nobody reads this status.
        return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      }
      const bool terminal = IsTerminalChange(buffer_.front());
      last_sent_ = buffer_.front().sequence();
      buffer_.pop_front();
      if (terminal) return FinishLocked(grpc::Status::OK);
      if (shutdown_requested_) return FinishLocked(ShutdownStatus());
      if (!buffer_.empty()) {
        writing_ = true;
        StartWrite(&buffer_.front());
        return;
      }
    }
    // Buffer drained: the pump reads what was committed meanwhile.
    watcher_->Wake(shared_from_this());
  }

  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    // A write under way fails now and its OnWriteDone finishes the call.
    if (!finished_ && !writing_) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    }
  }

  void OnDone() override ABSL_LOCKS_EXCLUDED(mu_) {
    std::unique_ptr<events::JobEventHub::Subscription> subscription;
    {
      absl::MutexLock lock(&mu_);
      subscription = std::move(subscription_);
    }
    // Waits for a hub callback under way, so none runs (or holds a reference) after this.
    subscription.reset();
    watcher_->Forget(this);  // may delete this
  }

  // Guarded by the watcher's mu_: in the pump queue now.
  bool queued = false;

 private:
  grpc::Status ShutdownStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("server shutting down; watch again from sequence ", last_sent_));
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    buffer_.clear();
    Finish(std::move(status));
  }

  JobWatcher* const watcher_;
  const std::string job_id_;

  absl::Mutex mu_;
  int64_t last_sent_ ABSL_GUARDED_BY(mu_);     // sequence of the last event the client got
  int64_t last_fetched_ ABSL_GUARDED_BY(mu_);  // sequence of the last event read from the store
  std::deque<v1::JobEvent> buffer_ ABSL_GUARDED_BY(mu_);  // front: being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<events::JobEventHub::Subscription> subscription_ ABSL_GUARDED_BY(mu_);
};

JobWatcher::JobWatcher(jobs::JobStore* store, events::JobEventHub* hub) : store_(store), hub_(hub) {
  pump_ = std::thread([this] { PumpLoop(); });
}

JobWatcher::~JobWatcher() {
  Shutdown();
  {
    absl::MutexLock lock(&mu_);
    pump_stopping_ = true;
  }
  pump_.join();
  std::deque<std::shared_ptr<Stream>> left;
  std::map<const Stream*, std::shared_ptr<Stream>> watches;
  {
    absl::MutexLock lock(&mu_);
    left.swap(ready_);
    watches.swap(watches_);
  }
}

grpc::ServerWriteReactor<v1::JobEvent>* JobWatcher::Watch(grpc::CallbackServerContext* context,
                                                          const v1::WatchJobRequest* request) {
  (void)context;  // the deadline and cancellation reach the reactor through OnCancel
  using Refused = FinishedWriteReactor<v1::JobEvent>;
  const std::string& job_id = request->job_id();
  if (request->after_sequence() < 0) {
    return new Refused(ToGrpcStatus(InvalidArgumentError(absl::StrCat(
        "after_sequence ", request->after_sequence(), " must be >= 0 (0: from the first event)"))));
  }
  if (job_id.empty()) {
    return new Refused(ToGrpcStatus(InvalidArgumentError("job_id: empty")));
  }
  StatusOr<v1::Job> job = store_->Get(job_id);
  if (!job.ok()) return new Refused(ToGrpcStatus(job.status()));
  // The terminal event was sent before: the stream ends at once.
  if (IsTerminal(job->state()) && job->last_event_sequence() <= request->after_sequence()) {
    return new Refused(grpc::Status::OK);
  }

  auto watch = std::make_shared<JobWatcher::Stream>(this, job_id, request->after_sequence());
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      return new Refused(ToGrpcStatus(absl::UnavailableError(absl::StrCat(
          "server shutting down; watch again from sequence ", request->after_sequence()))));
    }
    watches_.emplace(watch.get(), watch);
  }
  // Subscribed before the first read, so an event committed in between still wakes the pump.
  std::weak_ptr<JobWatcher::Stream> weak = watch;
  watch->SetSubscription(hub_->Subscribe(job_id, [this, weak](const v1::JobEvent&) {
    if (std::shared_ptr<JobWatcher::Stream> woken = weak.lock()) Wake(woken);
  }));
  Wake(watch);
  return watch.get();
}

void JobWatcher::Shutdown() {
  std::vector<std::shared_ptr<Stream>> open;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (const auto& [key, watch] : watches_) open.push_back(watch);
  }
  for (const std::shared_ptr<Stream>& watch : open) watch->EndForShutdown();
}

int JobWatcher::active_watches() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(watches_.size());
}

void JobWatcher::Wake(const std::shared_ptr<Stream>& watch) {
  absl::MutexLock lock(&mu_);
  if (pump_stopping_ || watch->queued) return;
  watch->queued = true;
  ready_.push_back(watch);
}

void JobWatcher::Forget(const Stream* watch) {
  std::shared_ptr<Stream> owned;
  {
    absl::MutexLock lock(&mu_);
    const auto found = watches_.find(watch);
    if (found == watches_.end()) return;
    owned = std::move(found->second);
    watches_.erase(found);
  }
  // `owned` may be the last reference: the watch is destroyed here, outside the lock.
}

void JobWatcher::PumpLoop() {
  while (true) {
    std::shared_ptr<Stream> watch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &JobWatcher::HasWorkOrStopping));
      if (pump_stopping_) return;
      watch = std::move(ready_.front());
      ready_.pop_front();
      watch->queued = false;
    }
    watch->Advance();
  }
}

}  // namespace selene::api
