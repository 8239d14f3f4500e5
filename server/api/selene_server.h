// selene-server assembled: job store, device pool, runner and scheduler; model catalog, registry
// and inference engine; the two Selene services with token auth, health checking and
// reflection; one gRPC server. main.cc turns flags into SeleneServerOptions and signals into
// Shutdown; tests start the same object in-process on a loopback port.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/server.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "server/api/call_tracker.h"
#include "server/api/inference_calls.h"
#include "server/api/inference_service_impl.h"
#include "server/api/job_model_catalog.h"
#include "server/api/open_inference_service.h"
#include "server/api/server_metrics.h"
#include "server/api/token_auth.h"
#include "server/api/training_service_impl.h"
#include "server/events/job_event_hub.h"
#include "server/http/http_server.h"
#include "server/jobs/device_pool.h"
#include "server/jobs/job_runner.h"
#include "server/jobs/job_store.h"
#include "server/jobs/scheduler.h"
#include "server/metrics/registry.h"
#include "server/serving/inference_engine.h"
#include "server/serving/model_registry.h"
#include "server/serving/open_inference.h"

namespace selene::api {

struct SeleneServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one (see port())
  // GET /metrics (Prometheus text format) on host:port; "" = no metrics endpoint (they are
  // still kept: see metrics()); port 0 picks a free one (see metrics_port()).
  std::string metrics_listen;
  // REST v2, the Open Inference Protocol over HTTP (server/api/open_inference_rest.h), on
  // host:port with the same TLS files and tokens as gRPC; "" = none; port 0 picks a free one
  // (see http_port()).
  std::string http_listen;
  std::string state_dir = "var";   // selene.db, jobs/<id>/, cache/
  std::string data_root = "data";  // data.path of file data sets is relative to it
  // The job queue: "sqlite" (<state_dir>/selene.db, this server alone) or a PostgreSQL URI
  // ("postgresql://user@host/db") that several servers share.
  std::string store = "sqlite";
  std::string store_password_file;  // the PostgreSQL password alone; "" = the URI's or PGPASSFILE
  // This server's name in the queue; "" = "<host>:<pid>".
  std::string worker_id;
  absl::Duration lease = absl::Seconds(30);  // see jobs::SchedulerOptions::lease
  // The folder of the job folders (jobs/<id>/): shared by every server of a PostgreSQL store
  // (NFS, a ReadWriteMany volume); "" = state_dir.
  std::string artifact_root;
  // Decoded data sets; "" = <state_dir>/cache. Another folder is linked in as <state_dir>/cache,
  // where the job runner keeps its cache.
  std::string cache_dir;
  std::vector<std::string> devices;  // empty: every CUDA device, else the CPU
  int jobs_per_device = 1;
  int queue_limit = 100;
  // A submitted job whose estimated memory exceeds this is refused (RESOURCE_EXHAUSTED naming
  // the estimate and the limit); 0 = 80% of the machine's physical memory.
  int64_t max_job_memory_mb = 0;
  int64_t max_message_bytes = int64_t{64} << 20;
  std::string tls_cert_file;  // PEM; both or neither
  std::string tls_key_file;
  std::string token_file;  // "" = no authentication
  int max_batch_size = 8;
  // Images with more pixels are refused (INVALID_ARGUMENT naming the size and the limit).
  int64_t max_image_pixels = int64_t{4096} * 4096;
  absl::Duration max_queue_delay = absl::Milliseconds(5);
  int max_loaded_models = 4;
  int inference_threads = 1;  // each model batcher's intra-op threads
  // "fp32" or "bf16": served forward passes under autocast to bfloat16
  // (serving::ServableModelOptions::bfloat16).
  std::string inference_precision = "fp32";
  // Each training job's intra-op threads; 0 = hardware threads minus inference_threads, at
  // least 1, so inference never waits behind training for the CPU.
  int training_threads = 0;
  int inference_workers = 0;  // requests in the engine at once; 0 = 2 * max_batch_size, >= 4
  absl::Duration shutdown_grace = absl::Seconds(10);
  absl::Duration progress_interval = absl::Milliseconds(500);  // StepProgress throttle
  absl::Duration scheduler_poll = absl::Milliseconds(500);
  // One line for the operator (job state changes, scheduler errors); default: stderr.
  std::function<void(const std::string&)> log;

  // Test seams, unset in production: copied into every loaded model's batcher (see
  // serving::DynamicBatcherOptions), so tests decide what a batch holds and when it runs.
  std::function<bool(int queued)> batcher_hold_dispatch;
  std::function<void(int size)> batcher_before_batch;
};

class SeleneServer {
 public:
  // Builds everything, starts the gRPC server, then the scheduler (which requeues the jobs a
  // previous process left running, to resume from their checkpoints). InvalidArgument: an option
  // is wrong (a device, a TLS or token file, a limit); anything else is the environment's fault
  // (state dir not writable or in use by another server, job store unreadable, port taken).
  static StatusOr<std::unique_ptr<SeleneServer>> Start(SeleneServerOptions options);

  // Shutdown().
  ~SeleneServer();
  SeleneServer(const SeleneServer&) = delete;
  SeleneServer& operator=(const SeleneServer&) = delete;

  // The address it listens on, with the port actually bound.
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // The metrics endpoint's address with the port actually bound; "" when there is none.
  const std::string& metrics_address() const { return metrics_address_; }
  int metrics_port() const { return metrics_http_ == nullptr ? 0 : metrics_http_->port(); }
  // The REST endpoint's address with the port actually bound; "" when there is none.
  const std::string& http_address() const { return http_address_; }
  int http_port() const { return rest_http_ == nullptr ? 0 : rest_http_->port(); }
  const SeleneServerOptions& options() const { return options_; }
  // Why the server runs read-only (its disk is full: no training, no submits), or "".
  const std::string& read_only_reason() const { return read_only_reason_; }

  // Graceful stop, in this order: health NOT_SERVING for every service (Check, and open Watch
  // streams are sent it) while the listener still answers; new calls UNAVAILABLE "selene-server
  // is shutting down" and job watches end (UNAVAILABLE with the sequence to resume from); calls
  // in flight finish, downloads included, for up to shutdown_grace (then they are cancelled);
  // REST, whose /v2/health/ready has said 503 and whose infer has refused new requests since the
  // drain began, closes its listener once its requests in flight are answered; the gRPC
  // listener closes, cutting health watches and reflection streams; running jobs checkpoint
  // and go back to QUEUED, for up to shutdown_grace again; models unload. Idempotent.
  // DeadlineExceeded when jobs were still stopping at that deadline (they resume from their
  // previous checkpoint at the next start).
  Status Shutdown() ABSL_LOCKS_EXCLUDED(shutdown_mu_);

  jobs::JobStore& store() { return *store_; }
  jobs::Scheduler& scheduler() { return *scheduler_; }
  serving::ModelRegistry& registry() { return *registry_; }
  const metrics::Registry& metrics() const { return metrics_; }
  TrainingServiceImpl& training_service() { return *training_service_; }
  InferenceServiceImpl& inference_service() { return *inference_service_; }
  // The drain and workers both inference services share.
  InferenceCalls& inference_calls() { return *inference_calls_; }
  serving::OpenInference& open_inference() { return *open_inference_; }
  grpc::Server& grpc_server() { return *server_; }

 private:
  explicit SeleneServer(SeleneServerOptions options);
  Status Build();
  // Opens the job store, read-only when the disk is too full to open it for writing.
  Status OpenStore();
  void Log(const std::string& line) const;

  SeleneServerOptions options_;
  std::string address_;
  int port_ = 0;
  std::string metrics_address_;
  std::string http_address_;
  std::string worker_id_;  // options_.worker_id or "<host>:<pid>"
  int lock_fd_ = -1;       // flock on <state_dir>/selene.lock, held for the server's life
  std::string read_only_reason_;

  // Declared in dependency order: destroyed in reverse, users before what they use.
  metrics::Registry metrics_;
  // Every call but health watches and reflection streams, for the drain; outlives server_.
  CallTracker calls_{{"/grpc.health.v1.Health/", "/grpc.reflection."}};
  events::JobEventHub hub_;
  ServerMetrics server_metrics_{&metrics_};
  std::unique_ptr<jobs::JobStore> store_;
  std::unique_ptr<jobs::DevicePool> pool_;
  std::unique_ptr<jobs::JobRunner> runner_;
  std::unique_ptr<jobs::Scheduler> scheduler_;
  std::unique_ptr<JobModelCatalog> catalog_;
  std::unique_ptr<serving::ModelRegistry> registry_;
  std::unique_ptr<serving::InferenceEngine> engine_;
  std::unique_ptr<serving::OpenInference> open_inference_;
  std::unique_ptr<TokenAuth> auth_;
  std::unique_ptr<TrainingServiceImpl> training_service_;
  std::unique_ptr<InferenceCalls> inference_calls_;
  std::unique_ptr<InferenceServiceImpl> inference_service_;
  std::unique_ptr<OpenInferenceServiceImpl> open_inference_service_;
  std::unique_ptr<events::JobEventHub::Subscription> log_subscription_;
  std::unique_ptr<grpc::Server> server_;
  // REST v2 over open_inference_ and server_metrics_ (stopped by Shutdown before they go).
  std::unique_ptr<http::HttpServer> rest_http_;
  // Last: scrapes read the store and the model registry through the collectors.
  std::unique_ptr<http::HttpServer> metrics_http_;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  Status shutdown_status_ ABSL_GUARDED_BY(shutdown_mu_);
};

}  // namespace selene::api
