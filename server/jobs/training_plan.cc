#include "server/jobs/training_plan.h"

#include <exception>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/factory.h"
#include "models/seeded_randomness.h"
#include "server/data/augmentation.h"
#include "server/train/checkpoint.h"

namespace selene::jobs {
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

int64_t PlannedClasses(const TrainingPlan& plan) {
  switch (plan.network.family) {
    case models::Family::kClassifier:
      return plan.network.classifier.num_classes;
    case models::Family::kUNet:
      return plan.network.unet.out_channels;
    case models::Family::kEncoderUNet:
      return plan.network.encoder_unet.out_channels;
  }
  return 0;
}

int64_t PlannedInChannels(const TrainingPlan& plan) {
  switch (plan.network.family) {
    case models::Family::kClassifier:
      return plan.network.classifier.in_channels;
    case models::Family::kUNet:
      return plan.network.unet.in_channels;
    case models::Family::kEncoderUNet:
      return plan.network.encoder_unet.encoder.in_channels;
  }
  return 0;
}

// The factory names NetworkSpec fields ("unet.base_width: ..."); under "model." they are the
// job spec's paths.
Status AsSpecError(const Status& status) {
  const absl::string_view message = status.message();
  for (absl::string_view field :
       {"classifier.", "unet.", "encoder_unet.", "parameter_budget", "family"}) {
    if (absl::StartsWith(message, field)) {
      return Status(status.code(), absl::StrCat("model.", message));
    }
  }
  // Budget refusals ("model has N parameters, over the budget of B").
  if (absl::StrContains(message, "budget")) {
    return Status(status.code(), absl::StrCat("model.parameter_budget: ", message));
  }
  return status;
}

}  // namespace

StatusOr<TrainingPlan> PlanTraining(const v1::JobSpec& spec) {
  SELENE_RETURN_IF_ERROR(ValidateJobSpec(spec));
  TrainingPlan plan;
  plan.resolved_spec = ResolveDefaults(spec);
  const v1::JobSpec& s = plan.resolved_spec;
  const v1::TrainingSpec& t = s.training();

  if (s.model().has_encoder_unet()) {
    const v1::EncoderUNetSpec& e = s.model().encoder_unet();
    if (!e.encoder_job_id().empty() && e.encoder_checkpoint().empty()) {
      return FailedPreconditionError(absl::StrCat(
          "model.encoder_unet.encoder_job_id: \"", e.encoder_job_id(),
          "\" must be resolved to an encoder_checkpoint path first (the server does that; for a "
          "local run set model.encoder_unet.encoder_checkpoint)"));
    }
  }

  plan.network = ResolveNetworkSpec(s);
  plan.data = ResolveDataRequest(s);
  plan.threads = t.threads();

  train::TrainerOptions& options = plan.trainer;
  options.task = ToTask(s.task());
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
  if (!plan.data.normalize_mean.empty()) options.normalization.mean = plan.data.normalize_mean;
  if (!plan.data.normalize_std.empty()) options.normalization.std = plan.data.normalize_std;
  // Data sets may be stored smaller than the model's input (Tiny ImageNet stays 64x64 in
  // memory): batches are resized on the device.
  options.input_size = plan.data.image_size;
  if (plan.data.augmentation.any()) {
    options.train_transform =
        data::MakeAugmentation(plan.data.augmentation, options.task, options.loss.ignore_index);
  }
  options.metadata = JobSpecToJson(s, /*pretty=*/false);
  return plan;
}

StatusOr<models::Network> BuildPlannedNetwork(const TrainingPlan& plan) {
  models::NetworkSpec spec = plan.network;
  if (spec.fit_width_to_budget) {
    StatusOr<models::NetworkSpec> fitted = models::FitWidthToBudget(spec);
    if (!fitted.ok()) return AsSpecError(fitted.status());
    spec = std::move(fitted).value();
  }
  StatusOr<models::Network> built = [&] {
    // The initial weights depend on the spec's seed alone, not on what ran before.
    models::SeededGlobalGenerator seeded(plan.trainer.seed);
    return models::BuildNetwork(spec);
  }();
  if (!built.ok()) return AsSpecError(built.status());
  models::Network network = std::move(built).value();
  if (spec.family == models::Family::kEncoderUNet &&
      !spec.encoder_unet.encoder_checkpoint.empty()) {
    const std::string& path = spec.encoder_unet.encoder_checkpoint;
    try {
      std::shared_ptr<torch::nn::Module> encoder;
      for (const auto& child : network->named_children()) {
        if (child.key() == "encoder") encoder = child.value();
      }
      if (encoder == nullptr) {
        return InternalError("encoder U-Net has no submodule named \"encoder\" to load into");
      }
      // The encoder is a classifier without its head: tensors match by name, and the
      // checkpoint's head tensors have no counterpart, so they are skipped.
      Status loaded = train::LoadModuleWeights(path, *encoder);
      if (!loaded.ok()) {
        return Status(loaded.code(), absl::StrCat("model.encoder_unet.encoder_checkpoint \"", path,
                                                  "\": ", loaded.message()));
      }
    } catch (const std::exception& e) {
      return InternalError(
          absl::StrCat("model.encoder_unet.encoder_checkpoint \"", path, "\": ", e.what()));
    }
  }
  return network;
}

Status CheckDataFitsPlan(const TrainingPlan& plan, const train::TrainValSplit& data) {
  const train::TensorDataset& train = data.train;
  if (train.size() == 0 || data.val.size() == 0) {
    return InvalidArgumentError(absl::StrCat("data: ", train.size(), " training and ",
                                             data.val.size(),
                                             " validation samples; both sets need samples"));
  }
  const int64_t channels = train.images.size(1);
  if (channels != PlannedInChannels(plan)) {
    return InvalidArgumentError(absl::StrCat("data: images have ", channels,
                                             " channels but the model takes ",
                                             PlannedInChannels(plan), " (in_channels)"));
  }
  // Stored sizes may differ from data.image_size (the loader resizes), but must be square so
  // resizing keeps the aspect the masks were drawn at.
  if (train.images.size(2) != train.images.size(3)) {
    return InvalidArgumentError(absl::StrCat("data: images are stored as ", train.images.size(3),
                                             "x", train.images.size(2), "; expected square"));
  }
  if (plan.trainer.task != train::Task::kBinarySegmentation &&
      train.num_classes() != PlannedClasses(plan)) {
    return InvalidArgumentError(absl::StrCat("data: ", DataKindName(plan.data.kind), " has ",
                                             train.num_classes(), " classes but the model has ",
                                             PlannedClasses(plan), " outputs"));
  }
  return OkStatus();
}

}  // namespace selene::jobs
