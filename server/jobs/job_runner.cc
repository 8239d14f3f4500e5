#include "server/jobs/job_runner.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>
#include <optional>
#include <thread>
#include <utility>
#include <vector>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/jobs/job_spec.h"
#include "server/jobs/training_data.h"
#include "server/jobs/training_plan.h"
#include "server/train/checkpoint.h"
#include "server/train/metrics.h"
#include "server/train/trainer.h"

// OpenMP's team size for the calling thread alone (as in server/train/batch_loader.cc). Weak so
// the library links without OpenMP too; LibTorch loads the runtime it was built with.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

int HardwareThreads() {
  const int threads = static_cast<int>(std::thread::hardware_concurrency());
  return threads > 0 ? threads : 1;
}

// Sizes this thread's torch work to `threads` without touching other threads: serving and other
// jobs keep their own teams. torch initialises a thread's team size from its global setting on
// first use, which would undo an earlier narrowing, so that happens first.
int UseThreadsOnThisThread(int threads) {
  (void)at::get_num_threads();
  if (&omp_set_num_threads != nullptr) omp_set_num_threads(threads);
  return at::get_num_threads();
}

// The job's network, data, batches and activations are freed when its run ends, but glibc keeps
// freed pages for reuse, so a long-running server would stay at its largest job's size: measured
// (docs/benchmarks.md) 806 MiB resident after four small training jobs against 164 MiB idle.
// Handing them back costs a few milliseconds per job.
void ReturnFreedMemoryToTheSystem() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

// The trainer's rule for a new best epoch (Trainer's EndEpoch), so is_best marks exactly the
// epochs whose weights became best.pt.
bool Improves(double value, double best, bool higher_is_better, double min_delta) {
  return higher_is_better ? value > best + min_delta : value < best - min_delta;
}

// Turns the Trainer's callbacks into store events: every epoch as RecordEpoch, steps as
// StepProgress at most once per interval, with the ETA of the whole job.
class ProgressRecorder {
 public:
  ProgressRecorder(JobStore* store, std::string job_id, const TrainingPlan& plan,
                   absl::Duration interval, const train::TrainingState& restored)
      : store_(store),
        job_id_(std::move(job_id)),
        epochs_(plan.trainer.epochs),
        batch_size_(plan.trainer.batch_size),
        monitor_(plan.trainer.monitor),
        higher_is_better_(train::HigherIsBetter(plan.trainer.monitor)),
        min_delta_(plan.trainer.early_stopping.min_delta),
        interval_(absl::ToDoubleSeconds(interval)),
        best_epoch_(restored.best_epoch),
        best_value_(restored.best_value) {}

  void OnStep(const train::StepProgress& p) {
    const Clock::time_point now = Clock::now();
    if (p.epoch != epoch_) {
      epoch_ = p.epoch;
      loss_sum_ = 0.0;
      loss_steps_ = 0;
    }
    loss_sum_ += p.loss;
    ++loss_steps_;
    last_step_ = now;
    if (last_sent_ && SecondsBetween(*last_sent_, now) < interval_) return;
    last_sent_ = now;

    // The rate so far this epoch; each epoch still to come also validates, which took
    // validation_seconds_ last time.
    const double seconds_per_step =
        p.images_per_second > 0 ? static_cast<double>(batch_size_) / p.images_per_second : 0.0;
    const int64_t later_epochs = std::max<int64_t>(epochs_ - (p.epoch + 1), 0);
    const int64_t steps_left = (p.steps_per_epoch - p.step) + later_epochs * p.steps_per_epoch;
    const double eta = steps_left * seconds_per_step + (later_epochs + 1) * validation_seconds_;

    v1::JobEvent event;
    v1::StepProgress* progress = event.mutable_step_progress();
    progress->set_epoch(p.epoch + 1);
    progress->set_step(p.step);
    progress->set_steps(p.steps_per_epoch);
    progress->set_loss(loss_sum_ / loss_steps_);
    progress->set_images_per_second(p.images_per_second);
    progress->set_eta_seconds(eta);
    Keep(store_->AppendEvent(job_id_, event).status());
  }

  void OnEpoch(const train::EpochRecord& record) {
    const Clock::time_point now = Clock::now();
    if (last_step_) validation_seconds_ = SecondsBetween(*last_step_, now);
    last_step_.reset();

    const double value =
        train::MonitoredValue(record, monitor_).value_or(std::numeric_limits<double>::quiet_NaN());
    const bool is_best =
        std::isfinite(value) &&
        (best_epoch_ < 0 || Improves(value, best_value_, higher_is_better_, min_delta_));
    if (is_best) {
      best_epoch_ = record.epoch;
      best_value_ = value;
    }

    v1::EpochEnd epoch;
    epoch.set_epoch(record.epoch + 1);
    epoch.set_epochs(epochs_);
    epoch.set_train_loss(record.train_loss);
    epoch.set_val_loss(record.val_loss);
    epoch.mutable_metrics()->insert(record.val_metrics.begin(), record.val_metrics.end());
    epoch.set_learning_rate(record.learning_rate);
    epoch.set_seconds(record.seconds);
    epoch.set_images_per_second(record.images_per_second);
    epoch.set_monitor(monitor_);
    epoch.set_monitor_value(value);
    epoch.set_is_best(is_best);
    Keep(store_->RecordEpoch(job_id_, epoch).status());
  }

  // The first failure to record anything: the job's history would be incomplete.
  const Status& status() const { return status_; }
  int64_t best_epoch() const { return best_epoch_; }  // 0-based; -1 before any
  double best_value() const { return best_value_; }

 private:
  void Keep(Status status) {
    if (status_.ok() && !status.ok()) status_ = std::move(status);
  }

  JobStore* const store_;
  const std::string job_id_;
  const int64_t epochs_;
  const int64_t batch_size_;
  const std::string monitor_;
  const bool higher_is_better_;
  const double min_delta_;
  const double interval_;
  int64_t best_epoch_;
  double best_value_;

  int64_t epoch_ = -1;
  double loss_sum_ = 0.0;
  int64_t loss_steps_ = 0;
  std::optional<Clock::time_point> last_sent_;
  std::optional<Clock::time_point> last_step_;
  double validation_seconds_ = 0.0;
  Status status_;
};

// One attempt at one job. Failures are statuses until Run turns them into the outcome.
class JobRun {
 public:
  JobRun(JobStore* store, const JobRunnerOptions& options, const v1::Job& job, std::string device,
         const StopRequest& stop)
      : store_(store),
        options_(options),
        job_(job),
        device_(std::move(device)),
        stop_(stop),
        dir_(JobFolder(options.state_dir, job.id())) {}

  RunOutcome Run() {
    const Clock::time_point started = Clock::now();
    RemoveTemporaryFiles();
    StatusOr<v1::JobSpec> spec = ServerSpec();
    if (!spec.ok()) return RunOutcome::Failed(std::string(spec.status().message()));
    StatusOr<TrainingPlan> planned = PlanTraining(*spec);
    if (!planned.ok()) return RunOutcome::Failed(std::string(planned.status().message()));
    TrainingPlan plan = std::move(planned).value();
    UseThreadsOnThisThread(plan.threads);

    StatusOr<models::Network> built = BuildPlannedNetwork(plan);
    if (!built.ok()) return RunOutcome::Failed(std::string(built.status().message()));
    models::Network network = std::move(built).value();
    if (stop_.requested()) return Stopped();

    DataLoadOptions load;
    load.stop = &stop_.flag();
    load.decode_threads = options_.decode_threads;
    load.cache_dir = options_.cache_dir.empty() ? (fs::path(options_.state_dir) / "cache").string()
                                                : options_.cache_dir;
    StatusOr<TrainingData> loaded = LoadTrainingData(plan.data, options_.data_root, load);
    if (stop_.requested()) return Stopped();
    if (!loaded.ok()) return RunOutcome::Failed(std::string(loaded.status().message()));
    const train::TrainValSplit& data = loaded->split;
    if (Status fits = CheckDataFitsPlan(plan, data); !fits.ok()) {
      return RunOutcome::Failed(std::string(fits.message()));
    }
    // Written before training, so a running job already shows what it runs on.
    if (Status s = WriteRunInputs(dir_, plan.resolved_spec, *loaded); !s.ok()) {
      return RunOutcome::Failed(std::string(s.message()));
    }
    if (stop_.requested()) return Stopped();

    // A job that ran before (a restart, a shutdown) continues from last.pt; the best epoch so far
    // comes with it, so is_best keeps meaning "best of the whole run".
    train::TrainingState restored;
    const fs::path last = fs::path(dir_) / "last.pt";
    if (fs::exists(last)) {
      if (Status s = train::LoadCheckpoint(last.string(), *network, nullptr, &restored); !s.ok()) {
        return RunOutcome::Failed(absl::StrCat("resuming from ", last.string(), ": ", s.message()));
      }
    }
    double restored_seconds = 0.0;
    for (const train::EpochRecord& record : restored.history) restored_seconds += record.seconds;

    plan.trainer.checkpoint_dir = dir_;
    plan.trainer.resume = true;
    ProgressRecorder recorder(store_, job_.id(), plan, options_.progress_interval, restored);
    train::TrainerCallbacks callbacks;
    // The trainer stops at its next step or validation batch when the scheduler asks (cancel,
    // shutdown) or when the job's progress can no longer be recorded (a full disk): training on
    // would produce epochs nobody could see or resume.
    Status recording;
    callbacks.should_stop = [&recording] { return !recording.ok(); };
    train::TrainResult so_far;
    so_far.history = restored.history;
    callbacks.on_step = [this, &recorder](const train::StepProgress& p) {
      recorder.OnStep(p);
      if (options_.on_training_step) {
        options_.on_training_step({job_.id(), device_, p.images, p.seconds});
      }
    };
    callbacks.on_epoch = [&](const train::EpochRecord& r) {
      recorder.OnEpoch(r);
      // Kept up to date after every epoch, so a crash or a cancel leaves the report so far.
      so_far.history.push_back(r);
      so_far.best_epoch = recorder.best_epoch();
      so_far.best_value = recorder.best_value();
      const double seconds = restored_seconds + SecondsBetween(started, Clock::now());
      if (Status s = WriteProgressReport(dir_, RunName(), plan, network, *loaded, so_far, seconds);
          !s.ok() && recording.ok()) {
        recording = std::move(s);
      }
      if (!recorder.status().ok() && recording.ok()) {
        recording = Status(
            recorder.status().code(),
            absl::StrCat("recording progress in the job store: ", recorder.status().message()));
      }
    };
    train::Trainer trainer(network, plan.trainer);
    StatusOr<train::TrainResult> result = trainer.Run(data, callbacks, &stop_.flag());
    if (!result.ok()) return RunOutcome::Failed(std::string(result.status().message()));
    if (!recording.ok()) return RunOutcome::Failed(std::string(recording.message()));
    if (!recorder.status().ok()) {
      return RunOutcome::Failed(
          absl::StrCat("recording progress in the job store: ", recorder.status().message()));
    }

    const double total_seconds = restored_seconds + SecondsBetween(started, Clock::now());
    if (result->cancelled) {
      RunOutcome outcome = Stopped();
      // An interrupted job writes these when it finishes; a cancelled one ends here, so it
      // leaves what it has done for people to look at.
      if (outcome.kind == RunOutcome::Kind::kCancelled && !result->history.empty()) {
        if (Status s =
                WriteRunResults(dir_, RunName(), plan, network, *loaded, *result, total_seconds)
                    .status();
            !s.ok()) {
          outcome.reason = absl::StrCat("artifacts: ", s.message());
        }
      }
      return outcome;
    }
    if (Status s = WriteRunResults(dir_, RunName(), plan, network, *loaded, *result, total_seconds,
                                   &stop_.flag())
                       .status();
        !s.ok()) {
      // Stopped while writing the report: an interrupted job writes it when it resumes (its
      // training is done), a cancelled one keeps the files written so far.
      if (stop_.requested()) return Stopped();
      return RunOutcome::Failed(std::string(s.message()));
    }
    return RunOutcome::Succeeded();
  }

 private:
  RunOutcome Stopped() const {
    RunOutcome outcome;
    outcome.kind =
        stop_.cancelled() ? RunOutcome::Kind::kCancelled : RunOutcome::Kind::kInterrupted;
    return outcome;
  }

  // The job's spec as this server runs it: on the scheduler's device, with the thread count in
  // effect, and an encoder job turned into that job's best checkpoint.
  StatusOr<v1::JobSpec> ServerSpec() const {
    v1::JobSpec spec = job_.spec();
    v1::TrainingSpec* training = spec.mutable_training();
    training->set_device(device_);
    int threads = options_.training_threads;
    if (threads <= 0 && training->has_threads()) threads = training->threads();
    if (threads <= 0) threads = HardwareThreads();
    training->set_threads(threads);
    if (spec.model().has_encoder_unet() && !spec.model().encoder_unet().encoder_job_id().empty()) {
      v1::EncoderUNetSpec* encoder = spec.mutable_model()->mutable_encoder_unet();
      const std::string dependency = encoder->encoder_job_id();
      const fs::path best = fs::path(JobFolder(options_.state_dir, dependency)) / "best.pt";
      if (!fs::exists(best)) {
        return FailedPreconditionError(
            absl::StrCat("model.encoder_unet.encoder_job_id: encoder job ", dependency,
                         " left no checkpoint at ", best.string()));
      }
      encoder->set_encoder_checkpoint(best.string());
      encoder->clear_encoder_job_id();
    }
    return spec;
  }

  // A process killed while writing a file leaves its temporary file (DurableFileWriter's
  // "<name>.tmp-<pid>-<n>", or an older build's "<name>.tmp"); on a nearly full disk that alone
  // could fail the run again. Only this job writes in its folder, so whatever is there is stale.
  void RemoveTemporaryFiles() const {
    std::error_code error;
    for (fs::directory_iterator it(dir_, error), end; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (name.find(".tmp-") != std::string::npos || absl::EndsWith(name, ".tmp")) {
        std::error_code ignored;
        fs::remove(it->path(), ignored);
      }
    }
  }

  std::string RunName() const {
    return job_.spec().name().empty() ? job_.id() : job_.spec().name();
  }

  JobStore* const store_;
  const JobRunnerOptions& options_;
  const v1::Job& job_;
  const std::string device_;
  const StopRequest& stop_;
  const std::string dir_;
};

}  // namespace

std::string RunOutcomeKindName(RunOutcome::Kind kind) {
  switch (kind) {
    case RunOutcome::Kind::kSucceeded:
      return "succeeded";
    case RunOutcome::Kind::kFailed:
      return "failed";
    case RunOutcome::Kind::kCancelled:
      return "cancelled";
    case RunOutcome::Kind::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

std::string JobFolder(const std::string& state_dir, const std::string& job_id) {
  return (fs::path(state_dir) / "jobs" / job_id).string();
}

JobRunner::JobRunner(JobStore* store, JobRunnerOptions options)
    : store_(store), options_(std::move(options)) {}

RunOutcome JobRunner::Run(const v1::Job& job, const std::string& device, const StopRequest& stop) {
  RunOutcome outcome;
  try {
    outcome = JobRun(store_, options_, job, device, stop).Run();
  } catch (const c10::Error& e) {
    outcome = RunOutcome::Failed(e.what_without_backtrace());
  } catch (const std::exception& e) {
    outcome = RunOutcome::Failed(e.what());
  }
  ReturnFreedMemoryToTheSystem();
  return outcome;
}

}  // namespace selene::jobs
