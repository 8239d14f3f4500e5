#include "server/api/open_inference_service.h"

#include <string>

namespace selene::api {

OpenInferenceServiceImpl::OpenInferenceServiceImpl(serving::OpenInference* open_inference,
                                                   InferenceCalls* calls)
    : open_inference_(open_inference), calls_(calls) {}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest* /*request*/,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest* /*request*/,
    inference::ServerReadyResponse* response) {
  response->set_ready(!calls_->draining());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  return calls_->RunInline("ModelReady", context, response,
                           [&] { return open_inference_->ModelReady(*request); });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  return calls_->RunInline("ServerMetadata", context, response,
                           [&]() -> StatusOr<inference::ServerMetadataResponse> {
                             return open_inference_->ServerMetadata();
                           });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  return calls_->RunInline("ModelMetadata", context, response,
                           [&] { return open_inference_->ModelMetadata(*request); });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  return calls_->RunOnWorker(
      "ModelInfer", context, request, response, request->model_name(),
      [this](const inference::ModelInferRequest& r, absl::Time deadline) {
        return open_inference_->ModelInfer(r, deadline);
      },
      [](const inference::ModelInferResponse& r) -> std::string {
        const auto job = r.parameters().find("job_id");
        return job == r.parameters().end() ? r.model_name() : job->second.string_param();
      });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  return calls_->RunInline("ModelConfig", context, response,
                           [&] { return open_inference_->ModelConfig(*request); });
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  return calls_->RunInline("ModelStatistics", context, response,
                           [&] { return open_inference_->ModelStatistics(*request); });
}

}  // namespace selene::api
