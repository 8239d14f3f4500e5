// Plain-file artifacts of a training run that need nothing but the standard library:
// history.csv (one row per epoch) and metrics.json (final and best epoch, monitored metric).
#pragma once

#include <string>

#include "common/status.h"
#include "server/train/trainer.h"

namespace selene::train {

Status WriteHistoryCsv(const std::string& path, const std::vector<EpochRecord>& history);
Status WriteMetricsJson(const std::string& path, const TrainResult& result,
                        const std::string& monitor);

}  // namespace selene::train
