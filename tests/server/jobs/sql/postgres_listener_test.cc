// Tests for server/jobs/sql/postgres_listener.h against a real, private PostgreSQL server
// (tests/testing/postgres_server.h; skipped with the reason when it cannot start): NOTIFYs from
// another connection arrive, and the listener comes back after PostgreSQL restarts.
#include "server/jobs/sql/postgres_listener.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/jobs/sql/postgres_connection.h"
#include "tests/testing/files.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/status_matchers.h"

namespace selene::jobs::sql {
namespace {

using ::selene::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Generous: these waits end as soon as the condition holds; the bound only turns a hang into a
// failure.
constexpr absl::Duration kPatience = absl::Seconds(60);

// What the listener's callbacks saw, for the test's thread to wait on.
class Inbox {
 public:
  PostgresListener::NotifyCallback OnNotify() {
    return [this](const std::string& payload) {
      absl::MutexLock lock(&mu_);
      payloads_.push_back(payload);
    };
  }
  PostgresListener::ReconnectCallback OnReconnect() {
    return [this] {
      absl::MutexLock lock(&mu_);
      ++reconnects_;
    };
  }

  // True once `count` payloads have arrived.
  bool WaitForPayloads(size_t count) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return payloads_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), kPatience);
  }
  bool WaitForReconnects(int count) {
    absl::MutexLock lock(&mu_);
    auto reconnected = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reconnects_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reconnected), kPatience);
  }
  std::vector<std::string> payloads() {
    absl::MutexLock lock(&mu_);
    return payloads_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> payloads_ ABSL_GUARDED_BY(mu_);
  int reconnects_ ABSL_GUARDED_BY(mu_) = 0;
};

class PostgresListenerTest : public ::selene::testing::PostgresTest {
 protected:
  std::unique_ptr<PostgresListener> Listen(const std::string& channel = "selene_jobs") {
    StatusOr<std::unique_ptr<PostgresListener>> listener =
        PostgresListener::Start(uri(), "", channel, inbox_.OnNotify(), inbox_.OnReconnect());
    EXPECT_OK(listener);
    return listener.ok() ? std::move(listener).value() : nullptr;
  }

  // Sends through the store's own statement (its dialect's notify, on channel selene_jobs).
  void Notify(PostgresConnection& conn, const std::string& payload) {
    EXPECT_OK(conn.Query(conn.dialect().notify, {payload}));
  }

  std::unique_ptr<PostgresConnection> Connect() {
    StatusOr<std::unique_ptr<PostgresConnection>> conn = PostgresConnection::Open(uri());
    EXPECT_OK(conn);
    return conn.ok() ? std::move(conn).value() : nullptr;
  }

  Inbox inbox_;  // declared before the listeners the tests make, so it outlives them
};

TEST_F(PostgresListenerTest, DeliversNotificationsFromAnotherConnectionInOrder) {
  auto listener = Listen();
  auto conn = Connect();
  ASSERT_NE(listener, nullptr);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(listener->channel(), "selene_jobs");
  Notify(*conn, "job-1");
  ASSERT_TRUE(inbox_.WaitForPayloads(1));
  EXPECT_THAT(inbox_.payloads(), ElementsAre("job-1"));

  // Inside a transaction they come at commit, all of them, in order; UTF-8 and "" intact.
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  Notify(*conn, "job-2");
  Notify(*conn, "h\xC3\xA9llo \xE2\x98\x83");
  Notify(*conn, "");
  ASSERT_OK(conn->Commit());
  // A rolled-back transaction's notifications are never sent.
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  Notify(*conn, "rolled-back");
  conn->Rollback();
  Notify(*conn, "job-3");
  ASSERT_TRUE(inbox_.WaitForPayloads(5));
  EXPECT_THAT(inbox_.payloads(),
              ElementsAre("job-1", "job-2", "h\xC3\xA9llo \xE2\x98\x83", "", "job-3"));
}

TEST_F(PostgresListenerTest, HearsOnlyItsOwnChannel) {
  auto listener = Listen("other_channel");
  auto conn = Connect();
  ASSERT_NE(listener, nullptr);
  ASSERT_NE(conn, nullptr);
  Notify(*conn, "for selene_jobs");  // not this listener's channel
  ASSERT_OK(conn->Query("SELECT pg_notify('other_channel', 'mine')"));
  ASSERT_TRUE(inbox_.WaitForPayloads(1));
  // Notifications from one session arrive in order, so "for selene_jobs" would be first.
  EXPECT_THAT(inbox_.payloads(), ElementsAre("mine"));
}

TEST_F(PostgresListenerTest, ReconnectsAfterPostgresRestartsAndHearsAgain) {
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  ASSERT_OK(server().Restart());
  // on_reconnect comes after LISTEN again, so what is sent from here on arrives.
  ASSERT_TRUE(inbox_.WaitForReconnects(1));
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  Notify(*conn, "after restart");
  ASSERT_TRUE(inbox_.WaitForPayloads(1));
  EXPECT_THAT(inbox_.payloads(), ElementsAre("after restart"));

  // A second time, with the server down for a while (the listener backs off meanwhile).
  ASSERT_OK(server().Stop());
  ASSERT_OK(server().StartAgain());
  ASSERT_TRUE(inbox_.WaitForReconnects(2));
  auto conn2 = Connect();
  ASSERT_NE(conn2, nullptr);
  Notify(*conn2, "after second restart");
  ASSERT_TRUE(inbox_.WaitForPayloads(2));
  EXPECT_THAT(inbox_.payloads(), ElementsAre("after restart", "after second restart"));
}

TEST_F(PostgresListenerTest, StopsWhileTheServerIsDown) {
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  ASSERT_OK(server().Stop());
  listener.reset();  // returns although the thread is reconnecting or backing off
  ASSERT_OK(server().StartAgain());
}

// No server needed below.

TEST(PostgresListenerStartTest, ChannelMustBeALowerCaseIdentifier) {
  for (const std::string& channel : std::vector<std::string>{
           "", "Jobs", "1jobs", "jobs-1", "jobs\"; DROP TABLE jobs; --", std::string(64, 'a')}) {
    EXPECT_THAT(PostgresListener::Start("postgresql:///nowhere?host=/nonexistent", "", channel,
                                        nullptr, nullptr),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("channel")))
        << channel;
  }
}

TEST(PostgresListenerStartTest, UnreachableServerIsUnavailable) {
  ::selene::testing::TempDir dir("selene-no-postgres");
  const std::string uri = "postgresql://u:hunter2@/jobs?host=" + dir.path() + "&port=5999";
  EXPECT_THAT(PostgresListener::Start(uri, "", "selene_jobs", nullptr, nullptr),
              StatusIs(StatusCode::kUnavailable,
                       AllOf(HasSubstr("postgresql://u@/jobs"), Not(HasSubstr("hunter2")))));
}

}  // namespace
}  // namespace selene::jobs::sql
