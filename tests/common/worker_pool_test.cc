// Tests common/worker_pool.h: tasks run on the workers, a full queue refuses at once, and
// Shutdown runs what was queued before joining.
#include "common/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"

namespace selene {
namespace {

TEST(WorkerPoolTest, RunsTasksOnItsThreads) {
  WorkerPool pool("test", 3, 100);
  EXPECT_EQ(pool.threads(), 3);
  std::atomic<int> done{0};
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.Schedule([&] { ++done; }).ok());
  pool.Shutdown();
  EXPECT_EQ(done.load(), 50);
}

TEST(WorkerPoolTest, FullQueueIsResourceExhaustedAndShutdownRunsTheQueue) {
  WorkerPool pool("inference", 1, 2);
  absl::Notification release;
  absl::Notification started;
  std::atomic<int> done{0};
  ASSERT_TRUE(pool.Schedule([&] {
                    started.Notify();
                    release.WaitForNotification();
                    ++done;
                  })
                  .ok());
  started.WaitForNotification();  // the worker is busy; the queue holds two more
  ASSERT_TRUE(pool.Schedule([&] { ++done; }).ok());
  ASSERT_TRUE(pool.Schedule([&] { ++done; }).ok());
  const Status full = pool.Schedule([&] { ++done; });
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("inference"), absl::string_view::npos);
  release.Notify();
  pool.Shutdown();
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(pool.Schedule([] {}).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace selene
