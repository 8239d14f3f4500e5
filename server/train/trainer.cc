#include "server/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "models/seeded_randomness.h"
#include "server/train/checkpoint.h"

namespace selene::train {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// True when `value` beats `best` by more than `min_delta` in the metric's direction.
bool Improves(double value, double best, bool higher_is_better, double min_delta) {
  return higher_is_better ? value > best + min_delta : value < best - min_delta;
}

std::string JoinKeys(const MetricValues& values) {
  std::string joined = "val_loss, train_loss";
  for (const auto& item : values) joined += ", " + item.first;
  return joined;
}

// The network's logits for a batch in the run's precision and layout; float32 whatever the
// precision, for the loss and the metrics.
torch::Tensor ForwardLogits(models::NetworkImpl& network, const TrainerOptions& options,
                            const torch::Tensor& images) {
  AutocastScope autocast(options.precision, options.device);
  return network
      .forward(options.channels_last ? images.contiguous(torch::MemoryFormat::ChannelsLast)
                                     : images)
      .to(torch::kFloat);
}

// Puts the network on the run's device in the run's layout, before the optimizer sees it.
void PlaceNetwork(models::NetworkImpl& network, const TrainerOptions& options) {
  network.to(options.device);
  if (options.channels_last) models::UseChannelsLast(network);
}

// Loss and metrics over a whole data set, in eval mode without gradients; nullopt when `cancel`
// (may be null) is set before a batch, so a stop need not wait for a large validation set.
std::optional<std::pair<double, MetricValues>> EvaluatePass(
    models::NetworkImpl& network, const TrainerOptions& options, const TensorDataset& data,
    const std::function<bool()>& cancel = nullptr) {
  torch::NoGradGuard no_grad;
  network.eval();
  BatchLoaderOptions loader_options;
  loader_options.batch_size = options.batch_size;
  loader_options.shuffle = false;
  loader_options.device = options.device;
  loader_options.normalization = options.normalization;
  loader_options.resize_to = options.input_size;
  BatchLoader loader(data, loader_options);
  loader.StartEpoch(0);
  std::unique_ptr<MetricAccumulator> metrics =
      MakeMetrics(options.task, data.class_names, options.loss.ignore_index);
  double loss_sum = 0.0;
  int64_t count = 0;
  while (std::optional<Batch> batch = loader.Next()) {
    if (cancel && cancel()) return std::nullopt;
    torch::Tensor logits = ForwardLogits(network, options, batch->images);
    const int64_t n = batch->images.size(0);
    loss_sum += ComputeLoss(options.loss, options.task, logits, batch->targets).item<double>() * n;
    count += n;
    metrics->Add(logits, batch->targets);
  }
  return std::make_pair(count > 0 ? loss_sum / count : std::nan(""), metrics->Compute());
}

Status ValidateOptions(const TrainerOptions& options, const TrainValSplit& data) {
  if (options.epochs < 1) {
    return InvalidArgumentError("training.epochs: " + std::to_string(options.epochs) +
                                " must be >= 1");
  }
  if (options.batch_size < 1) {
    return InvalidArgumentError("training.batch_size: " + std::to_string(options.batch_size) +
                                " must be >= 1");
  }
  if (options.input_size < 0) {
    return InvalidArgumentError("training.input_size: " + std::to_string(options.input_size) +
                                " must be >= 0");
  }
  if (options.grad_clip_norm < 0) {
    return InvalidArgumentError("training.grad_clip_norm: must be >= 0");
  }
  if (options.early_stopping.enabled && options.early_stopping.patience < 1) {
    return InvalidArgumentError("training.early_stopping.patience: " +
                                std::to_string(options.early_stopping.patience) + " must be >= 1");
  }
  if (data.train.size() == 0) return InvalidArgumentError("data: the training set is empty");
  if (data.val.size() == 0) return InvalidArgumentError("data: the validation set is empty");
  if (data.train.task != options.task) {
    return InvalidArgumentError("data: a " + TaskName(data.train.task) +
                                " data set cannot train a " + TaskName(options.task) + " model");
  }
  SELENE_RETURN_IF_ERROR(ValidateOptimizer(options.optimizer));
  SELENE_RETURN_IF_ERROR(ValidateSchedule(options.schedule));
  SELENE_RETURN_IF_ERROR(ValidateLoss(options.loss, options.task, data.train.num_classes()));
  return OkStatus();
}

class TrainingRun {
 public:
  TrainingRun(models::NetworkImpl& network, const TrainerOptions& options,
              const TrainValSplit& data, const TrainerCallbacks& callbacks,
              const std::atomic<bool>* cancel)
      : network_(network),
        options_(options),
        data_(data),
        callbacks_(callbacks),
        cancel_(cancel),
        schedule_(options.schedule, options.epochs),
        higher_is_better_(HigherIsBetter(options.monitor)) {}

  StatusOr<TrainResult> Run() {
    SELENE_RETURN_IF_ERROR(ValidateOptions(options_, data_));
    PlaceNetwork(network_, options_);
    SELENE_RETURN_IF_ERROR(CheckMonitorAndShapes());
    std::vector<models::ParameterGroup> groups = network_.parameter_groups();
    for (const auto& group : groups) group_scales_.push_back(group.lr_scale);
    optimizer_ = MakeOptimizer(options_.optimizer, groups);
    SELENE_RETURN_IF_ERROR(MaybeResume());

    BatchLoaderOptions loader_options;
    loader_options.batch_size = options_.batch_size;
    loader_options.shuffle = true;
    // Dropping a ragged last batch keeps BatchNorm away from batches of one.
    loader_options.drop_last = data_.train.size() > options_.batch_size;
    loader_options.seed = options_.seed;
    loader_options.device = options_.device;
    loader_options.normalization = options_.normalization;
    loader_options.resize_to = options_.input_size;
    loader_options.transform = options_.train_transform;
    BatchLoader loader(data_.train, loader_options);

    TrainResult result;
    for (int64_t epoch = state_.next_epoch; epoch < options_.epochs; ++epoch) {
      std::optional<EpochRecord> record = TrainEpoch(loader, epoch);
      if (!record) {
        SELENE_RETURN_IF_ERROR(SaveLast(epoch, stopped_at_step_));
        result.cancelled = true;
        break;
      }
      state_.history.push_back(*record);
      SELENE_ASSIGN_OR_RETURN(const bool stop_early, EndEpoch(*record));
      // Only now, with the epoch's checkpoints durable, is the epoch reported: a store that
      // says "epoch N done" always has the last.pt of epoch N to resume from.
      if (callbacks_.on_epoch) callbacks_.on_epoch(*record);
      if (stop_early) {
        result.stopped_early = epoch + 1 < options_.epochs;
        break;
      }
    }
    result.history = state_.history;
    result.best_epoch = state_.best_epoch;
    result.best_value = state_.best_value;
    return result;
  }

 private:
  // One forward pass on the first validation batch before any training: a model whose output
  // does not fit the targets, or a monitor naming no metric, fails now rather than after an epoch.
  Status CheckMonitorAndShapes() {
    TensorDataset probe = data_.val;
    const int64_t n = std::min<int64_t>(probe.size(), 2);
    probe.images = probe.images.slice(0, 0, n);
    probe.targets = probe.targets.slice(0, 0, n);
    const MetricValues metrics = EvaluatePass(network_, options_, probe)->second;
    if (options_.monitor != "val_loss" && options_.monitor != "train_loss" &&
        metrics.count(options_.monitor) == 0) {
      return InvalidArgumentError(
          "training.monitor: \"" + options_.monitor +
          "\" is not a metric of this task; choose one of: " + JoinKeys(metrics));
    }
    return OkStatus();
  }

  Status MaybeResume() {
    if (!options_.resume || options_.last_checkpoint.empty()) return OkStatus();
    const std::string& last = options_.last_checkpoint;
    if (!std::filesystem::exists(last)) return OkStatus();
    SELENE_RETURN_IF_ERROR(LoadCheckpoint(last, network_, optimizer_.get(), &state_));
    if (!state_.schedule_state.empty()) {
      SELENE_RETURN_IF_ERROR(schedule_.RestoreState(state_.schedule_state));
    }
    return OkStatus();
  }

  // Trains one epoch and validates. Returns nullopt when cancelled (stopped_at_step_ says where;
  // a stop during validation keeps the trained epoch in state_.trained_unvalidated).
  std::optional<EpochRecord> TrainEpoch(BatchLoader& loader, int64_t epoch) {
    network_.on_epoch_start(epoch);
    std::optional<EpochRecord> record = TakeTrainedUnvalidated(epoch);
    if (!record) record = TrainSteps(loader, epoch);
    if (!record) return std::nullopt;
    const auto validation_start = Clock::now();
    auto validation = EvaluatePass(network_, options_, data_.val, [this] { return Stopping(); });
    if (!validation) {
      // Every step ran: a resumed run validates this epoch without training it again.
      state_.trained_unvalidated = {*record};
      stopped_at_step_ = loader.batches_per_epoch();
      return std::nullopt;
    }
    std::tie(record->val_loss, record->val_metrics) = *std::move(validation);
    record->seconds += SecondsSince(validation_start);
    return record;
  }

  // The epoch a resumed run stopped validating, when `epoch` is that one.
  std::optional<EpochRecord> TakeTrainedUnvalidated(int64_t epoch) {
    if (epoch != state_.next_epoch || state_.trained_unvalidated.empty() ||
        state_.trained_unvalidated.front().epoch != epoch) {
      return std::nullopt;
    }
    EpochRecord record = state_.trained_unvalidated.front();
    state_.trained_unvalidated.clear();
    return record;
  }

  // The epoch's training steps (from where a resumed run stopped), without validation: the
  // record's training fields. nullopt when cancelled before the last step.
  std::optional<EpochRecord> TrainSteps(BatchLoader& loader, int64_t epoch) {
    const auto epoch_start = Clock::now();
    network_.train();
    std::unique_ptr<MetricAccumulator> train_metrics =
        MakeMetrics(options_.task, data_.train.class_names, options_.loss.ignore_index);

    loader.StartEpoch(epoch);
    const int64_t steps = loader.batches_per_epoch();
    const int64_t first_step = epoch == state_.next_epoch ? state_.next_step : 0;
    for (int64_t skipped = 0; skipped < first_step; ++skipped) loader.Next();
    const double wait_before = loader.wait_seconds();

    double loss_sum = 0.0;
    int64_t images = 0;
    const auto train_start = Clock::now();
    int64_t step = first_step;
    while (true) {
      // A stop after the last step still finishes the epoch's training record.
      if (step < steps && Stopping()) {
        stopped_at_step_ = step;
        return std::nullopt;
      }
      const auto step_start = Clock::now();
      std::optional<Batch> batch = loader.Next();
      if (!batch) break;
      // Seeding per step makes dropout repeat exactly when a run resumes in the middle of an
      // epoch; the generator is this thread's, so other jobs' steps never draw from it.
      models::SeedThreadGenerator((options_.seed * 1000003ULL + static_cast<uint64_t>(epoch)) *
                                      100003ULL +
                                  static_cast<uint64_t>(step));
      ApplyLearningRate(*optimizer_, options_.optimizer.learning_rate, group_scales_,
                        schedule_.Factor(epoch, step, steps));
      optimizer_->zero_grad();
      torch::Tensor logits = ForwardLogits(network_, options_, batch->images);
      torch::Tensor loss = ComputeLoss(options_.loss, options_.task, logits, batch->targets);
      loss.backward();
      if (options_.grad_clip_norm > 0) {
        torch::nn::utils::clip_grad_norm_(network_.parameters(), options_.grad_clip_norm);
      }
      optimizer_->step();
      ++step;

      const int64_t n = batch->images.size(0);
      const double step_loss = loss.item<double>();
      loss_sum += step_loss * n;
      images += n;
      train_metrics->Add(logits.detach(), batch->targets);
      if (callbacks_.on_step) {
        callbacks_.on_step({epoch, step, steps, step_loss,
                            images / std::max(SecondsSince(train_start), 1e-9), n,
                            SecondsSince(step_start)});
      }
    }
    const double train_seconds = SecondsSince(train_start);

    EpochRecord record;
    record.epoch = epoch;
    record.train_loss = images > 0 ? loss_sum / images : std::nan("");
    record.train_metrics = train_metrics->Compute();
    record.images_per_second = images / std::max(train_seconds, 1e-9);
    record.data_wait_fraction =
        (loader.wait_seconds() - wait_before) / std::max(train_seconds, 1e-9);
    record.learning_rate = optimizer_->param_groups().front().options().get_lr();
    record.seconds = SecondsSince(epoch_start);
    return record;
  }

  // Bookkeeping after an epoch: best checkpoint, schedule, last checkpoint, early stopping.
  // Returns true when training should stop early; a checkpoint that cannot be written (a full
  // disk) ends the run with that error, since nothing after it could be resumed.
  StatusOr<bool> EndEpoch(const EpochRecord& record) {
    const double value = MonitoredValue(record, options_.monitor).value_or(std::nan(""));
    const bool first = state_.best_epoch < 0;
    if (std::isfinite(value) && (first || Improves(value, state_.best_value, higher_is_better_,
                                                   options_.early_stopping.min_delta))) {
      state_.best_epoch = record.epoch;
      state_.best_value = value;
      state_.epochs_without_improvement = 0;
      if (!options_.best_checkpoint.empty()) {
        SELENE_RETURN_IF_ERROR(MayWrite());
        SELENE_RETURN_IF_ERROR(
            SaveCheckpoint(options_.best_checkpoint, network_, options_.metadata));
      }
    } else {
      ++state_.epochs_without_improvement;
    }
    schedule_.EndEpoch(value, higher_is_better_);
    SELENE_RETURN_IF_ERROR(SaveLast(record.epoch + 1, 0));
    return options_.early_stopping.enabled &&
           state_.epochs_without_improvement >= options_.early_stopping.patience;
  }

  Status MayWrite() const {
    return callbacks_.before_write ? callbacks_.before_write() : OkStatus();
  }

  Status SaveLast(int64_t next_epoch, int64_t next_step) {
    state_.next_epoch = next_epoch;
    state_.next_step = next_step;
    state_.schedule_state = schedule_.State();
    if (options_.last_checkpoint.empty()) return OkStatus();
    SELENE_RETURN_IF_ERROR(MayWrite());
    return SaveCheckpoint(options_.last_checkpoint, network_, options_.metadata, optimizer_.get(),
                          &state_);
  }

  models::NetworkImpl& network_;
  const TrainerOptions& options_;
  const TrainValSplit& data_;
  const TrainerCallbacks& callbacks_;
  const std::atomic<bool>* cancel_;

  bool Stopping() const {
    return (cancel_ != nullptr && cancel_->load()) ||
           (callbacks_.should_stop && callbacks_.should_stop());
  }
  LrSchedule schedule_;
  const bool higher_is_better_;
  std::vector<double> group_scales_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  TrainingState state_;
  int64_t stopped_at_step_ = 0;  // where a cancelled epoch stopped
};

template <typename Fn>
auto CatchTorchErrors(const std::string& what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return InternalError(what + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(what + ": " + e.what());
  }
}

}  // namespace

Trainer::Trainer(models::Network network, TrainerOptions options)
    : network_(std::move(network)), options_(std::move(options)) {}

StatusOr<TrainResult> Trainer::Run(const TrainValSplit& data, const TrainerCallbacks& callbacks,
                                   const std::atomic<bool>* cancel) {
  return CatchTorchErrors("training failed", [&]() -> StatusOr<TrainResult> {
    for (const std::string& checkpoint : {options_.best_checkpoint, options_.last_checkpoint}) {
      if (checkpoint.empty()) continue;
      const std::filesystem::path folder = std::filesystem::path(checkpoint).parent_path();
      if (folder.empty()) continue;
      std::error_code error;
      std::filesystem::create_directories(folder, error);
      if (error) return InternalError("cannot create " + folder.string() + ": " + error.message());
    }
    TrainingRun run(*network_, options_, data, callbacks, cancel);
    return run.Run();
  });
}

StatusOr<std::pair<double, MetricValues>> Trainer::Evaluate(const TensorDataset& data) {
  return CatchTorchErrors("evaluation failed", [&]() -> StatusOr<std::pair<double, MetricValues>> {
    PlaceNetwork(*network_, options_);
    return *EvaluatePass(*network_, options_, data);
  });
}

std::optional<double> MonitoredValue(const EpochRecord& record, const std::string& monitor) {
  if (monitor == "val_loss") return record.val_loss;
  if (monitor == "train_loss") return record.train_loss;
  auto it = record.val_metrics.find(monitor);
  if (it == record.val_metrics.end()) return std::nullopt;
  return it->second;
}

}  // namespace selene::train
