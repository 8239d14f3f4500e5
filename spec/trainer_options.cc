#include "spec/trainer_options.h"

#include <torch/torch.h>

#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/data/augmentation.h"
#include "spec/json_io.h"

namespace selene::spec {
namespace {

train::OptimizerOptions ToOptimizerOptions(const v1::OptimizerSpec& o) {
  train::OptimizerOptions options;
  switch (o.kind()) {
    case v1::OPTIMIZER_KIND_SGD:
      options.kind = train::OptimizerKind::kSGD;
      break;
    case v1::OPTIMIZER_KIND_ADAM:
      options.kind = train::OptimizerKind::kAdam;
      break;
    default:
      options.kind = train::OptimizerKind::kAdamW;
      break;
  }
  options.learning_rate = o.lr();
  options.weight_decay = o.weight_decay();
  if (o.has_momentum()) options.momentum = o.momentum();
  options.nesterov = o.nesterov();
  if (o.has_beta1()) options.beta1 = o.beta1();
  if (o.has_beta2()) options.beta2 = o.beta2();
  return options;
}

train::ScheduleOptions ToScheduleOptions(const v1::ScheduleSpec& s) {
  train::ScheduleOptions options;
  switch (s.kind()) {
    case v1::SCHEDULE_KIND_STEP:
      options.kind = train::ScheduleKind::kStep;
      break;
    case v1::SCHEDULE_KIND_COSINE:
      options.kind = train::ScheduleKind::kCosine;
      break;
    case v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU:
      options.kind = train::ScheduleKind::kReduceOnPlateau;
      break;
    default:
      options.kind = train::ScheduleKind::kConstant;
      break;
  }
  options.warmup_epochs = s.warmup_epochs();
  options.warmup_start_factor = s.warmup_start_factor();
  if (s.has_step_size()) options.step_size = s.step_size();
  if (s.has_gamma()) options.gamma = s.gamma();
  if (s.has_min_factor()) options.min_factor = s.min_factor();
  if (s.has_plateau_patience()) options.plateau_patience = s.plateau_patience();
  if (s.has_plateau_threshold()) options.plateau_threshold = s.plateau_threshold();
  return options;
}

train::LossOptions ToLossOptions(const v1::LossSpec& l) {
  train::LossOptions options;
  switch (l.kind()) {
    case v1::LOSS_KIND_BCE:
      options.kind = train::LossKind::kBCE;
      break;
    case v1::LOSS_KIND_DICE:
      options.kind = train::LossKind::kDice;
      break;
    case v1::LOSS_KIND_BCE_DICE:
      options.kind = train::LossKind::kBCEDice;
      break;
    case v1::LOSS_KIND_CROSS_ENTROPY_DICE:
      options.kind = train::LossKind::kCrossEntropyDice;
      break;
    default:
      options.kind = train::LossKind::kCrossEntropy;
      break;
  }
  if (l.has_pos_weight()) options.pos_weight = l.pos_weight();
  if (l.has_bce_weight()) options.bce_weight = l.bce_weight();
  if (l.has_dice_weight()) options.dice_weight = l.dice_weight();
  if (l.has_ce_weight()) options.ce_weight = l.ce_weight();
  options.class_weights.assign(l.class_weights().begin(), l.class_weights().end());
  if (l.has_label_smoothing()) options.label_smoothing = l.label_smoothing();
  if (l.has_ignore_index()) options.ignore_index = l.ignore_index();
  if (l.has_dice_smooth()) options.dice_smooth = l.dice_smooth();
  return options;
}

StatusOr<torch::Device> ToDevice(const std::string& name) {
  try {
    torch::Device device(name);
    if (device.is_cuda()) {
      if (!torch::cuda::is_available()) {
        return FailedPreconditionError(absl::StrCat(
            "training.device: \"", name, "\" requested but this LibTorch sees no CUDA device"));
      }
      const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
      if (device.has_index() && device.index() >= count) {
        return FailedPreconditionError(absl::StrCat("training.device: \"", name, "\" but only ",
                                                    count, " CUDA device(s) are visible"));
      }
    }
    return device;
  } catch (const std::exception& e) {
    return InvalidArgumentError(absl::StrCat("training.device: \"", name, "\": ", e.what()));
  }
}

}  // namespace

StatusOr<train::TrainerOptions> ToTrainerOptions(const ResolvedJobSpec& spec) {
  const v1::TrainingSpec& t = spec.proto().training();
  const DataRequest& data = spec.data();
  train::TrainerOptions options;
  options.task = spec.task();
  options.epochs = t.epochs();
  options.batch_size = t.batch_size();
  options.optimizer = ToOptimizerOptions(t.optimizer());
  options.schedule = ToScheduleOptions(t.schedule());
  options.loss = ToLossOptions(t.loss());
  options.grad_clip_norm = t.grad_clip_norm();
  options.monitor = t.monitor();
  options.early_stopping.enabled = t.early_stopping().enabled();
  if (t.early_stopping().has_patience()) {
    options.early_stopping.patience = t.early_stopping().patience();
  }
  if (t.early_stopping().has_min_delta()) {
    options.early_stopping.min_delta = t.early_stopping().min_delta();
  }
  options.seed = t.seed();
  SELENE_ASSIGN_OR_RETURN(options.device, ToDevice(t.device()));
  options.precision = t.precision() == v1::PRECISION_BF16 ? train::Precision::kBFloat16
                                                          : train::Precision::kFloat32;
  options.channels_last = t.channels_last();
  if (!data.normalize_mean.empty()) options.normalization.mean = data.normalize_mean;
  if (!data.normalize_std.empty()) options.normalization.std = data.normalize_std;
  // Data sets may be stored smaller than the model's input (Tiny ImageNet stays 64x64 in
  // memory): batches are resized on the device.
  options.input_size = data.image_size;
  if (data.augmentation.any()) {
    options.train_transform =
        data::MakeAugmentation(data.augmentation, options.task, options.loss.ignore_index);
  }
  options.metadata = JobSpecToJson(spec.proto(), /*pretty=*/false);
  return options;
}

}  // namespace selene::spec
