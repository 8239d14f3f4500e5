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

// Decodes the request's image for `model` and queues it on the model's batcher.
struct Prediction {
  cv::Size input_size;
  ModelOutput output;
};
StatusOr<Prediction> Predict(ServableModel& model, const std::string& bytes, int64_t max_pixels,
                             absl::Time deadline) {
  const ModelDescription& d = model.description();
  SELENE_ASSIGN_OR_RETURN(cv::Mat image,
                          DecodeImage(bytes, static_cast<int>(d.in_channels), max_pixels));
  cv::Mat input = ResizeToModel(image, static_cast<int>(d.input_size));
  SELENE_RETURN_IF_ERROR(CheckNotExpired(deadline));
  SELENE_ASSIGN_OR_RETURN(ModelOutput output, model.Infer(std::move(input), deadline));
  return Prediction{image.size(), std::move(output)};
}

Status CheckSegmentationShape(const ServableModel& model, const ModelOutput& output) {
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

// Source positions of a bilinear resize along one axis, with half-pixel centres and clamped
// edges: the sampling of cv::resize INTER_LINEAR and of torch's bilinear (align_corners false).
struct LinearTaps {
  std::vector<int> low;
  std::vector<int> high;
  std::vector<float> weight;  // of `high`
};

LinearTaps Taps(int from, int to) {
  LinearTaps taps;
  const double scale = static_cast<double>(from) / to;
  for (int i = 0; i < to; ++i) {
    const double source = std::max(0.0, (i + 0.5) * scale - 0.5);
    const int low = std::min(static_cast<int>(source), from - 1);
    taps.low.push_back(low);
    taps.high.push_back(std::min(low + 1, from - 1));
    taps.weight.push_back(static_cast<float>(source - low));
  }
  return taps;
}

// The logits resized (bilinear) from the model's S x S to the input's W x H, one output row at a
// time: each row of K class logits is made, used and dropped, so a large image never holds K
// full-size float planes (12 classes at 4096x4096 would be 800 MB).
class LogitRows {
 public:
  LogitRows(const ModelOutput& output, cv::Size size)
      : classes_(static_cast<int>(output.shape[0])),
        side_(static_cast<int>(output.shape[1])),
        values_(output.values.data()),
        rows_(Taps(side_, size.height)),
        columns_(Taps(side_, size.width)),
        vertical_(static_cast<size_t>(classes_) * side_),
        row_(static_cast<size_t>(classes_) * size.width) {}

  int classes() const { return classes_; }

  // Row y of the resized logits, class-major: [k * width + x].
  const float* Row(int y) {
    const int width = static_cast<int>(columns_.low.size());
    const float wy = rows_.weight[y];
    for (int k = 0; k < classes_; ++k) {
      const float* plane = values_ + static_cast<size_t>(k) * side_ * side_;
      const float* top = plane + static_cast<size_t>(rows_.low[y]) * side_;
      const float* bottom = plane + static_cast<size_t>(rows_.high[y]) * side_;
      float* v = vertical_.data() + static_cast<size_t>(k) * side_;
      for (int x = 0; x < side_; ++x) v[x] = top[x] + wy * (bottom[x] - top[x]);
      float* out = row_.data() + static_cast<size_t>(k) * width;
      for (int x = 0; x < width; ++x) {
        const float left = v[columns_.low[x]];
        out[x] = left + columns_.weight[x] * (v[columns_.high[x]] - left);
      }
    }
    return row_.data();
  }

 private:
  const int classes_;
  const int side_;
  const float* values_;
  const LinearTaps rows_;
  const LinearTaps columns_;
  std::vector<float> vertical_;
  std::vector<float> row_;
};

uint8_t ToByte(double probability) {
  return static_cast<uint8_t>(std::lround(std::clamp(probability, 0.0, 1.0) * 255.0));
}

Status FillBinary(const ModelOutput& output, cv::Size size, double threshold, bool probabilities,
                  v1::SegmentResponse* response) {
  // sigmoid(x) >= t  <=>  x >= log(t / (1 - t)): no exp per pixel for the mask.
  const float logit_threshold = static_cast<float>(std::log(threshold / (1.0 - threshold)));
  LogitRows logits(output, size);
  cv::Mat mask(size, CV_8UC1);
  cv::Mat probability;
  if (probabilities) probability.create(size, CV_8UC1);
  int64_t foreground = 0;
  for (int y = 0; y < size.height; ++y) {
    const float* row = logits.Row(y);
    uint8_t* out = mask.ptr<uint8_t>(y);
    for (int x = 0; x < size.width; ++x) {
      const bool on = row[x] >= logit_threshold;
      out[x] = on ? 255 : 0;
      foreground += on ? 1 : 0;
    }
    if (probabilities) {
      uint8_t* p = probability.ptr<uint8_t>(y);
      for (int x = 0; x < size.width; ++x) p[x] = ToByte(1.0 / (1.0 + std::exp(-double{row[x]})));
    }
  }
  SELENE_ASSIGN_OR_RETURN(*response->mutable_mask_png(), EncodeMaskPng(mask));
  if (probabilities) {
    SELENE_ASSIGN_OR_RETURN(*response->mutable_probability_png(), EncodeMaskPng(probability));
  }
  response->set_foreground_fraction(static_cast<double>(foreground) /
                                    static_cast<double>(mask.total()));
  return OkStatus();
}

Status FillMultiClass(const ModelOutput& output, cv::Size size,
                      const std::vector<std::string>& names, bool probabilities,
                      v1::SegmentResponse* response) {
  LogitRows logits(output, size);
  const int classes = logits.classes();
  const size_t width = static_cast<size_t>(size.width);
  cv::Mat mask(size, CV_8UC1);
  cv::Mat probability;
  if (probabilities) probability.create(size, CV_8UC1);
  std::vector<int64_t> counts(static_cast<size_t>(classes), 0);
  for (int y = 0; y < size.height; ++y) {
    const float* row = logits.Row(y);
    uint8_t* out = mask.ptr<uint8_t>(y);
    uint8_t* p = probabilities ? probability.ptr<uint8_t>(y) : nullptr;
    for (size_t x = 0; x < width; ++x) {
      int best = 0;
      float best_logit = row[x];
      for (int k = 1; k < classes; ++k) {
        const float logit = row[k * width + x];
        if (logit > best_logit) {  // ties keep the lower id, as torch's argmax
          best_logit = logit;
          best = k;
        }
      }
      out[x] = static_cast<uint8_t>(best);
      ++counts[static_cast<size_t>(best)];
      if (p != nullptr) {
        // softmax of the chosen class = 1 / sum_k exp(l_k - l_best).
        double sum = 0.0;
        for (int k = 0; k < classes; ++k) sum += std::exp(double{row[k * width + x]} - best_logit);
        p[x] = ToByte(1.0 / sum);
      }
    }
  }
  SELENE_ASSIGN_OR_RETURN(*response->mutable_mask_png(), EncodeMaskPng(mask));
  if (probabilities) {
    SELENE_ASSIGN_OR_RETURN(*response->mutable_probability_png(), EncodeMaskPng(probability));
  }
  const double total = static_cast<double>(mask.total());
  auto& shares = *response->mutable_class_shares();
  for (size_t k = 0; k < counts.size(); ++k) {
    shares[names[k]] += static_cast<double>(counts[k]) / total;
  }
  return OkStatus();
}

StatusOr<v1::SegmentResponse> SegmentImpl(ModelRegistry& registry,
                                          const InferenceEngineOptions& options,
                                          const v1::SegmentRequest& request, absl::Time deadline) {
  const absl::Time start = absl::Now();
  const double threshold =
      request.has_threshold() ? request.threshold() : options.default_threshold;
  if (!(threshold > 0.0 && threshold < 1.0)) {
    return InvalidArgumentError(absl::StrCat("threshold ", threshold, " is outside (0, 1)"));
  }
  SELENE_RETURN_IF_ERROR(CheckNotExpired(deadline));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, registry.Get(request.model()));
  if (model->task() != v1::TASK_BINARY_SEGMENTATION &&
      model->task() != v1::TASK_MULTICLASS_SEGMENTATION) {
    return WrongTask(*model, "Segment", "segmentation", "Classify");
  }
  SELENE_ASSIGN_OR_RETURN(Prediction prediction,
                          Predict(*model, request.image(), options.max_image_pixels, deadline));
  SELENE_RETURN_IF_ERROR(CheckSegmentationShape(*model, prediction.output));

  v1::SegmentResponse response;
  response.set_width(prediction.input_size.width);
  response.set_height(prediction.input_size.height);
  response.set_model_job_id(model->job_id());
  response.set_task(model->task());
  if (model->task() == v1::TASK_BINARY_SEGMENTATION) {
    SELENE_RETURN_IF_ERROR(FillBinary(prediction.output, prediction.input_size, threshold,
                                      request.return_probabilities(), &response));
  } else {
    SELENE_RETURN_IF_ERROR(FillMultiClass(prediction.output, prediction.input_size,
                                          model->description().class_names,
                                          request.return_probabilities(), &response));
  }
  response.set_inference_ms(MillisecondsSince(start));
  return response;
}

StatusOr<v1::ClassifyResponse> ClassifyImpl(ModelRegistry& registry,
                                            const InferenceEngineOptions& options,
                                            const v1::ClassifyRequest& request,
                                            absl::Time deadline) {
  const absl::Time start = absl::Now();
  if (request.top_k() < 0) {
    return InvalidArgumentError(absl::StrCat("top_k ", request.top_k(), " must be >= 0"));
  }
  SELENE_RETURN_IF_ERROR(CheckNotExpired(deadline));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, registry.Get(request.model()));
  if (model->task() != v1::TASK_CLASSIFICATION) {
    return WrongTask(*model, "Classify", "classification", "Segment");
  }
  SELENE_ASSIGN_OR_RETURN(Prediction prediction,
                          Predict(*model, request.image(), options.max_image_pixels, deadline));
  const ModelOutput& output = prediction.output;
  const int64_t classes = model->description().num_outputs;
  if (output.shape.size() != 1 || output.shape[0] != classes) {
    return InternalError(absl::StrCat("model ", model->job_id(), " returned logits of shape [",
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

  const int64_t top_k =
      std::min<int64_t>(request.top_k() == 0 ? options.default_top_k : request.top_k(), classes);
  std::vector<int64_t> order(probabilities.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return probabilities[a] > probabilities[b]; });

  v1::ClassifyResponse response;
  const std::vector<std::string>& names = model->description().class_names;
  for (int64_t i = 0; i < top_k; ++i) {
    v1::LabelProbability* label = response.add_labels();
    label->set_class_index(static_cast<int32_t>(order[i]));
    label->set_label(names[order[i]]);
    label->set_probability(probabilities[order[i]]);
  }
  response.set_model_job_id(model->job_id());
  response.set_inference_ms(MillisecondsSince(start));
  return response;
}

}  // namespace

InferenceEngine::InferenceEngine(ModelRegistry* registry, InferenceEngineOptions options)
    : registry_(registry), options_(options) {}

StatusOr<v1::SegmentResponse> InferenceEngine::Segment(const v1::SegmentRequest& request,
                                                       absl::Time deadline) {
  try {
    return SegmentImpl(*registry_, options_, request, deadline);
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("Segment with model \"", request.model(), "\": ", e.what()));
  }
}

StatusOr<v1::ClassifyResponse> InferenceEngine::Classify(const v1::ClassifyRequest& request,
                                                         absl::Time deadline) {
  try {
    return ClassifyImpl(*registry_, options_, request, deadline);
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
