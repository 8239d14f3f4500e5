#include "server/api/inference_service_impl.h"

#include "server/api/enum_filter.h"

namespace selene::api {

InferenceServiceImpl::InferenceServiceImpl(serving::InferenceEngine* engine, InferenceCalls* calls)
    : engine_(engine), calls_(calls) {}

grpc::ServerUnaryReactor* InferenceServiceImpl::Segment(grpc::CallbackServerContext* context,
                                                        const v1::SegmentRequest* request,
                                                        v1::SegmentResponse* response) {
  return calls_->RunOnWorker(
      "Segment", context, request, response, request->model(),
      [this](const v1::SegmentRequest& r, absl::Time deadline) {
        return engine_->Segment(r, deadline);
      },
      [](const v1::SegmentResponse& r) { return r.model_job_id(); });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                         const v1::ClassifyRequest* request,
                                                         v1::ClassifyResponse* response) {
  return calls_->RunOnWorker(
      "Classify", context, request, response, request->model(),
      [this](const v1::ClassifyRequest& r, absl::Time deadline) {
        return engine_->Classify(r, deadline);
      },
      [](const v1::ClassifyResponse& r) { return r.model_job_id(); });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                           const v1::ListModelsRequest* request,
                                                           v1::ListModelsResponse* response) {
  return calls_->RunInline(
      "ListModels", context, response, [&]() -> StatusOr<v1::ListModelsResponse> {
        SELENE_RETURN_IF_ERROR(CheckEnumFilter("task", request->task(), v1::Task_descriptor()));
        return engine_->ListModels(*request);
      });
}

}  // namespace selene::api
