// selene.v1.InferenceService over the serving layer's InferenceEngine: Segment and Classify run
// on a small worker pool the service owns (the engine blocks on decoding and on the model's
// batch, which must not tie up gRPC's callback threads, or concurrent requests could not reach
// the batcher together), with the call's deadline passed down; ListModels runs inline. For a
// graceful stop it drains: new calls are refused while the calls it accepted run to the end.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/worker_pool.h"
#include "selene/v1/inference_service.grpc.pb.h"
#include "selene/v1/inference_service.pb.h"
#include "server/api/server_metrics.h"
#include "server/api/token_auth.h"
#include "server/serving/inference_engine.h"

namespace selene::api {

struct InferenceServiceOptions {
  // Requests the engine works on at once. Twice the batcher's max batch size lets one batch
  // form while the previous one runs.
  int workers = 16;
  // Requests waiting for a worker; beyond it calls are RESOURCE_EXHAUSTED at once.
  int max_pending = 256;
};

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  // `engine` must outlive the service; `auth` may be null (no authentication), and so may
  // `metrics` (nothing recorded); when given, it must outlive the service.
  InferenceServiceImpl(serving::InferenceEngine* engine, const TokenAuth* auth,
                       InferenceServiceOptions options = {}, ServerMetrics* metrics = nullptr);
  // Shutdown().
  ~InferenceServiceImpl() override;

  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

  // From now on every new call is UNAVAILABLE "selene-server is shutting down"; the calls already
  // accepted carry on to their answer. Idempotent.
  void StartDraining() ABSL_LOCKS_EXCLUDED(mu_);

  // Calls accepted and not yet answered: counted from the handler's entry to the reactor's
  // Finish, so a call waiting for a worker or for its batch counts.
  int in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until exactly `n` calls are in flight; false if `deadline` passes first. For tests,
  // which wait for the calls they started to be accepted (the server's drain counts every call
  // with a CallTracker instead).
  bool AwaitInFlight(int n, absl::Time deadline) const ABSL_LOCKS_EXCLUDED(mu_);

  // Drains (StartDraining), runs the requests already queued, then joins the workers. Call after
  // the gRPC server's Shutdown has drained the calls (or the drain waits on them).
  void Shutdown();

 private:
  // Counts a new call in flight, or refuses it (Unavailable) once draining.
  Status Admit() ABSL_LOCKS_EXCLUDED(mu_);
  void Release() ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `infer` on a worker and finishes the call with its result.
  template <typename Request, typename Response, typename Infer>
  grpc::ServerUnaryReactor* RunOnWorker(const char* method, grpc::CallbackServerContext* context,
                                        const Request* request, Response* response, Infer infer);

  serving::InferenceEngine* const engine_;
  const TokenAuth* const auth_;
  ServerMetrics* const metrics_;
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  WorkerPool workers_;  // last: its threads stop before the state they use goes
};

}  // namespace selene::api
