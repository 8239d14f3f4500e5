// Tests server/jobs/job_runner.h: one job of a temporary job store run on the CPU with tiny
// synthetic specs: its events (epochs, throttled step progress with an ETA), the artifacts in its
// folder, refusals that name the field or file, stop requests, and the thread count it trains with.
#include "server/jobs/job_runner.h"

#include <ATen/Parallel.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/run_folder.h"
#include "server/jobs/job_store.h"
#include "server/train/threads.h"
#include "spec/json_io.h"
#include "tests/server/jobs/job_test_fixture.h"
#include "tests/testing/files.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ::selene::testing::MoonSpec;
using ::selene::testing::ReadFile;

class JobRunnerTest : public JobTestFixture {
 protected:
  // Submits `spec` and starts it on the CPU, as the scheduler would.
  v1::Job Started(const v1::JobSpec& spec) {
    StatusOr<SubmitResult> submitted = store_->Submit(testing::MustResolve(spec), "");
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    StatusOr<v1::Job> started = store_->Start(submitted->job.id(), "cpu");
    EXPECT_TRUE(started.ok()) << started.status();
    return *started;
  }

  std::vector<v1::JobEvent> Events(const std::string& id) {
    StatusOr<std::vector<v1::JobEvent>> events = store_->Events(id);
    EXPECT_TRUE(events.ok()) << events.status();
    return *events;
  }
};

// A worker whose lease another worker took (1 ms, certainly over 20 ms later) trains nothing and
// writes nothing: no event, no file; the run is interrupted, not failed, for the new owner.
TEST_F(JobRunnerTest, RunWithALostLeaseIsInterruptedAndWritesNothing) {
  StatusOr<SubmitResult> submitted = store_->Submit(testing::MustResolve(MoonSpec("taken", 2)), "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto stale = store_->ClaimNext("w1", "cpu", absl::Milliseconds(1));
  ASSERT_TRUE(stale.ok() && stale->has_value());
  absl::SleepFor(absl::Milliseconds(20));
  auto taken = store_->ClaimNext("w2", "cpu", absl::Hours(1));
  ASSERT_TRUE(taken.ok() && taken->has_value());
  const size_t events = Events("job-1").size();

  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  const RunOutcome outcome = runner.Run((*stale)->job, "cpu", stop, (*stale)->lease);
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kInterrupted) << outcome.reason;
  EXPECT_THAT(outcome.reason, HasSubstr("worker w2 holds the job now"));
  EXPECT_EQ(Events("job-1").size(), events);
  const RunFolder folder = RunFolder::OfJob(runner_options_.state_dir, "job-1");
  std::error_code error;
  EXPECT_TRUE(!fs::exists(folder.path(), error) || fs::is_empty(folder.path(), error));
}

// The worker's own clock ends a run whose lease no heartbeat renewed, before the store says so.
TEST_F(JobRunnerTest, RunPastItsLocalLeaseStopsBeforeTraining) {
  StatusOr<SubmitResult> submitted = store_->Submit(testing::MustResolve(MoonSpec("late", 2)), "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto claimed = store_->ClaimNext("w1", "cpu", absl::Hours(1));
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  stop.HoldLeaseUntil(absl::Now() - absl::Seconds(1));
  const RunOutcome outcome = runner.Run((*claimed)->job, "cpu", stop, (*claimed)->lease);
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kInterrupted) << outcome.reason;
  EXPECT_THAT(outcome.reason, HasSubstr("no heartbeat got through within the lease"));
  EXPECT_EQ(store_->Get("job-1")->current_epoch(), 0);
}

TEST_F(JobRunnerTest, BinaryJobRecordsEpochsProgressAndLeavesEveryArtifact) {
  const v1::Job job = Started(MoonSpec("tiny-moon", 2));
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  const RunOutcome outcome = runner.Run(job, "cpu", stop);
  ASSERT_EQ(outcome.kind, RunOutcome::Kind::kSucceeded) << outcome.reason;

  const fs::path folder = RunFolder::OfJob(runner_options_.state_dir, job.id()).path();
  EXPECT_EQ(folder, fs::path(runner_options_.state_dir) / "jobs" / job.id());
  for (const char* name :
       {"best.pt", "last.pt", "history.csv", "metrics.json", "report.md", "curves.png",
        "samples.png", "run_summary.json", "class_names.txt", "spec.json", "data_summary.json"}) {
    EXPECT_TRUE(fs::is_regular_file(folder / name)) << name;
    EXPECT_GT(fs::file_size(folder / name), 0u) << name;
  }
  EXPECT_EQ(ReadFile(RunFolder(folder.string()).class_names()), "rock\n");
  // spec.json is the spec as run: on the given device, with the runner's thread count.
  StatusOr<v1::JobSpec> written =
      spec::ParseJobSpecJson(ReadFile(RunFolder(folder.string()).spec()));
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->training().device(), "cpu");
  EXPECT_EQ(written->training().threads(), 1);
  EXPECT_EQ(written->training().epochs(), 2);
  // history.csv: a header and one row per epoch.
  const std::string history = ReadFile(folder / "history.csv");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 3) << history;

  std::vector<int64_t> epochs;
  std::vector<v1::StepProgress> steps;
  for (const v1::JobEvent& event : Events(job.id())) {
    if (event.has_epoch_end()) {
      const v1::EpochEnd& e = event.epoch_end();
      epochs.push_back(e.epoch());
      EXPECT_EQ(e.epochs(), 2);
      EXPECT_EQ(e.monitor(), "dice");
      ASSERT_EQ(e.metrics().count("dice"), 1u);
      EXPECT_DOUBLE_EQ(e.monitor_value(), e.metrics().at("dice"));
      EXPECT_GT(e.seconds(), 0.0);
      EXPECT_GT(e.images_per_second(), 0.0);
      if (e.epoch() == 1) {
        EXPECT_TRUE(e.is_best());  // the first finite value is always best
      }
    }
    if (event.has_step_progress()) steps.push_back(event.step_progress());
  }
  EXPECT_THAT(epochs, ElementsAre(1, 2));
  // Every step reported (interval 0), both epochs, 1-based, with a running loss and an ETA that
  // counts down to the end of the job.
  ASSERT_GE(steps.size(), 4u);
  const int64_t per_epoch = steps.front().steps();
  EXPECT_EQ(static_cast<int64_t>(steps.size()), 2 * per_epoch);
  EXPECT_EQ(steps.front().epoch(), 1);
  EXPECT_EQ(steps.front().step(), 1);
  EXPECT_EQ(steps.back().epoch(), 2);
  EXPECT_EQ(steps.back().step(), per_epoch);
  for (const v1::StepProgress& p : steps) {
    EXPECT_GT(p.loss(), 0.0);
    EXPECT_GT(p.images_per_second(), 0.0);
    EXPECT_GE(p.eta_seconds(), 0.0);
  }
  EXPECT_GT(steps.front().eta_seconds(), steps.back().eta_seconds());

  StatusOr<v1::Job> stored = store_->Get(job.id());
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->current_epoch(), 2);
  EXPECT_GE(stored->best_epoch(), 1);
  EXPECT_EQ(stored->monitor(), "dice");
  EXPECT_EQ(stored->state(), v1::JOB_STATE_RUNNING);  // moving it is the scheduler's job
}

// While a job runs, its folder already holds the history and the report of the epochs it has
// finished, so a crash at any moment leaves them; the store records an epoch only after that.
// Then a cancel in the second epoch ends the job with those files in place.
TEST_F(JobRunnerTest, HistoryAndReportAreUpToDateAfterEveryEpochAndACancelKeepsThem) {
  const v1::Job job = Started(MoonSpec("tiny-moon", 3));
  const fs::path folder = RunFolder::OfJob(runner_options_.state_dir, job.id()).path();
  StopRequest stop;
  std::string seen_in_epoch_two;
  runner_options_.on_training_step = [&](const TrainingStepReport&) {
    StatusOr<v1::Job> now = store_->Get(job.id());
    if (!now.ok() || now->current_epoch() != 1 || !seen_in_epoch_two.empty()) return;
    seen_in_epoch_two = ReadFile(folder / "history.csv");
    EXPECT_TRUE(fs::is_regular_file(folder / "report.md"));
    EXPECT_TRUE(fs::is_regular_file(folder / "curves.png"));
    EXPECT_TRUE(fs::is_regular_file(folder / "last.pt"));
    stop.Cancel();
  };
  JobRunner runner(store_.get(), runner_options_);
  const RunOutcome outcome = runner.Run(job, "cpu", stop);
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kCancelled) << outcome.reason;
  // A header and the first epoch's row, while the second epoch was training.
  EXPECT_EQ(std::count(seen_in_epoch_two.begin(), seen_in_epoch_two.end(), '\n'), 2)
      << seen_in_epoch_two;
  EXPECT_THAT(ReadFile(folder / "report.md"), HasSubstr("tiny-moon"));
  StatusOr<v1::Job> stored = store_->Get(job.id());
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->current_epoch(), 1);
}

TEST_F(JobRunnerTest, ProgressIsThrottledButEveryStepReachesTheStepHook) {
  runner_options_.progress_interval = absl::Hours(1);
  std::vector<TrainingStepReport> reports;  // the hook runs on the calling thread
  runner_options_.on_training_step = [&reports](const TrainingStepReport& step) {
    reports.push_back(step);
  };
  const v1::Job job = Started(MoonSpec("tiny-moon", 2));
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  ASSERT_EQ(runner.Run(job, "cpu", stop).kind, RunOutcome::Kind::kSucceeded);
  int progress = 0;
  for (const v1::JobEvent& event : Events(job.id())) progress += event.has_step_progress();
  EXPECT_EQ(progress, 1);  // the first step only

  // 16 synthetic samples, batch 4: each epoch's training steps carry every training image.
  ASSERT_FALSE(reports.empty());
  int64_t images = 0;
  for (const TrainingStepReport& step : reports) {
    EXPECT_EQ(step.job_id, job.id());
    EXPECT_EQ(step.device, "cpu");
    EXPECT_GT(step.seconds, 0.0);
    EXPECT_LE(step.images, 4);
    images += step.images;
  }
  StatusOr<std::vector<v1::EpochEnd>> history = store_->History(job.id());
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->size(), 2u);
  EXPECT_EQ(images % 2, 0);
  EXPECT_GT(images, 2 * 8);  // most of the 16 samples train (the rest validate)
  EXPECT_LE(images, 2 * 16);
}

TEST_F(JobRunnerTest, TrainsWithItsOwnThreadCountWithoutChangingOtherThreads) {
  train::ConfigureTorchThreads(2);
  runner_options_.training_threads = 1;
  const v1::Job job = Started(MoonSpec("tiny-moon", 1));
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  RunOutcome outcome;
  int worker_threads = 0;
  std::thread worker([&] {
    outcome = runner.Run(job, "cpu", stop);
    worker_threads = at::get_num_threads();
  });
  worker.join();
  ASSERT_EQ(outcome.kind, RunOutcome::Kind::kSucceeded) << outcome.reason;
  EXPECT_EQ(worker_threads, 1);
  EXPECT_EQ(at::get_num_threads(), 2);
}

// The store only takes resolved specs, but a job stored by an older server (whose checks were
// looser) can hold one that no longer validates: the runner fails it naming the field.
TEST_F(JobRunnerTest, InvalidSpecFailsNamingTheField) {
  v1::Job job = Started(MoonSpec("tiny-moon", 2));
  job.mutable_spec()->mutable_training()->set_batch_size(0);
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  const RunOutcome outcome = runner.Run(job, "cpu", stop);
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kFailed);
  EXPECT_THAT(outcome.reason, HasSubstr("training.batch_size"));
}

TEST_F(JobRunnerTest, MissingDataFailsNamingIt) {
  v1::JobSpec spec = MoonSpec("tiny-moon", 2);
  spec.mutable_data()->set_kind(v1::DATA_KIND_MOON);
  spec.mutable_data()->set_path("no-such-moon");
  spec.mutable_data()->clear_num_samples();
  const v1::Job job = Started(spec);
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  const RunOutcome outcome = runner.Run(job, "cpu", stop);
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kFailed);
  EXPECT_THAT(outcome.reason, HasSubstr("no-such-moon"));
}

TEST_F(JobRunnerTest, EncoderJobWithoutCheckpointFailsNamingTheFile) {
  StatusOr<SubmitResult> classifier =
      store_->Submit(testing::MustResolve(MoonSpec("tiny-moon", 2)), "");  // never runs
  ASSERT_TRUE(classifier.ok());
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(R"json({
    "task": "binary_segmentation",
    "model": {"encoder_unet": {"encoder": {"stem_width": 8, "stage_widths": [8, 8, 8, 8],
              "stage_blocks": [1, 1, 1, 1]}, "decoder_base_width": 4, "encoder_mode": "frozen",
              "encoder_job_id": "job-1"}},
    "data": {"kind": "synthetic_moon", "num_samples": 16, "image_size": 32},
    "training": {"epochs": 1, "batch_size": 4}
  })json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const v1::Job job = Started(*spec);
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  const RunOutcome outcome = runner.Run(job, "cpu", stop);
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kFailed);
  EXPECT_THAT(outcome.reason, HasSubstr("model.encoder_unet.encoder_job_id"));
  EXPECT_THAT(
      outcome.reason,
      HasSubstr((fs::path(RunFolder::OfJob(runner_options_.state_dir, "job-1").path()) / "best.pt")
                    .string()));
}

TEST_F(JobRunnerTest, StopBeforeTrainingIsCancelledOrInterruptedByItsMeaning) {
  JobRunner runner(store_.get(), runner_options_);
  {
    const v1::Job job = Started(MoonSpec("tiny-moon", 2));
    StopRequest stop;
    stop.Interrupt();
    EXPECT_EQ(runner.Run(job, "cpu", stop).kind, RunOutcome::Kind::kInterrupted);
  }
  {
    const v1::Job job = Started(MoonSpec("tiny-moon", 2));
    StopRequest stop;
    stop.Interrupt();
    stop.Cancel();  // a cancel wins over a shutdown
    EXPECT_EQ(runner.Run(job, "cpu", stop).kind, RunOutcome::Kind::kCancelled);
    StatusOr<std::vector<v1::EpochEnd>> history = store_->History(job.id());
    ASSERT_TRUE(history.ok());
    EXPECT_TRUE(history->empty());
  }
}

TEST_F(JobRunnerTest, CancelMidRunKeepsLastCheckpointAndStopsWithinAStep) {
  const v1::Job job = Started(MoonSpec("tiny-moon", 200));
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  RunOutcome outcome;
  std::thread worker([&] { outcome = runner.Run(job, "cpu", stop); });
  // Wait for training to be under way, then cancel.
  int64_t seen = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (seen == 0 && absl::Now() < deadline) {
    for (const v1::JobEvent& event : Events(job.id())) seen += event.has_step_progress();
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GT(seen, 0);
  stop.Cancel();
  StatusOr<v1::Job> at_cancel = store_->Get(job.id());
  worker.join();
  ASSERT_TRUE(at_cancel.ok());
  EXPECT_EQ(outcome.kind, RunOutcome::Kind::kCancelled) << outcome.reason;
  const fs::path folder = RunFolder::OfJob(runner_options_.state_dir, job.id()).path();
  EXPECT_TRUE(fs::exists(folder / "last.pt"));
  int steps_after = 0;
  for (const v1::JobEvent& event : Events(job.id())) {
    if (event.sequence() > at_cancel->last_event_sequence())
      steps_after += event.has_step_progress();
  }
  EXPECT_LE(steps_after, 1);  // at most the step that was under way
  StatusOr<v1::Job> stored = store_->Get(job.id());
  ASSERT_TRUE(stored.ok());
  EXPECT_LT(stored->current_epoch(), 200);
}

// File data sets are decoded once into options.cache_dir, where a later job finds them.
TEST_F(JobRunnerTest, FileDataSetsAreCachedInTheCacheDir) {
  const char* shared = std::getenv("SELENE_SHARED_DATA");
  if (shared == nullptr || !fs::is_directory(fs::path(shared) / "tiny-imagenet-200-10c")) {
    GTEST_SKIP() << "SELENE_SHARED_DATA (../shared/data) is absent";
  }
  runner_options_.data_root = shared;
  runner_options_.cache_dir = (dir_ / "decoded").string();
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(R"json({
    "task": "classification",
    "model": {"classifier": {"stem_width": 8, "stage_widths": [8, 8, 8, 8],
                             "stage_blocks": [1, 1, 1, 1]}},
    "data": {"kind": "tiny_imagenet", "path": "tiny-imagenet-200-10c", "num_classes": 2,
             "image_size": 32},
    "training": {"epochs": 1, "batch_size": 64}
  })json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  JobRunner runner(store_.get(), runner_options_);
  StopRequest stop;
  const RunOutcome outcome = runner.Run(Started(*spec), "cpu", stop);
  ASSERT_EQ(outcome.kind, RunOutcome::Kind::kSucceeded) << outcome.reason;
  ASSERT_TRUE(fs::is_directory(runner_options_.cache_dir));
  EXPECT_FALSE(fs::is_empty(runner_options_.cache_dir));
  EXPECT_FALSE(fs::exists(fs::path(runner_options_.state_dir) / "cache"));
}

}  // namespace
}  // namespace selene::jobs
