// selene.v1.InferenceService over the serving layer's InferenceEngine: Segment and Classify run
// on a small worker pool the service owns (the engine blocks on decoding and on the model's
// batch, which must not tie up gRPC's callback threads, or concurrent requests could not reach
// the batcher together), with the call's deadline passed down; ListModels runs inline.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "selene/v1/inference_service.grpc.pb.h"
#include "selene/v1/inference_service.pb.h"
#include "server/api/server_metrics.h"
#include "server/api/token_auth.h"
#include "server/api/worker_pool.h"
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

  // Runs the requests already accepted, then joins the workers; later calls are UNAVAILABLE.
  // Call after the gRPC server's Shutdown has drained the calls (or the drain waits on them).
  void Shutdown();

 private:
  serving::InferenceEngine* const engine_;
  const TokenAuth* const auth_;
  ServerMetrics* const metrics_;
  WorkerPool workers_;
};

}  // namespace selene::api
