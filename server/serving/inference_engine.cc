#include "server/serving/inference_engine.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/serving/image_codec.h"
#include "server/serving/segmentation_maps.h"
#include "server/serving/servable_model.h"

namespace selene::serving {
namespace {

double MillisecondsSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

Status CheckNotExpired(absl::Time deadline) {
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError("the request's deadline passed before inference");
  }
  return OkStatus();
}

Status WrongTask(const ServableModel& model, const char* call, const char* needs,
                 const char* instead) {
  return InvalidArgumentError(absl::StrCat("model ", model.job_id(), " is a ",
                                           TaskAliasName(model.task()), " model; ", call,
                                           " needs a ", needs, " model (use ", instead, ")"));
}

// The model's input: resized as the training readers resize (server/data/image_decoding.h):
// area averaging when shrinking, bilinear when enlarging.
cv::Mat ResizeToModel(const cv::Mat& image, int side) {
  if (image.cols == side && image.rows == side) return image;
  cv::Mat resized;
  const bool shrinking = int64_t{image.cols} * image.rows > int64_t{side} * side;
  cv::resize(image, resized, cv::Size(side, side), 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return resized;
}

// Decodes the request's image for `model` and runs it.
StatusOr<ImagePrediction> PredictOne(InferenceEngine& engine, ServableModel& model,
                                     const std::string& bytes, int64_t max_pixels,
                                     absl::Time deadline) {
  const ModelDescription& d = model.description();
  SELENE_ASSIGN_OR_RETURN(cv::Mat image,
                          DecodeImage(bytes, static_cast<int>(d.in_channels), max_pixels));
  std::vector<cv::Mat> images;
  images.push_back(std::move(image));
  SELENE_ASSIGN_OR_RETURN(std::vector<ImagePrediction> predictions,
                          engine.Predict(model, std::move(images), deadline));
  return std::move(predictions[0]);
}

StatusOr<v1::SegmentResponse> SegmentImpl(InferenceEngine& engine,
                                          const InferenceEngineOptions& options,
                                          const v1::SegmentRequest& request, absl::Time deadline) {
  const absl::Time start = absl::Now();
  const double threshold =
      request.has_threshold() ? request.threshold() : options.default_threshold;
  SELENE_RETURN_IF_ERROR(CheckThreshold(threshold));
  SELENE_RETURN_IF_ERROR(CheckNotExpired(deadline));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, engine.Model(request.model()));
  if (!IsSegmentation(model->task()))
    return WrongTask(*model, "Segment", "segmentation", "Classify");
  SELENE_ASSIGN_OR_RETURN(
      ImagePrediction prediction,
      PredictOne(engine, *model, request.image(), options.max_image_pixels, deadline));
  SELENE_RETURN_IF_ERROR(CheckSegmentationOutput(*model, prediction.output));

  SegmentationMapRequest wanted;
  wanted.binary = model->task() == v1::TASK_BINARY_SEGMENTATION;
  wanted.threshold = threshold;
  wanted.probability_bytes = request.return_probabilities();
  const SegmentationMaps maps =
      MakeSegmentationMaps(prediction.output, prediction.input_size, wanted);

  v1::SegmentResponse response;
  response.set_width(prediction.input_size.width);
  response.set_height(prediction.input_size.height);
  response.set_model_job_id(model->job_id());
  response.set_task(model->task());
  // The PNG of a binary mask is black and white (0 and 255), a multi-class one holds class ids.
  const cv::Mat png_mask = wanted.binary ? cv::Mat(maps.mask * 255) : maps.mask;
  SELENE_ASSIGN_OR_RETURN(*response.mutable_mask_png(), EncodeMaskPng(png_mask));
  if (wanted.probability_bytes) {
    SELENE_ASSIGN_OR_RETURN(*response.mutable_probability_png(),
                            EncodeMaskPng(maps.probability_bytes));
  }
  const double total = static_cast<double>(maps.mask.total());
  if (wanted.binary) {
    response.set_foreground_fraction(static_cast<double>(maps.class_pixels[1]) / total);
  } else {
    const std::vector<std::string>& names = model->description().class_names;
    auto& shares = *response.mutable_class_shares();
    for (size_t k = 0; k < maps.class_pixels.size(); ++k) {
      shares[names[k]] += static_cast<double>(maps.class_pixels[k]) / total;
    }
  }
  response.set_inference_ms(MillisecondsSince(start));
  return response;
}

StatusOr<v1::ClassifyResponse> ClassifyImpl(InferenceEngine& engine,
                                            const InferenceEngineOptions& options,
                                            const v1::ClassifyRequest& request,
                                            absl::Time deadline) {
  const absl::Time start = absl::Now();
  if (request.top_k() < 0) {
    return InvalidArgumentError(absl::StrCat("top_k ", request.top_k(), " must be >= 0"));
  }
  SELENE_RETURN_IF_ERROR(CheckNotExpired(deadline));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, engine.Model(request.model()));
  if (model->task() != v1::TASK_CLASSIFICATION) {
    return WrongTask(*model, "Classify", "classification", "Segment");
  }
  SELENE_ASSIGN_OR_RETURN(
      ImagePrediction prediction,
      PredictOne(engine, *model, request.image(), options.max_image_pixels, deadline));
  SELENE_ASSIGN_OR_RETURN(std::vector<double> probabilities,
                          ClassProbabilities(*model, prediction.output));
  const int64_t top_k = request.top_k() == 0 ? options.default_top_k : request.top_k();

  v1::ClassifyResponse response;
  const std::vector<std::string>& names = model->description().class_names;
  for (int64_t k : RankClasses(probabilities, top_k)) {
    v1::LabelProbability* label = response.add_labels();
    label->set_class_index(static_cast<int32_t>(k));
    label->set_label(names[k]);
    label->set_probability(probabilities[k]);
  }
  response.set_model_job_id(model->job_id());
  response.set_inference_ms(MillisecondsSince(start));
  return response;
}

}  // namespace

Status CheckThreshold(double threshold) {
  if (!(threshold > 0.0 && threshold < 1.0)) {
    return InvalidArgumentError(absl::StrCat("threshold ", threshold, " is outside (0, 1)"));
  }
  return OkStatus();
}

bool IsSegmentation(v1::Task task) {
  return task == v1::TASK_BINARY_SEGMENTATION || task == v1::TASK_MULTICLASS_SEGMENTATION;
}

Status CheckSegmentationOutput(const ServableModel& model, const ModelOutput& output) {
  const int64_t side = model.description().input_size;
  const int64_t classes = model.description().num_outputs;
  if (output.shape.size() != 3 || output.shape[0] != classes || output.shape[1] != side ||
      output.shape[2] != side ||
      static_cast<int64_t>(output.values.size()) != classes * side * side) {
    return InternalError(absl::StrCat("model ", model.job_id(), " returned logits of shape [",
                                      absl::StrJoin(output.shape, ", "), "]; expected [", classes,
                                      ", ", side, ", ", side, "]"));
  }
  if (classes > 256) {
    return FailedPreconditionError(absl::StrCat("model ", model.job_id(), " has ", classes,
                                                " classes; 8-bit masks hold at most 256"));
  }
  return OkStatus();
}

StatusOr<std::vector<double>> ClassProbabilities(const ServableModel& model,
                                                 const ModelOutput& output) {
  const int64_t classes = model.description().num_outputs;
  if (output.shape.size() != 1 || output.shape[0] != classes ||
      static_cast<int64_t>(output.values.size()) != classes) {
    return InternalError(absl::StrCat("model ", model.job_id(), " returned logits of shape [",
                                      absl::StrJoin(output.shape, ", "), "]; expected [", classes,
                                      "]"));
  }
  const float max_logit = *std::max_element(output.values.begin(), output.values.end());
  std::vector<double> probabilities(output.values.size());
  double sum = 0.0;
  for (size_t k = 0; k < probabilities.size(); ++k) {
    probabilities[k] = std::exp(double{output.values[k]} - max_logit);
    sum += probabilities[k];
  }
  for (double& p : probabilities) p /= sum;
  return probabilities;
}

std::vector<int64_t> RankClasses(const std::vector<double>& probabilities, int64_t k) {
  std::vector<int64_t> order(probabilities.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return probabilities[a] > probabilities[b]; });
  order.resize(static_cast<size_t>(std::clamp<int64_t>(k, 0, static_cast<int64_t>(order.size()))));
  return order;
}

InferenceEngine::InferenceEngine(ModelRegistry* registry, InferenceEngineOptions options)
    : registry_(registry), options_(options) {}

StatusOr<std::shared_ptr<ServableModel>> InferenceEngine::Model(const std::string& name) {
  return registry_->Get(name);
}

StatusOr<std::vector<ImagePrediction>> InferenceEngine::Predict(ServableModel& model,
                                                                std::vector<cv::Mat> images,
                                                                absl::Time deadline) {
  const int side = static_cast<int>(model.description().input_size);
  std::vector<ImagePrediction> predictions(images.size());
  std::vector<cv::Mat> inputs;
  inputs.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    predictions[i].input_size = images[i].size();
    inputs.push_back(ResizeToModel(images[i], side));
  }
  SELENE_RETURN_IF_ERROR(CheckNotExpired(deadline));
  SELENE_ASSIGN_OR_RETURN(std::vector<ModelOutput> outputs,
                          model.InferAll(std::move(inputs), deadline));
  for (size_t i = 0; i < outputs.size(); ++i) predictions[i].output = std::move(outputs[i]);
  return predictions;
}

StatusOr<v1::SegmentResponse> InferenceEngine::Segment(const v1::SegmentRequest& request,
                                                       absl::Time deadline) {
  try {
    return SegmentImpl(*this, options_, request, deadline);
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("Segment with model \"", request.model(), "\": ", e.what()));
  }
}

StatusOr<v1::ClassifyResponse> InferenceEngine::Classify(const v1::ClassifyRequest& request,
                                                         absl::Time deadline) {
  try {
    return ClassifyImpl(*this, options_, request, deadline);
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("Classify with model \"", request.model(), "\": ", e.what()));
  }
}

StatusOr<v1::ListModelsResponse> InferenceEngine::ListModels(const v1::ListModelsRequest& request) {
  try {
    SELENE_ASSIGN_OR_RETURN(std::vector<v1::ModelInfo> models,
                            registry_->ListModels(request.task()));
    v1::ListModelsResponse response;
    for (v1::ModelInfo& info : models) *response.add_models() = std::move(info);
    return response;
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("ListModels: ", e.what()));
  }
}

}  // namespace selene::serving
