// From a resolved job spec to a training run's plan: the spec, the Trainer's options and the
// thread count, plus the check that loaded data fits it. Used by RunTraining
// (server/jobs/run_training.h), which selene-train and the server's job runner both call.
#pragma once

#include "common/status.h"
#include "server/train/tensor_dataset.h"
#include "server/train/trainer.h"
#include "spec/resolved_job_spec.h"

namespace selene::jobs {

struct TrainingPlan {
  spec::ResolvedJobSpec spec;
  // Everything but the checkpoint paths and resume, which belong to the run's folder.
  train::TrainerOptions trainer;
  int threads = 0;  // training.threads; 0 = ConfigureTorchThreads' default
};

// FailedPrecondition when the spec needs what this process lacks: a CUDA device, or an
// encoder_job_id the server has not yet turned into an encoder_checkpoint path.
StatusOr<TrainingPlan> PlanTraining(const spec::ResolvedJobSpec& spec);

// Checks loaded data against the plan (image channels, square images, class count vs the model's
// outputs), naming both sides, so a mismatch fails before the first step rather than inside it.
Status CheckDataFitsPlan(const TrainingPlan& plan, const train::TrainValSplit& data);

}  // namespace selene::jobs
