// What every inference RPC shares, whichever protocol it speaks (selene.v1.InferenceService or
// the Open Inference Protocol): admission while the server is not draining, the bearer token,
// a small worker pool to run the engine on (it blocks on decoding and on the model's batch, which
// must not tie up gRPC's callback threads, or concurrent requests could not reach the batcher
// together), the call's deadline passed down, and one metrics record per call. One object serves
// both services, so one drain covers them and they share the workers.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <chrono>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "common/worker_pool.h"
#include "server/api/grpc_status.h"
#include "server/api/guarded.h"
#include "server/api/server_metrics.h"
#include "server/api/token_auth.h"

namespace selene::api {

struct InferenceCallsOptions {
  // Requests the engine works on at once. Twice the batcher's max batch size lets one batch
  // form while the previous one runs.
  int workers = 16;
  // Requests waiting for a worker; beyond it calls are RESOURCE_EXHAUSTED at once.
  int max_pending = 256;
};

class InferenceCalls {
 public:
  // `auth` may be null (no authentication), and so may `metrics` (nothing recorded); when given,
  // they must outlive this.
  InferenceCalls(const TokenAuth* auth, ServerMetrics* metrics, InferenceCallsOptions options);
  // Shutdown().
  ~InferenceCalls();
  InferenceCalls(const InferenceCalls&) = delete;
  InferenceCalls& operator=(const InferenceCalls&) = delete;

  // Answers the call on a worker: admits and authenticates it, runs `infer(request, deadline)`
  // (a StatusOr<Response>), and finishes the reactor with its status. The metrics record names
  // `model_of(response)` when it succeeded, `requested_model` otherwise.
  template <typename Request, typename Response, typename Infer, typename ModelOf>
  grpc::ServerUnaryReactor* RunOnWorker(const char* method, grpc::CallbackServerContext* context,
                                        const Request* request, Response* response,
                                        std::string requested_model, Infer infer, ModelOf model_of);

  // Answers the call on the calling thread (for quick calls that never wait on a model's load
  // or batch): admits and authenticates it and finishes it with `answer()`'s status, writing its
  // value to `response`. Not counted in the inference metrics.
  template <typename Response, typename Answer>
  grpc::ServerUnaryReactor* RunInline(const char* method, grpc::CallbackServerContext* context,
                                      Response* response, Answer answer);

  // From now on every new call is UNAVAILABLE "selene-server is shutting down"; the calls already
  // accepted carry on to their answer. Idempotent.
  void StartDraining() ABSL_LOCKS_EXCLUDED(mu_);
  bool draining() const ABSL_LOCKS_EXCLUDED(mu_);
  // Calls accepted and not yet answered: counted from the handler's entry to the reactor's
  // Finish, so a call waiting for a worker or for its batch counts.
  int in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until exactly `n` calls are in flight; false if `deadline` passes first.
  bool AwaitInFlight(int n, absl::Time deadline) const ABSL_LOCKS_EXCLUDED(mu_);
  // Drains, runs the requests already queued, then joins the workers.
  void Shutdown();

 private:
  // Counts a new call in flight, or refuses it (Unavailable) once draining.
  Status Admit() ABSL_LOCKS_EXCLUDED(mu_);
  void Release() ABSL_LOCKS_EXCLUDED(mu_);
  static absl::Time DeadlineOf(const grpc::CallbackServerContext& context);

  const TokenAuth* const auth_;
  ServerMetrics* const metrics_;
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  WorkerPool workers_;  // last: its threads stop before the state they use goes
};

template <typename Request, typename Response, typename Infer, typename ModelOf>
grpc::ServerUnaryReactor* InferenceCalls::RunOnWorker(const char* method,
                                                      grpc::CallbackServerContext* context,
                                                      const Request* request, Response* response,
                                                      std::string requested_model, Infer infer,
                                                      ModelOf model_of) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time started = absl::Now();
  ServerMetrics* const metrics = metrics_;
  const auto record = [=](const Status& status) {
    if (metrics != nullptr) {
      metrics->OnInferenceRequest(method, status.ok() ? model_of(*response) : requested_model,
                                  status.code(), absl::Now() - started);
    }
  };
  if (Status admitted = Admit(); !admitted.ok()) {
    record(admitted);
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  // Every admitted call ends here exactly once, and stops counting once answered (the drain then
  // knows every answer is on its way).
  const auto finish = [=](const Status& status) {
    record(status);
    reactor->Finish(ToGrpcStatus(status));
    Release();
  };
  if (auth_ != nullptr) {
    if (Status status = auth_->Authenticate(*context); !status.ok()) {
      finish(status);
      return reactor;
    }
  }
  const absl::Time deadline = DeadlineOf(*context);
  Status scheduled = workers_.Schedule([=] {
    // The client may have given up while the request waited for a worker.
    if (context->IsCancelled()) {
      finish(CancelledError("cancelled by the client"));
      return;
    }
    StatusOr<Response> result =
        Guarded<StatusOr<Response>>(method, [&] { return infer(*request, deadline); });
    if (result.ok()) *response = *std::move(result);
    finish(result.status());
  });
  if (!scheduled.ok()) finish(scheduled);
  return reactor;
}

template <typename Response, typename Answer>
grpc::ServerUnaryReactor* InferenceCalls::RunInline(const char* method,
                                                    grpc::CallbackServerContext* context,
                                                    Response* response, Answer answer) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Status admitted = Admit(); !admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  StatusOr<Response> result = Guarded<StatusOr<Response>>(method, [&]() -> StatusOr<Response> {
    if (auth_ != nullptr) SELENE_RETURN_IF_ERROR(auth_->Authenticate(*context));
    return answer();
  });
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  Release();
  return reactor;
}

}  // namespace selene::api
