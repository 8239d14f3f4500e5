// Tests for server/jobs/job_store.h on both engines, a temporary SQLite file and a database of a
// private PostgreSQL server (skipped with the reason when PostgreSQL cannot start): the job life
// cycle, event numbering, queue order, dependencies, idempotent submits, leases and fencing, and
// what survives reopening the store. The file checks at the end are SQLite's own.
#include "server/jobs/job_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/jobs/sql/postgres_connection.h"
#include "server/jobs/sql/sqlite_connection.h"
#include "server/jobs/store_schema.h"
#include "tests/testing/files.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ::selene::testing::ClassifierSpec;
using ::selene::testing::EncoderUNetSpec;
using ::selene::testing::MoonSpec;

v1::JobEvent Progress(int64_t step) {
  v1::JobEvent event;
  v1::StepProgress* p = event.mutable_step_progress();
  p->set_epoch(1);
  p->set_step(step);
  p->set_steps(10);
  p->set_loss(0.5);
  return event;
}

v1::EpochEnd Epoch(int64_t epoch, double dice, bool is_best) {
  v1::EpochEnd e;
  e.set_epoch(epoch);
  e.set_epochs(3);
  e.set_train_loss(1.0 / epoch);
  e.set_val_loss(1.5 / epoch);
  (*e.mutable_metrics())["dice"] = dice;
  (*e.mutable_metrics())["iou"] = dice * 0.8;
  e.set_monitor("dice");
  e.set_monitor_value(dice);
  e.set_is_best(is_best);
  return e;
}

std::vector<std::string> Ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> ids;
  for (const v1::Job& job : jobs) ids.push_back(job.id());
  return ids;
}

// The suite's fixture, on the engine engine() names; a test opens the same store again with
// OpenStore as a restarted server would.
class JobStoreFixture : public ::testing::Test {
 protected:
  virtual std::string engine() const { return "sqlite"; }

  void SetUp() override {
    path_ = dir_ / "jobs.db";
    if (engine() == "postgresql") {
      StatusOr<::selene::testing::PostgresServer*> server =
          ::selene::testing::SharedPostgresServer();
      if (!server.ok()) GTEST_SKIP() << "no PostgreSQL server: " << server.status().message();
      postgres_uri_ = (*server)->CreateDatabase();
    }
  }

  std::unique_ptr<JobStore> OpenStore() {
    auto store =
        postgres_uri_.empty() ? JobStore::Open(path_) : JobStore::OpenPostgres(postgres_uri_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  v1::Job MustSubmit(JobStore& store, const v1::JobSpec& spec, int32_t priority = 0,
                     const std::string& request_id = "") {
    auto result = store.Submit(testing::MustResolve(spec), request_id, priority);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->job : v1::Job();
  }

  v1::Job MustGet(JobStore& store, const std::string& id) {
    auto job = store.Get(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  std::vector<v1::JobEvent> MustEvents(JobStore& store, const std::string& id, int64_t after = 0,
                                       int64_t limit = 0) {
    auto events = store.Events(id, after, limit);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<v1::JobEvent>();
  }

  ::selene::testing::TempDir dir_{"selene-job-store-test"};
  std::string path_;
  std::string postgres_uri_;  // empty on SQLite
};

class JobStoreTest : public JobStoreFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string engine() const override { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Engines, JobStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

class SqliteJobStoreTest : public JobStoreFixture {};

TEST_P(JobStoreTest, SubmitQueuesJobsWithIncreasingIdsAndAFirstEvent) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::JobSpec with_defaults = MoonSpec("defaults", 3);
  with_defaults.mutable_training()->clear_epochs();
  with_defaults.mutable_training()->clear_monitor();

  auto first = store->Submit(testing::MustResolve(MoonSpec("a", 3)), "", 0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->job.id(), "job-1");
  const v1::Job second = MustSubmit(*store, with_defaults, 2);
  EXPECT_EQ(second.id(), "job-2");

  const v1::Job got = MustGet(*store, "job-2");
  EXPECT_EQ(got.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(got.name(), "defaults");
  EXPECT_EQ(got.priority(), 2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got.spec(), with_defaults));
  EXPECT_EQ(got.epochs(), 10) << "unset training.epochs resolves to its default";
  EXPECT_EQ(got.monitor(), "dice") << "binary segmentation monitors dice by default";
  EXPECT_GT(got.create_time().seconds(), 1600000000);
  EXPECT_FALSE(got.has_start_time());
  EXPECT_TRUE(got.depends_on().empty());
  EXPECT_EQ(got.last_event_sequence(), 1);
  EXPECT_EQ(MustGet(*store, "job-1").epochs(), 3);

  const auto events = MustEvents(*store, "job-2");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].job_id(), "job-2");
  EXPECT_EQ(events[0].sequence(), 1);
  ASSERT_TRUE(events[0].has_state_change());
  EXPECT_EQ(events[0].state_change().from_state(), v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(events[0].state_change().to_state(), v1::JOB_STATE_QUEUED);
}

TEST_P(JobStoreTest, UnknownJobIsNotFoundNamingTheId) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto job = store->Get("job-42");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(job.status().message(), HasSubstr("job-42"));
  EXPECT_EQ(store->Events("job-42").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Transition("job-42", v1::JOB_STATE_RUNNING).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(JobStoreTest, IdsAreNeverReusedAcrossReopening) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    MustSubmit(*store, MoonSpec("a", 3));
    MustSubmit(*store, MoonSpec("b", 3));
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(MustSubmit(*store, MoonSpec("c", 3)).id(), "job-3");
  EXPECT_EQ(MustGet(*store, "job-1").name(), "a");
}

TEST_P(JobStoreTest, ListPagesNewestFirstAndStaysStableUnderInserts) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int i = 1; i <= 7; ++i) MustSubmit(*store, MoonSpec("j" + std::to_string(i), 3));

  auto page1 = store->List(v1::JOB_STATE_UNSPECIFIED, 3, "");
  ASSERT_TRUE(page1.ok()) << page1.status();
  EXPECT_EQ(Ids(page1->jobs), (std::vector<std::string>{"job-7", "job-6", "job-5"}));
  ASSERT_FALSE(page1->next_page_token.empty());

  // A job submitted between pages shows up on a new first page, not in the middle.
  MustSubmit(*store, MoonSpec("late", 3));
  auto page2 = store->List(v1::JOB_STATE_UNSPECIFIED, 3, page1->next_page_token);
  ASSERT_TRUE(page2.ok()) << page2.status();
  EXPECT_EQ(Ids(page2->jobs), (std::vector<std::string>{"job-4", "job-3", "job-2"}));
  auto page3 = store->List(v1::JOB_STATE_UNSPECIFIED, 3, page2->next_page_token);
  ASSERT_TRUE(page3.ok()) << page3.status();
  EXPECT_EQ(Ids(page3->jobs), (std::vector<std::string>{"job-1"}));
  EXPECT_TRUE(page3->next_page_token.empty());

  // Exactly a full last page: no token pointing at an empty page.
  auto exact = store->List(v1::JOB_STATE_UNSPECIFIED, 8, "");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->jobs.size(), 8u);
  EXPECT_TRUE(exact->next_page_token.empty());
}

TEST_P(JobStoreTest, ListFiltersByStateAndChecksItsArguments) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int i = 1; i <= 5; ++i) MustSubmit(*store, MoonSpec("j" + std::to_string(i), 3));
  ASSERT_TRUE(store->Start("job-2", "cpu").ok());
  ASSERT_TRUE(store->Start("job-4", "cpu").ok());
  ASSERT_TRUE(store->Transition("job-5", v1::JOB_STATE_CANCELLED).ok());

  auto running = store->List(v1::JOB_STATE_RUNNING, 1, "");
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(Ids(running->jobs), (std::vector<std::string>{"job-4"}));
  auto running2 = store->List(v1::JOB_STATE_RUNNING, 1, running->next_page_token);
  ASSERT_TRUE(running2.ok()) << running2.status();
  EXPECT_EQ(Ids(running2->jobs), (std::vector<std::string>{"job-2"}));
  EXPECT_TRUE(running2->next_page_token.empty());

  auto queued = store->List(v1::JOB_STATE_QUEUED);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(Ids(queued->jobs), (std::vector<std::string>{"job-3", "job-1"}));

  // A token belongs to its filter; garbage and negative sizes are refused.
  auto wrong_filter = store->List(v1::JOB_STATE_QUEUED, 1, running->next_page_token);
  EXPECT_EQ(wrong_filter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_filter.status().message(), HasSubstr("RUNNING"));
  EXPECT_EQ(store->List(v1::JOB_STATE_UNSPECIFIED, 3, "not-a-token").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto negative = store->List(v1::JOB_STATE_UNSPECIFIED, -1, "");
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.status().message(), HasSubstr("page_size"));
}

TEST_P(JobStoreTest, PageSizeDefaultsTo50AndIsCappedAt500) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 501; ++i) MustSubmit(*store, MoonSpec("j", 3));
  auto by_default = store->List(v1::JOB_STATE_UNSPECIFIED, 0, "");
  ASSERT_TRUE(by_default.ok());
  EXPECT_EQ(by_default->jobs.size(), 50u);
  auto capped = store->List(v1::JOB_STATE_UNSPECIFIED, 100000, "");
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->jobs.size(), 500u);
  EXPECT_FALSE(capped->next_page_token.empty());
}

TEST_P(JobStoreTest, DuplicateRequestIdGivesOneJobAlsoAfterReopening) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    auto first = store->Submit(testing::MustResolve(MoonSpec("a", 3)), "req-1", 3);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_TRUE(first->created);
    auto again = store->Submit(testing::MustResolve(MoonSpec("a", 3)), "req-1", 3);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->job.id(), first->job.id());
    EXPECT_EQ(again->job.request_id(), "req-1");
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto after_restart = store->Submit(testing::MustResolve(MoonSpec("a", 3)), "req-1", 3);
  ASSERT_TRUE(after_restart.ok()) << after_restart.status();
  EXPECT_FALSE(after_restart->created);
  EXPECT_EQ(after_restart->job.id(), "job-1");
  auto counts = store->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->at(v1::JOB_STATE_QUEUED), 1);
  EXPECT_EQ(MustEvents(*store, "job-1").size(), 1u) << "a retry must not add events";
}

TEST_P(JobStoreTest, RequestIdReusedWithAnotherSpecOrPriorityIsRefused) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3), 0, "req-7");
  auto other_spec = store->Submit(testing::MustResolve(MoonSpec("a", 5)), "req-7", 0);
  EXPECT_EQ(other_spec.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(other_spec.status().message(), HasSubstr("req-7"));
  EXPECT_THAT(other_spec.status().message(), HasSubstr("job-1"));
  EXPECT_EQ(store->Submit(testing::MustResolve(MoonSpec("a", 3)), "req-7", 1).status().code(),
            absl::StatusCode::kAlreadyExists);
  // Without a request id, identical specs are separate jobs.
  EXPECT_EQ(MustSubmit(*store, MoonSpec("a", 3)).id(), "job-2");
  EXPECT_EQ(MustSubmit(*store, MoonSpec("a", 3)).id(), "job-3");
}

TEST_P(JobStoreTest, LegalTransitionsSetTimesDeviceAndEvents) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3));
  auto started = store->Start("job-1", "cuda:0");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(started->device(), "cuda:0");
  EXPECT_EQ(started->attempts(), 1);
  EXPECT_TRUE(started->has_start_time());
  EXPECT_FALSE(started->has_finish_time());

  auto done = store->Transition("job-1", v1::JOB_STATE_SUCCEEDED, "");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->has_finish_time());
  EXPECT_TRUE(done->error().empty());
  EXPECT_EQ(MustGet(*store, "job-1").state(), v1::JOB_STATE_SUCCEEDED);

  const auto events = MustEvents(*store, "job-1");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].state_change().from_state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events[1].state_change().to_state(), v1::JOB_STATE_RUNNING);
  EXPECT_THAT(events[1].state_change().reason(), HasSubstr("cuda:0"));
  EXPECT_EQ(events[2].state_change().from_state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(events[2].state_change().to_state(), v1::JOB_STATE_SUCCEEDED);

  // FAILED keeps its reason as the job's error; QUEUED -> FAILED is legal too.
  MustSubmit(*store, MoonSpec("b", 3));
  auto failed = store->Transition("job-2", v1::JOB_STATE_FAILED, "data set missing");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->error(), "data set missing");
  EXPECT_EQ(MustGet(*store, "job-2").error(), "data set missing");
}

TEST_P(JobStoreTest, IllegalMovesAreRefusedNamingJobAndBothStates) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3));
  auto skip = store->Transition("job-1", v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(skip.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(skip.status().message(), HasSubstr("job-1"));
  EXPECT_THAT(skip.status().message(), HasSubstr("QUEUED"));
  EXPECT_THAT(skip.status().message(), HasSubstr("SUCCEEDED"));
  EXPECT_EQ(store->Transition("job-1", v1::JOB_STATE_QUEUED).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Transition("job-1", v1::JOB_STATE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  EXPECT_EQ(store->Transition("job-1", v1::JOB_STATE_RUNNING).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Start("job-1", "cpu").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MustEvents(*store, "job-1").size(), 2u) << "refused moves must not add events";
}

TEST_P(JobStoreTest, TerminalStatesNeverChange) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<v1::JobState> terminal = {v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED,
                                              v1::JOB_STATE_CANCELLED};
  const std::vector<v1::JobState> all = {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING,
                                         v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED,
                                         v1::JOB_STATE_CANCELLED};
  for (v1::JobState end : terminal) {
    const std::string id = MustSubmit(*store, MoonSpec("t", 3)).id();
    ASSERT_TRUE(store->Start(id, "cpu").ok());
    ASSERT_TRUE(store->Transition(id, end, "the end").ok());
    const v1::Job before = MustGet(*store, id);
    for (v1::JobState to : all) {
      auto moved = store->Transition(id, to, "again");
      EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition)
          << id << " " << v1::JobState_Name(end) << " -> " << v1::JobState_Name(to);
      EXPECT_THAT(moved.status().message(), HasSubstr(id));
    }
    EXPECT_EQ(store->RequestCancel(id).status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(store->AppendEvent(id, Progress(1)).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(store->RecordEpoch(id, Epoch(1, 0.5, true)).status().code(),
              absl::StatusCode::kFailedPrecondition);
    const v1::Job after = MustGet(*store, id);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
        << "terminal job " << id << " changed";
  }
}

TEST_P(JobStoreTest, CancelIsImmediateWhenQueuedAndRequestedWhenRunning) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("queued", 3));
  MustSubmit(*store, MoonSpec("running", 3));
  auto cancelled = store->RequestCancel("job-1", "not needed");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled->error(), "not needed");

  ASSERT_TRUE(store->Start("job-2", "cpu").ok());
  auto requested = store->RequestCancel("job-2", "");
  ASSERT_TRUE(requested.ok()) << requested.status();
  EXPECT_EQ(requested->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(requested->cancel_requested());
  EXPECT_TRUE(MustGet(*store, "job-2").cancel_requested());
  ASSERT_TRUE(store->Transition("job-2", v1::JOB_STATE_CANCELLED).ok());
  EXPECT_EQ(MustGet(*store, "job-2").state(), v1::JOB_STATE_CANCELLED);
}

TEST_P(JobStoreTest, CancelReasonOfARunningJobSurvivesACrash) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    MustSubmit(*store, MoonSpec("running", 3));
    ASSERT_TRUE(store->Start("job-1", "cpu").ok());
    ASSERT_TRUE(store->RequestCancel("job-1", "wrong learning rate").ok());
    // The process dies before the runner has stopped the job.
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->RecoverAfterRestart().ok());
  const v1::Job job = MustGet(*store, "job-1");
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(job.error(), HasSubstr("wrong learning rate"));
  EXPECT_THAT(job.error(), HasSubstr("restarted"));
  EXPECT_EQ(job.resumes(), 0);
}

TEST_P(JobStoreTest, EveryInterruptionCountsAsAResume) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("interrupted", 3));
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  // A graceful shutdown moves the running job back to the queue...
  ASSERT_TRUE(store->Transition("job-1", v1::JOB_STATE_QUEUED, "shutting down").ok());
  EXPECT_EQ(MustGet(*store, "job-1").resumes(), 1);
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  // ...and so does the recovery after a crash.
  ASSERT_TRUE(store->RecoverAfterRestart().ok());
  EXPECT_EQ(MustGet(*store, "job-1").resumes(), 2);
}

TEST_P(JobStoreTest, EventSequencesIncreaseWithoutGapsAndResumeAfterASequence) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3));
  MustSubmit(*store, MoonSpec("b", 3));  // its events are numbered on their own
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  for (int step = 1; step <= 4; ++step) {
    auto stored = store->AppendEvent("job-1", Progress(step));
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->sequence(), 2 + step);
    EXPECT_EQ(stored->job_id(), "job-1");
    EXPECT_TRUE(stored->has_time());
  }
  ASSERT_TRUE(store->RecordEpoch("job-1", Epoch(1, 0.4, true)).ok());
  ASSERT_TRUE(store->Transition("job-1", v1::JOB_STATE_SUCCEEDED).ok());

  const auto events = MustEvents(*store, "job-1");
  ASSERT_EQ(events.size(), 8u);
  for (size_t i = 0; i < events.size(); ++i)
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i) + 1);
  EXPECT_TRUE(events[2].has_step_progress());
  EXPECT_TRUE(events[6].has_epoch_end());
  EXPECT_EQ(events[7].state_change().to_state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(MustGet(*store, "job-1").last_event_sequence(), 8);
  EXPECT_EQ(MustGet(*store, "job-2").last_event_sequence(), 1);

  const auto resumed = MustEvents(*store, "job-1", 5);
  ASSERT_EQ(resumed.size(), 3u);
  EXPECT_EQ(resumed[0].sequence(), 6);
  const auto limited = MustEvents(*store, "job-1", 2, 2);
  ASSERT_EQ(limited.size(), 2u);
  EXPECT_EQ(limited[0].sequence(), 3);
  EXPECT_EQ(limited[1].sequence(), 4);
  EXPECT_TRUE(MustEvents(*store, "job-1", 8).empty());
}

TEST_P(JobStoreTest, AppendEventTakesStepProgressOfRunningJobsOnly) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3));
  EXPECT_EQ(store->AppendEvent("job-1", Progress(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  v1::JobEvent state_change;
  state_change.mutable_state_change()->set_to_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(store->AppendEvent("job-1", state_change).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::JobEvent epoch;
  *epoch.mutable_epoch_end() = Epoch(1, 0.5, true);
  EXPECT_EQ(store->AppendEvent("job-1", epoch).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AppendEvent("job-1", v1::JobEvent()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MustGet(*store, "job-1").state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(MustEvents(*store, "job-1").size(), 2u);
}

TEST_P(JobStoreTest, RecordEpochKeepsHistoryLatestMetricsAndBest) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3));
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  ASSERT_TRUE(store->RecordEpoch("job-1", Epoch(1, 0.50, true)).ok());
  ASSERT_TRUE(store->RecordEpoch("job-1", Epoch(2, 0.70, true)).ok());
  auto third = store->RecordEpoch("job-1", Epoch(3, 0.60, false));
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->epoch_end().epoch(), 3);

  v1::Job job = MustGet(*store, "job-1");
  EXPECT_EQ(job.current_epoch(), 3);
  EXPECT_EQ(job.best_epoch(), 2);
  EXPECT_DOUBLE_EQ(job.best_value(), 0.70);
  EXPECT_EQ(job.monitor(), "dice");
  EXPECT_DOUBLE_EQ(job.latest_metrics().at("dice"), 0.60);
  EXPECT_DOUBLE_EQ(job.latest_metrics().at("train_loss"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(job.latest_metrics().at("val_loss"), 1.5 / 3);

  // A run resumed from the epoch-2 checkpoint repeats epoch 3: the row is replaced.
  ASSERT_TRUE(store->RecordEpoch("job-1", Epoch(3, 0.75, true)).ok());
  auto history = store->History("job-1");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].epoch(), 1);
  EXPECT_EQ((*history)[2].epoch(), 3);
  EXPECT_DOUBLE_EQ((*history)[2].metrics().at("dice"), 0.75);
  job = MustGet(*store, "job-1");
  EXPECT_EQ(job.best_epoch(), 3);
  EXPECT_DOUBLE_EQ(job.best_value(), 0.75);

  EXPECT_EQ(store->RecordEpoch("job-1", Epoch(0, 0.1, false)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, NextRunnableTakesHighestPriorityThenFirstSubmitted) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto none = store->NextRunnable();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  MustSubmit(*store, MoonSpec("a", 3), 0);   // job-1
  MustSubmit(*store, MoonSpec("b", 3), 5);   // job-2
  MustSubmit(*store, MoonSpec("c", 3), 0);   // job-3
  MustSubmit(*store, MoonSpec("d", 3), 5);   // job-4
  MustSubmit(*store, MoonSpec("e", 3), -1);  // job-5
  std::vector<std::string> order;
  while (true) {
    auto next = store->NextRunnable();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    order.push_back((*next)->id());
    ASSERT_TRUE(store->Start((*next)->id(), "cpu").ok());
  }
  EXPECT_THAT(order, ElementsAre("job-2", "job-4", "job-1", "job-3", "job-5"));
}

TEST_P(JobStoreTest, UnknownDependencyIsNotFoundNamingIt) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto submitted = store->Submit(testing::MustResolve(EncoderUNetSpec("enc", "job-9")), "", 0);
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(submitted.status().message(), HasSubstr("job-9"));
  EXPECT_THAT(submitted.status().message(), HasSubstr("encoder_job_id"));
}

TEST_P(JobStoreTest, DependentJobWaitsUntilItsEncoderJobSucceeded) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, ClassifierSpec("cls"), 0);                                 // job-1
  const v1::Job enc = MustSubmit(*store, EncoderUNetSpec("enc", "job-1"), 10);  // job-2
  EXPECT_EQ(enc.depends_on(), "job-1");

  auto next = store->NextRunnable();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->id(), "job-1") << "job-2 has the higher priority but must wait";
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  next = store->NextRunnable();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value()) << "job-2 waits while its encoder job runs";
  ASSERT_TRUE(store->Transition("job-1", v1::JOB_STATE_SUCCEEDED).ok());
  next = store->NextRunnable();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->id(), "job-2");
}

TEST_P(JobStoreTest, FailedEncoderJobFailsItsDependentsWithItsReason) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, ClassifierSpec("cls"));                   // job-1
  MustSubmit(*store, EncoderUNetSpec("enc", "job-1"));         // job-2
  MustSubmit(*store, EncoderUNetSpec("enc-of-enc", "job-2"));  // job-3: a chain
  MustSubmit(*store, MoonSpec("independent", 3));              // job-4
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  ASSERT_TRUE(store->Transition("job-1", v1::JOB_STATE_FAILED, "out of memory").ok());

  auto next = store->NextRunnable();
  ASSERT_TRUE(next.ok() && next->has_value()) << next.status();
  EXPECT_EQ((*next)->id(), "job-4");
  const v1::Job enc = MustGet(*store, "job-2");
  EXPECT_EQ(enc.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(enc.error(), "encoder job job-1 failed: out of memory");
  const v1::Job chained = MustGet(*store, "job-3");
  EXPECT_EQ(chained.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(chained.error(), "encoder job job-2 failed: encoder job job-1 failed: out of memory");
  const auto events = MustEvents(*store, "job-2");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].state_change().to_state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(events[1].state_change().reason(), enc.error());
}

TEST_P(JobStoreTest, CancelledEncoderJobFailsItsDependents) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, ClassifierSpec("cls"));            // job-1
  MustSubmit(*store, EncoderUNetSpec("enc", "job-1"));  // job-2
  ASSERT_TRUE(store->RequestCancel("job-1", "changed my mind").ok());
  auto failed = store->FailJobsWithDeadDependencies();
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_THAT(*failed, ElementsAre("job-2"));
  EXPECT_EQ(MustGet(*store, "job-2").error(), "encoder job job-1 was cancelled");
  failed = store->FailJobsWithDeadDependencies();
  ASSERT_TRUE(failed.ok());
  EXPECT_TRUE(failed->empty());
}

TEST_P(JobStoreTest, RecoverAfterRestartRequeuesRunningJobsForResume) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    MustSubmit(*store, MoonSpec("running", 3));     // job-1
    MustSubmit(*store, MoonSpec("queued", 3));      // job-2
    MustSubmit(*store, MoonSpec("cancelling", 3));  // job-3
    MustSubmit(*store, MoonSpec("done", 3));        // job-4
    ASSERT_TRUE(store->Start("job-1", "cuda:0").ok());
    ASSERT_TRUE(store->RecordEpoch("job-1", Epoch(1, 0.5, true)).ok());
    ASSERT_TRUE(store->Start("job-3", "cpu").ok());
    ASSERT_TRUE(store->RequestCancel("job-3").ok());
    ASSERT_TRUE(store->Start("job-4", "cpu").ok());
    ASSERT_TRUE(store->Transition("job-4", v1::JOB_STATE_SUCCEEDED).ok());
    // The store goes away here as if the process died: nothing else is written.
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto requeued = store->RecoverAfterRestart();
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_THAT(*requeued, ElementsAre("job-1"));

  const v1::Job job = MustGet(*store, "job-1");
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job.resumes(), 1);
  EXPECT_TRUE(job.resume_from_checkpoint());
  EXPECT_TRUE(job.device().empty());
  EXPECT_EQ(job.current_epoch(), 1);
  const auto events = MustEvents(*store, "job-1");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state_change().from_state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(events.back().state_change().to_state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events.back().state_change().reason(), JobStore::kRestartReason);

  EXPECT_EQ(MustGet(*store, "job-2").state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(MustGet(*store, "job-2").resumes(), 0);
  EXPECT_EQ(MustGet(*store, "job-3").state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(MustGet(*store, "job-4").state(), v1::JOB_STATE_SUCCEEDED);

  // The recovered job runs again first (submitted first), as a second attempt.
  auto next = store->NextRunnable();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->id(), "job-1");
  auto restarted = store->Start("job-1", "cuda:0");
  ASSERT_TRUE(restarted.ok());
  EXPECT_EQ(restarted->attempts(), 2);

  auto nothing = store->RecoverAfterRestart();
  ASSERT_TRUE(nothing.ok());
  EXPECT_THAT(*nothing, ElementsAre("job-1")) << "still running, so requeued again";
  EXPECT_EQ(MustGet(*store, "job-1").resumes(), 2);
}

TEST_P(JobStoreTest, CountByStateCountsEveryState) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 4; ++i) MustSubmit(*store, MoonSpec("j", 3));
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  ASSERT_TRUE(store->Transition("job-2", v1::JOB_STATE_CANCELLED).ok());
  auto counts = store->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->size(), 5u);
  EXPECT_EQ(counts->at(v1::JOB_STATE_QUEUED), 2);
  EXPECT_EQ(counts->at(v1::JOB_STATE_RUNNING), 1);
  EXPECT_EQ(counts->at(v1::JOB_STATE_CANCELLED), 1);
  EXPECT_EQ(counts->at(v1::JOB_STATE_SUCCEEDED), 0);
  EXPECT_EQ(counts->at(v1::JOB_STATE_FAILED), 0);
}

TEST_P(JobStoreTest, ListenerSeesEveryCommittedEvent) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::Mutex mu;
  std::vector<std::pair<std::string, int64_t>> seen;
  store->SetEventListener([&](const v1::JobEvent& event) {
    absl::MutexLock lock(&mu);
    seen.emplace_back(event.job_id(), event.sequence());
  });
  MustSubmit(*store, MoonSpec("a", 3));
  ASSERT_TRUE(store->Start("job-1", "cpu").ok());
  ASSERT_TRUE(store->AppendEvent("job-1", Progress(1)).ok());
  ASSERT_TRUE(store->RecordEpoch("job-1", Epoch(1, 0.5, true)).ok());
  ASSERT_FALSE(store->Transition("job-1", v1::JOB_STATE_RUNNING).ok());  // refused: no event
  ASSERT_TRUE(store->Transition("job-1", v1::JOB_STATE_QUEUED, "").ok());
  absl::MutexLock lock(&mu);
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, int64_t>>{
                      {"job-1", 1}, {"job-1", 2}, {"job-1", 3}, {"job-1", 4}, {"job-1", 5}}));
}

TEST_P(JobStoreTest, ConcurrentSubmitsGiveUniqueIdsAndLoseNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  absl::Mutex mu;
  std::vector<std::string> ids;
  int shared_created = 0;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto result = store->Submit(testing::MustResolve(MoonSpec("t" + std::to_string(t), 3)),
                                    "req-" + std::to_string(t) + "-" + std::to_string(i), t);
        // Every thread also retries one shared request id: exactly one job may come of it.
        auto shared = i == kPerThread / 2
                          ? store->Submit(testing::MustResolve(MoonSpec("shared", 3)), "shared", 0)
                          : StatusOr<SubmitResult>(SubmitResult{});
        absl::MutexLock lock(&mu);
        if (!result.ok()) errors.push_back(result.status().ToString());
        if (result.ok()) ids.push_back(result->job.id());
        if (!shared.ok()) errors.push_back(shared.status().ToString());
        if (shared.ok() && shared->created) ++shared_created;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(shared_created, 1);
  const std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(ids.size(), size_t{kThreads * kPerThread});
  EXPECT_EQ(unique.size(), ids.size());
  auto counts = store->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->at(v1::JOB_STATE_QUEUED), kThreads * kPerThread + 1);
  // Ids are job-1 .. job-201 with none skipped.
  EXPECT_TRUE(store->Get("job-" + std::to_string(kThreads * kPerThread + 1)).ok());
  EXPECT_FALSE(store->Get("job-" + std::to_string(kThreads * kPerThread + 2)).ok());
}

TEST_P(JobStoreTest, ClaimNextGivesRunnableJobsInOrderWithGrowingFencingTokens) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("low", 3));
  MustSubmit(*store, MoonSpec("high", 3), /*priority=*/5);
  auto first = store->ClaimNext("w1", "cuda:0", absl::Hours(1));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->job.id(), "job-2");
  EXPECT_EQ((*first)->job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*first)->job.device(), "cuda:0");
  EXPECT_EQ(MustGet(*store, "job-2").worker(), "w1");
  EXPECT_EQ((*first)->lease.worker, "w1");
  EXPECT_EQ((*first)->lease.token, 1);
  auto second = store->ClaimNext("w2", "cpu", absl::Hours(1));
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->job.id(), "job-1");
  auto none = store->ClaimNext("w1", "cpu", absl::Hours(1));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
}

// The lease of 1 ms has certainly expired 20 ms later, however busy the machine: no race.
TEST_P(JobStoreTest, ExpiredLeaseRequeuesTheJobAndFencesTheOldOwnerOut) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("job", 3));
  auto old_claim = store->ClaimNext("w1", "cpu", absl::Milliseconds(1));
  ASSERT_TRUE(old_claim.ok() && old_claim->has_value());
  const Lease old_lease = (*old_claim)->lease;
  ASSERT_TRUE(store->RecordEpoch(old_lease, Epoch(1, 0.5, true)).ok());
  absl::SleepFor(absl::Milliseconds(20));

  auto new_claim = store->ClaimNext("w2", "cpu", absl::Hours(1));  // requeues, then claims
  ASSERT_TRUE(new_claim.ok() && new_claim->has_value()) << new_claim.status();
  const Lease new_lease = (*new_claim)->lease;
  EXPECT_EQ(new_lease.token, old_lease.token + 1);
  const v1::Job taken = MustGet(*store, "job-1");
  EXPECT_EQ(taken.worker(), "w2");
  EXPECT_TRUE(taken.resume_from_checkpoint());
  const std::vector<v1::JobEvent> before = MustEvents(*store, "job-1");
  ASSERT_GE(before.size(), 2u);
  EXPECT_THAT(before[before.size() - 2].state_change().reason(),
              HasSubstr("worker w1 stopped renewing its lease"));

  // Every write of the old owner is refused, and none of them changes anything.
  const auto lost = [](const Status& status) { return JobStore::IsLeaseLost(status); };
  EXPECT_TRUE(lost(store->AppendEvent(old_lease, Progress(3)).status()));
  EXPECT_TRUE(lost(store->RecordEpoch(old_lease, Epoch(2, 0.9, true)).status()));
  EXPECT_TRUE(lost(store->RecordArtifacts(old_lease, {{"best.pt", 3, "abc"}})));
  EXPECT_TRUE(lost(store->Transition(old_lease, v1::JOB_STATE_SUCCEEDED).status()));
  EXPECT_TRUE(lost(store->RenewLease(old_lease, absl::Hours(1)).status()));
  EXPECT_TRUE(lost(store->CheckLease(old_lease)));
  auto refused = store->CheckLease(old_lease);
  EXPECT_THAT(refused.message(), HasSubstr("worker w2 holds the job now"));
  EXPECT_EQ(MustEvents(*store, "job-1").size(), before.size());
  EXPECT_EQ(MustGet(*store, "job-1").state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(MustGet(*store, "job-1").current_epoch(), 1);
  auto artifacts = store->Artifacts("job-1");
  ASSERT_TRUE(artifacts.ok());
  EXPECT_TRUE(artifacts->empty());

  // The new owner's writes go through.
  EXPECT_TRUE(store->CheckLease(new_lease).ok());
  EXPECT_TRUE(store->RecordEpoch(new_lease, Epoch(2, 0.7, true)).ok());
  ASSERT_TRUE(store->RecordArtifacts(new_lease, {{"best.pt", 3, "abc"}}).ok());
  auto moved = store->Transition(new_lease, v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(moved.ok()) << moved.status();
  artifacts = store->Artifacts("job-1");
  ASSERT_TRUE(artifacts.ok());
  ASSERT_EQ(artifacts->size(), 1u);
  EXPECT_EQ((*artifacts)[0].name, "best.pt");
  EXPECT_EQ((*artifacts)[0].size_bytes, 3);
  EXPECT_EQ((*artifacts)[0].sha256, "abc");
  // A finished job's lease is over for its last owner too.
  EXPECT_TRUE(lost(store->CheckLease(new_lease)));
}

// A worker whose COMMIT went through but whose answer was lost asks again: the same answer.
TEST_P(JobStoreTest, FencedMoveAskedAgainByItsLeaseReturnsTheJobAsItIs) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("job", 3));
  auto claim = store->ClaimNext("w1", "cpu", absl::Hours(1));
  ASSERT_TRUE(claim.ok() && claim->has_value());
  ASSERT_TRUE(store->Transition((*claim)->lease, v1::JOB_STATE_SUCCEEDED).ok());
  const size_t events = MustEvents(*store, "job-1").size();
  auto again = store->Transition((*claim)->lease, v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(MustEvents(*store, "job-1").size(), events);
  // Another move is still refused: the job is finished.
  EXPECT_TRUE(
      JobStore::IsLeaseLost(store->Transition((*claim)->lease, v1::JOB_STATE_FAILED).status()));
}

TEST_P(JobStoreTest, RenewedLeaseDoesNotExpireAndCarriesACancelRequest) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("job", 3));
  auto claim = store->ClaimNext("w1", "cpu", absl::Milliseconds(1));
  ASSERT_TRUE(claim.ok() && claim->has_value());
  auto renewed = store->RenewLease((*claim)->lease, absl::Hours(1));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_FALSE(renewed->cancel_requested());
  absl::SleepFor(absl::Milliseconds(20));
  auto requeued = store->RequeueExpiredLeases();
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_TRUE(requeued->empty());

  ASSERT_TRUE(store->RequestCancel("job-1", "not needed").ok());
  renewed = store->RenewLease((*claim)->lease, absl::Hours(1));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_TRUE(renewed->cancel_requested());
  EXPECT_EQ(renewed->cancel_reason(), "not needed");
}

TEST_P(JobStoreTest, ExpiredLeaseOfACancelledJobEndsItCancelled) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("job", 3));
  auto claim = store->ClaimNext("w1", "cpu", absl::Milliseconds(1));
  ASSERT_TRUE(claim.ok() && claim->has_value());
  ASSERT_TRUE(store->RequestCancel("job-1", "stop it").ok());
  absl::SleepFor(absl::Milliseconds(20));
  auto requeued = store->RequeueExpiredLeases();
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_TRUE(requeued->empty());
  const v1::Job job = MustGet(*store, "job-1");
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(job.error(), HasSubstr("stop it"));
}

TEST_P(JobStoreTest, RestartOfOneWorkerRequeuesOnlyItsOwnJobs) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  MustSubmit(*store, MoonSpec("a", 3));
  MustSubmit(*store, MoonSpec("b", 3));
  ASSERT_TRUE(store->ClaimNext("w1", "cpu", absl::Hours(1)).ok());
  ASSERT_TRUE(store->ClaimNext("w2", "cpu", absl::Hours(1)).ok());
  auto requeued = store->RecoverAfterRestart("w1");
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_THAT(*requeued, ElementsAre("job-1"));
  EXPECT_EQ(MustGet(*store, "job-1").state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(MustGet(*store, "job-2").state(), v1::JOB_STATE_RUNNING);
}

// Workers on connections of their own claim at once: each job goes to exactly one of them.
TEST_P(JobStoreTest, ConcurrentClaimsGiveEveryJobToExactlyOneWorker) {
  constexpr int kJobs = 24;
  constexpr int kWorkers = 4;
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < kJobs; ++i) MustSubmit(*store, MoonSpec("job", 3));
  }
  std::vector<std::unique_ptr<JobStore>> stores;
  for (int w = 0; w < kWorkers; ++w) {
    stores.push_back(OpenStore());
    ASSERT_NE(stores.back(), nullptr);
  }
  absl::Mutex mu;
  std::vector<std::string> claimed;
  std::vector<std::string> errors;
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      while (true) {
        auto next = stores[w]->ClaimNext(absl::StrCat("w", w), "cpu", absl::Hours(1));
        absl::MutexLock lock(&mu);
        if (!next.ok()) {
          errors.push_back(std::string(next.status().message()));
          return;
        }
        if (!next->has_value()) return;
        claimed.push_back((*next)->job.id());
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  EXPECT_THAT(errors, ::testing::IsEmpty());
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(),
            static_cast<size_t>(kJobs));
}

TEST_P(JobStoreTest, OtherServersHearOfEventsAndCancelRequests) {
  auto submitter = OpenStore();
  auto follower = OpenStore();
  ASSERT_NE(submitter, nullptr);
  ASSERT_NE(follower, nullptr);
  absl::Mutex mu;
  std::vector<v1::JobEvent> nudges;
  ASSERT_TRUE(follower
                  ->FollowOtherServers([&](const v1::JobEvent& nudge) {
                    absl::MutexLock lock(&mu);
                    nudges.push_back(nudge);
                  })
                  .ok());
  MustSubmit(*submitter, MoonSpec("job", 3));
  ASSERT_TRUE(submitter->ClaimNext("w1", "cpu", absl::Hours(1)).ok());
  ASSERT_TRUE(submitter->RequestCancel("job-1").ok());
  // The follower's own writes are not reported back to it: job-2 is never heard of, job-3 is.
  MustSubmit(*follower, MoonSpec("own", 3));
  MustSubmit(*submitter, MoonSpec("last", 3));
  if (submitter->exclusive()) {
    // SQLite has no other servers: there is nothing to follow.
    follower->StopFollowingOtherServers();
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(nudges.empty());
    return;
  }
  // job-1 submitted (1), started (2), its cancel request (0), then job-3 submitted, in commit
  // order.
  const auto heard_last = [&] { return !nudges.empty() && nudges.back().job_id() == "job-3"; };
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&heard_last), absl::Seconds(60)))
      << nudges.size() << " nudges";
  std::vector<std::string> heard;
  for (const v1::JobEvent& nudge : nudges) {
    EXPECT_EQ(nudge.kind_case(), v1::JobEvent::KIND_NOT_SET);
    heard.push_back(absl::StrCat(nudge.job_id(), "#", nudge.sequence()));
  }
  EXPECT_THAT(heard, ElementsAre("job-1#1", "job-1#2", "job-1#0", "job-3#1"));
}

TEST_F(SqliteJobStoreTest, FileUsesWalAndRecordsItsSchemaVersion) {
  ASSERT_NE(OpenStore(), nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto scalar = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return value;
  };
  EXPECT_EQ(scalar("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(scalar("SELECT version FROM schema_version"), std::to_string(JobStore::kSchemaVersion));
  sqlite3_close(db);
}

// A store written by the previous release (schema 1, no leases or artifacts) keeps its jobs and
// their events when this build opens it, and its queued jobs can be claimed.
TEST_F(SqliteJobStoreTest, VersionOneFileIsMigratedKeepingItsJobs) {
  {
    auto db = sql::SqliteConnection::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(MigrateStoreSchema(**db, 1).ok());
    v1::Job job;
    job.set_id("job-1");
    job.set_state(v1::JOB_STATE_QUEUED);
    *job.mutable_spec() = MoonSpec("old", 3);
    v1::JobEvent submitted;
    submitted.set_job_id("job-1");
    submitted.set_sequence(1);
    submitted.mutable_state_change()->set_to_state(v1::JOB_STATE_QUEUED);
    ASSERT_TRUE((*db)
                    ->Query("INSERT INTO jobs (seq, id, state, priority, job, last_event_seq) "
                            "VALUES (1, 'job-1', $1, 0, $2, 1)",
                            {int64_t{v1::JOB_STATE_QUEUED}, sql::Blob{job.SerializeAsString()}})
                    .ok());
    ASSERT_TRUE((*db)
                    ->Query("INSERT INTO job_events (job_id, sequence, kind, time_ms, event) "
                            "VALUES ('job-1', 1, 'state_change', 0, $1)",
                            {sql::Blob{submitted.SerializeAsString()}})
                    .ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(MustGet(*store, "job-1").spec().name(), "old");
  EXPECT_EQ(MustEvents(*store, "job-1").size(), 1u);
  auto claimed = store->ClaimNext("w1", "cpu", absl::Hours(1));
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->lease.token, 1);
  EXPECT_EQ(MustSubmit(*store, MoonSpec("new", 3)).id(), "job-2");
}

class PostgresJobStoreTest : public JobStoreFixture {
 protected:
  std::string engine() const override { return "postgresql"; }
};

// Servers of a fleet that start together: the advisory lock lets one create the tables and the
// others find them made.
TEST_F(PostgresJobStoreTest, ServersStartingTogetherCreateTheSchemaOnce) {
  constexpr int kServers = 4;
  std::vector<Status> opened(kServers);
  std::vector<std::thread> servers;
  for (int i = 0; i < kServers; ++i) {
    servers.emplace_back([&, i] { opened[i] = JobStore::OpenPostgres(postgres_uri_).status(); });
  }
  for (std::thread& server : servers) server.join();
  for (const Status& status : opened) EXPECT_TRUE(status.ok()) << status;
  auto db = sql::PostgresConnection::Open(postgres_uri_);
  ASSERT_TRUE(db.ok()) << db.status();
  auto version = StoreSchemaVersion(**db);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, JobStore::kSchemaVersion);
}

TEST_F(PostgresJobStoreTest, ForeignDatabaseAndNewerSchemaAreRefusedNamingTheUri) {
  {
    auto db = sql::PostgresConnection::Open(postgres_uri_);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Query("CREATE TABLE photos (id INTEGER)").ok());
  }
  auto foreign = JobStore::OpenPostgres(postgres_uri_);
  ASSERT_EQ(foreign.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(foreign.status().message(), HasSubstr("not a Selene job store"));
  EXPECT_THAT(foreign.status().message(), HasSubstr("photos"));
  {
    auto db = sql::PostgresConnection::Open(postgres_uri_);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Query("DROP TABLE photos").ok());
  }
  ASSERT_NE(OpenStore(), nullptr);
  {
    auto db = sql::PostgresConnection::Open(postgres_uri_);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Query("UPDATE schema_version SET version = 99").ok());
  }
  auto newer = JobStore::OpenPostgres(postgres_uri_);
  ASSERT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("schema version 99"));
  EXPECT_THAT(newer.status().message(),
              HasSubstr((*sql::PostgresConnection::Open(postgres_uri_))->location()));
}

TEST_F(SqliteJobStoreTest, CorruptFileIsAnErrorNamingThePath) {
  {
    std::ofstream out(path_, std::ios::binary);
    std::mt19937 rng(7);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(rng() & 0xff));
  }
  auto store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(SqliteJobStoreTest, ForeignDatabaseAndNewerSchemaAreRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE photos (id INTEGER)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto foreign = JobStore::Open(path_);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(foreign.status().message(), HasSubstr(path_));
  EXPECT_THAT(foreign.status().message(), HasSubstr("photos"));

  const std::string newer_path = dir_ / "newer.db";
  ASSERT_NE(JobStore::Open(newer_path).value_or(nullptr), nullptr);
  ASSERT_EQ(sqlite3_open(newer_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto newer = JobStore::Open(newer_path);
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("99"));
  EXPECT_THAT(newer.status().message(), HasSubstr(newer_path));
}

TEST_F(SqliteJobStoreTest, UnopenablePathIsAnErrorNamingIt) {
  const std::string missing = dir_ / "no-such-folder/jobs.db";
  auto store = JobStore::Open(missing);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(missing));
}

}  // namespace
}  // namespace selene::jobs
