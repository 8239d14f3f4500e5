// Tests server/jobs/scheduler.h with a temporary job store and state dir, CPU slots and tiny
// synthetic specs: jobs run to their end with events and artifacts, an encoder job waits for its
// classifier (and fails with it), queued and running jobs cancel, the queue keeps its priority
// order, and a shutdown or a crash loses nothing: a new scheduler resumes from the checkpoints.
#include "server/jobs/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/run_folder.h"
#include "google/protobuf/util/time_util.h"
#include "server/jobs/training_plan.h"
#include "server/train/checkpoint.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "tests/server/jobs/job_test_fixture.h"
#include "tests/testing/files.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testing::ClassifierSpec;
using testing::EncoderUNetSpec;
using testing::MoonSpec;
using testing::ReadFile;

bool IsTerminal(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

class SchedulerTest : public JobTestFixture {
 protected:
  void TearDown() override {
    schedulers_.clear();  // joins their threads before the store goes
    absl::MutexLock lock(&mu_);
    EXPECT_THAT(errors_, ::testing::IsEmpty());
  }

  // A scheduler (with its own runner and pool, as a restarted server would have) on the test's
  // store and state dir; not started.
  Scheduler& NewScheduler(int slots = 1) {
    auto runner = std::make_unique<JobRunner>(store_.get(), runner_options_);
    StatusOr<std::unique_ptr<DevicePool>> pool = DevicePool::Create({"cpu"}, slots);
    EXPECT_TRUE(pool.ok()) << pool.status();
    SchedulerOptions options;
    options.poll_interval = absl::Milliseconds(50);
    options.on_job_finished = [this](const v1::Job& job) {
      absl::MutexLock lock(&mu_);
      finished_.push_back(job);
    };
    options.on_error = [this](const Status& status) {
      absl::MutexLock lock(&mu_);
      errors_.push_back(std::string(status.message()));
    };
    auto scheduler =
        std::make_unique<Scheduler>(store_.get(), runner.get(), pool->get(), std::move(options));
    Scheduler& result = *scheduler;
    // Destroyed in reverse: the scheduler (joining its threads) before its runner and pool.
    runners_.push_back(std::move(runner));
    pools_.push_back(std::move(pool).value());
    schedulers_.push_back(std::move(scheduler));
    return result;
  }

  std::string Submit(Scheduler& scheduler, const v1::JobSpec& spec, int32_t priority = 0) {
    StatusOr<SubmitResult> submitted = scheduler.Submit(testing::MustResolve(spec), "", priority);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->job.id() : "";
  }

  v1::Job Get(const std::string& id) {
    StatusOr<v1::Job> job = store_->Get(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  std::vector<v1::JobEvent> Events(const std::string& id, int64_t after = 0) {
    StatusOr<std::vector<v1::JobEvent>> events = store_->Events(id, after);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<v1::JobEvent>();
  }

  // Polls the store until `done(job)` holds; fails the test after a minute.
  v1::Job WaitFor(const std::string& id, const std::function<bool(const v1::Job&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (true) {
      const v1::Job job = Get(id);
      if (done(job)) return job;
      if (absl::Now() > deadline) {
        ADD_FAILURE() << "timed out waiting for " << id << ": " << job.ShortDebugString();
        return job;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  v1::Job WaitTerminal(const std::string& id) { return WaitFor(id, IsTerminal); }

  // Waits until the job has reported a step of epoch `epoch` (1-based) or later.
  void WaitForStepOfEpoch(const std::string& id, int64_t epoch) {
    WaitFor(id, [&](const v1::Job& job) {
      if (IsTerminal(job)) return true;
      for (const v1::JobEvent& event : Events(id)) {
        if (event.has_step_progress() && event.step_progress().epoch() >= epoch) return true;
      }
      return false;
    });
  }

  std::vector<std::string> FinishedIds() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const v1::Job& job : finished_) ids.push_back(job.id());
    return ids;
  }

  fs::path Folder(const std::string& id) {
    return RunFolder::OfJob(runner_options_.state_dir, id).path();
  }

  std::vector<std::unique_ptr<JobRunner>> runners_;
  std::vector<std::unique_ptr<DevicePool>> pools_;
  std::vector<std::unique_ptr<Scheduler>> schedulers_;
  absl::Mutex mu_;
  std::vector<v1::Job> finished_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

TEST_F(SchedulerTest, BinaryJobRunsToSucceededWithEventsAndArtifacts) {
  Scheduler& scheduler = NewScheduler();
  ASSERT_TRUE(scheduler.Start().ok());
  const std::string id = Submit(scheduler, MoonSpec("moon", 2));
  const v1::Job job = WaitTerminal(id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.device(), "cpu");
  EXPECT_EQ(job.attempts(), 1);
  EXPECT_EQ(job.current_epoch(), 2);
  EXPECT_GE(job.best_epoch(), 1);
  EXPECT_EQ(job.monitor(), "dice");
  EXPECT_EQ(job.latest_metrics().count("dice"), 1u);

  std::vector<std::string> states;
  std::vector<int64_t> epochs;
  int progress = 0;
  for (const v1::JobEvent& event : Events(id)) {
    if (event.has_state_change()) {
      states.push_back(v1::JobState_Name(event.state_change().to_state()) + ": " +
                       event.state_change().reason());
    } else if (event.has_epoch_end()) {
      epochs.push_back(event.epoch_end().epoch());
    } else if (event.has_step_progress()) {
      ++progress;
      EXPECT_GE(event.step_progress().eta_seconds(), 0.0);
      // Progress comes while the job runs, between its start and its end.
      EXPECT_EQ(states.size(), 2u);
    }
  }
  EXPECT_THAT(states,
              ElementsAre("JOB_STATE_QUEUED: submitted", "JOB_STATE_RUNNING: started on cpu",
                          "JOB_STATE_SUCCEEDED: succeeded"));
  EXPECT_THAT(epochs, ElementsAre(1, 2));
  EXPECT_GT(progress, 0);

  for (const char* name :
       {"best.pt", "last.pt", "history.csv", "metrics.json", "report.md", "curves.png",
        "samples.png", "run_summary.json", "class_names.txt", "spec.json"}) {
    EXPECT_TRUE(fs::is_regular_file(Folder(id) / name)) << name;
  }
  // The hook runs before the worker counts as done; the slot is back by then too.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (scheduler.running_count() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(scheduler.running_count(), 0);
  EXPECT_EQ(pools_.back()->in_use(), 0);
  EXPECT_THAT(FinishedIds(), ElementsAre(id));
}

TEST_F(SchedulerTest, EncoderJobWaitsForItsClassifierAndTrainsOnItsFrozenEncoder) {
  Scheduler& scheduler = NewScheduler(/*slots=*/2);  // room for both: only the dependency waits
  const std::string classifier = Submit(scheduler, ClassifierSpec("classifier"));
  const std::string segmenter = Submit(scheduler, EncoderUNetSpec("segmenter", classifier));
  ASSERT_TRUE(scheduler.Start().ok());
  const v1::Job first = WaitTerminal(classifier);
  const v1::Job second = WaitTerminal(segmenter);
  ASSERT_EQ(first.state(), v1::JOB_STATE_SUCCEEDED) << first.error();
  ASSERT_EQ(second.state(), v1::JOB_STATE_SUCCEEDED) << second.error();
  EXPECT_EQ(second.depends_on(), classifier);
  EXPECT_GE(TimeUtil::TimestampToNanoseconds(second.start_time()),
            TimeUtil::TimestampToNanoseconds(first.finish_time()));
  EXPECT_THAT(FinishedIds(), ElementsAre(classifier, segmenter));

  // The segmenter ran on the classifier's best checkpoint...
  StatusOr<v1::JobSpec> ran =
      spec::ParseJobSpecJson(ReadFile(RunFolder(Folder(segmenter).string()).spec()));
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->model().encoder_unet().encoder_checkpoint(),
            (Folder(classifier) / "best.pt").string());
  EXPECT_TRUE(ran->model().encoder_unet().encoder_job_id().empty());

  // ... and, frozen, its encoder still holds exactly the classifier's weights.
  StatusOr<v1::JobSpec> classifier_ran =
      spec::ParseJobSpecJson(ReadFile(RunFolder(Folder(classifier).string()).spec()));
  ASSERT_TRUE(classifier_ran.ok());
  StatusOr<TrainingPlan> classifier_plan = PlanTraining(testing::MustResolve(*classifier_ran));
  StatusOr<TrainingPlan> segmenter_plan = PlanTraining(testing::MustResolve(*ran));
  ASSERT_TRUE(classifier_plan.ok() && segmenter_plan.ok());
  StatusOr<models::Network> classifier_net = spec::BuildNetwork(classifier_plan->spec);
  StatusOr<models::Network> segmenter_net = spec::BuildNetwork(segmenter_plan->spec);
  ASSERT_TRUE(classifier_net.ok() && segmenter_net.ok());
  ASSERT_TRUE(
      train::LoadCheckpoint((Folder(classifier) / "best.pt").string(), **classifier_net).ok());
  ASSERT_TRUE(
      train::LoadCheckpoint((Folder(segmenter) / "best.pt").string(), **segmenter_net).ok());
  const auto classifier_params = (*classifier_net)->named_parameters();
  int compared = 0;
  for (const auto& item : (*segmenter_net)->named_parameters()) {
    const std::string prefix = "encoder.";
    if (item.key().rfind(prefix, 0) != 0) continue;
    const torch::Tensor* original = classifier_params.find(item.key().substr(prefix.size()));
    ASSERT_NE(original, nullptr) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), *original)) << item.key();
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

TEST_F(SchedulerTest, FailedClassifierFailsItsEncoderJobWithTheReason) {
  Scheduler& scheduler = NewScheduler(/*slots=*/2);
  v1::JobSpec broken = ClassifierSpec("broken");
  broken.mutable_data()->set_kind(v1::DATA_KIND_TINY_IMAGENET);
  broken.mutable_data()->set_path("no-such-tiny-imagenet");
  broken.mutable_data()->clear_num_samples();
  broken.mutable_data()->set_num_classes(6);
  const std::string classifier = Submit(scheduler, broken);
  const std::string segmenter = Submit(scheduler, EncoderUNetSpec("segmenter", classifier));
  ASSERT_TRUE(scheduler.Start().ok());
  const v1::Job first = WaitTerminal(classifier);
  const v1::Job second = WaitTerminal(segmenter);
  EXPECT_EQ(first.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(first.error(), HasSubstr("no-such-tiny-imagenet"));
  EXPECT_EQ(second.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(second.error(), HasSubstr("encoder job " + classifier + " failed: "));
  EXPECT_THAT(second.error(), HasSubstr("no-such-tiny-imagenet"));
  EXPECT_EQ(second.attempts(), 0);  // it never ran
  EXPECT_THAT(FinishedIds(), ElementsAre(classifier));
}

TEST_F(SchedulerTest, CancelsAQueuedJobAtOnceAndARunningOneWithinAStep) {
  Scheduler& scheduler = NewScheduler(/*slots=*/1);
  ASSERT_TRUE(scheduler.Start().ok());
  const std::string running = Submit(scheduler, MoonSpec("long", 500));
  const std::string queued = Submit(scheduler, MoonSpec("waiting", 2));
  WaitForStepOfEpoch(running, 2);  // one epoch done: a cancelled job keeps its results too

  StatusOr<v1::Job> cancelled = scheduler.Cancel(queued, "not needed");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled->error(), "not needed");

  StatusOr<v1::Job> stopping = scheduler.Cancel(running, "user stop");
  ASSERT_TRUE(stopping.ok()) << stopping.status();
  EXPECT_EQ(stopping->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(stopping->cancel_requested());
  const int64_t at_cancel = Get(running).last_event_sequence();
  const v1::Job stopped = WaitTerminal(running);
  EXPECT_EQ(stopped.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(stopped.error(), "user stop");
  EXPECT_LT(stopped.current_epoch(), 500);
  for (const char* name : {"last.pt", "best.pt", "history.csv", "metrics.json", "report.md"}) {
    EXPECT_TRUE(fs::exists(Folder(running) / name)) << name;
  }
  int steps_after = 0;
  for (const v1::JobEvent& event : Events(running, at_cancel)) {
    steps_after += event.has_step_progress();
  }
  EXPECT_LE(steps_after, 1);  // at most the step under way

  // The queued job never started, even once the slot was free: a job submitted after it runs
  // to its end, and the queue would have given the slot to the earlier job first.
  const std::string later = Submit(scheduler, MoonSpec("later", 1));
  EXPECT_EQ(WaitTerminal(later).state(), v1::JOB_STATE_SUCCEEDED);
  const v1::Job never = Get(queued);
  EXPECT_EQ(never.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(never.attempts(), 0);
  EXPECT_FALSE(never.has_start_time());
  EXPECT_FALSE(fs::exists(Folder(queued)));
  EXPECT_EQ(scheduler.Cancel(running).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler.Cancel("job-99").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, OneSlotRunsByPriorityThenSubmissionOrder) {
  Scheduler& scheduler = NewScheduler(/*slots=*/1);
  const std::string low = Submit(scheduler, MoonSpec("low", 1), 0);
  const std::string high = Submit(scheduler, MoonSpec("high", 1), 5);
  const std::string mid = Submit(scheduler, MoonSpec("mid", 1), 1);
  const std::string high_later = Submit(scheduler, MoonSpec("high-later", 1), 5);
  ASSERT_TRUE(scheduler.Start().ok());
  for (const std::string& id : {low, high, mid, high_later}) {
    EXPECT_EQ(WaitTerminal(id).state(), v1::JOB_STATE_SUCCEEDED);
  }
  EXPECT_THAT(FinishedIds(), ElementsAre(high, high_later, mid, low));
  // One at a time: each started after the previous one finished.
  const std::vector<std::string> order = {high, high_later, mid, low};
  for (size_t i = 1; i < order.size(); ++i) {
    EXPECT_GE(TimeUtil::TimestampToNanoseconds(Get(order[i]).start_time()),
              TimeUtil::TimestampToNanoseconds(Get(order[i - 1]).finish_time()));
  }
}

// The resumed run continues exactly where the checkpoint left off: the step after the last one
// reported, and epochs after the last one finished, never epoch 1 again.
void ExpectContinues(const std::vector<v1::JobEvent>& before,
                     const std::vector<v1::JobEvent>& after, int64_t finished_epochs) {
  const v1::StepProgress* last = nullptr;
  for (const v1::JobEvent& event : before) {
    if (event.has_step_progress()) last = &event.step_progress();
  }
  const v1::StepProgress* next = nullptr;
  const v1::EpochEnd* next_epoch = nullptr;
  for (const v1::JobEvent& event : after) {
    if (next == nullptr && event.has_step_progress()) next = &event.step_progress();
    if (next_epoch == nullptr && event.has_epoch_end()) next_epoch = &event.epoch_end();
  }
  ASSERT_NE(last, nullptr);
  ASSERT_NE(next, nullptr);
  ASSERT_NE(next_epoch, nullptr);
  if (last->step() < last->steps()) {
    EXPECT_EQ(next->epoch(), last->epoch());
    EXPECT_EQ(next->step(), last->step() + 1);
  } else {
    EXPECT_EQ(next->epoch(), last->epoch() + 1);
    EXPECT_EQ(next->step(), 1);
  }
  EXPECT_EQ(next_epoch->epoch(), finished_epochs + 1);
}

TEST_F(SchedulerTest, ShutdownRequeuesARunningJobAndANewSchedulerResumesIt) {
  constexpr int64_t kEpochs = 30;
  std::string id;
  int64_t finished_epochs = 0;
  int64_t requeued_at = 0;
  std::vector<v1::JobEvent> before;
  {
    Scheduler& scheduler = NewScheduler();
    ASSERT_TRUE(scheduler.Start().ok());
    id = Submit(scheduler, MoonSpec("resumable", kEpochs));
    WaitForStepOfEpoch(id, 2);
    ASSERT_TRUE(scheduler.Shutdown(absl::Now() + absl::Seconds(30)).ok());
    EXPECT_EQ(scheduler.running_count(), 0);
    EXPECT_TRUE(FinishedIds().empty());  // requeued, not finished

    const v1::Job job = Get(id);
    ASSERT_EQ(job.state(), v1::JOB_STATE_QUEUED);
    EXPECT_TRUE(job.resume_from_checkpoint());
    EXPECT_TRUE(job.device().empty());
    EXPECT_GE(job.current_epoch(), 1);
    ASSERT_LT(job.current_epoch(), kEpochs);
    EXPECT_TRUE(fs::exists(Folder(id) / "last.pt"));
    finished_epochs = job.current_epoch();
    before = Events(id);
    ASSERT_TRUE(before.back().has_state_change());
    EXPECT_EQ(before.back().state_change().reason(), Scheduler::kShutdownReason);
    requeued_at = before.back().sequence();
    // A scheduler that was shut down does not start again.
    EXPECT_EQ(scheduler.Start().code(), absl::StatusCode::kFailedPrecondition);
  }

  Scheduler& restarted = NewScheduler();
  ASSERT_TRUE(restarted.Start().ok());
  const v1::Job job = WaitTerminal(id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.attempts(), 2);
  EXPECT_EQ(job.current_epoch(), kEpochs);
  ExpectContinues(before, Events(id, requeued_at), finished_epochs);

  StatusOr<std::vector<v1::EpochEnd>> history = store_->History(id);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), static_cast<size_t>(kEpochs));
  for (int64_t i = 0; i < kEpochs; ++i) EXPECT_EQ((*history)[i].epoch(), i + 1);
  // history.csv holds every epoch too, those before the shutdown included.
  const std::string csv = ReadFile(Folder(id) / "history.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), kEpochs + 1);
}

TEST_F(SchedulerTest, NothingIsLostAcrossAShutdownAndACrash) {
  std::string resumable, plain, broken, dependent;
  std::vector<v1::JobEvent> before;
  int64_t finished_epochs = 0;
  {
    Scheduler& scheduler = NewScheduler(/*slots=*/1);
    ASSERT_TRUE(scheduler.Start().ok());
    resumable = Submit(scheduler, MoonSpec("resumable", 30));
    plain = Submit(scheduler, MoonSpec("plain", 1));
    // Valid, so the store takes it, but it fails when it runs: its data set does not exist.
    v1::JobSpec bad = ClassifierSpec("broken");
    bad.mutable_data()->set_kind(v1::DATA_KIND_TINY_IMAGENET);
    bad.mutable_data()->set_path("no-such-tiny-imagenet");
    bad.mutable_data()->clear_num_samples();
    bad.mutable_data()->set_num_classes(6);
    broken = Submit(scheduler, bad);
    dependent = Submit(scheduler, EncoderUNetSpec("dependent", broken));
    WaitForStepOfEpoch(resumable, 2);
    ASSERT_TRUE(scheduler.Shutdown().ok());
  }
  // Then a server "crashes" while running two jobs: the store says RUNNING, nobody runs them.
  // One has a checkpoint from before, the other none.
  finished_epochs = Get(resumable).current_epoch();
  before = Events(resumable);
  ASSERT_TRUE(store_->Start(resumable, "cpu").ok());
  ASSERT_TRUE(store_->Start(plain, "cpu").ok());
  const int64_t crashed_at = Get(resumable).last_event_sequence();

  Scheduler& restarted = NewScheduler(/*slots=*/1);
  ASSERT_TRUE(restarted.Start().ok());
  const v1::Job resumed = WaitTerminal(resumable);
  EXPECT_EQ(resumed.state(), v1::JOB_STATE_SUCCEEDED) << resumed.error();
  EXPECT_EQ(resumed.resumes(), 2);  // the shutdown, then the crash
  EXPECT_EQ(resumed.attempts(), 3);
  ExpectContinues(before, Events(resumable, crashed_at), finished_epochs);
  EXPECT_EQ(WaitTerminal(plain).state(), v1::JOB_STATE_SUCCEEDED);
  const v1::Job failed = WaitTerminal(broken);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.error(), HasSubstr("no-such-tiny-imagenet"));
  const v1::Job failed_dependent = WaitTerminal(dependent);
  EXPECT_EQ(failed_dependent.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed_dependent.error(), HasSubstr("encoder job " + broken + " failed"));

  StatusOr<std::map<v1::JobState, int64_t>> counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->at(v1::JOB_STATE_QUEUED), 0);
  EXPECT_EQ(counts->at(v1::JOB_STATE_RUNNING), 0);
  EXPECT_EQ(counts->at(v1::JOB_STATE_SUCCEEDED), 2);
  EXPECT_EQ(counts->at(v1::JOB_STATE_FAILED), 2);
}

}  // namespace
}  // namespace selene::jobs
