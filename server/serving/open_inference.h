// The Open Inference Protocol ("KServe v2", package inference) over the serving layer, minus any
// transport: the gRPC service (server/api/open_inference_service.h) and the REST routes both
// translate their wire format to these protos and call this, so both answer alike.
//
// A model is a succeeded job id or an alias ("latest", "latest:<task>"); it has one version, "1".
// Tensors (NHWC, batch first; N at most the batcher's max_batch_size):
//   inputs, exactly one of
//     image        UINT8 [N, H, W, C]  decoded pixels, RGB (C = the model's channels)
//     image_bytes  BYTES [N] or [N, 1] encoded images (PNG, JPEG, ...)
//   outputs of a segmentation model (mask by default; the others only when asked for)
//     mask           UINT8 [N, H, W]     class id per pixel at the input's size (binary: 0 or 1)
//     probabilities  FP32 [N, K, H, W]   softmax (binary: sigmoid, K = 1)
//     logits         FP32 [N, K, H, W]   resized bilinearly to the input's size
//   outputs of a classification model
//     probabilities  FP32 [N, K]         softmax; with the output parameter "classification"
//                                        = k: BYTES [N, k], "value:index:label", best first
//     logits         FP32 [N, K]
// Request parameter "threshold" (binary segmentation; string or number in (0, 1)).
// Each image goes through the model's dynamic batcher on its own, so images of one request
// batch with those of other requests. Outputs come back in raw_output_contents, one buffer per
// output, in the order of `outputs`.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "inference/grpc_predict_v2.pb.h"
#include "server/serving/inference_engine.h"
#include "server/serving/model_registry.h"

namespace selene::serving {

struct OpenInferenceOptions {
  std::string server_name = "selene";
  std::string server_version = "1.0.0";
};

class OpenInference {
 public:
  // `registry` and `engine` must outlive this. Thread-safe.
  OpenInference(ModelRegistry* registry, InferenceEngine* engine,
                OpenInferenceOptions options = {});

  // Name, version and the extensions really implemented ("classification", "model_configuration",
  // "statistics").
  inference::ServerMetadataResponse ServerMetadata() const;

  // ready = the model loads. NotFound for a name nothing answers to; FailedPrecondition for a job
  // that has not succeeded; InvalidArgument for a version other than "" or "1".
  StatusOr<inference::ModelReadyResponse> ModelReady(const inference::ModelReadyRequest& request);
  StatusOr<inference::ModelMetadataResponse> ModelMetadata(
      const inference::ModelMetadataRequest& request);
  // Triton's model configuration: max_batch_size, inputs and outputs without the batch
  // dimension, NHWC, the dynamic batcher's delay.
  StatusOr<inference::ModelConfigResponse> ModelConfig(
      const inference::ModelConfigRequest& request);
  // Triton's statistics from the batcher's counters and this object's own per-model counts;
  // an empty name: every model loaded now.
  StatusOr<inference::ModelStatisticsResponse> ModelStatistics(
      const inference::ModelStatisticsRequest& request);

  // NotFound: unknown model. InvalidArgument naming the tensor, what it has and what is expected:
  // an unknown input or output, a wrong datatype or shape, contents that do not match the shape,
  // both or neither image input, a batch over max_batch_size, an image that does not decode.
  // DeadlineExceeded when `deadline` passes before the forward pass.
  StatusOr<inference::ModelInferResponse> ModelInfer(const inference::ModelInferRequest& request,
                                                     absl::Time deadline = absl::InfiniteFuture());

 private:
  struct ModelCounts {
    int64_t success = 0;
    int64_t success_ns = 0;
    int64_t fail = 0;
    int64_t fail_ns = 0;
    int64_t images = 0;             // inference_count
    int64_t last_inference_ms = 0;  // since the epoch
  };
  void Count(const std::string& job_id, bool ok, int64_t images, absl::Duration took);

  ModelRegistry* const registry_;
  InferenceEngine* const engine_;
  const OpenInferenceOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, ModelCounts> counts_ ABSL_GUARDED_BY(mu_);  // by job id
};

}  // namespace selene::serving
