// Validation of a job spec: every field checked (with its defaults resolved), every problem
// named by its field path and reason. Callers outside spec/ validate through ResolvedJobSpec
// (spec/resolved_job_spec.h), which runs this once.
#pragma once

#include "common/status.h"
#include "selene/v1/job_spec.pb.h"

namespace selene::spec {

// InvalidArgument listing each problem as "<field path>: <reason>", joined by "; ", e.g.
// "training.batch_size: 0 must be in [1, 65536]; model: no family set (classifier, unet,
// encoder_unet)". Unknown enum values and non-finite floats anywhere in the tree are reported
// first, alone ("training.optimizer.lr: inf is not a finite number").
Status ValidateJobSpec(const v1::JobSpec& spec);

}  // namespace selene::spec
