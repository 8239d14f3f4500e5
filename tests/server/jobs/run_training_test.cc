// Tests server/jobs/run_training.h: the one pipeline selene-train and the job runner share. A
// tiny synthetic run leaves its folder complete and tells its observer every step of the way; a
// stop before training is a stopped run, not an error; a resumed run continues from last.pt.
#include "server/jobs/run_training.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "spec/resolved_job_spec.h"
#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

using ::selene::testing::MoonSpec;
using ::selene::testing::MustResolve;

// Records what the pipeline tells it.
class RecordingObserver : public RunObserver {
 public:
  void OnStart(const TrainingPlan& /*plan*/, const models::NetworkImpl& /*network*/,
               const TrainingData& data, const train::TrainingState& restored) override {
    ++starts;
    images = data.split.train.size() + data.split.val.size();
    restored_epochs = static_cast<int64_t>(restored.history.size());
  }
  void OnStep(const train::StepProgress& progress) override {
    ++steps;
    steps_per_epoch = progress.steps_per_epoch;
  }
  void OnEpoch(const train::EpochRecord& record, const train::TrainResult& so_far) override {
    epochs.push_back(record.epoch);
    epochs_so_far.push_back(static_cast<int64_t>(so_far.history.size()));
    best_epochs.push_back(so_far.best_epoch);
  }

  int starts = 0;
  int64_t images = 0;  // training and validation
  int64_t restored_epochs = -1;
  int steps = 0;
  int64_t steps_per_epoch = 0;
  std::vector<int64_t> epochs;
  std::vector<int64_t> epochs_so_far;
  std::vector<int64_t> best_epochs;
};

TrainingPlan TinyPlan(int64_t epochs) {
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(MoonSpec("tiny-moon", epochs)));
  EXPECT_OK(plan);
  plan->threads = 1;
  return *std::move(plan);
}

RunEnvironment Environment(const std::string& folder) {
  RunEnvironment environment;
  environment.folder = RunFolder(folder);
  environment.name = "tiny-moon";
  environment.resume = true;
  return environment;
}

TEST(RunTrainingTest, LeavesACompleteFolderAndTellsTheObserver) {
  const testing::TempDir dir;
  const TrainingPlan plan = TinyPlan(2);
  const RunEnvironment environment = Environment(dir / "run");
  RecordingObserver observer;
  StatusOr<TrainingRunResult> run = RunTraining(plan, environment, observer);
  ASSERT_OK(run);
  EXPECT_FALSE(run->stopped);
  EXPECT_EQ(run->training.history.size(), 2u);
  EXPECT_EQ(observer.starts, 1);
  EXPECT_EQ(observer.images, 16);  // data.num_samples
  EXPECT_EQ(observer.restored_epochs, 0);
  EXPECT_GT(observer.steps_per_epoch, 0);
  EXPECT_EQ(observer.steps, 2 * observer.steps_per_epoch);
  EXPECT_EQ(observer.epochs, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(observer.epochs_so_far, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(observer.best_epochs.back(), run->training.best_epoch);
  for (const char* name : {RunFolder::kBestCheckpoint, RunFolder::kLastCheckpoint, RunFolder::kSpec,
                           RunFolder::kDataSummary, RunFolder::kClassNames, RunFolder::kHistory,
                           RunFolder::kMetrics, RunFolder::kReport, RunFolder::kRunSummary}) {
    EXPECT_TRUE(environment.folder.Has(name)) << name;
  }
  EXPECT_THAT(run->report_files, ::testing::Contains("samples.png"));
}

TEST(RunTrainingTest, AStopBeforeTrainingIsAStoppedRun) {
  const testing::TempDir dir;
  const std::atomic<bool> stop{true};
  RunEnvironment environment = Environment(dir / "run");
  environment.stop = &stop;
  RecordingObserver observer;
  StatusOr<TrainingRunResult> run = RunTraining(TinyPlan(2), environment, observer);
  ASSERT_OK(run);
  EXPECT_TRUE(run->stopped);
  EXPECT_TRUE(run->training.history.empty());
  EXPECT_EQ(observer.starts, 0);
  EXPECT_FALSE(environment.folder.Has(RunFolder::kLastCheckpoint));
}

TEST(RunTrainingTest, AResumedRunContinuesFromLastCheckpoint) {
  const testing::TempDir dir;
  const RunEnvironment environment = Environment(dir / "run");
  RecordingObserver first;
  ASSERT_OK(RunTraining(TinyPlan(1), environment, first));
  RecordingObserver second;
  StatusOr<TrainingRunResult> run = RunTraining(TinyPlan(3), environment, second);
  ASSERT_OK(run);
  EXPECT_EQ(second.restored_epochs, 1);
  EXPECT_EQ(second.epochs, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(run->training.history.size(), 3u);
}

}  // namespace
}  // namespace selene::jobs
