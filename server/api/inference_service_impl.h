// selene.v1.InferenceService over the serving layer's InferenceEngine: Segment and Classify run
// on the shared inference workers (inference_calls.h) with the call's deadline passed down;
// ListModels runs inline. The drain is InferenceCalls', shared with the Open Inference service.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "selene/v1/inference_service.grpc.pb.h"
#include "selene/v1/inference_service.pb.h"
#include "server/api/inference_calls.h"
#include "server/serving/inference_engine.h"

namespace selene::api {

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  // `engine` and `calls` must outlive the service.
  InferenceServiceImpl(serving::InferenceEngine* engine, InferenceCalls* calls);

  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override;
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  serving::InferenceEngine* const engine_;
  InferenceCalls* const calls_;
};

}  // namespace selene::api
