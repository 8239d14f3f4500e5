#include "server/events/job_event_hub.h"

#include <utility>
#include <vector>

namespace selene::events {

struct JobEventHub::Subscription::Entry {
  Entry(std::string job_id, Callback callback)
      : job_id(std::move(job_id)), callback(std::move(callback)) {}

  const std::string job_id;  // "" = every job
  const Callback callback;
  // Held while the callback runs, so ending the subscription waits for a running call.
  absl::Mutex mu;
  bool active ABSL_GUARDED_BY(mu) = true;
};

JobEventHub::Subscription::~Subscription() {
  hub_->Unsubscribe(id_);
  absl::MutexLock lock(&entry_->mu);
  entry_->active = false;
}

std::unique_ptr<JobEventHub::Subscription> JobEventHub::Subscribe(const std::string& job_id,
                                                                  Callback callback) {
  auto entry = std::make_shared<Subscription::Entry>(job_id, std::move(callback));
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  entries_.emplace(id, entry);
  return std::unique_ptr<Subscription>(new Subscription(this, id, std::move(entry)));
}

void JobEventHub::Unsubscribe(int64_t id) {
  absl::MutexLock lock(&mu_);
  entries_.erase(id);
}

void JobEventHub::Publish(const v1::JobEvent& event) {
  std::vector<std::shared_ptr<Subscription::Entry>> targets;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : entries_) {
      if (entry->job_id.empty() || event.job_id().empty() || entry->job_id == event.job_id()) {
        targets.push_back(entry);
      }
    }
  }
  // Outside the hub's lock: subscribing and unsubscribing never wait for a callback of another
  // subscription.
  for (const auto& entry : targets) {
    absl::MutexLock lock(&entry->mu);
    if (!entry->active) continue;
    try {
      entry->callback(event);
    } catch (...) {
      // A subscriber's failure must not reach the store, which committed the event already.
    }
  }
}

int JobEventHub::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(entries_.size());
}

}  // namespace selene::events
