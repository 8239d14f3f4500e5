// Optimizers and learning-rate schedules. The schedule is ours (not torch's) so its state can
// be checkpointed and a resumed run continues it exactly.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/network.h"

namespace selene::train {

enum class OptimizerKind { kSGD, kAdam, kAdamW };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kAdamW;
  double learning_rate = 1e-3;
  double weight_decay = 0.0;          // AdamW: decoupled; SGD/Adam: L2
  double momentum = 0.9;              // SGD
  bool nesterov = false;              // SGD
  double beta1 = 0.9, beta2 = 0.999;  // Adam, AdamW
};

Status ValidateOptimizer(const OptimizerOptions& options);

// One torch param group per models::ParameterGroup, each at learning_rate * lr_scale.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(
    const OptimizerOptions& options, const std::vector<models::ParameterGroup>& groups);

enum class ScheduleKind { kConstant, kStep, kCosine, kReduceOnPlateau };

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::kConstant;
  int64_t warmup_epochs = 0;  // linear warm-up from warmup_start_factor to 1 (any kind)
  double warmup_start_factor = 0.1;
  int64_t step_size = 10;           // kStep: multiply by gamma every step_size epochs
  double gamma = 0.1;               // kStep and kReduceOnPlateau factor
  double min_factor = 0.0;          // kCosine: factor approached at the end; plateau: floor
  int64_t plateau_patience = 3;     // kReduceOnPlateau: epochs without improvement before a cut
  double plateau_threshold = 1e-4;  // relative improvement that counts
};

Status ValidateSchedule(const ScheduleOptions& options);

// Learning-rate factor (multiplied by the base rate) per epoch. Per-epoch granularity, with the
// warm-up interpolated per step so the first epoch does not start at full rate.
class LrSchedule {
 public:
  LrSchedule(ScheduleOptions options, int64_t total_epochs);

  // Factor for `step` of `steps_per_epoch` in `epoch` (0-based).
  double Factor(int64_t epoch, int64_t step, int64_t steps_per_epoch) const;
  // Reports the end of an epoch's validation (only kReduceOnPlateau uses it).
  void EndEpoch(double monitored_value, bool higher_is_better);

  // Serialised state (plateau best, bad epochs, current cut) for checkpoints.
  std::vector<double> State() const;
  Status RestoreState(const std::vector<double>& state);

 private:
  ScheduleOptions options_;
  int64_t total_epochs_;
  double plateau_factor_ = 1.0;
  double plateau_best_ = 0.0;
  bool plateau_has_best_ = false;
  int64_t plateau_bad_epochs_ = 0;
};

// Sets every param group's learning rate to its base rate * lr_scale * factor.
void ApplyLearningRate(torch::optim::Optimizer& optimizer, double base_lr,
                       const std::vector<double>& group_scales, double factor);

}  // namespace selene::train
