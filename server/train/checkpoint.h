// Checkpoints: the network's parameters and buffers, and for "last" checkpoints everything a
// run needs to resume exactly (optimizer state, schedule state, epoch, history, best so far).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/network.h"
#include "server/train/epoch_record.h"

namespace selene::train {

struct TrainingState {
  int64_t next_epoch = 0;
  int64_t next_step = 0;  // > 0 when the run stopped mid-epoch: batches of next_epoch done
  int64_t best_epoch = -1;
  double best_value = 0.0;
  int64_t epochs_without_improvement = 0;
  std::vector<double> schedule_state;
  std::vector<EpochRecord> history;
  // The epoch whose training steps all ran but whose validation was stopped (a cancel or a
  // shutdown mid-validation): its training loss and metrics, so a resumed run validates it
  // without training it again. Empty otherwise.
  std::vector<EpochRecord> trained_unvalidated;
};

// Writes atomically and durably (common/durable_file.h): a crash never leaves half a file, and
// a full disk is an error naming the file ("disk full writing DIR/last.pt"), the old file intact.
Status SaveCheckpoint(const std::string& path, models::NetworkImpl& network,
                      const std::string& metadata, torch::optim::Optimizer* optimizer = nullptr,
                      const TrainingState* state = nullptr);

// Loads parameters and buffers into `network` (same architecture; a mismatch names the
// tensor). Optimizer and state are restored when given and present in the file.
Status LoadCheckpoint(const std::string& path, models::NetworkImpl& network,
                      torch::optim::Optimizer* optimizer = nullptr, TrainingState* state = nullptr);

// The metadata string stored with a checkpoint (e.g. the job spec), without loading weights.
StatusOr<std::string> ReadCheckpointMetadata(const std::string& path);

// Copies matching tensors from `source` into `target` by name, for loading a classifier's
// weights into an encoder: names under `source_prefix` in the file map to `target_prefix`.
Status LoadModuleWeights(const std::string& path, torch::nn::Module& target,
                         const std::string& source_prefix = "");

}  // namespace selene::train
