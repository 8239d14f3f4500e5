// The job spec's defaults. Defaults that depend on other fields (lr by optimizer, loss and
// monitor by task, class count by data kind, model outputs from the class count, image size by
// data kind) are resolved here, in one place. Callers outside spec/ get a spec with its defaults
// filled in through ResolvedJobSpec (spec/resolved_job_spec.h).
#pragma once

#include <cstdint>

#include "selene/v1/job_spec.pb.h"

namespace selene::spec {

// The spec with every unset field that has a default filled in. Fields that only apply to
// another choice (e.g. momentum under AdamW) stay unset. Idempotent.
v1::JobSpec ResolveDefaults(const v1::JobSpec& spec);

// The class count the data will have (binary: 1; synthetic_shapes_segmentation: shapes plus
// background), or 0 when only the data set itself can tell.
int64_t ExpectedNumClasses(const v1::JobSpec& spec);

}  // namespace selene::spec
