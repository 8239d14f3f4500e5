// WatchJob's streams: each watch sends a job's stored events after the client's sequence, then
// new ones as they are committed, and ends OK after the event that made the job terminal. The
// store is read on one thread the watcher owns (the pump), never on the threads that commit
// events (the hub only wakes the pump) and never while a gRPC write is pending, so a slow client
// holds at most one batch of events in memory and slows nobody else down.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <thread>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "selene/v1/training_service.pb.h"
#include "server/events/job_event_hub.h"
#include "server/jobs/job_store.h"

namespace selene::api {

// Thread-safe. Must outlive the gRPC server it serves (its streams report back on their end).
class JobWatcher {
 public:
  // Events read from the store per batch (and so at most buffered per watch).
  static constexpr int64_t kBatchSize = 256;

  // `store` and `hub` must outlive the watcher. Starts the pump thread.
  JobWatcher(jobs::JobStore* store, events::JobEventHub* hub);
  // Shutdown(), then joins the pump.
  ~JobWatcher();
  JobWatcher(const JobWatcher&) = delete;
  JobWatcher& operator=(const JobWatcher&) = delete;

  // The reactor of one WatchJob call (the caller has authenticated it). Unknown job: NOT_FOUND;
  // negative after_sequence: INVALID_ARGUMENT; after Shutdown: UNAVAILABLE.
  grpc::ServerWriteReactor<v1::JobEvent>* Watch(grpc::CallbackServerContext* context,
                                                const v1::WatchJobRequest* request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every open watch with UNAVAILABLE "server shutting down; watch again from sequence N"
  // (N: the last event the client was sent) and refuses new ones. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  int active_watches() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Stream;
  friend class Stream;

  // Queues `watch` for the pump (once, however often it is woken before the pump gets to it).
  void Wake(const std::shared_ptr<Stream>& watch) ABSL_LOCKS_EXCLUDED(mu_);
  // Called by a watch in OnDone: forgets it.
  void Forget(const Stream* watch) ABSL_LOCKS_EXCLUDED(mu_);
  void PumpLoop() ABSL_LOCKS_EXCLUDED(mu_);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !ready_.empty() || pump_stopping_;
  }

  jobs::JobStore* const store_;
  events::JobEventHub* const hub_;

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool pump_stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Owning references to the open watches: gRPC holds raw pointers until each one's OnDone.
  std::map<const Stream*, std::shared_ptr<Stream>> watches_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Stream>> ready_ ABSL_GUARDED_BY(mu_);
  std::thread pump_;  // owned; joined by the destructor
};

}  // namespace selene::api
