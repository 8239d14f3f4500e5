#include "server/train/optimization.h"

#include <cmath>
#include <sstream>

namespace selene::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::string Str(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::unique_ptr<torch::optim::OptimizerOptions> GroupOptions(const OptimizerOptions& options,
                                                             double lr) {
  switch (options.kind) {
    case OptimizerKind::kSGD:
      return std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr)
                                                            .momentum(options.momentum)
                                                            .nesterov(options.nesterov)
                                                            .weight_decay(options.weight_decay));
    case OptimizerKind::kAdam:
      return std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(lr)
                                                             .betas({options.beta1, options.beta2})
                                                             .weight_decay(options.weight_decay));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr)
                                                              .betas({options.beta1, options.beta2})
                                                              .weight_decay(options.weight_decay));
  }
  return nullptr;
}

}  // namespace

Status ValidateOptimizer(const OptimizerOptions& options) {
  if (!(options.learning_rate > 0) || !std::isfinite(options.learning_rate)) {
    return InvalidArgumentError("optimizer.lr: " + Str(options.learning_rate) + " must be > 0");
  }
  if (options.weight_decay < 0) {
    return InvalidArgumentError("optimizer.weight_decay: " + Str(options.weight_decay) +
                                " must be >= 0");
  }
  if (options.momentum < 0 || options.momentum >= 1) {
    return InvalidArgumentError("optimizer.momentum: " + Str(options.momentum) +
                                " must be in [0, 1)");
  }
  if (options.kind == OptimizerKind::kSGD && options.nesterov && options.momentum <= 0) {
    return InvalidArgumentError("optimizer.nesterov: needs momentum > 0");
  }
  for (double beta : {options.beta1, options.beta2}) {
    if (beta < 0 || beta >= 1) {
      return InvalidArgumentError("optimizer.betas: " + Str(beta) + " must be in [0, 1)");
    }
  }
  return OkStatus();
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(
    const OptimizerOptions& options, const std::vector<models::ParameterGroup>& groups) {
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const models::ParameterGroup& group : groups) {
    param_groups.emplace_back(group.parameters,
                              GroupOptions(options, options.learning_rate * group.lr_scale));
  }
  // The defaults only matter for groups added later; every group above has its own options.
  switch (options.kind) {
    case OptimizerKind::kSGD:
      return std::make_unique<torch::optim::SGD>(param_groups,
                                                 torch::optim::SGDOptions(options.learning_rate));
    case OptimizerKind::kAdam:
      return std::make_unique<torch::optim::Adam>(param_groups,
                                                  torch::optim::AdamOptions(options.learning_rate));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamW>(
          param_groups, torch::optim::AdamWOptions(options.learning_rate));
  }
  return nullptr;
}

Status ValidateSchedule(const ScheduleOptions& options) {
  if (options.warmup_epochs < 0) {
    return InvalidArgumentError("schedule.warmup_epochs: " + std::to_string(options.warmup_epochs) +
                                " must be >= 0");
  }
  if (options.warmup_start_factor <= 0 || options.warmup_start_factor > 1) {
    return InvalidArgumentError(
        "schedule.warmup_start_factor: " + Str(options.warmup_start_factor) + " must be in (0, 1]");
  }
  if (options.kind == ScheduleKind::kStep && options.step_size < 1) {
    return InvalidArgumentError("schedule.step_size: " + std::to_string(options.step_size) +
                                " must be >= 1");
  }
  if ((options.kind == ScheduleKind::kStep || options.kind == ScheduleKind::kReduceOnPlateau) &&
      (options.gamma <= 0 || options.gamma >= 1)) {
    return InvalidArgumentError("schedule.gamma: " + Str(options.gamma) + " must be in (0, 1)");
  }
  if (options.min_factor < 0 || options.min_factor > 1) {
    return InvalidArgumentError("schedule.min_factor: " + Str(options.min_factor) +
                                " must be in [0, 1]");
  }
  if (options.kind == ScheduleKind::kReduceOnPlateau && options.plateau_patience < 0) {
    return InvalidArgumentError(
        "schedule.plateau_patience: " + std::to_string(options.plateau_patience) + " must be >= 0");
  }
  return OkStatus();
}

LrSchedule::LrSchedule(ScheduleOptions options, int64_t total_epochs)
    : options_(options), total_epochs_(std::max<int64_t>(total_epochs, 1)) {}

double LrSchedule::Factor(int64_t epoch, int64_t step, int64_t steps_per_epoch) const {
  double factor = 1.0;
  switch (options_.kind) {
    case ScheduleKind::kConstant:
      break;
    case ScheduleKind::kStep:
      factor = std::pow(options_.gamma, static_cast<double>(epoch / options_.step_size));
      break;
    case ScheduleKind::kCosine: {
      // Cosine over the epochs after warm-up, from 1 towards min_factor, which it would reach
      // one epoch after the last (as torch's CosineAnnealingLR with T_max = epochs): the last
      // epoch still learns.
      const int64_t span = std::max<int64_t>(total_epochs_ - options_.warmup_epochs, 1);
      const double progress =
          std::clamp(static_cast<double>(epoch - options_.warmup_epochs) / span, 0.0, 1.0);
      factor = options_.min_factor +
               (1.0 - options_.min_factor) * 0.5 * (1.0 + std::cos(kPi * progress));
      break;
    }
    case ScheduleKind::kReduceOnPlateau:
      factor = plateau_factor_;
      break;
  }
  if (epoch < options_.warmup_epochs) {
    // Linear warm-up per step, so the first steps of training are gentle.
    const double steps = static_cast<double>(options_.warmup_epochs * steps_per_epoch);
    const double done = static_cast<double>(epoch * steps_per_epoch + step);
    const double t = steps > 0 ? std::clamp(done / steps, 0.0, 1.0) : 1.0;
    factor *= options_.warmup_start_factor + (1.0 - options_.warmup_start_factor) * t;
  }
  return factor;
}

void LrSchedule::EndEpoch(double monitored_value, bool higher_is_better) {
  if (options_.kind != ScheduleKind::kReduceOnPlateau || !std::isfinite(monitored_value)) return;
  const double margin = options_.plateau_threshold * std::abs(plateau_best_);
  const bool improved =
      !plateau_has_best_ || (higher_is_better ? monitored_value > plateau_best_ + margin
                                              : monitored_value < plateau_best_ - margin);
  if (improved) {
    plateau_best_ = monitored_value;
    plateau_has_best_ = true;
    plateau_bad_epochs_ = 0;
    return;
  }
  if (++plateau_bad_epochs_ > options_.plateau_patience) {
    plateau_factor_ = std::max(plateau_factor_ * options_.gamma, options_.min_factor);
    plateau_bad_epochs_ = 0;
  }
}

std::vector<double> LrSchedule::State() const {
  return {plateau_factor_, plateau_best_, plateau_has_best_ ? 1.0 : 0.0,
          static_cast<double>(plateau_bad_epochs_)};
}

Status LrSchedule::RestoreState(const std::vector<double>& state) {
  if (state.size() != 4) {
    return InvalidArgumentError("schedule state has " + std::to_string(state.size()) +
                                " values, expected 4");
  }
  plateau_factor_ = state[0];
  plateau_best_ = state[1];
  plateau_has_best_ = state[2] != 0.0;
  plateau_bad_epochs_ = static_cast<int64_t>(state[3]);
  return OkStatus();
}

void ApplyLearningRate(torch::optim::Optimizer& optimizer, double base_lr,
                       const std::vector<double>& group_scales, double factor) {
  auto& groups = optimizer.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    const double scale = i < group_scales.size() ? group_scales[i] : 1.0;
    groups[i].options().set_lr(base_lr * scale * factor);
  }
}

}  // namespace selene::train
