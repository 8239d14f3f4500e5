// The devices the scheduler trains on ("cpu", "cuda:0", ...) and how many jobs each may run at
// once. The scheduler takes a slot before it starts a job and gives it back when the job ends, so
// a GPU never runs more jobs than it was given slots for. Torch-free header.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace selene::jobs {

// Every CUDA device this LibTorch sees ("cuda:0", "cuda:1", ...), else {"cpu"}.
std::vector<std::string> DefaultDevices();

// Thread-safe.
class DevicePool {
 public:
  // `devices` in order of preference, each "cpu", "cuda" (= "cuda:0") or "cuda:N", no repeats;
  // empty means DefaultDevices(). jobs_per_device >= 1. A name torch cannot parse, a CUDA device
  // this LibTorch does not see, or a repeat is InvalidArgument / FailedPrecondition naming it.
  static StatusOr<std::unique_ptr<DevicePool>> Create(std::vector<std::string> devices,
                                                      int jobs_per_device = 1);

  // A slot on the device running the fewest jobs (the earliest listed on ties), so jobs spread
  // over the GPUs before any GPU runs two; nullopt when every slot is taken.
  std::optional<std::string> Acquire() ABSL_LOCKS_EXCLUDED(mu_);

  // Gives back a slot Acquire returned. FailedPrecondition when `device` has no slot taken
  // (unknown, or released twice).
  Status Release(const std::string& device) ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<std::string>& devices() const { return devices_; }
  int jobs_per_device() const { return jobs_per_device_; }
  int capacity() const { return static_cast<int>(devices_.size()) * jobs_per_device_; }
  int in_use() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  DevicePool(std::vector<std::string> devices, int jobs_per_device);

  const std::vector<std::string> devices_;  // canonical names, e.g. "cuda:0"
  const int jobs_per_device_;
  mutable absl::Mutex mu_;
  std::vector<int> in_use_ ABSL_GUARDED_BY(mu_);  // by index into devices_
};

}  // namespace selene::jobs
