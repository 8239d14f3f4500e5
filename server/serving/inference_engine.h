// The inference path behind InferenceService, minus gRPC: decode and validate the image, find
// the model (loading it on first use), resize and queue it on the model's batcher, then turn the
// logits into the reply (masks at the input's own size, probabilities, top-k labels). The gRPC
// layer only translates protos and statuses, so everything testable lives here.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "common/status.h"
#include "selene/v1/inference_service.pb.h"
#include "server/serving/model_registry.h"

namespace selene::serving {

struct InferenceEngineOptions {
  // Images with more pixels are refused (InvalidArgument naming the size and this limit),
  // before decoding when the header tells the size.
  int64_t max_image_pixels = int64_t{4096} * 4096;
  double default_threshold = 0.5;  // binary segmentation, when the request sets none
  int default_top_k = 5;           // Classify, when the request asks for 0
};

class InferenceEngine {
 public:
  // `registry` must outlive the engine. Thread-safe: call from any number of threads.
  explicit InferenceEngine(ModelRegistry* registry, InferenceEngineOptions options = {});

  // Binary: the mask is logit >= logit(threshold) after the logits are resized (bilinear) back
  // to the input's size; multi-class: each pixel's argmax class id, with class_shares.
  // InvalidArgument: a threshold outside (0, 1), an image that does not decode or is too big, a
  // classification model. DeadlineExceeded when `deadline` passes before the forward pass.
  StatusOr<v1::SegmentResponse> Segment(const v1::SegmentRequest& request,
                                        absl::Time deadline = absl::InfiniteFuture());

  // Top-k softmax probabilities, most probable first (ties by class index). InvalidArgument for
  // a negative top_k or a segmentation model.
  StatusOr<v1::ClassifyResponse> Classify(const v1::ClassifyRequest& request,
                                          absl::Time deadline = absl::InfiniteFuture());

  StatusOr<v1::ListModelsResponse> ListModels(const v1::ListModelsRequest& request);

 private:
  ModelRegistry* const registry_;
  const InferenceEngineOptions options_;
};

}  // namespace selene::serving
