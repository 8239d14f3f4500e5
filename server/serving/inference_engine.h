// The inference path behind InferenceService, minus gRPC: decode and validate the image, find
// the model (loading it on first use), resize and queue it on the model's batcher, then turn the
// logits into the reply (masks at the input's own size, probabilities, top-k labels). The gRPC
// layer only translates protos and statuses, so everything testable lives here.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// One decoded image's raw answer from a model.
struct ImagePrediction {
  cv::Size input_size;  // the image's own size, which answers are resized back to
  ModelOutput output;   // the model's logits at its input size
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

  // The pieces the calls above are made of, for other protocols (serving/open_inference.h).
  // The model `name` denotes, loaded (ModelRegistry::Get).
  StatusOr<std::shared_ptr<ServableModel>> Model(const std::string& name);
  // Resizes each decoded image (the model's channels, any size) to the model's input and queues
  // them all on its batcher at once. DeadlineExceeded when `deadline` passes first.
  StatusOr<std::vector<ImagePrediction>> Predict(ServableModel& model, std::vector<cv::Mat> images,
                                                 absl::Time deadline);
  const InferenceEngineOptions& options() const { return options_; }

 private:
  ModelRegistry* const registry_;
  const InferenceEngineOptions options_;
};

// InvalidArgument unless 0 < threshold < 1.
Status CheckThreshold(double threshold);
bool IsSegmentation(v1::Task task);
// Internal when a segmentation model's logits are not [K, S, S] for its K classes and input
// size S; FailedPrecondition over 256 classes (8-bit masks).
Status CheckSegmentationOutput(const ServableModel& model, const ModelOutput& output);
// The softmax of a classifier's logits; Internal when they are not [K].
StatusOr<std::vector<double>> ClassProbabilities(const ServableModel& model,
                                                 const ModelOutput& output);
// The k most probable class indices, most probable first, ties by index (k is clamped to K).
std::vector<int64_t> RankClasses(const std::vector<double>& probabilities, int64_t k);

}  // namespace selene::serving
