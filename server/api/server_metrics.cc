#include "server/api/server_metrics.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace selene::api {
namespace {

using metrics::ExponentialBuckets;

absl::Time EventTime(const v1::JobEvent& event) {
  return absl::FromUnixSeconds(event.time().seconds()) + absl::Nanoseconds(event.time().nanos());
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::string StateLabel(v1::JobState state) { return absl::AsciiStrToLower(jobs::StateName(state)); }

// A name a client sent that did not reach a model: kept when it has the shape of a job id or an
// alias (bounded by the jobs there are), otherwise "unknown".
std::string RequestedModelLabel(absl::string_view requested) {
  int64_t number = 0;
  const bool job_id =
      absl::ConsumePrefix(&requested, "job-") && absl::SimpleAtoi(requested, &number);
  if (job_id) return absl::StrCat("job-", number);
  if (requested == "latest" || (absl::StartsWith(requested, "latest:") && requested.size() < 40)) {
    return std::string(requested);
  }
  return "unknown";
}

}  // namespace

ServerMetrics::ServerMetrics(metrics::Registry* registry)
    : jobs_submitted_(registry->AddCounter("selene_jobs_submitted_total",
                                           "Training jobs submitted (a retried submit with the "
                                           "same request id counts once).")),
      jobs_finished_(registry->AddCounter("selene_jobs_finished_total",
                                          "Training jobs that ended, by outcome.", {"outcome"})),
      queue_wait_(registry->AddHistogram(
          "selene_job_queue_wait_seconds",
          "Time a job waited in the queue before it started running (each time it was queued).", {},
          ExponentialBuckets(0.1, 4, 10))),
      step_seconds_(registry->AddHistogram(
          "selene_training_step_seconds",
          "Wall time of one training step (forward, backward, update, waiting for the batch).",
          {"device"}, ExponentialBuckets(0.005, 2, 14))),
      images_trained_(registry->AddCounter("selene_training_images_total",
                                           "Training images processed (augmented copies count "
                                           "each time).",
                                           {"device"})),
      job_epoch_(registry->AddGauge("selene_job_epoch",
                                    "The epoch a running job is in (1-based); removed when the "
                                    "job stops running.",
                                    {"job_id"})),
      job_validation_metric_(registry->AddGauge(
          "selene_job_validation_metric",
          "A running job's latest validation metric (val_loss, dice, top1, ...); removed when "
          "the job stops running.",
          {"job_id", "metric"})),
      inference_requests_(
          registry->AddCounter("selene_inference_requests_total",
                               "Inference requests (Segment, Classify, ModelInfer) answered, by "
                               "the model that answered and gRPC code.",
                               {"method", "model", "code"})),
      inference_latency_(
          registry->AddHistogram("selene_inference_request_seconds",
                                 "Inference request (Segment, Classify, ModelInfer) latency in the "
                                 "server, from the call's start to its answer.",
                                 {"method"}, ExponentialBuckets(0.001, 2, 15))),
      inference_queue_wait_(registry->AddHistogram(
          "selene_inference_queue_seconds",
          "Time an image waited in its model's batch queue before its batch ran.", {},
          ExponentialBuckets(0.0001, 2, 16))),
      batch_size_(registry->AddHistogram("selene_inference_batch_size",
                                         "Images per forward pass of the dynamic batcher.", {},
                                         ExponentialBuckets(1, 2, 8))),
      worker_info_(registry->AddGauge("selene_worker_info",
                                      "1, naming this server in the job queue (--worker_id) and "
                                      "the queue's engine (sqlite, postgresql).",
                                      {"worker", "store"})),
      worker_jobs_started_(registry->AddCounter(
          "selene_worker_jobs_started_total",
          "Jobs this worker claimed from the queue and started (a resumed job counts again).",
          {"worker"})),
      worker_leases_lost_(registry->AddCounter(
          "selene_worker_leases_lost_total",
          "Running jobs this worker lost to another after it failed to renew their lease "
          "(paused, cut off from the store); it stopped them and wrote nothing more.",
          {"worker"})) {
  // Every outcome present from the start, so rate() and increase() see the first one.
  for (v1::JobState state :
       {v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    jobs_finished_.WithLabels({StateLabel(state)});
  }
  jobs_submitted_.Get();
  registry->AddCollected("selene_jobs", "Training jobs by state, as the job store holds them.",
                         metrics::MetricType::kGauge, {"state"},
                         [this] { return CollectJobStates(); });
  registry->AddCollected("selene_models_loaded", "Models loaded in memory for serving.",
                         metrics::MetricType::kGauge, {}, [this] { return CollectModelsLoaded(); });
  registry->AddCollected("selene_worker_jobs_running", "Training jobs this worker runs now.",
                         metrics::MetricType::kGauge, {"worker"},
                         [this] { return CollectRunningJobs(); });
}

void ServerMetrics::IdentifyWorker(const std::string& worker, const std::string& engine,
                                   std::function<int()> running) {
  worker_ = worker;
  worker_info_.WithLabels({worker, engine}).Set(1);
  worker_jobs_started_.WithLabels({worker});
  worker_leases_lost_.WithLabels({worker});
  absl::MutexLock lock(&sources_mu_);
  running_jobs_ = std::move(running);
}

void ServerMetrics::OnLeaseLost() { worker_leases_lost_.WithLabels({worker_}).Increment(); }

std::vector<metrics::Sample> ServerMetrics::CollectRunningJobs() {
  absl::MutexLock lock(&sources_mu_);
  if (!running_jobs_) return {};
  metrics::Sample sample;
  sample.label_values = {worker_};
  sample.value = static_cast<double>(running_jobs_());
  return {sample};
}

void ServerMetrics::CountJobsIn(jobs::JobStore* store) {
  absl::MutexLock lock(&sources_mu_);
  store_ = store;
}

void ServerMetrics::CountModelsIn(const serving::ModelRegistry* models) {
  absl::MutexLock lock(&sources_mu_);
  models_ = models;
}

std::vector<metrics::Sample> ServerMetrics::CollectJobStates() {
  absl::MutexLock lock(&sources_mu_);
  std::vector<metrics::Sample> samples;
  if (store_ == nullptr) return samples;
  StatusOr<std::map<v1::JobState, int64_t>> counts = store_->CountByState();
  if (!counts.ok()) return samples;  // the scrape goes on without this family's samples
  for (const auto& [state, count] : *counts) {
    metrics::Sample sample;
    sample.label_values = {StateLabel(state)};
    sample.value = static_cast<double>(count);
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::vector<metrics::Sample> ServerMetrics::CollectModelsLoaded() {
  absl::MutexLock lock(&sources_mu_);
  if (models_ == nullptr) return {};
  metrics::Sample sample;
  sample.value = static_cast<double>(models_->LoadedJobIds().size());
  return {sample};
}

void ServerMetrics::Follow(events::JobEventHub* hub) {
  subscription_ = hub->Subscribe("", [this](const v1::JobEvent& event) { OnJobEvent(event); });
}

void ServerMetrics::OnJobEvent(const v1::JobEvent& event) {
  const std::string& job_id = event.job_id();
  absl::MutexLock lock(&mu_);
  if (event.has_state_change()) {
    const v1::StateChange& change = event.state_change();
    if (change.from_state() == v1::JOB_STATE_UNSPECIFIED) jobs_submitted_.Get().Increment();
    if (change.from_state() == v1::JOB_STATE_RUNNING) JobLeftRunning(job_id);
    if (change.to_state() == v1::JOB_STATE_QUEUED) queued_since_[job_id] = EventTime(event);
    if (change.to_state() == v1::JOB_STATE_RUNNING) {
      // The hub carries this server's own commits with their kind: a start here is a claim by
      // this worker.
      worker_jobs_started_.WithLabels({worker_}).Increment();
      running_metrics_.try_emplace(job_id);
      // Jobs queued before this process started have no queued time here: not observed.
      if (auto queued = queued_since_.find(job_id); queued != queued_since_.end()) {
        queue_wait_.Get().Observe(absl::ToDoubleSeconds(EventTime(event) - queued->second));
        queued_since_.erase(queued);
      }
    }
    if (IsTerminal(change.to_state())) {
      queued_since_.erase(job_id);
      jobs_finished_.WithLabels({StateLabel(change.to_state())}).Increment();
    }
    return;
  }
  // Progress of a job not (or no longer) running here, e.g. delivered after its state change:
  // recording it would leave series behind that nothing removes.
  auto running = running_metrics_.find(job_id);
  if (running == running_metrics_.end()) return;
  if (event.has_step_progress()) {
    job_epoch_.WithLabels({job_id}).Set(static_cast<double>(event.step_progress().epoch()));
  } else if (event.has_epoch_end()) {
    const v1::EpochEnd& epoch = event.epoch_end();
    job_epoch_.WithLabels({job_id}).Set(static_cast<double>(epoch.epoch()));
    std::vector<std::string>& names = running->second;
    auto set = [&](const std::string& name, double value) {
      job_validation_metric_.WithLabels({job_id, name}).Set(value);
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    };
    set("val_loss", epoch.val_loss());
    for (const auto& [name, value] : epoch.metrics()) set(name, value);
  }
}

void ServerMetrics::JobLeftRunning(const std::string& job_id) {
  job_epoch_.Remove({job_id});
  if (auto found = running_metrics_.find(job_id); found != running_metrics_.end()) {
    for (const std::string& name : found->second) job_validation_metric_.Remove({job_id, name});
    running_metrics_.erase(found);
  }
}

void ServerMetrics::OnTrainingStep(const jobs::TrainingStepReport& step) {
  step_seconds_.WithLabels({step.device}).Observe(step.seconds);
  images_trained_.WithLabels({step.device}).Increment(static_cast<double>(step.images));
}

void ServerMetrics::OnBatch(const serving::BatchReport& batch) {
  batch_size_.Get().Observe(batch.size);
  metrics::Histogram& waits = inference_queue_wait_.Get();
  for (const absl::Duration wait : batch.queue_waits) waits.Observe(absl::ToDoubleSeconds(wait));
}

void ServerMetrics::OnInferenceRequest(absl::string_view method, absl::string_view model,
                                       StatusCode code, absl::Duration latency) {
  const std::string model_label =
      code == StatusCode::kOk ? std::string(model) : RequestedModelLabel(model);
  inference_requests_.WithLabels({std::string(method), model_label, absl::StatusCodeToString(code)})
      .Increment();
  inference_latency_.WithLabels({std::string(method)}).Observe(absl::ToDoubleSeconds(latency));
}

}  // namespace selene::api
