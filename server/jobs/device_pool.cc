#include "server/jobs/device_pool.h"

#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace selene::jobs {
namespace {

// "cuda" -> "cuda:0", "cpu:0" -> "cpu": one spelling per device, so the pool, the job store's
// device column and the spec the runner writes agree.
StatusOr<std::string> CanonicalDevice(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const std::exception&) {
    return InvalidArgumentError(absl::StrCat("device \"", name, "\": not a device name (\"cpu\", ",
                                             "\"cuda\" or \"cuda:N\")"));
  }
  if (device->is_cpu()) return std::string("cpu");
  if (!device->is_cuda()) {
    return InvalidArgumentError(
        absl::StrCat("device \"", name, "\": only cpu and cuda devices can train"));
  }
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  const int64_t index = device->has_index() ? device->index() : 0;
  if (index >= count) {
    return FailedPreconditionError(
        absl::StrCat("device \"", name, "\": this LibTorch sees ", count, " CUDA device(s)"));
  }
  return absl::StrCat("cuda:", index);
}

}  // namespace

std::vector<std::string> DefaultDevices() {
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (count == 0) return {"cpu"};
  std::vector<std::string> devices;
  for (int64_t i = 0; i < count; ++i) devices.push_back(absl::StrCat("cuda:", i));
  return devices;
}

StatusOr<std::unique_ptr<DevicePool>> DevicePool::Create(std::vector<std::string> devices,
                                                         int jobs_per_device) {
  if (jobs_per_device < 1) {
    return InvalidArgumentError(
        absl::StrCat("jobs per device: ", jobs_per_device, " must be >= 1"));
  }
  if (devices.empty()) devices = DefaultDevices();
  std::vector<std::string> canonical;
  for (const std::string& name : devices) {
    SELENE_ASSIGN_OR_RETURN(std::string device, CanonicalDevice(name));
    if (std::find(canonical.begin(), canonical.end(), device) != canonical.end()) {
      return InvalidArgumentError(absl::StrCat(
          "device \"", name, "\" is listed twice (devices: ", absl::StrJoin(devices, ", "), ")"));
    }
    canonical.push_back(std::move(device));
  }
  return std::unique_ptr<DevicePool>(new DevicePool(std::move(canonical), jobs_per_device));
}

DevicePool::DevicePool(std::vector<std::string> devices, int jobs_per_device)
    : devices_(std::move(devices)),
      jobs_per_device_(jobs_per_device),
      in_use_(devices_.size(), 0) {}

std::optional<std::string> DevicePool::Acquire() {
  absl::MutexLock lock(&mu_);
  size_t best = devices_.size();
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (in_use_[i] >= jobs_per_device_) continue;
    if (best == devices_.size() || in_use_[i] < in_use_[best]) best = i;
  }
  if (best == devices_.size()) return std::nullopt;
  ++in_use_[best];
  return devices_[best];
}

Status DevicePool::Release(const std::string& device) {
  absl::MutexLock lock(&mu_);
  const auto found = std::find(devices_.begin(), devices_.end(), device);
  if (found == devices_.end()) {
    return FailedPreconditionError(absl::StrCat("device \"", device, "\" is not in the pool (",
                                                absl::StrJoin(devices_, ", "), ")"));
  }
  int& count = in_use_[found - devices_.begin()];
  if (count == 0) {
    return FailedPreconditionError(
        absl::StrCat("device \"", device, "\": no slot is taken; nothing to release"));
  }
  --count;
  return OkStatus();
}

int DevicePool::in_use() const {
  absl::MutexLock lock(&mu_);
  int total = 0;
  for (int count : in_use_) total += count;
  return total;
}

}  // namespace selene::jobs
