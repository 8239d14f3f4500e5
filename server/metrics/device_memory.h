// GPU memory per CUDA device, read through NVML (libnvidia-ml.so.1, loaded at run time, so the
// server needs no CUDA at build time and runs unchanged where there is none). NVML reports a
// device's memory as the driver sees it: every process's use, not only this server's.
#pragma once

#include "server/metrics/registry.h"

namespace selene::metrics {

// Adds selene_device_memory_used_bytes{device="cuda:N"} and selene_device_memory_total_bytes
// when NVML loads and sees at least one device; otherwise adds nothing and returns false.
bool AddDeviceMemoryMetrics(Registry* registry);

}  // namespace selene::metrics
