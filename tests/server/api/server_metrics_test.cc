// Tests server/api/server_metrics.h by feeding it job events, training steps, batches and
// inference outcomes and reading the registry: jobs submitted and finished by outcome, queue
// wait, each running job's epoch and validation metrics (gone when it stops running), the
// bounded model label of failed inference requests, and this worker's series.
#include "server/api/server_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "absl/strings/str_join.h"
#include "server/metrics/registry.h"

namespace selene::api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// "family{v1,v2}" -> value for counters and gauges; histograms as "family{...}_count".
std::map<std::string, double> Values(const metrics::Registry& registry) {
  std::map<std::string, double> values;
  for (const metrics::FamilySnapshot& family : registry.Collect()) {
    for (const metrics::Sample& sample : family.samples) {
      const std::string key = family.name + "{" + absl::StrJoin(sample.label_values, ",") + "}";
      if (family.type == metrics::MetricType::kHistogram) {
        values[key + "_count"] = static_cast<double>(sample.count);
        values[key + "_sum"] = sample.sum;
      } else {
        values[key] = sample.value;
      }
    }
  }
  return values;
}

v1::JobEvent StateChange(const std::string& job, v1::JobState from, v1::JobState to,
                         int64_t seconds) {
  v1::JobEvent event;
  event.set_job_id(job);
  event.mutable_time()->set_seconds(seconds);
  event.mutable_state_change()->set_from_state(from);
  event.mutable_state_change()->set_to_state(to);
  return event;
}

v1::JobEvent EpochEnd(const std::string& job, int64_t epoch, double dice) {
  v1::JobEvent event;
  event.set_job_id(job);
  event.mutable_epoch_end()->set_epoch(epoch);
  event.mutable_epoch_end()->set_val_loss(0.25);
  (*event.mutable_epoch_end()->mutable_metrics())["dice"] = dice;
  return event;
}

class ServerMetricsTest : public ::testing::Test {
 protected:
  metrics::Registry registry_;
  ServerMetrics metrics_{&registry_};
};

TEST_F(ServerMetricsTest, WorkerSeriesNameTheWorkerAndCountItsStartsRunningJobsAndLostLeases) {
  int running = 2;
  metrics_.IdentifyWorker("gpu-1", "postgresql", [&] { return running; });
  metrics_.OnJobEvent(StateChange("job-1", v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, 100));
  metrics_.OnJobEvent(StateChange("job-2", v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, 101));
  // Another server's nudge (no kind) is not a start here.
  v1::JobEvent nudge;
  nudge.set_job_id("job-3");
  nudge.set_sequence(2);
  metrics_.OnJobEvent(nudge);
  metrics_.OnLeaseLost();
  std::map<std::string, double> values = Values(registry_);
  EXPECT_EQ(values["selene_worker_info{gpu-1,postgresql}"], 1);
  EXPECT_EQ(values["selene_worker_jobs_started_total{gpu-1}"], 2);
  EXPECT_EQ(values["selene_worker_leases_lost_total{gpu-1}"], 1);
  EXPECT_EQ(values["selene_worker_jobs_running{gpu-1}"], 2);
  running = 0;
  EXPECT_EQ(Values(registry_)["selene_worker_jobs_running{gpu-1}"], 0);
}

TEST_F(ServerMetricsTest, JobLifeCycleCountsSubmissionQueueWaitAndOutcome) {
  metrics_.OnJobEvent(StateChange("job-1", v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_QUEUED, 100));
  metrics_.OnJobEvent(StateChange("job-1", v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, 103));
  metrics_.OnJobEvent(StateChange("job-1", v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED, 110));
  metrics_.OnJobEvent(StateChange("job-2", v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_QUEUED, 120));
  metrics_.OnJobEvent(StateChange("job-2", v1::JOB_STATE_QUEUED, v1::JOB_STATE_CANCELLED, 121));

  std::map<std::string, double> values = Values(registry_);
  EXPECT_EQ(values["selene_jobs_submitted_total{}"], 2);
  EXPECT_EQ(values["selene_jobs_finished_total{succeeded}"], 1);
  EXPECT_EQ(values["selene_jobs_finished_total{cancelled}"], 1);
  EXPECT_EQ(values["selene_jobs_finished_total{failed}"], 0);     // present before the first
  EXPECT_EQ(values["selene_job_queue_wait_seconds{}_count"], 1);  // job-2 never ran
  EXPECT_DOUBLE_EQ(values["selene_job_queue_wait_seconds{}_sum"], 3.0);
}

TEST_F(ServerMetricsTest, RunningJobSeriesFollowTheJobAndGoWhenItStopsRunning) {
  metrics_.OnJobEvent(StateChange("job-3", v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_QUEUED, 0));
  metrics_.OnJobEvent(StateChange("job-3", v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, 1));
  v1::JobEvent progress;
  progress.set_job_id("job-3");
  progress.mutable_step_progress()->set_epoch(1);
  metrics_.OnJobEvent(progress);
  EXPECT_EQ(Values(registry_)["selene_job_epoch{job-3}"], 1);

  metrics_.OnJobEvent(EpochEnd("job-3", 1, 0.5));
  metrics_.OnJobEvent(EpochEnd("job-3", 2, 0.75));
  std::map<std::string, double> values = Values(registry_);
  EXPECT_EQ(values["selene_job_epoch{job-3}"], 2);
  EXPECT_EQ(values["selene_job_validation_metric{job-3,dice}"], 0.75);
  EXPECT_EQ(values["selene_job_validation_metric{job-3,val_loss}"], 0.25);

  // Interrupted by a shutdown (back to the queue): its series go, as they do when it ends.
  metrics_.OnJobEvent(StateChange("job-3", v1::JOB_STATE_RUNNING, v1::JOB_STATE_QUEUED, 5));
  const std::string scrape = registry_.Scrape();
  EXPECT_THAT(scrape, Not(HasSubstr("job-3")));
  // Progress delivered after the state change leaves nothing behind either.
  metrics_.OnJobEvent(EpochEnd("job-3", 3, 0.8));
  EXPECT_THAT(registry_.Scrape(), Not(HasSubstr("job-3")));
}

TEST_F(ServerMetricsTest, TrainingStepsAndBatchesFillTheirHistograms) {
  metrics_.OnTrainingStep({"job-1", "cpu", 8, 0.25});
  metrics_.OnTrainingStep({"job-1", "cpu", 4, 0.125});
  serving::BatchReport batch;
  batch.size = 3;
  batch.queue_waits = {absl::Milliseconds(1), absl::Milliseconds(2), absl::Milliseconds(3)};
  metrics_.OnBatch(batch);

  std::map<std::string, double> values = Values(registry_);
  EXPECT_EQ(values["selene_training_images_total{cpu}"], 12);
  EXPECT_EQ(values["selene_training_step_seconds{cpu}_count"], 2);
  EXPECT_DOUBLE_EQ(values["selene_training_step_seconds{cpu}_sum"], 0.375);
  EXPECT_EQ(values["selene_inference_batch_size{}_count"], 1);
  EXPECT_EQ(values["selene_inference_batch_size{}_sum"], 3);
  EXPECT_EQ(values["selene_inference_queue_seconds{}_count"], 3);
  EXPECT_NEAR(values["selene_inference_queue_seconds{}_sum"], 0.006, 1e-12);
}

TEST_F(ServerMetricsTest, FailedRequestsKeepOnlyJobIdsAndAliasesAsTheModelLabel) {
  metrics_.OnInferenceRequest("Segment", "job-4", StatusCode::kOk, absl::Milliseconds(20));
  metrics_.OnInferenceRequest("Segment", "latest", StatusCode::kInvalidArgument,
                              absl::Milliseconds(1));
  metrics_.OnInferenceRequest("Classify", "job-0009", StatusCode::kNotFound, absl::Milliseconds(1));
  metrics_.OnInferenceRequest("Classify", "random-name-1", StatusCode::kNotFound,
                              absl::Milliseconds(1));
  metrics_.OnInferenceRequest("Classify", "random-name-2", StatusCode::kNotFound,
                              absl::Milliseconds(1));

  std::map<std::string, double> values = Values(registry_);
  EXPECT_EQ(values["selene_inference_requests_total{Segment,job-4,OK}"], 1);
  EXPECT_EQ(values["selene_inference_requests_total{Segment,latest,INVALID_ARGUMENT}"], 1);
  EXPECT_EQ(values["selene_inference_requests_total{Classify,job-9,NOT_FOUND}"], 1);
  EXPECT_EQ(values["selene_inference_requests_total{Classify,unknown,NOT_FOUND}"], 2);
  EXPECT_EQ(values["selene_inference_request_seconds{Segment}_count"], 2);
}

TEST_F(ServerMetricsTest, JobsByStateAndModelsLoadedAreEmptyUntilTheirSourcesAreGiven) {
  const std::map<std::string, double> values = Values(registry_);
  for (const auto& [key, value] : values) {
    EXPECT_THAT(key, Not(HasSubstr("selene_jobs{")));
    EXPECT_THAT(key, Not(HasSubstr("selene_models_loaded")));
  }
}

}  // namespace
}  // namespace selene::api
