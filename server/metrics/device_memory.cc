#include "server/metrics/device_memory.h"

#include <dlfcn.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace selene::metrics {
namespace {

// The few NVML entry points used, declared here as nvml.h spells them (NVML's ABI is stable;
// its header is not packaged with Debian's CPU toolchain).
using NvmlReturn = int;  // NVML_SUCCESS = 0
using NvmlDevice = void*;
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct Nvml {
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*device_count)(unsigned int*) = nullptr;
  NvmlReturn (*device_handle)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*memory_info)(NvmlDevice, NvmlMemory*) = nullptr;
};

template <typename Function>
bool Resolve(void* library, const char* symbol, Function* function) {
  *function = reinterpret_cast<Function>(dlsym(library, symbol));
  return *function != nullptr;
}

// NVML loaded and initialised once, for the process's life (it is never unloaded: the
// collect functions keep calling it).
const Nvml* LoadNvml() {
  static const Nvml* const nvml = []() -> const Nvml* {
    void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) return nullptr;
    auto* loaded = new Nvml;
    if (!Resolve(library, "nvmlInit_v2", &loaded->init) ||
        !Resolve(library, "nvmlDeviceGetCount_v2", &loaded->device_count) ||
        !Resolve(library, "nvmlDeviceGetHandleByIndex_v2", &loaded->device_handle) ||
        !Resolve(library, "nvmlDeviceGetMemoryInfo", &loaded->memory_info) || loaded->init() != 0) {
      delete loaded;
      return nullptr;
    }
    return loaded;
  }();
  return nvml;
}

// One sample per device whose memory NVML reports: used (or total) bytes.
std::vector<Sample> CollectMemory(const Nvml* nvml, bool total) {
  std::vector<Sample> samples;
  unsigned int count = 0;
  if (nvml->device_count(&count) != 0) return samples;
  for (unsigned int index = 0; index < count; ++index) {
    NvmlDevice device = nullptr;
    NvmlMemory memory{};
    if (nvml->device_handle(index, &device) != 0 || nvml->memory_info(device, &memory) != 0) {
      continue;
    }
    Sample sample;
    sample.label_values = {absl::StrCat("cuda:", index)};
    sample.value = static_cast<double>(total ? memory.total : memory.used);
    samples.push_back(std::move(sample));
  }
  return samples;
}

}  // namespace

bool AddDeviceMemoryMetrics(Registry* registry) {
  const Nvml* nvml = LoadNvml();
  unsigned int count = 0;
  if (nvml == nullptr || nvml->device_count(&count) != 0 || count == 0) return false;
  registry->AddCollected("selene_device_memory_used_bytes",
                         "GPU memory in use on the device (every process's, as NVML reports).",
                         MetricType::kGauge, {"device"},
                         [nvml] { return CollectMemory(nvml, /*total=*/false); });
  registry->AddCollected("selene_device_memory_total_bytes", "GPU memory of the device.",
                         MetricType::kGauge, {"device"},
                         [nvml] { return CollectMemory(nvml, /*total=*/true); });
  return true;
}

}  // namespace selene::metrics
