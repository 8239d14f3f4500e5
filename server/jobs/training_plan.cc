#include "server/jobs/training_plan.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spec/trainer_options.h"

namespace selene::jobs {
namespace {

int64_t PlannedClasses(const TrainingPlan& plan) {
  const models::NetworkSpec& network = plan.spec.network();
  switch (network.family) {
    case models::Family::kClassifier:
      return network.classifier.num_classes;
    case models::Family::kUNet:
      return network.unet.out_channels;
    case models::Family::kEncoderUNet:
      return network.encoder_unet.out_channels;
  }
  return 0;
}

int64_t PlannedInChannels(const TrainingPlan& plan) {
  const models::NetworkSpec& network = plan.spec.network();
  switch (network.family) {
    case models::Family::kClassifier:
      return network.classifier.in_channels;
    case models::Family::kUNet:
      return network.unet.in_channels;
    case models::Family::kEncoderUNet:
      return network.encoder_unet.encoder.in_channels;
  }
  return 0;
}

}  // namespace

StatusOr<TrainingPlan> PlanTraining(const spec::ResolvedJobSpec& spec) {
  const v1::ModelSpec& model = spec.proto().model();
  if (model.has_encoder_unet()) {
    const v1::EncoderUNetSpec& e = model.encoder_unet();
    if (!e.encoder_job_id().empty() && e.encoder_checkpoint().empty()) {
      return FailedPreconditionError(absl::StrCat(
          "model.encoder_unet.encoder_job_id: \"", e.encoder_job_id(),
          "\" must be resolved to an encoder_checkpoint path first (the server does that; for a "
          "local run set model.encoder_unet.encoder_checkpoint)"));
    }
  }
  SELENE_ASSIGN_OR_RETURN(train::TrainerOptions trainer, spec::ToTrainerOptions(spec));
  return TrainingPlan{spec, std::move(trainer), spec.proto().training().threads()};
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
    return InvalidArgumentError(absl::StrCat(
        "data: ", spec::DataKindName(plan.spec.data().kind), " has ", train.num_classes(),
        " classes but the model has ", PlannedClasses(plan), " outputs"));
  }
  return OkStatus();
}

}  // namespace selene::jobs
