#include "server/jobs/run_training.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/jobs/run_outputs.h"
#include "server/train/metrics.h"
#include "spec/network_builder.h"

namespace selene::jobs {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The running best of the monitored metric, by the Trainer's rule for a new best epoch (its
// EndEpoch), so the best epoch reported matches the weights in best.pt.
class BestEpochTracker {
 public:
  BestEpochTracker(const train::TrainerOptions& options, const train::TrainingState& restored)
      : monitor_(options.monitor),
        higher_is_better_(train::HigherIsBetter(options.monitor)),
        min_delta_(options.early_stopping.min_delta),
        best_epoch_(restored.best_epoch),
        best_value_(restored.best_value) {}

  void Add(const train::EpochRecord& record) {
    const double value = train::MonitoredValue(record, monitor_).value_or(std::nan(""));
    if (!std::isfinite(value)) return;
    const bool improves =
        higher_is_better_ ? value > best_value_ + min_delta_ : value < best_value_ - min_delta_;
    if (best_epoch_ < 0 || improves) {
      best_epoch_ = record.epoch;
      best_value_ = value;
    }
  }
  int64_t best_epoch() const { return best_epoch_; }
  double best_value() const { return best_value_; }

 private:
  const std::string monitor_;
  const bool higher_is_better_;
  const double min_delta_;
  int64_t best_epoch_;
  double best_value_;
};

}  // namespace

StatusOr<TrainingRunResult> RunTraining(const TrainingPlan& plan, const RunEnvironment& environment,
                                        RunObserver& observer) {
  const Clock::time_point started = Clock::now();
  const RunFolder& folder = environment.folder;
  TrainingRunResult run;
  const auto stop_requested = [&environment] {
    return environment.stop != nullptr && environment.stop->load();
  };
  const auto stopped = [&run]() -> StatusOr<TrainingRunResult> {
    run.stopped = true;
    return std::move(run);
  };

  SELENE_ASSIGN_OR_RETURN(models::Network network, spec::BuildNetwork(plan.spec));
  if (stop_requested()) return stopped();

  DataLoadOptions load = environment.data;
  load.stop = environment.stop;
  StatusOr<TrainingData> loaded = LoadTrainingData(plan.spec.data(), environment.data_root, load);
  if (stop_requested()) return stopped();
  SELENE_RETURN_IF_ERROR(loaded.status());
  const TrainingData& data = *loaded;
  SELENE_RETURN_IF_ERROR(CheckDataFitsPlan(plan, data.split));
  // Before training, so a running job already shows what it runs on and even a crashed run can
  // be repeated.
  SELENE_RETURN_IF_ERROR(observer.BeforeWrite());
  SELENE_RETURN_IF_ERROR(WriteRunInputs(
      folder, environment.write_submitted_spec ? plan.spec.submitted() : plan.spec.proto(), data));
  if (stop_requested()) return stopped();

  // A resumed run's earlier epochs, best epoch and time come with last.pt, so the report and
  // the best epoch cover the whole run.
  train::TrainingState restored;
  if (environment.resume && folder.Has(RunFolder::kLastCheckpoint)) {
    const std::string last = folder.last_checkpoint();
    if (Status s = train::LoadCheckpoint(last, *network, nullptr, &restored); !s.ok()) {
      return Status(s.code(), absl::StrCat("resuming from ", last, ": ", s.message()));
    }
  }
  double restored_seconds = 0.0;
  for (const train::EpochRecord& record : restored.history) restored_seconds += record.seconds;
  const auto total_seconds = [&] { return restored_seconds + SecondsSince(started); };

  train::TrainerOptions options = plan.trainer;
  options.best_checkpoint = folder.best_checkpoint();
  options.last_checkpoint = folder.last_checkpoint();
  options.resume = environment.resume;
  observer.OnStart(plan, *network, data, restored);

  // The first failure to keep the progress report: training on would produce epochs nobody
  // could see. It and the observer's own failures stop the trainer at its next step.
  Status reporting;
  train::TrainResult so_far;
  so_far.history = restored.history;
  BestEpochTracker best(options, restored);
  train::TrainerCallbacks callbacks;
  callbacks.should_stop = [&] { return !reporting.ok() || !observer.status().ok(); };
  callbacks.on_step = [&observer](const train::StepProgress& p) { observer.OnStep(p); };
  callbacks.before_write = [&observer] { return observer.BeforeWrite(); };
  callbacks.on_epoch = [&](const train::EpochRecord& record) {
    so_far.history.push_back(record);
    best.Add(record);
    so_far.best_epoch = best.best_epoch();
    so_far.best_value = best.best_value();
    observer.OnEpoch(record, so_far);
    Status s =
        WriteProgressReport(folder, environment.name, plan, network, data, so_far, total_seconds());
    if (!s.ok() && reporting.ok()) reporting = std::move(s);
  };
  train::Trainer trainer(network, options);
  StatusOr<train::TrainResult> trained = trainer.Run(data.split, callbacks, environment.stop);
  SELENE_RETURN_IF_ERROR(trained.status());
  SELENE_RETURN_IF_ERROR(reporting);
  SELENE_RETURN_IF_ERROR(observer.status());
  run.training = *std::move(trained);
  run.total_seconds = total_seconds();

  SELENE_RETURN_IF_ERROR(observer.BeforeWrite());
  if (run.training.cancelled) {
    const bool keep = environment.results_when_stopped && environment.results_when_stopped();
    if (keep && !run.training.history.empty()) {
      StatusOr<std::vector<std::string>> reported = WriteRunResults(
          folder, environment.name, plan, network, data, run.training, run.total_seconds);
      if (reported.ok()) {
        run.report_files = *std::move(reported);
      } else {
        run.stopped_results = reported.status();
      }
    }
    return stopped();
  }
  StatusOr<std::vector<std::string>> reported =
      WriteRunResults(folder, environment.name, plan, network, data, run.training,
                      run.total_seconds, environment.stop);
  if (!reported.ok()) {
    // Stopped while writing the report: the training is done and in last.pt; a resumed run
    // writes the report, and a stopped one keeps the files written so far.
    if (stop_requested()) return stopped();
    return reported.status();
  }
  run.report_files = *std::move(reported);
  return run;
}

}  // namespace selene::jobs
