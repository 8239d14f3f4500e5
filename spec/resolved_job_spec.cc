#include "spec/resolved_job_spec.h"

#include "spec/defaults.h"
#include "spec/validation.h"

namespace selene::spec {

StatusOr<ResolvedJobSpec> ResolvedJobSpec::Resolve(const v1::JobSpec& spec) {
  SELENE_RETURN_IF_ERROR(ValidateJobSpec(spec));
  ResolvedJobSpec resolved;
  resolved.submitted_ = spec;
  resolved.resolved_ = ResolveDefaults(spec);
  resolved.task_ = ToTrainTask(resolved.resolved_.task());
  resolved.network_ = ToNetworkSpec(resolved.resolved_);
  resolved.data_ = ToDataRequest(resolved.resolved_);
  return resolved;
}

}  // namespace selene::spec
