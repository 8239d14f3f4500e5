#include "server/serving/servable_model.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/run_folder.h"
#include "models/network.h"
#include "server/train/batch_loader.h"
#include "server/train/checkpoint.h"
#include "server/train/mixed_precision.h"
#include "server/train/tensor_dataset.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"

namespace selene::serving {
namespace {

StatusOr<v1::JobSpec> SpecOf(const ServableModelRecord& record) {
  if (record.spec.task() != v1::TASK_UNSPECIFIED) return record.spec;
  // A catalog that only knows the checkpoint: its metadata is the resolved spec as JSON.
  StatusOr<std::string> metadata = train::ReadCheckpointMetadata(record.checkpoint_path);
  if (!metadata.ok()) {
    return InvalidArgumentError(absl::StrCat("model ", record.job_id, ": no spec, and checkpoint ",
                                             record.checkpoint_path,
                                             " cannot be read: ", metadata.status().message()));
  }
  StatusOr<v1::JobSpec> parsed = spec::ParseJobSpecJson(*metadata, record.checkpoint_path);
  if (!parsed.ok() || parsed->task() == v1::TASK_UNSPECIFIED) {
    return InvalidArgumentError(absl::StrCat("model ", record.job_id,
                                             ": no spec, and the metadata of checkpoint ",
                                             record.checkpoint_path, " is not a job spec"));
  }
  return parsed;
}

}  // namespace

StatusOr<ModelDescription> DescribeModel(const ServableModelRecord& record) {
  SELENE_ASSIGN_OR_RETURN(v1::JobSpec spec, SpecOf(record));
  StatusOr<spec::ResolvedJobSpec> resolved = spec::ResolvedJobSpec::Resolve(spec);
  if (!resolved.ok()) {
    return InvalidArgumentError(absl::StrCat(
        "model ", record.job_id, ": its spec is not valid: ", resolved.status().message()));
  }
  ModelDescription d(*std::move(resolved));
  const v1::JobSpec& resolved_spec = d.spec.proto();
  d.task = resolved_spec.task();
  d.network = d.spec.network();
  // best.pt holds the encoder's trained weights too; the classifier it started from may be gone.
  d.network.encoder_unet.encoder_checkpoint.clear();
  d.family = models::FamilyName(d.network.family);
  switch (d.network.family) {
    case models::Family::kClassifier:
      d.in_channels = d.network.classifier.in_channels;
      d.num_outputs = d.network.classifier.num_classes;
      break;
    case models::Family::kUNet:
      d.in_channels = d.network.unet.in_channels;
      d.num_outputs = d.network.unet.out_channels;
      break;
    case models::Family::kEncoderUNet:
      d.in_channels = d.network.encoder_unet.encoder.in_channels;
      d.num_outputs = d.network.encoder_unet.out_channels;
      break;
  }
  d.input_size = resolved_spec.data().image_size();
  if (d.input_size <= 0 || d.num_outputs <= 0 || (d.in_channels != 1 && d.in_channels != 3)) {
    return InvalidArgumentError(absl::StrCat("model ", record.job_id, ": cannot serve input size ",
                                             d.input_size, ", ", d.in_channels, " input channels, ",
                                             d.num_outputs, " outputs"));
  }
  d.normalize_mean.assign(resolved_spec.data().normalize_mean().begin(),
                          resolved_spec.data().normalize_mean().end());
  d.normalize_std.assign(resolved_spec.data().normalize_std().begin(),
                         resolved_spec.data().normalize_std().end());
  if (d.normalize_mean.empty()) d.normalize_mean = {0.5};
  if (d.normalize_std.empty()) d.normalize_std = {0.25};

  d.class_names = RunFolder(std::filesystem::path(record.checkpoint_path).parent_path().string())
                      .ReadClassNames();
  if (static_cast<int64_t>(d.class_names.size()) != d.num_outputs) {
    d.class_names.clear();
    if (d.task == v1::TASK_BINARY_SEGMENTATION && d.num_outputs == 1) {
      d.class_names.push_back("foreground");
    } else {
      for (int64_t i = 0; i < d.num_outputs; ++i)
        d.class_names.push_back(absl::StrCat("class_", i));
    }
  }
  return d;
}

struct ServableModel::Torch {
  models::Network network;
  train::Normalization normalization;
  bool channels_last = false;
  train::Precision precision = train::Precision::kFloat32;
};

ServableModel::ServableModel(ServableModelRecord record, ModelDescription description)
    : record_(std::move(record)), description_(std::move(description)) {}

ServableModel::~ServableModel() {
  if (batcher_ != nullptr) batcher_->Stop();
}

StatusOr<std::shared_ptr<ServableModel>> ServableModel::Load(const ServableModelRecord& record,
                                                             DynamicBatcherOptions batcher_options,
                                                             ServableModelOptions model_options) {
  SELENE_ASSIGN_OR_RETURN(ModelDescription description, DescribeModel(record));
  auto torch_state = std::make_unique<Torch>();
  int64_t parameters = 0;
  try {
    // best.pt holds the encoder's trained weights too; the classifier it started from may be gone.
    StatusOr<models::Network> built = spec::BuildNetwork(description.spec, /*load_encoder=*/false);
    if (!built.ok()) {
      return InternalError(absl::StrCat("model ", record.job_id,
                                        ": cannot build its network: ", built.status().message()));
    }
    models::Network network = std::move(built).value();
    Status loaded = train::LoadCheckpoint(record.checkpoint_path, *network);
    if (!loaded.ok()) {
      return InternalError(absl::StrCat("model ", record.job_id, ": cannot load checkpoint ",
                                        record.checkpoint_path, ": ", loaded.message()));
    }
    network->eval();
    for (torch::Tensor& p : network->parameters()) p.set_requires_grad(false);
    // Counted before folding: the trained model's size, not the folded convolutions' biases.
    parameters = models::CountParameters(*network);
    if (model_options.fold_batch_norms) network->fold_batch_norms();
    if (model_options.channels_last) models::UseChannelsLast(*network);
    torch_state->channels_last = model_options.channels_last;
    torch_state->precision =
        model_options.bfloat16 ? train::Precision::kBFloat16 : train::Precision::kFloat32;
    torch_state->network = std::move(network);
    torch_state->normalization.mean = description.normalize_mean;
    torch_state->normalization.std = description.normalize_std;
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("model ", record.job_id, ": loading ", record.checkpoint_path,
                                      ": ", e.what()));
  }

  std::shared_ptr<ServableModel> model(new ServableModel(record, std::move(description)));
  model->torch_ = std::move(torch_state);
  model->parameters_ = parameters;
  batcher_options.name = absl::StrCat("model ", record.job_id);
  // The batcher belongs to the model and is stopped in its destructor, so the raw pointer never
  // outlives it.
  ServableModel* raw = model.get();
  model->batcher_ = std::make_unique<DynamicBatcher>(
      std::move(batcher_options),
      [raw](const std::vector<cv::Mat>& images) { return raw->RunBatch(images); });
  return model;
}

StatusOr<ModelOutput> ServableModel::Infer(cv::Mat image, absl::Time deadline) {
  return batcher_->Run(std::move(image), deadline);
}

StatusOr<std::vector<ModelOutput>> ServableModel::InferAll(std::vector<cv::Mat> images,
                                                           absl::Time deadline) {
  if (images.size() == 1) {
    SELENE_ASSIGN_OR_RETURN(ModelOutput output, Infer(std::move(images[0]), deadline));
    return std::vector<ModelOutput>{std::move(output)};
  }
  struct Pending {
    absl::Mutex mu;
    size_t left ABSL_GUARDED_BY(mu);
    std::vector<StatusOr<ModelOutput>> results ABSL_GUARDED_BY(mu);
  };
  // Every callback runs before this returns (it waits for all), but sharing keeps that from
  // resting on the batcher's bookkeeping.
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&pending->mu);
    pending->left = images.size();
    pending->results.assign(images.size(), InternalError("not answered"));
  }
  for (size_t i = 0; i < images.size(); ++i) {
    batcher_->Submit(std::move(images[i]), deadline, [pending, i](StatusOr<ModelOutput> output) {
      absl::MutexLock lock(&pending->mu);
      pending->results[i] = std::move(output);
      --pending->left;
    });
  }
  absl::MutexLock lock(&pending->mu);
  pending->mu.Await(absl::Condition(
      +[](size_t* left) { return *left == 0; }, &pending->left));
  std::vector<ModelOutput> outputs;
  outputs.reserve(pending->results.size());
  for (StatusOr<ModelOutput>& result : pending->results) {
    if (!result.ok()) return result.status();
    outputs.push_back(*std::move(result));
  }
  return outputs;
}

StatusOr<std::vector<ModelOutput>> ServableModel::RunBatch(const std::vector<cv::Mat>& images) {
  const int64_t side = description_.input_size;
  const int64_t channels = description_.in_channels;
  const int expected_type = channels == 1 ? CV_8UC1 : CV_8UC3;
  for (const cv::Mat& image : images) {
    if (image.type() != expected_type || image.rows != side || image.cols != side) {
      return InvalidArgumentError(absl::StrCat(
          "model ", record_.job_id, " takes ", side, "x", side, " images with ", channels,
          " channels; got ", image.cols, "x", image.rows, " with ", image.channels()));
    }
  }
  if (images.empty()) return std::vector<ModelOutput>();
  try {
    c10::InferenceMode inference;
    const int64_t batch = static_cast<int64_t>(images.size());
    torch::Tensor hwc = torch::empty({batch, side, side, channels}, torch::kUInt8);
    const size_t bytes = static_cast<size_t>(side * side * channels);
    uint8_t* dst = hwc.data_ptr<uint8_t>();
    for (int64_t i = 0; i < batch; ++i) {
      const cv::Mat& image = images[static_cast<size_t>(i)];
      const cv::Mat continuous = image.isContinuous() ? image : image.clone();
      std::memcpy(dst + i * bytes, continuous.data, bytes);
    }
    // [N, H, W, C] bytes seen as [N, C, H, W]: already channels-last, so no copy when the
    // network computes in that layout.
    torch::Tensor nchw = hwc.permute({0, 3, 1, 2});
    if (!torch_->channels_last) nchw = nchw.contiguous();
    torch::Tensor x = train::NormalizeImages(nchw, torch_->normalization, torch::kCPU);
    torch::Tensor logits;
    {
      train::AutocastScope autocast(torch_->precision, torch::kCPU);
      logits = torch_->network->forward(x);
    }
    logits = logits.to(torch::kFloat).contiguous();
    std::vector<int64_t> shape(logits.sizes().begin() + 1, logits.sizes().end());
    const int64_t per_image = logits.numel() / batch;
    const float* src = logits.data_ptr<float>();
    std::vector<ModelOutput> outputs(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) {
      ModelOutput& out = outputs[static_cast<size_t>(i)];
      out.shape = shape;
      out.values.assign(src + i * per_image, src + (i + 1) * per_image);
    }
    return outputs;
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("model ", record_.job_id, ": forward pass over ",
                                      images.size(), " images failed: ", e.what()));
  }
}

}  // namespace selene::serving
