#include "server/api/inference_service_impl.h"

#include <chrono>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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

// Runs `infer` on a worker and finishes the call with its result, recorded in `metrics` (when
// given) with the model that answered.
template <typename Request, typename Response, typename Infer>
grpc::ServerUnaryReactor* RunOnWorker(const char* method, WorkerPool& workers,
                                      const TokenAuth* auth, ServerMetrics* metrics,
                                      grpc::CallbackServerContext* context, const Request* request,
                                      Response* response, Infer infer) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time started = absl::Now();
  auto finish = [=](const Status& status) {
    if (metrics != nullptr) {
      metrics->OnInferenceRequest(method, status.ok() ? response->model_job_id() : request->model(),
                                  status.code(), absl::Now() - started);
    }
    reactor->Finish(ToGrpcStatus(status));
  };
  if (auth != nullptr) {
    if (Status status = auth->Authenticate(*context); !status.ok()) {
      finish(status);
      return reactor;
    }
  }
  const absl::Time deadline = DeadlineOf(*context);
  Status scheduled = workers.Schedule([=] {
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

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(serving::InferenceEngine* engine, const TokenAuth* auth,
                                           InferenceServiceOptions options, ServerMetrics* metrics)
    : engine_(engine),
      auth_(auth),
      metrics_(metrics),
      workers_("inference", options.workers, options.max_pending) {}

InferenceServiceImpl::~InferenceServiceImpl() { Shutdown(); }

void InferenceServiceImpl::Shutdown() { workers_.Shutdown(); }

grpc::ServerUnaryReactor* InferenceServiceImpl::Segment(grpc::CallbackServerContext* context,
                                                        const v1::SegmentRequest* request,
                                                        v1::SegmentResponse* response) {
  return RunOnWorker("Segment", workers_, auth_, metrics_, context, request, response,
                     [this](const v1::SegmentRequest& r, absl::Time deadline) {
                       return engine_->Segment(r, deadline);
                     });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest* request,
                                                         v1::ClassifyResponse* response) {
  return RunOnWorker("Classify", workers_, auth_, metrics_, context, request, response,
                     [this](const v1::ClassifyRequest& r, absl::Time deadline) {
                       return engine_->Classify(r, deadline);
                     });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                           const v1::ListModelsRequest* request,
                                                           v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  StatusOr<v1::ListModelsResponse> result = Guarded<StatusOr<v1::ListModelsResponse>>(
      "ListModels", [&]() -> StatusOr<v1::ListModelsResponse> {
        if (auth_ != nullptr) SELENE_RETURN_IF_ERROR(auth_->Authenticate(*context));
        return engine_->ListModels(*request);
      });
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

}  // namespace selene::api
