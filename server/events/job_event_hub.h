// Fans the job store's events out to whoever follows jobs (WatchJob streams, metrics). The store
// takes a single event listener; the hub is that listener and keeps any number of subscribers,
// per job or for every job. It runs on the thread that committed the event (a training worker,
// the scheduler), sometimes under the scheduler's lock, so subscribers must only take note and
// wake their own work: never block, never call the scheduler.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "selene/v1/training_service.pb.h"
#include "server/jobs/job_store.h"

namespace selene::events {

// Thread-safe.
class JobEventHub {
 public:
  using Callback = std::function<void(const v1::JobEvent&)>;

  // Ends a subscription when destroyed. The destructor waits for a callback of this subscription
  // that is running on another thread, so the callback's captures may go right after it; a
  // callback must therefore never destroy its own subscription.
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class JobEventHub;
    struct Entry;
    Subscription(JobEventHub* hub, int64_t id, std::shared_ptr<Entry> entry)
        : hub_(hub), id_(id), entry_(std::move(entry)) {}

    JobEventHub* const hub_;
    const int64_t id_;
    const std::shared_ptr<Entry> entry_;
  };

  JobEventHub() = default;
  JobEventHub(const JobEventHub&) = delete;
  JobEventHub& operator=(const JobEventHub&) = delete;

  // `callback` runs for every event of `job_id` ("" = every job) committed from now on, until
  // the subscription is destroyed (which must happen before the hub goes). Calls may overlap
  // across subscriptions, never within one; they may come out of sequence order.
  std::unique_ptr<Subscription> Subscribe(const std::string& job_id, Callback callback)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Delivers one event to its subscribers: what the store's listener calls. Events from other
  // servers (JobStore::FollowOtherServers) are nudges without a kind: their content is in the
  // store. A nudge without a job id (the notifications were interrupted) reaches every
  // subscriber, so each reads what it may have missed.
  void Publish(const v1::JobEvent& event) ABSL_LOCKS_EXCLUDED(mu_);

  // The listener to give JobStore::SetEventListener; the hub must outlive the store's use of it.
  jobs::JobStore::EventListener Listener() {
    return [this](const v1::JobEvent& event) { Publish(event); };
  }

  int subscriber_count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Unsubscribe(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, std::shared_ptr<Subscription::Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace selene::events
