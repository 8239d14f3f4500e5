// selene.v1.TrainingService over the job store and scheduler: admission (spec validation with
// field paths, data path confined to the data root, encoder job known, a device the server has,
// estimated memory within the limit, queue limit) then the scheduler; job queries; WatchJob
// streams (JobWatcher); artifacts listed with their SHA-256 and downloaded in 1 MiB chunks from
// any offset; cross-run comparison from run_summary.json.
// Protos in, protos out: every error is a selene::Status until ToGrpcStatus at the very end.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "selene/v1/training_service.grpc.pb.h"
#include "selene/v1/training_service.pb.h"
#include "server/api/artifact_index.h"
#include "server/api/job_watcher.h"
#include "server/api/token_auth.h"
#include "server/events/job_event_hub.h"
#include "server/jobs/job_store.h"
#include "server/jobs/scheduler.h"

namespace selene::api {

struct TrainingServiceOptions {
  std::string state_dir;  // job folders are <state_dir>/jobs/<id>
  std::string data_root;  // data.path of file data sets must resolve inside it
  int queue_limit = 100;  // QUEUED jobs at most; a submit beyond is RESOURCE_EXHAUSTED
  // Non-empty: the server started read-only (its disk is full) for this reason; SubmitJob and
  // CancelJob are UNAVAILABLE saying so, queries and downloads work.
  std::string read_only_reason;
  // The devices jobs train on (DevicePool::devices(), canonical: "cpu", "cuda:0", ...). A spec
  // whose training.device names another is refused; empty = no device check.
  std::vector<std::string> devices;
  // A job whose estimated memory (server/jobs/memory_estimate.h) exceeds this many bytes is
  // refused with RESOURCE_EXHAUSTED; 0 = no limit.
  int64_t max_job_memory_bytes = 0;
  // How the limit was set, for that refusal's message.
  std::string max_job_memory_origin = "--max_job_memory_mb";
};

class TrainingServiceImpl final : public v1::TrainingService::CallbackService {
 public:
  // Download chunk size.
  static constexpr int64_t kChunkBytes = int64_t{1} << 20;

  // All pointers must outlive the service; `auth` may be null (no authentication). The service
  // must outlive the gRPC server it is registered with.
  TrainingServiceImpl(jobs::JobStore* store, jobs::Scheduler* scheduler, events::JobEventHub* hub,
                      const TokenAuth* auth, TrainingServiceOptions options);
  ~TrainingServiceImpl() override;

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const v1::SubmitJobRequest* request,
                                      v1::SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* context,
                                                   const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* ListArtifacts(grpc::CallbackServerContext* context,
                                          const v1::ListArtifactsRequest* request,
                                          v1::ListArtifactsResponse* response) override;
  grpc::ServerWriteReactor<v1::ArtifactChunk>* DownloadArtifact(
      grpc::CallbackServerContext* context, const v1::DownloadArtifactRequest* request) override;
  grpc::ServerUnaryReactor* CompareJobs(grpc::CallbackServerContext* context,
                                        const v1::CompareJobsRequest* request,
                                        v1::CompareJobsResponse* response) override;

  // For a graceful stop, before the server's own Shutdown: every new call is refused with
  // UNAVAILABLE "selene-server is shutting down" (calls already running, downloads included,
  // carry on), and open watches end with UNAVAILABLE naming the sequence to resume from (they
  // would otherwise hold the drain until its deadline).
  void Shutdown();

  int active_watches() const { return watcher_.active_watches(); }

  // Goes read-only (see TrainingServiceOptions::read_only_reason) after it was built.
  void SetReadOnly(std::string reason) ABSL_LOCKS_EXCLUDED(read_only_mu_);

 private:
  // Every call's entry check: refused while draining (Shutdown), then the bearer token.
  Status Authenticate(const grpc::CallbackServerContext& context) const;

  StatusOr<v1::SubmitJobResponse> Submit(const v1::SubmitJobRequest& request)
      ABSL_LOCKS_EXCLUDED(submit_mu_);
  // The spec resolved, when this server can run it (every admission check passed).
  StatusOr<spec::ResolvedJobSpec> Admit(const v1::JobSpec& spec) const;
  Status CheckWritable() const;
  // Whether a QUEUED job carries `request_id` (a retried submit is answered even when full).
  StatusOr<bool> QueuedWithRequestId(const std::string& request_id) const;
  StatusOr<v1::Job> Cancel(const v1::CancelJobRequest& request);
  StatusOr<v1::ListArtifactsResponse> ListArtifactsOf(const std::string& job_id);
  StatusOr<v1::CompareJobsResponse> Compare(const v1::CompareJobsRequest& request);

  jobs::JobStore* const store_;
  jobs::Scheduler* const scheduler_;
  const TokenAuth* const auth_;
  const TrainingServiceOptions options_;
  ArtifactIndex artifacts_;
  JobWatcher watcher_;
  std::atomic<bool> draining_{false};  // set by Shutdown
  mutable absl::Mutex read_only_mu_;
  std::string read_only_reason_ ABSL_GUARDED_BY(read_only_mu_);
  // Held from counting the queue to the submit, so concurrent submits cannot overshoot the limit.
  absl::Mutex submit_mu_;
};

}  // namespace selene::api
