// The training loop: epochs of training and validation over in-memory data sets, per-epoch
// history, best and last checkpoints, exact resume, early stopping, progress and cancellation.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/network.h"
#include "server/train/batch_loader.h"
#include "server/train/epoch_record.h"
#include "server/train/loss.h"
#include "server/train/metrics.h"
#include "server/train/mixed_precision.h"
#include "server/train/optimization.h"
#include "server/train/tensor_dataset.h"

namespace selene::train {

struct EarlyStoppingOptions {
  bool enabled = false;
  int64_t patience = 5;    // epochs without improvement of the monitored metric
  double min_delta = 0.0;  // absolute improvement that counts
};

struct TrainerOptions {
  Task task = Task::kBinarySegmentation;
  int64_t epochs = 10;
  int64_t batch_size = 32;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  LossOptions loss;
  double grad_clip_norm = 0.0;       // 0 = no clipping
  std::string monitor = "val_loss";  // "val_loss" or a validation metric name ("dice", "top1")
  EarlyStoppingOptions early_stopping;
  uint64_t seed = 1;
  torch::Device device = torch::kCPU;
  Precision precision = Precision::kFloat32;  // kBFloat16: forward passes under autocast
  bool channels_last = false;                 // NHWC weights and batches (models::UseChannelsLast)
  Normalization normalization;
  int64_t input_size = 0;          // 0 = as stored; else batches are resized to it on the device
  BatchTransform train_transform;  // augmentation for training batches
  // Where the run keeps its checkpoints (the caller names them: common/run_folder.h); empty =
  // none. best: the weights of the best epoch so far; last: everything to resume from.
  std::string best_checkpoint;
  std::string last_checkpoint;
  bool resume = false;   // continue from last_checkpoint when it exists
  std::string metadata;  // stored in every checkpoint (e.g. the job spec as JSON)
};

struct StepProgress {
  int64_t epoch = 0;
  int64_t step = 0;  // 1-based within the epoch
  int64_t steps_per_epoch = 0;
  double loss = 0.0;               // this step's loss
  double images_per_second = 0.0;  // over the epoch so far
  int64_t images = 0;              // in this step's batch
  double seconds = 0.0;            // this step's wall time, waiting for the batch included
};

struct TrainerCallbacks {
  std::function<void(const StepProgress&)> on_step;
  // After the epoch's checkpoints (best.pt when it improved, last.pt) are durable on disk.
  std::function<void(const EpochRecord&)> on_epoch;
  // Checked with `cancel` before every training step and validation batch: true stops the run
  // as a cancel does (e.g. the caller can no longer record its progress). May be empty.
  std::function<bool()> should_stop;
  // Asked before every checkpoint write: an error ends the run with it, and nothing is written
  // (a worker that lost its job's lease to another worker must not overwrite its files). May be
  // empty.
  std::function<Status()> before_write;
};

struct TrainResult {
  std::vector<EpochRecord> history;  // includes epochs restored from a resumed checkpoint
  int64_t best_epoch = -1;
  double best_value = 0.0;  // of the monitored metric
  bool stopped_early = false;
  bool cancelled = false;
};

class Trainer {
 public:
  Trainer(models::Network network, TrainerOptions options);

  // Trains on `data.train`, validating on `data.val` after every epoch. Returns the history,
  // or an error (invalid options, a torch error, a checkpoint that cannot be written) as a
  // status; never throws. `cancel` (may be null) is checked before every step; a cancelled run
  // writes last.pt at the step it stopped.
  StatusOr<TrainResult> Run(const TrainValSplit& data, const TrainerCallbacks& callbacks = {},
                            const std::atomic<bool>* cancel = nullptr);

  // One validation pass: loss and metrics over the whole data set.
  StatusOr<std::pair<double, MetricValues>> Evaluate(const TensorDataset& data);

  models::Network network() const { return network_; }

 private:
  models::Network network_;
  TrainerOptions options_;
};

// Which value of an epoch record `monitor` names ("val_loss", "train_loss" or a val metric).
std::optional<double> MonitoredValue(const EpochRecord& record, const std::string& monitor);

}  // namespace selene::train
