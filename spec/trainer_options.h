// The training loop's half of the translation from a job spec to the engine's options:
// train::TrainerOptions (optimizer, schedule, loss, device, precision, augmentation). Needs
// torch; the torch-free half is spec/engine_options.h.
#pragma once

#include "common/status.h"
#include "server/train/trainer.h"
#include "spec/resolved_job_spec.h"

namespace selene::spec {

// Everything but the checkpoint paths and resume, which belong to whoever runs the training.
// metadata holds the resolved spec as JSON, so a checkpoint says how to rebuild its network.
// FailedPrecondition when training.device names a CUDA device this LibTorch cannot see.
StatusOr<train::TrainerOptions> ToTrainerOptions(const ResolvedJobSpec& spec);

}  // namespace selene::spec
