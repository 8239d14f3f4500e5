// The standard process_* metrics every Prometheus client exports (CPU seconds, resident and
// virtual memory, open and maximum file descriptors, start time, threads), read from /proc and
// getrusage at each scrape.
#pragma once

#include "server/metrics/registry.h"

namespace selene::metrics {

void AddProcessMetrics(Registry* registry);

}  // namespace selene::metrics
