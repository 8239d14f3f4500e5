#include "server/serving/open_inference.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/serving/image_codec.h"
#include "server/serving/open_inference_tensors.h"
#include "server/serving/segmentation_maps.h"
#include "server/serving/servable_model.h"

namespace selene::serving {
namespace {

constexpr char kVersion[] = "1";  // a job's model never changes: one version
constexpr char kPlatform[] = "selene_libtorch";
constexpr char kImage[] = "image";
constexpr char kImageBytes[] = "image_bytes";
constexpr char kMask[] = "mask";
constexpr char kProbabilities[] = "probabilities";
constexpr char kLogits[] = "logits";
constexpr char kClassification[] = "classification";

using TensorMetadata = inference::ModelMetadataResponse::TensorMetadata;
using InputTensor = inference::ModelInferRequest::InferInputTensor;
using OutputTensor = inference::ModelInferResponse::InferOutputTensor;

Status CheckVersion(const std::string& model, const std::string& version) {
  if (version.empty() || version == kVersion) return OkStatus();
  return NotFoundError(absl::StrCat("model \"", model, "\" has no version \"", version,
                                    "\"; its only version is \"", kVersion, "\""));
}

// A tensor as the model's metadata and configuration describe it; -1 for a variable dimension.
struct TensorSpec {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;  // with the batch dimension first
};

std::vector<TensorSpec> InputSpecs(const ModelDescription& d) {
  return {{kImage, "UINT8", {-1, -1, -1, d.in_channels}}, {kImageBytes, "BYTES", {-1, 1}}};
}

std::vector<TensorSpec> OutputSpecs(const ModelDescription& d) {
  if (d.task == v1::TASK_CLASSIFICATION) {
    return {{kProbabilities, "FP32", {-1, d.num_outputs}}, {kLogits, "FP32", {-1, d.num_outputs}}};
  }
  return {{kMask, "UINT8", {-1, -1, -1}},
          {kProbabilities, "FP32", {-1, d.num_outputs, -1, -1}},
          {kLogits, "FP32", {-1, d.num_outputs, -1, -1}}};
}

std::string DescribeSpecs(const std::vector<TensorSpec>& specs) {
  return absl::StrJoin(specs, ", ", [](std::string* out, const TensorSpec& spec) {
    absl::StrAppend(out, spec.name, " ", spec.datatype, " [", absl::StrJoin(spec.shape, ", "), "]");
  });
}

inference::DataType ConfigDataType(const std::string& datatype) {
  if (datatype == "UINT8") return inference::TYPE_UINT8;
  if (datatype == "FP32") return inference::TYPE_FP32;
  return inference::TYPE_STRING;  // BYTES
}

// The request's "threshold" parameter (a string or an integer-free number arrives as a string).
StatusOr<double> Threshold(const inference::ModelInferRequest& request, double default_threshold) {
  const auto found = request.parameters().find("threshold");
  if (found == request.parameters().end()) return default_threshold;
  double threshold = 0.0;
  if (found->second.parameter_choice_case() != inference::InferParameter::kStringParam ||
      !absl::SimpleAtod(found->second.string_param(), &threshold)) {
    return InvalidArgumentError(
        "parameter \"threshold\" must be a number in (0, 1), given as a string (\"0.5\")");
  }
  SELENE_RETURN_IF_ERROR(CheckThreshold(threshold));
  return threshold;
}

// The request's images, decoded, in the model's channel order (RGB or grey).
StatusOr<std::vector<cv::Mat>> ReadImages(const inference::ModelInferRequest& request,
                                          const ServableModel& model, int64_t max_pixels) {
  const ModelDescription& d = model.description();
  const int max_batch = model.batcher_options().max_batch_size;
  if (request.inputs_size() != 1) {
    return InvalidArgumentError(absl::StrCat("model ", model.job_id(), " takes exactly one input, ",
                                             kImage, " or ", kImageBytes, "; the request has ",
                                             request.inputs_size()));
  }
  if (request.raw_input_contents_size() != 0 && request.raw_input_contents_size() != 1) {
    return InvalidArgumentError(absl::StrCat(
        "raw_input_contents holds ", request.raw_input_contents_size(), " buffers for 1 input"));
  }
  const InputTensor& input = request.inputs(0);
  const std::string* raw =
      request.raw_input_contents_size() == 1 ? &request.raw_input_contents(0) : nullptr;
  const auto& shape = input.shape();
  const auto batch_error = [&]() -> Status {
    if (shape.empty() || shape[0] < 1 || shape[0] > max_batch) {
      return InvalidArgumentError(absl::StrCat("input \"", input.name(), "\": batch of ",
                                               shape.empty() ? 0 : shape[0], " images in shape ",
                                               ShapeText(shape), "; model ", model.job_id(),
                                               " takes 1 to ", max_batch));
    }
    return OkStatus();
  };

  std::vector<cv::Mat> images;
  if (input.name() == kImage) {
    const std::string expected = absl::StrCat("[N, H, W, ", d.in_channels, "]");
    if (input.datatype() != "UINT8") {
      return InvalidArgumentError(absl::StrCat("input \"image\" has datatype ", input.datatype(),
                                               "; expected UINT8 ", expected));
    }
    if (shape.size() != 4 || shape[3] != d.in_channels || shape[1] < 1 || shape[2] < 1) {
      return InvalidArgumentError(
          absl::StrCat("input \"image\" has shape ", ShapeText(shape), "; expected ", expected));
    }
    SELENE_RETURN_IF_ERROR(batch_error());
    // Each side first: a client's dimensions could overflow the product.
    if (shape[1] > max_pixels || shape[2] > max_pixels || shape[1] * shape[2] > max_pixels) {
      return InvalidArgumentError(absl::StrCat("input \"image\": ", shape[2], "x", shape[1], " is ",
                                               shape[1] * shape[2], " pixels, over the limit of ",
                                               max_pixels));
    }
    SELENE_ASSIGN_OR_RETURN(const int64_t count,
                            ElementCount(input.name(), shape, max_batch * max_pixels * 4));
    SELENE_ASSIGN_OR_RETURN(std::string pixels,
                            ReadUint8Tensor(input.name(), raw, input.contents(), count));
    const int height = static_cast<int>(shape[1]);
    const int width = static_cast<int>(shape[2]);
    const size_t image_bytes = static_cast<size_t>(count / shape[0]);
    for (int64_t i = 0; i < shape[0]; ++i) {
      cv::Mat image(height, width, d.in_channels == 1 ? CV_8UC1 : CV_8UC3);
      std::copy_n(pixels.data() + i * image_bytes, image_bytes, image.data);
      images.push_back(std::move(image));
    }
    return images;
  }
  if (input.name() == kImageBytes) {
    if (input.datatype() != "BYTES") {
      return InvalidArgumentError(absl::StrCat("input \"image_bytes\" has datatype ",
                                               input.datatype(), "; expected BYTES [N] or [N, 1]"));
    }
    if (shape.empty() || shape.size() > 2 || (shape.size() == 2 && shape[1] != 1)) {
      return InvalidArgumentError(absl::StrCat("input \"image_bytes\" has shape ", ShapeText(shape),
                                               "; expected BYTES [N] or [N, 1]"));
    }
    SELENE_RETURN_IF_ERROR(batch_error());
    SELENE_ASSIGN_OR_RETURN(std::vector<std::string> encoded,
                            ReadBytesTensor(input.name(), raw, input.contents(), shape[0]));
    for (size_t i = 0; i < encoded.size(); ++i) {
      StatusOr<cv::Mat> image =
          DecodeImage(encoded[i], static_cast<int>(d.in_channels), max_pixels);
      if (!image.ok()) {
        return InvalidArgumentError(
            absl::StrCat("input \"image_bytes\"[", i, "]: ", image.status().message()));
      }
      images.push_back(*std::move(image));
    }
    return images;
  }
  return InvalidArgumentError(absl::StrCat("model ", model.job_id(), " has no input \"",
                                           input.name(),
                                           "\"; its inputs: ", DescribeSpecs(InputSpecs(d))));
}

// An output the request asks for, with its "classification" top-k (0 = none).
struct WantedOutput {
  std::string name;
  int64_t top_k = 0;
};

StatusOr<std::vector<WantedOutput>> WantedOutputs(const inference::ModelInferRequest& request,
                                                  const ServableModel& model) {
  const ModelDescription& d = model.description();
  const bool classifier = d.task == v1::TASK_CLASSIFICATION;
  std::vector<WantedOutput> wanted;
  for (const auto& output : request.outputs()) {
    const std::vector<TensorSpec> specs = OutputSpecs(d);
    if (std::none_of(specs.begin(), specs.end(),
                     [&](const TensorSpec& s) { return s.name == output.name(); })) {
      return InvalidArgumentError(absl::StrCat("model ", model.job_id(), " has no output \"",
                                               output.name(),
                                               "\"; its outputs: ", DescribeSpecs(specs)));
    }
    WantedOutput w{output.name(), 0};
    const auto k = output.parameters().find(kClassification);
    if (k != output.parameters().end()) {
      if (!classifier) {
        return InvalidArgumentError(
            absl::StrCat("output \"", output.name(), "\": the classification parameter needs a ",
                         "classification model; model ", model.job_id(), " segments"));
      }
      if (k->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
          k->second.int64_param() < 1) {
        return InvalidArgumentError(absl::StrCat("output \"", output.name(),
                                                 "\": parameter \"classification\" must be an ",
                                                 "int64 >= 1 (how many classes to return)"));
      }
      w.top_k = k->second.int64_param();
    }
    wanted.push_back(std::move(w));
  }
  if (wanted.empty()) wanted.push_back({classifier ? kProbabilities : kMask, 0});
  return wanted;
}

void AddOutput(const std::string& name, const char* datatype, std::vector<int64_t> shape,
               std::string raw, inference::ModelInferResponse* response) {
  OutputTensor* tensor = response->add_outputs();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  for (int64_t dimension : shape) tensor->add_shape(dimension);
  response->add_raw_output_contents(std::move(raw));
}

Status AddSegmentationOutputs(const ServableModel& model,
                              const std::vector<ImagePrediction>& predictions, double threshold,
                              const std::vector<WantedOutput>& wanted,
                              inference::ModelInferResponse* response) {
  const cv::Size size = predictions[0].input_size;
  for (const ImagePrediction& p : predictions) {
    SELENE_RETURN_IF_ERROR(CheckSegmentationOutput(model, p.output));
    if (p.input_size != size) {
      return InvalidArgumentError(absl::StrCat(
          "input \"image_bytes\": the images of one request must have one size for a [N, H, W] ",
          "mask; got ", size.width, "x", size.height, " and ", p.input_size.width, "x",
          p.input_size.height));
    }
  }
  SegmentationMapRequest request;
  request.binary = model.task() == v1::TASK_BINARY_SEGMENTATION;
  request.threshold = threshold;
  for (const WantedOutput& w : wanted) {
    request.probabilities |= w.name == kProbabilities;
    request.logits |= w.name == kLogits;
  }
  std::string masks;
  std::vector<float> probabilities;
  std::vector<float> logits;
  for (const ImagePrediction& p : predictions) {
    SegmentationMaps maps = MakeSegmentationMaps(p.output, size, request);
    masks.append(reinterpret_cast<const char*>(maps.mask.data), maps.mask.total());
    probabilities.insert(probabilities.end(), maps.probabilities.begin(), maps.probabilities.end());
    logits.insert(logits.end(), maps.logits.begin(), maps.logits.end());
  }
  const int64_t n = static_cast<int64_t>(predictions.size());
  const int64_t k = model.description().num_outputs;
  for (const WantedOutput& w : wanted) {
    if (w.name == kMask) {
      AddOutput(w.name, "UINT8", {n, size.height, size.width}, masks, response);
    } else {
      AddOutput(w.name, "FP32", {n, k, size.height, size.width},
                RawFloats(w.name == kLogits ? logits : probabilities), response);
    }
  }
  return OkStatus();
}

Status AddClassificationOutputs(const ServableModel& model,
                                const std::vector<ImagePrediction>& predictions,
                                const std::vector<WantedOutput>& wanted,
                                inference::ModelInferResponse* response) {
  const int64_t n = static_cast<int64_t>(predictions.size());
  const int64_t classes = model.description().num_outputs;
  std::vector<std::vector<double>> probabilities;
  for (const ImagePrediction& p : predictions) {
    SELENE_ASSIGN_OR_RETURN(std::vector<double> image, ClassProbabilities(model, p.output));
    probabilities.push_back(std::move(image));
  }
  const std::vector<std::string>& names = model.description().class_names;
  for (const WantedOutput& w : wanted) {
    const bool logits = w.name == kLogits;
    // One image's scores of the asked kind.
    const auto scores = [&](size_t i) {
      if (!logits) return probabilities[i];
      return std::vector<double>(predictions[i].output.values.begin(),
                                 predictions[i].output.values.end());
    };
    if (w.top_k > 0) {
      // Triton's classification extension: "value:index:label", best first.
      const int64_t k = std::min(w.top_k, classes);
      std::string raw;
      for (size_t i = 0; i < predictions.size(); ++i) {
        const std::vector<double> s = scores(i);
        for (int64_t c : RankClasses(s, k)) {
          AppendRawBytesElement(absl::StrFormat("%f:%d:%s", s[c], c, names[c]), &raw);
        }
      }
      AddOutput(w.name, "BYTES", {n, k}, std::move(raw), response);
      continue;
    }
    std::vector<float> values;
    for (size_t i = 0; i < predictions.size(); ++i) {
      for (double v : scores(i)) values.push_back(static_cast<float>(v));
    }
    AddOutput(w.name, "FP32", {n, classes}, RawFloats(values), response);
  }
  return OkStatus();
}

uint64_t Nanoseconds(absl::Duration d) {
  return static_cast<uint64_t>(absl::ToInt64Nanoseconds(d));
}

void SetDuration(int64_t count, uint64_t ns, inference::StatisticDuration* duration) {
  duration->set_count(static_cast<uint64_t>(count));
  duration->set_ns(ns);
}

}  // namespace

OpenInference::OpenInference(ModelRegistry* registry, InferenceEngine* engine,
                             OpenInferenceOptions options)
    : registry_(registry), engine_(engine), options_(std::move(options)) {}

inference::ServerMetadataResponse OpenInference::ServerMetadata() const {
  inference::ServerMetadataResponse response;
  response.set_name(options_.server_name);
  response.set_version(options_.server_version);
  for (const char* extension : {"classification", "model_configuration", "statistics"}) {
    response.add_extensions(extension);
  }
  return response;
}

StatusOr<inference::ModelReadyResponse> OpenInference::ModelReady(
    const inference::ModelReadyRequest& request) {
  SELENE_RETURN_IF_ERROR(CheckVersion(request.name(), request.version()));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, engine_->Model(request.name()));
  inference::ModelReadyResponse response;
  response.set_ready(model != nullptr);
  return response;
}

StatusOr<inference::ModelMetadataResponse> OpenInference::ModelMetadata(
    const inference::ModelMetadataRequest& request) {
  SELENE_RETURN_IF_ERROR(CheckVersion(request.name(), request.version()));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, engine_->Model(request.name()));
  inference::ModelMetadataResponse response;
  response.set_name(request.name());
  response.add_versions(kVersion);
  response.set_platform(kPlatform);
  const auto add = [](const std::vector<TensorSpec>& specs, auto* tensors) {
    for (const TensorSpec& spec : specs) {
      TensorMetadata* tensor = tensors->Add();
      tensor->set_name(spec.name);
      tensor->set_datatype(spec.datatype);
      for (int64_t dimension : spec.shape) tensor->add_shape(dimension);
    }
  };
  add(InputSpecs(model->description()), response.mutable_inputs());
  add(OutputSpecs(model->description()), response.mutable_outputs());
  return response;
}

StatusOr<inference::ModelConfigResponse> OpenInference::ModelConfig(
    const inference::ModelConfigRequest& request) {
  SELENE_RETURN_IF_ERROR(CheckVersion(request.name(), request.version()));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, engine_->Model(request.name()));
  const DynamicBatcherOptions& batcher = model->batcher_options();
  inference::ModelConfigResponse response;
  inference::ModelConfig& config = *response.mutable_config();
  config.set_name(request.name());
  config.set_platform(kPlatform);
  config.set_backend("selene");
  config.set_max_batch_size(batcher.max_batch_size);
  // Triton leaves the batch dimension out of a batching model's dims.
  for (const TensorSpec& spec : InputSpecs(model->description())) {
    inference::ModelInput* input = config.add_input();
    input->set_name(spec.name);
    input->set_data_type(ConfigDataType(spec.datatype));
    if (spec.name == kImage) input->set_format(inference::ModelInput::FORMAT_NHWC);
    input->mutable_dims()->Add(spec.shape.begin() + 1, spec.shape.end());
    input->set_optional(true);  // one of the two
  }
  for (const TensorSpec& spec : OutputSpecs(model->description())) {
    inference::ModelOutput* output = config.add_output();
    output->set_name(spec.name);
    output->set_data_type(ConfigDataType(spec.datatype));
    output->mutable_dims()->Add(spec.shape.begin() + 1, spec.shape.end());
  }
  inference::ModelDynamicBatching& batching = *config.mutable_dynamic_batching();
  batching.add_preferred_batch_size(batcher.max_batch_size);
  batching.set_max_queue_delay_microseconds(
      static_cast<uint64_t>(absl::ToInt64Microseconds(batcher.max_queue_delay)));
  return response;
}

StatusOr<inference::ModelStatisticsResponse> OpenInference::ModelStatistics(
    const inference::ModelStatisticsRequest& request) {
  SELENE_RETURN_IF_ERROR(CheckVersion(request.name(), request.version()));
  std::vector<std::shared_ptr<ServableModel>> models;
  if (request.name().empty()) {
    for (const std::string& job_id : registry_->LoadedJobIds()) {
      StatusOr<std::shared_ptr<ServableModel>> model = engine_->Model(job_id);
      if (model.ok()) models.push_back(*std::move(model));
    }
  } else {
    SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model, engine_->Model(request.name()));
    models.push_back(std::move(model));
  }
  inference::ModelStatisticsResponse response;
  for (const std::shared_ptr<ServableModel>& model : models) {
    const BatcherStats batcher = model->batcher_stats();
    ModelCounts counts;
    {
      absl::MutexLock lock(&mu_);
      const auto found = counts_.find(model->job_id());
      if (found != counts_.end()) counts = found->second;
    }
    inference::ModelStatistics& stats = *response.add_model_stats();
    stats.set_name(request.name().empty() ? model->job_id() : request.name());
    stats.set_version(kVersion);
    stats.set_last_inference(static_cast<uint64_t>(counts.last_inference_ms));
    stats.set_inference_count(static_cast<uint64_t>(counts.images));
    stats.set_execution_count(static_cast<uint64_t>(batcher.batches));
    inference::InferStatistics& infer = *stats.mutable_inference_stats();
    SetDuration(counts.success, static_cast<uint64_t>(counts.success_ns), infer.mutable_success());
    SetDuration(counts.fail, static_cast<uint64_t>(counts.fail_ns), infer.mutable_fail());
    SetDuration(batcher.requests, Nanoseconds(batcher.queue_wait), infer.mutable_queue());
    SetDuration(batcher.batches, Nanoseconds(batcher.run_time), infer.mutable_compute_infer());
    for (size_t size = 1; size < batcher.batch_size_counts.size(); ++size) {
      if (batcher.batch_size_counts[size] == 0) continue;
      inference::InferBatchStatistics& batch = *stats.add_batch_stats();
      batch.set_batch_size(size);
      SetDuration(batcher.batch_size_counts[size], Nanoseconds(batcher.batch_size_run_times[size]),
                  batch.mutable_compute_infer());
    }
  }
  return response;
}

StatusOr<inference::ModelInferResponse> OpenInference::ModelInfer(
    const inference::ModelInferRequest& request, absl::Time deadline) {
  const absl::Time start = absl::Now();
  SELENE_RETURN_IF_ERROR(CheckVersion(request.model_name(), request.model_version()));
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<ServableModel> model,
                          engine_->Model(request.model_name()));
  int64_t images = 0;
  StatusOr<inference::ModelInferResponse> result =
      [&]() -> StatusOr<inference::ModelInferResponse> {
    const InferenceEngineOptions& options = engine_->options();
    SELENE_ASSIGN_OR_RETURN(const double threshold, Threshold(request, options.default_threshold));
    SELENE_ASSIGN_OR_RETURN(std::vector<WantedOutput> wanted, WantedOutputs(request, *model));
    SELENE_ASSIGN_OR_RETURN(std::vector<cv::Mat> decoded,
                            ReadImages(request, *model, options.max_image_pixels));
    images = static_cast<int64_t>(decoded.size());
    SELENE_ASSIGN_OR_RETURN(std::vector<ImagePrediction> predictions,
                            engine_->Predict(*model, std::move(decoded), deadline));
    inference::ModelInferResponse response;
    response.set_model_name(request.model_name());
    response.set_model_version(kVersion);
    response.set_id(request.id());
    // Which job answered: an alias such as "latest" moves on as jobs succeed.
    (*response.mutable_parameters())["job_id"].set_string_param(model->job_id());
    if (model->task() == v1::TASK_CLASSIFICATION) {
      SELENE_RETURN_IF_ERROR(AddClassificationOutputs(*model, predictions, wanted, &response));
    } else {
      SELENE_RETURN_IF_ERROR(
          AddSegmentationOutputs(*model, predictions, threshold, wanted, &response));
    }
    return response;
  }();
  Count(model->job_id(), result.ok(), images, absl::Now() - start);
  return result;
}

void OpenInference::Count(const std::string& job_id, bool ok, int64_t images, absl::Duration took) {
  absl::MutexLock lock(&mu_);
  ModelCounts& counts = counts_[job_id];
  const int64_t ns = absl::ToInt64Nanoseconds(took);
  if (ok) {
    ++counts.success;
    counts.success_ns += ns;
    counts.images += images;
    counts.last_inference_ms = absl::ToUnixMillis(absl::Now());
  } else {
    ++counts.fail;
    counts.fail_ns += ns;
  }
}

}  // namespace selene::serving
