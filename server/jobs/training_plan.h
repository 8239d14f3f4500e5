// From a job spec to a training run: the plan (network spec, Trainer options, data request),
// then the network (with its encoder checkpoint loaded). Used by selene-train for local runs
// and by the server's job runner. The torch-free half (parsing, overrides, validation,
// defaults) is server/jobs/job_spec.h; loading the data is server/jobs/training_data.h.
#pragma once

#include <string>

#include "common/status.h"
#include "models/model_options.h"
#include "models/network.h"
#include "selene/v1/job_spec.pb.h"
#include "server/jobs/job_spec.h"
#include "server/train/tensor_dataset.h"
#include "server/train/trainer.h"

namespace selene::jobs {

struct TrainingPlan {
  v1::JobSpec resolved_spec;  // the spec with every default filled in (ResolveDefaults)
  models::NetworkSpec network;
  // Everything but checkpoint_dir and resume, which belong to the runner. metadata holds the
  // resolved spec as JSON, so a checkpoint says how to rebuild its network.
  train::TrainerOptions trainer;
  DataRequest data;
  int threads = 0;  // training.threads; 0 = ConfigureTorchThreads' default
};

// Validates the spec (InvalidArgument listing every problem), resolves its defaults and
// translates it. FailedPrecondition when the spec needs what this process lacks: a CUDA device,
// or an encoder_job_id the server has not yet turned into an encoder_checkpoint path.
StatusOr<TrainingPlan> PlanTraining(const v1::JobSpec& spec);

// Builds the planned network: fits the width to the parameter budget when asked (the budget
// itself is enforced by models::BuildNetwork), then, for an encoder U-Net with an
// encoder_checkpoint, loads the classifier's weights into the encoder (its head is skipped).
StatusOr<models::Network> BuildPlannedNetwork(const TrainingPlan& plan);

// Checks loaded data against the plan (image channels, square images, class count vs the model's
// outputs), naming both sides, so a mismatch fails before the first step rather than inside it.
Status CheckDataFitsPlan(const TrainingPlan& plan, const train::TrainValSplit& data);

}  // namespace selene::jobs
