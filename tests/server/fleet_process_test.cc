// Tests a fleet of selene-server binaries (server/main.cc) on one PostgreSQL job queue, each a
// child process with a state dir of its own and one shared --artifact_root, on a private
// PostgreSQL server the test starts (tests/testing/postgres_server.h; the tests skip with the
// reason when it cannot start):
// - three servers run twelve short jobs while one of them (whichever is caught inside a job) is
//   killed with SIGKILL mid-epoch: every job succeeds, no job runs on two workers at once, and
//   every job's events are gap-free;
// - a job submitted on A is watched on B and downloaded and served on C;
// - a worker paused (SIGSTOP) past its lease finds its job taken when it resumes and writes
//   nothing: the job's files are the ones the new owner recorded;
// - a cancel sent to one server stops the job another runs; an encoder job of one worker feeds
//   its dependent on another;
// - PostgreSQL restarted under load: the servers reconnect and no job or event is lost.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/run_folder.h"
#include "common/sha256.h"
#include "server/jobs/artifact_records.h"
#include "server/jobs/job_store.h"
#include "spec/json_io.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/child_process.h"
#include "tests/testing/files.h"
#include "tests/testing/loopback.h"
#include "tests/testing/postgres_server.h"

#ifndef SELENE_SERVER_BINARY
#error "SELENE_SERVER_BINARY must name the selene-server executable"
#endif

namespace selene {
namespace {

namespace fs = std::filesystem;
using api::testing::TestClient;
using ::testing::HasSubstr;

// Epochs of about half a second on one core, so a job is caught mid-training.
v1::JobSpec LongSpec(const std::string& name, int64_t epochs) {
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(R"json({
    "task": "binary_segmentation",
    "model": {"unet": {"base_width": 8}},
    "data": {"kind": "synthetic_moon", "num_samples": 160, "image_size": 64},
    "training": {"batch_size": 8, "monitor": "dice"}
  })json");
  EXPECT_TRUE(spec.ok()) << spec.status();
  spec->set_name(name);
  spec->mutable_training()->set_epochs(epochs);
  return *spec;
}

bool IsRunningOn(const v1::Job& job, const std::string& worker) {
  return job.state() == v1::JOB_STATE_RUNNING && job.worker() == worker;
}

// The fleet's servers, each a child process named by its --worker_id.
class FleetProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<testing::PostgresServer*> postgres = testing::SharedPostgresServer();
    if (!postgres.ok()) GTEST_SKIP() << "no PostgreSQL server: " << postgres.status().message();
    postgres_ = *postgres;
    store_uri_ = postgres_->CreateDatabase();
    ASSERT_FALSE(store_uri_.empty());
    dir_ = testing::MakeTempDir("selene-fleet");
    artifact_root_ = (fs::path(dir_) / "artifacts").string();
    fs::create_directories(artifact_root_);
    fs::create_directories(fs::path(dir_) / "data");
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& [worker, server] : servers_) {
        std::cerr << "--- log of " << worker << ":\n" << server->Log();
      }
    }
    servers_.clear();  // kills what still runs
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Starts worker `worker` and returns its address ("" when it did not come up).
  std::string Launch(const std::string& worker, int lease_s = 30) {
    const std::vector<std::string> args = {SELENE_SERVER_BINARY,
                                           "--listen=127.0.0.1:0",
                                           "--metrics_listen=",
                                           "--http_listen=",
                                           "--devices=cpu",
                                           "--training_threads=1",
                                           "--shutdown_grace_s=5",
                                           "--store=" + store_uri_,
                                           "--worker_id=" + worker,
                                           absl::StrCat("--lease_s=", lease_s),
                                           "--state_dir=" + (fs::path(dir_) / worker).string(),
                                           "--artifact_root=" + artifact_root_,
                                           "--data_root=" + (fs::path(dir_) / "data").string()};
    auto server = std::make_unique<testing::ChildProcess>(
        args, (fs::path(dir_) / (worker + ".log")).string());
    const std::string address = testing::WaitForServerAddress(*server);
    servers_[worker] = std::move(server);
    return address;
  }

  testing::ChildProcess& server(const std::string& worker) { return *servers_.at(worker); }

  // The store as the servers see it, read by the test itself.
  std::unique_ptr<jobs::JobStore> OpenStore() {
    StatusOr<std::unique_ptr<jobs::JobStore>> store = jobs::JobStore::OpenPostgres(store_uri_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Checks what holds for every finished job of the fleet: its events are numbered 1..n without
  // gaps, its state changes chain (each starts where the last ended), it ran on one worker at a
  // time (a start only ever follows QUEUED), and its files are the ones it recorded.
  void ExpectConsistentHistory(jobs::JobStore& store, const std::string& id) {
    SCOPED_TRACE(id);
    StatusOr<std::vector<v1::JobEvent>> events = store.Events(id);
    ASSERT_TRUE(events.ok()) << events.status();
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    int starts = 0;
    for (size_t i = 0; i < events->size(); ++i) {
      const v1::JobEvent& event = (*events)[i];
      EXPECT_EQ(event.sequence(), static_cast<int64_t>(i) + 1);
      if (!event.has_state_change()) {
        EXPECT_EQ(state, v1::JOB_STATE_RUNNING)
            << "progress outside a run: " << event.DebugString();
        continue;
      }
      EXPECT_EQ(event.state_change().from_state(), state) << event.DebugString();
      state = event.state_change().to_state();
      if (state == v1::JOB_STATE_RUNNING) ++starts;
    }
    EXPECT_EQ(state, v1::JOB_STATE_SUCCEEDED);
    StatusOr<v1::Job> job = store.Get(id);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->attempts(), starts);
    StatusOr<std::vector<jobs::ArtifactRecord>> artifacts = store.Artifacts(id);
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    EXPECT_FALSE(artifacts->empty());
    const RunFolder folder = RunFolder::OfJob(artifact_root_, id);
    for (const jobs::ArtifactRecord& artifact : *artifacts) {
      EXPECT_TRUE(jobs::VerifyArtifact(folder.File(artifact.name), artifact).ok()) << artifact.name;
    }
  }

  testing::PostgresServer* postgres_ = nullptr;
  std::string store_uri_;
  std::string dir_;
  std::string artifact_root_;
  std::map<std::string, std::unique_ptr<testing::ChildProcess>> servers_;
};

TEST_F(FleetProcessTest, TwelveJobsSucceedOnceEachWhenAWorkerIsKilledMidEpoch) {
  std::map<std::string, std::unique_ptr<TestClient>> clients;
  for (const std::string worker : {"a", "b", "c"}) {
    const std::string address = Launch(worker, /*lease_s=*/2);
    ASSERT_FALSE(address.empty()) << server(worker).Log();
    clients[worker] = std::make_unique<TestClient>(address);
  }
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    // Every third job is long enough to be caught mid-epoch.
    ids.push_back(clients["a"]->SubmitOk(i % 3 == 0
                                             ? LongSpec(absl::StrCat("long-", i), 4)
                                             : api::testing::MoonSpec(absl::StrCat("j-", i), 1)));
  }
  // Kill whichever worker is first seen inside a job: after its first epoch, before its last.
  std::string victim;
  std::string killed;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (victim.empty() && absl::Now() < deadline) {
    for (const std::string& id : ids) {
      const v1::Job job = clients["a"]->Get(id);
      if (job.state() == v1::JOB_STATE_RUNNING && job.current_epoch() >= 1 &&
          job.current_epoch() < job.epochs()) {
        victim = id;
        killed = job.worker();
        break;
      }
    }
    if (victim.empty()) absl::SleepFor(absl::Milliseconds(20));  // the poll's pace, no sync
  }
  ASSERT_FALSE(victim.empty()) << "no job was caught mid-run";
  ASSERT_EQ(servers_.count(killed), 1u) << killed;
  server(killed).Signal(SIGKILL);
  ASSERT_EQ(server(killed).Wait(absl::Seconds(10)), -SIGKILL);
  TestClient& survivor = *clients[killed == "a" ? "b" : "a"];

  for (const std::string& id : ids) {
    const v1::Job job = survivor.WaitTerminal(id, absl::Seconds(300));
    EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.ShortDebugString();
  }
  const v1::Job resumed = survivor.Get(victim);
  EXPECT_NE(resumed.worker(), killed);
  EXPECT_GE(resumed.resumes(), 1);
  EXPECT_TRUE(resumed.resume_from_checkpoint());
  std::unique_ptr<jobs::JobStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const std::string& id : ids) ExpectConsistentHistory(*store, id);
  StatusOr<std::vector<v1::JobEvent>> events = store->Events(victim);
  ASSERT_TRUE(events.ok());
  bool requeued_from_killed = false;
  for (const v1::JobEvent& event : *events) {
    requeued_from_killed |=
        event.state_change().to_state() == v1::JOB_STATE_QUEUED &&
        absl::StrContains(event.state_change().reason(),
                          absl::StrCat("worker ", killed, " stopped renewing its lease"));
  }
  EXPECT_TRUE(requeued_from_killed);
}

TEST_F(FleetProcessTest, SubmitOnAWatchOnBDownloadAndSegmentOnC) {
  const std::string a = Launch("a");
  const std::string b = Launch("b");
  const std::string c = Launch("c");
  ASSERT_FALSE(a.empty() || b.empty() || c.empty());
  TestClient on_a(a);
  TestClient on_b(b);
  TestClient on_c(c);
  const std::string id = on_a.SubmitOk(api::testing::MoonSpec("rocks", 2));

  // B streams the whole history, whichever worker runs the job, and ends with its success.
  grpc::Status watched;
  const std::vector<v1::JobEvent> events = on_b.Watch(id, 0, &watched, absl::Seconds(180));
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i) + 1);
  }
  EXPECT_EQ(events.back().state_change().to_state(), v1::JOB_STATE_SUCCEEDED);
  int epochs = 0;
  for (const v1::JobEvent& event : events) epochs += event.has_epoch_end() ? 1 : 0;
  EXPECT_EQ(epochs, 2);

  // C sends the checkpoint the runner recorded, byte for byte, and segments with it.
  std::unique_ptr<jobs::JobStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  StatusOr<std::vector<jobs::ArtifactRecord>> recorded = store->Artifacts(id);
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  std::string best_sha256;
  for (const jobs::ArtifactRecord& artifact : *recorded) {
    if (artifact.name == RunFolder::kBestCheckpoint) best_sha256 = artifact.sha256;
  }
  ASSERT_FALSE(best_sha256.empty());
  std::vector<v1::ArtifactChunk> chunks;
  const grpc::Status downloaded = on_c.Download(id, RunFolder::kBestCheckpoint, 0, &chunks);
  ASSERT_TRUE(downloaded.ok()) << downloaded.error_message();
  std::string bytes;
  for (const v1::ArtifactChunk& chunk : chunks) bytes += chunk.data();
  EXPECT_EQ(Sha256Hex(bytes), best_sha256);

  v1::SegmentRequest request;
  request.set_model(id);
  request.set_image(serving::testing::EncodePng(serving::testing::TestImage(64, 64, 3, 1)));
  v1::SegmentResponse response;
  const grpc::Status segmented = on_c.Segment(request, &response);
  ASSERT_TRUE(segmented.ok()) << segmented.error_message();
  EXPECT_EQ(response.width(), 64);
  EXPECT_EQ(response.height(), 64);
  EXPECT_EQ(on_b.Get(id).worker().empty(), false);
}

// A checkpoint that no longer matches what its job recorded is refused, not served.
TEST_F(FleetProcessTest, DamagedCheckpointOnTheSharedRootIsRefused) {
  const std::string a = Launch("a");
  ASSERT_FALSE(a.empty());
  TestClient client(a);
  const std::string id = client.SubmitOk(api::testing::MoonSpec("rocks", 1));
  ASSERT_EQ(client.WaitTerminal(id).state(), v1::JOB_STATE_SUCCEEDED);
  const std::string best = RunFolder::OfJob(artifact_root_, id).best_checkpoint();
  {
    std::ofstream damage(best, std::ios::binary | std::ios::app);
    damage << "x";
  }
  v1::SegmentRequest request;
  request.set_model(id);
  request.set_image(serving::testing::EncodePng(serving::testing::TestImage(64, 64, 3, 1)));
  v1::SegmentResponse response;
  const grpc::Status refused = client.Segment(request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::DATA_LOSS) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("does not match what its job recorded"));
}

TEST_F(FleetProcessTest, WorkerPausedPastItsLeaseFindsItsJobTakenAndWritesNothing) {
  const std::string a = Launch("a", /*lease_s=*/2);
  ASSERT_FALSE(a.empty());
  TestClient client(a);
  const std::string id = client.SubmitOk(LongSpec("paused", 6));
  client.WaitFor(
      id, [](const v1::Job& job) { return IsRunningOn(job, "a") && job.current_epoch() >= 1; },
      absl::Seconds(120));
  server("a").Signal(SIGSTOP);

  // b comes up only now, so the job could only have been a's; it takes the job once a's lease
  // ran out.
  const std::string b = Launch("b", /*lease_s=*/2);
  ASSERT_FALSE(b.empty());
  TestClient on_b(b);
  on_b.WaitFor(
      id, [](const v1::Job& job) { return IsRunningOn(job, "b"); }, absl::Seconds(120));
  server("a").Signal(SIGCONT);

  const v1::Job done = on_b.WaitTerminal(id, absl::Seconds(300));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.worker(), "b");
  // a heard that it lost the job and kept serving.
  EXPECT_THAT(server("a").WaitForLog("lost its lease", "\n", absl::Seconds(120)),
              ::testing::Not(::testing::IsEmpty()));
  EXPECT_TRUE(server("a").running());
  EXPECT_EQ(client.Get(id).state(), v1::JOB_STATE_SUCCEEDED);
  std::unique_ptr<jobs::JobStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ExpectConsistentHistory(*store, id);
}

TEST_F(FleetProcessTest, CancelOnOneServerStopsTheJobRunningOnAnother) {
  const std::string a = Launch("a");
  ASSERT_FALSE(a.empty());
  TestClient on_a(a);
  const std::string id = on_a.SubmitOk(LongSpec("cancelled", 40));
  on_a.WaitFor(
      id, [](const v1::Job& job) { return IsRunningOn(job, "a") && job.current_epoch() >= 1; },
      absl::Seconds(120));
  const std::string b = Launch("b");
  ASSERT_FALSE(b.empty());
  TestClient on_b(b);
  v1::Job requested;
  const grpc::Status cancelled = on_b.Cancel(id, &requested, "not needed");
  ASSERT_TRUE(cancelled.ok()) << cancelled.error_message();
  // a hears of it through the store's notification and stops within a step, long before the
  // 40 epochs (or a heartbeat) are through.
  const v1::Job done = on_b.WaitTerminal(id, absl::Seconds(120));
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(done.error(), HasSubstr("not needed"));
  EXPECT_LT(done.current_epoch(), 40);
  EXPECT_EQ(done.worker(), "a");
}

// The encoder job runs on a, which then leaves; its dependent runs on b, from a's checkpoint on
// the shared artifact root.
TEST_F(FleetProcessTest, EncoderJobOfOneWorkerFeedsItsDependentOnAnother) {
  const std::string a = Launch("a");
  ASSERT_FALSE(a.empty());
  TestClient on_a(a);
  const std::string encoder = on_a.SubmitOk(api::testing::ClassifierSpec("encoder"));
  ASSERT_EQ(on_a.WaitTerminal(encoder).state(), v1::JOB_STATE_SUCCEEDED);
  server("a").Signal(SIGTERM);
  ASSERT_EQ(server("a").Wait(absl::Seconds(60)), 0);

  const std::string b = Launch("b");
  ASSERT_FALSE(b.empty());
  TestClient on_b(b);
  const std::string dependent = on_b.SubmitOk(api::testing::EncoderUNetSpec("unet", encoder));
  const v1::Job done = on_b.WaitTerminal(dependent, absl::Seconds(180));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.worker(), "b");
  EXPECT_EQ(on_b.Get(encoder).worker(), "a");
}

TEST_F(FleetProcessTest, PostgresRestartedUnderLoadLosesNothing) {
  const std::string a = Launch("a");
  const std::string b = Launch("b");
  ASSERT_FALSE(a.empty() || b.empty());
  TestClient on_a(a);
  TestClient on_b(b);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(on_a.SubmitOk(LongSpec(absl::StrCat("load-", i), 3)));
  on_b.WaitFor(
      ids[0], [](const v1::Job& job) { return job.current_epoch() >= 1; }, absl::Seconds(120));

  ASSERT_TRUE(postgres_->Restart().ok()) << postgres_->LogTail();

  // Both servers answer again, and every job finishes.
  for (const std::string& id : ids) {
    const v1::Job job = on_b.WaitTerminal(id, absl::Seconds(300));
    EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.ShortDebugString();
  }
  EXPECT_EQ(on_a.Get(ids[0]).state(), v1::JOB_STATE_SUCCEEDED);
  std::unique_ptr<jobs::JobStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const std::string& id : ids) ExpectConsistentHistory(*store, id);
}

}  // namespace
}  // namespace selene
