// The admission checks that depend on the server rather than on the spec alone: the device a
// spec asks for must be one the server trains on, and the job's estimated memory
// (server/jobs/memory_estimate.h) must fit the server's per-job limit. Both run at submit, so a
// job that could never run is refused with a reason instead of failing later (or, for the
// device, silently training elsewhere).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"
#include "spec/resolved_job_spec.h"

namespace selene::api {

// OK when `device` (training.device as sent) is empty or "auto" (any device), when `devices`
// is empty (no check), or when the server has it: "cpu", "cuda:N" (also written "cuda:0N"), or
// "cuda" for any CUDA device. Otherwise FailedPrecondition naming training.device, the value
// and the server's devices.
Status CheckDeviceAvailable(const std::string& device, const std::vector<std::string>& devices);

// The machine's physical memory (sysconf); 0 when the system does not say.
int64_t PhysicalMemoryBytes();
// What one job may use by default: 80% of PhysicalMemoryBytes(), the rest left to the server
// itself (its process, the models it serves, the page cache).
int64_t DefaultJobMemoryLimitBytes();

// OK when `limit_bytes` is 0 (no limit) or the estimate for `spec` fits it; else
// ResourceExhausted: "job needs about 41.2 GiB (parameters 1.1 GiB, ...) but <origin> allows
// 18.0 GiB". `data_folder`: the resolved folder of a file data set ("" for synthetic data),
// whose items are counted for the estimate.
Status CheckJobMemory(const spec::ResolvedJobSpec& spec, const std::string& data_folder,
                      int64_t limit_bytes, absl::string_view origin);

}  // namespace selene::api
