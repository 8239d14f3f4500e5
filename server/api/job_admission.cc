#include "server/api/job_admission.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/text_limits.h"
#include "server/jobs/data_item_count.h"
#include "server/jobs/memory_estimate.h"
#include "spec/limits.h"

namespace selene::api {
namespace {

// "cuda:07" -> "cuda:7", as DevicePool names devices; other names unchanged.
std::string CanonicalDevice(const std::string& device) {
  absl::string_view index = device;
  int number = 0;
  if (absl::ConsumePrefix(&index, "cuda:") && absl::SimpleAtoi(index, &number) && number >= 0) {
    return absl::StrCat("cuda:", number);
  }
  return device;
}

}  // namespace

Status CheckDeviceAvailable(const std::string& device, const std::vector<std::string>& devices) {
  if (device.empty() || device == spec::kAnyDevice || devices.empty()) return OkStatus();
  const std::string wanted = CanonicalDevice(device);
  const bool has = std::any_of(devices.begin(), devices.end(), [&](const std::string& d) {
    return wanted == "cuda" ? absl::StartsWith(d, "cuda:") : d == wanted;
  });
  if (has) return OkStatus();
  return FailedPreconditionError(absl::StrCat(
      "training.device: \"", ForMessage(device), "\" is not a device of this server (it has ",
      absl::StrJoin(devices, ", "), "); leave training.device empty or \"auto\" to run on any"));
}

int64_t PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<int64_t>(pages) * static_cast<int64_t>(page_size);
}

int64_t DefaultJobMemoryLimitBytes() { return PhysicalMemoryBytes() / 5 * 4; }

Status CheckJobMemory(const spec::ResolvedJobSpec& spec, const std::string& data_folder,
                      int64_t limit_bytes, absl::string_view origin) {
  if (limit_bytes <= 0) return OkStatus();
  const int64_t items =
      data_folder.empty() ? -1 : jobs::CountDataItems(spec.proto().data().kind(), data_folder);
  const jobs::MemoryEstimate estimate = jobs::EstimateJobMemory(spec, items);
  if (estimate.total() <= static_cast<double>(limit_bytes)) return OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("job needs ", jobs::DescribeEstimate(estimate), " but ", origin, " allows ",
                   jobs::FormatBytes(static_cast<double>(limit_bytes))));
}

}  // namespace selene::api
