// Tests server/events/job_event_hub.h: events reach the subscribers of their job and the
// every-job subscribers (a nudge without a job reaches all), nobody after unsubscribing, and ending
// a subscription waits for its callback running on another thread.
#include "server/events/job_event_hub.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace selene::events {
namespace {

using ::testing::ElementsAre;

v1::JobEvent Event(const std::string& job_id, int64_t sequence) {
  v1::JobEvent event;
  event.set_job_id(job_id);
  event.set_sequence(sequence);
  return event;
}

TEST(JobEventHubTest, DeliversToTheJobsSubscribersAndToEveryJobSubscribers) {
  JobEventHub hub;
  std::vector<int64_t> one, two, all;
  auto s1 = hub.Subscribe("job-1", [&](const v1::JobEvent& e) { one.push_back(e.sequence()); });
  auto s2 = hub.Subscribe("job-2", [&](const v1::JobEvent& e) { two.push_back(e.sequence()); });
  auto s3 = hub.Subscribe("", [&](const v1::JobEvent& e) { all.push_back(e.sequence()); });
  EXPECT_EQ(hub.subscriber_count(), 3);
  hub.Publish(Event("job-1", 1));
  hub.Publish(Event("job-2", 10));
  hub.Publish(Event("job-1", 2));
  s1.reset();
  hub.Publish(Event("job-1", 3));
  EXPECT_THAT(one, ElementsAre(1, 2));
  EXPECT_THAT(two, ElementsAre(10));
  EXPECT_THAT(all, ElementsAre(1, 10, 2, 3));
  EXPECT_EQ(hub.subscriber_count(), 2);
}

// After the notifications from other servers were interrupted, every follower re-reads.
TEST(JobEventHubTest, NudgeWithoutAJobReachesEverySubscriber) {
  JobEventHub hub;
  std::vector<std::string> heard;
  auto s1 = hub.Subscribe("job-1", [&](const v1::JobEvent&) { heard.push_back("job-1"); });
  auto s2 = hub.Subscribe("job-2", [&](const v1::JobEvent&) { heard.push_back("job-2"); });
  hub.Publish(Event("", 0));
  EXPECT_THAT(heard, ::testing::UnorderedElementsAre("job-1", "job-2"));
}

TEST(JobEventHubTest, ListenerFeedsTheHub) {
  JobEventHub hub;
  int calls = 0;
  auto subscription = hub.Subscribe("job-7", [&](const v1::JobEvent&) { ++calls; });
  jobs::JobStore::EventListener listener = hub.Listener();
  listener(Event("job-7", 1));
  listener(Event("job-8", 1));
  EXPECT_EQ(calls, 1);
}

TEST(JobEventHubTest, EndingASubscriptionWaitsForItsRunningCallback) {
  JobEventHub hub;
  absl::Notification entered;
  std::atomic<bool> finished{false};
  auto subscription = hub.Subscribe("job-1", [&](const v1::JobEvent&) {
    entered.Notify();
    absl::SleepFor(absl::Milliseconds(200));
    finished.store(true);
  });
  std::thread publisher([&] { hub.Publish(Event("job-1", 1)); });
  entered.WaitForNotification();
  subscription.reset();  // must not return while the callback runs
  EXPECT_TRUE(finished.load());
  publisher.join();
}

TEST(JobEventHubTest, AThrowingSubscriberDoesNotReachThePublisher) {
  JobEventHub hub;
  int after = 0;
  auto bad = hub.Subscribe("", [](const v1::JobEvent&) { throw std::runtime_error("boom"); });
  auto good = hub.Subscribe("", [&](const v1::JobEvent&) { ++after; });
  EXPECT_NO_THROW(hub.Publish(Event("job-1", 1)));
  EXPECT_EQ(after, 1);
}

}  // namespace
}  // namespace selene::events
