// inference.GRPCInferenceService, the Open Inference Protocol ("KServe v2") over gRPC, on the same
// port, token, TLS and message limits as selene.v1. It translates nothing itself: the answers
// come from serving::OpenInference, shared with the REST routes. ModelInfer runs on the shared
// inference workers (and is counted in the metrics like Segment); the metadata calls answer
// inline. ServerLive and ServerReady need no token, like gRPC health checking, so probes work;
// ServerReady turns false once the server drains. Triton's RPCs not declared in
// proto/inference/grpc_predict_v2.proto answer UNIMPLEMENTED (gRPC's own answer).
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/api/inference_calls.h"
#include "server/serving/open_inference.h"

namespace selene::api {

class OpenInferenceServiceImpl final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `open_inference` and `calls` must outlive the service.
  OpenInferenceServiceImpl(serving::OpenInference* open_inference, InferenceCalls* calls);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;

 private:
  serving::OpenInference* const open_inference_;
  InferenceCalls* const calls_;
};

}  // namespace selene::api
