#include "server/api/inference_service_impl.h"

#include <chrono>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/api/enum_filter.h"
#include "server/api/grpc_status.h"
#include "server/api/guarded.h"

namespace selene::api {
namespace {

// The call's deadline for the engine: the batcher drops a request whose client gave up waiting.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(serving::InferenceEngine* engine, const TokenAuth* auth,
                                           InferenceServiceOptions options, ServerMetrics* metrics)
    : engine_(engine),
      auth_(auth),
      metrics_(metrics),
      workers_("inference", options.workers, options.max_pending) {}

InferenceServiceImpl::~InferenceServiceImpl() { Shutdown(); }

void InferenceServiceImpl::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

int InferenceServiceImpl::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

bool InferenceServiceImpl::AwaitInFlight(int n, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  const auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == n; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

void InferenceServiceImpl::Shutdown() {
  StartDraining();
  workers_.Shutdown();
}

Status InferenceServiceImpl::Admit() {
  absl::MutexLock lock(&mu_);
  // A client whose request was still arriving when the drain began lands here too: UNAVAILABLE
  // tells it to retry elsewhere, where gRPC itself would cancel the call once the listener shuts.
  if (draining_) return absl::UnavailableError("selene-server is shutting down");
  ++in_flight_;
  return OkStatus();
}

void InferenceServiceImpl::Release() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

template <typename Request, typename Response, typename Infer>
grpc::ServerUnaryReactor* InferenceServiceImpl::RunOnWorker(const char* method,
                                                            grpc::CallbackServerContext* context,
                                                            const Request* request,
                                                            Response* response, Infer infer) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time started = absl::Now();
  ServerMetrics* const metrics = metrics_;
  // Recorded with the model that answered.
  const auto record = [=](const Status& status) {
    if (metrics != nullptr) {
      metrics->OnInferenceRequest(method, status.ok() ? response->model_job_id() : request->model(),
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

grpc::ServerUnaryReactor* InferenceServiceImpl::Segment(grpc::CallbackServerContext* context,
                                                        const v1::SegmentRequest* request,
                                                        v1::SegmentResponse* response) {
  return RunOnWorker("Segment", context, request, response,
                     [this](const v1::SegmentRequest& r, absl::Time deadline) {
                       return engine_->Segment(r, deadline);
                     });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest* request,
                                                         v1::ClassifyResponse* response) {
  return RunOnWorker("Classify", context, request, response,
                     [this](const v1::ClassifyRequest& r, absl::Time deadline) {
                       return engine_->Classify(r, deadline);
                     });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                           const v1::ListModelsRequest* request,
                                                           v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Status admitted = Admit(); !admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  StatusOr<v1::ListModelsResponse> result = Guarded<StatusOr<v1::ListModelsResponse>>(
      "ListModels", [&]() -> StatusOr<v1::ListModelsResponse> {
        if (auth_ != nullptr) SELENE_RETURN_IF_ERROR(auth_->Authenticate(*context));
        SELENE_RETURN_IF_ERROR(CheckEnumFilter("task", request->task(), v1::Task_descriptor()));
        return engine_->ListModels(*request);
      });
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  Release();
  return reactor;
}

}  // namespace selene::api
