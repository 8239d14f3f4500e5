// Selene's own metrics, defined on the registry the server passes in:
//  - jobs: by state (counted in the store at each scrape), submitted, finished by outcome, and
//    the time each spent queued before it ran;
//  - training: step time and images trained by device; each running job's epoch and latest
//    validation metrics (its series go when the job stops running);
//  - inference: requests by method, model and code, their latency, each request's wait in its
//    model's batch queue, batch sizes, and the models loaded;
//  - this worker of the queue (label worker, its --worker_id): its store engine, the jobs it
//    started and runs now, and the leases it lost. With a shared PostgreSQL store selene_jobs
//    is the whole fleet's queue (the same on every worker); these series are each worker's own.
// Fed by the job event hub, the runner's step hook, the batchers' batch hook and the inference
// service; every hook only updates in-memory series, so none of them blocks its caller.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "selene/v1/training_service.pb.h"
#include "server/events/job_event_hub.h"
#include "server/jobs/job_runner.h"
#include "server/jobs/job_store.h"
#include "server/metrics/registry.h"
#include "server/serving/dynamic_batcher.h"
#include "server/serving/model_registry.h"

namespace selene::api {

// Thread-safe.
class ServerMetrics {
 public:
  // Registers the families on `registry`, which must outlive this object and must not be
  // scraped after it goes (its collectors call back here).
  explicit ServerMetrics(metrics::Registry* registry);
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // selene_jobs{state} is counted in `store` at each scrape (so it is right after a restart
  // too), selene_models_loaded in `models`; nullptr detaches one (its family has no samples).
  // Each must stay alive until it is detached or this object goes.
  void CountJobsIn(jobs::JobStore* store) ABSL_LOCKS_EXCLUDED(sources_mu_);
  void CountModelsIn(const serving::ModelRegistry* models) ABSL_LOCKS_EXCLUDED(sources_mu_);
  // Takes every job's events from `hub` from now on, until this object goes. Subscribe before
  // the scheduler starts, so the jobs a restart requeues are seen.
  void Follow(events::JobEventHub* hub);

  // Names this server in the worker series: `worker` (--worker_id) on a store of `engine`
  // ("sqlite", "postgresql"); `running` counts the jobs it runs now (the scheduler's), and must
  // stay callable while this object lives. Call once, before the scheduler starts.
  void IdentifyWorker(const std::string& worker, const std::string& engine,
                      std::function<int()> running) ABSL_LOCKS_EXCLUDED(sources_mu_);
  // The scheduler found that another worker took one of this worker's jobs.
  void OnLeaseLost();

  void OnJobEvent(const v1::JobEvent& event) ABSL_LOCKS_EXCLUDED(mu_);
  void OnTrainingStep(const jobs::TrainingStepReport& step);
  void OnBatch(const serving::BatchReport& batch);
  // One Segment or Classify call as answered. `model`: the job that answered, or the name the
  // client sent when none did (unknown names all count as "unknown", so a client cannot grow
  // the series without bound).
  void OnInferenceRequest(absl::string_view method, absl::string_view model, StatusCode code,
                          absl::Duration latency);

 private:
  void JobLeftRunning(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<metrics::Sample> CollectJobStates() ABSL_LOCKS_EXCLUDED(sources_mu_);
  std::vector<metrics::Sample> CollectModelsLoaded() ABSL_LOCKS_EXCLUDED(sources_mu_);
  std::vector<metrics::Sample> CollectRunningJobs() ABSL_LOCKS_EXCLUDED(sources_mu_);

  metrics::Family<metrics::Counter>& jobs_submitted_;
  metrics::Family<metrics::Counter>& jobs_finished_;
  metrics::Family<metrics::Histogram>& queue_wait_;
  metrics::Family<metrics::Histogram>& step_seconds_;
  metrics::Family<metrics::Counter>& images_trained_;
  metrics::Family<metrics::Gauge>& job_epoch_;
  metrics::Family<metrics::Gauge>& job_validation_metric_;
  metrics::Family<metrics::Counter>& inference_requests_;
  metrics::Family<metrics::Histogram>& inference_latency_;
  metrics::Family<metrics::Histogram>& inference_queue_wait_;
  metrics::Family<metrics::Histogram>& batch_size_;
  metrics::Family<metrics::Gauge>& worker_info_;
  metrics::Family<metrics::Counter>& worker_jobs_started_;
  metrics::Family<metrics::Counter>& worker_leases_lost_;

  absl::Mutex sources_mu_;  // held while a scrape reads them, so detaching waits for it
  jobs::JobStore* store_ ABSL_GUARDED_BY(sources_mu_) = nullptr;
  const serving::ModelRegistry* models_ ABSL_GUARDED_BY(sources_mu_) = nullptr;
  std::function<int()> running_jobs_ ABSL_GUARDED_BY(sources_mu_);
  // Set once by IdentifyWorker, before any event that reads it.
  std::string worker_ = "local";

  absl::Mutex mu_;
  std::map<std::string, absl::Time> queued_since_ ABSL_GUARDED_BY(mu_);
  // The running jobs, with the validation metric names each has series for (removed when the
  // job stops running).
  std::map<std::string, std::vector<std::string>> running_metrics_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<events::JobEventHub::Subscription> subscription_;
};

}  // namespace selene::api
