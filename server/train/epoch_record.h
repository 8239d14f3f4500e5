// One row of training history: what happened in one epoch. Kept apart from trainer.h so
// checkpoints and artifact writers can use it without the whole Trainer.
#pragma once

#include <cstdint>

#include "server/train/metrics.h"

namespace selene::train {

struct EpochRecord {
  int64_t epoch = 0;  // 0-based
  double train_loss = 0.0;
  double val_loss = 0.0;
  MetricValues train_metrics;  // computed on the training batches as they were seen
  MetricValues val_metrics;
  double learning_rate = 0.0;       // base group's rate at the epoch's end
  double seconds = 0.0;             // whole epoch: training and validation
  double images_per_second = 0.0;   // training images / training seconds
  double data_wait_fraction = 0.0;  // share of training time spent waiting for batches
};

}  // namespace selene::train
