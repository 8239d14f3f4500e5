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

#include "absl/strings/str_cat.h"
#include "common/run_folder.h"
#include "server/jobs/artifact_records.h"
#include "server/jobs/run_training.h"
#include "server/jobs/training_plan.h"
#include "server/train/trainer.h"
#include "spec/resolved_job_spec.h"

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

// Turns the run's progress into store events: every epoch as RecordEpoch, steps as StepProgress
// at most once per interval, with the ETA of the whole job; and each step into the metrics hook.
class JobProgressRecorder : public RunObserver {
 public:
  JobProgressRecorder(JobStore* store, const JobRunnerOptions& options, std::string job_id,
                      std::string device, const std::optional<Lease>& lease,
                      const StopRequest& stop)
      : store_(store),
        stop_(stop),
        options_(options),
        job_id_(std::move(job_id)),
        device_(std::move(device)),
        lease_(lease),
        interval_(absl::ToDoubleSeconds(options.progress_interval)) {}

  void OnStart(const TrainingPlan& plan, const models::NetworkImpl& /*network*/,
               const TrainingData& /*data*/, const train::TrainingState& /*restored*/) override {
    epochs_ = plan.trainer.epochs;
    batch_size_ = plan.trainer.batch_size;
    monitor_ = plan.trainer.monitor;
  }

  void OnStep(const train::StepProgress& p) override {
    if (options_.on_training_step) {
      options_.on_training_step({job_id_, device_, p.images, p.seconds});
    }
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
    Keep((lease_ ? store_->AppendEvent(*lease_, event) : store_->AppendEvent(job_id_, event))
             .status());
  }

  void OnEpoch(const train::EpochRecord& record, const train::TrainResult& so_far) override {
    const Clock::time_point now = Clock::now();
    if (last_step_) validation_seconds_ = SecondsBetween(*last_step_, now);
    last_step_.reset();

    const double value =
        train::MonitoredValue(record, monitor_).value_or(std::numeric_limits<double>::quiet_NaN());
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
    epoch.set_is_best(so_far.best_epoch == record.epoch);
    Keep((lease_ ? store_->RecordEpoch(*lease_, epoch) : store_->RecordEpoch(job_id_, epoch))
             .status());
  }

  // A worker that lost the job's lease leaves the new owner's files alone.
  Status BeforeWrite() override {
    if (!lease_) return OkStatus();
    Status held = LeaseOver();
    if (held.ok()) held = store_->CheckLease(*lease_);
    Keep(held);
    return held;
  }

  // The first failure to record anything (the job's history would be incomplete), or the lease
  // run out by this worker's own clock: checked before every step.
  Status status() const override {
    if (!status_.ok()) return status_;
    return LeaseOver();
  }

 private:
  void Keep(Status status) {
    if (status_.ok() && !status.ok()) {
      status_ = Status(status.code(),
                       absl::StrCat("recording progress in the job store: ", status.message()));
    }
  }

  Status LeaseOver() const {
    if (!lease_ || !stop_.LeaseOver()) return OkStatus();
    return JobStore::LeaseLostError(*lease_, "no heartbeat got through within the lease");
  }

  JobStore* const store_;
  const StopRequest& stop_;
  const JobRunnerOptions& options_;
  const std::string job_id_;
  const std::string device_;
  const std::optional<Lease>& lease_;
  const double interval_;
  int64_t epochs_ = 0;
  int64_t batch_size_ = 0;
  std::string monitor_;

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
         const StopRequest& stop, const std::optional<Lease>& lease)
      : store_(store),
        options_(options),
        job_(job),
        device_(std::move(device)),
        stop_(stop),
        lease_(lease),
        folder_(RunFolder::OfJob(options.state_dir, job.id())) {}

  RunOutcome Run() {
    folder_.RemoveTemporaryFiles();
    StatusOr<v1::JobSpec> server_spec = ServerSpec();
    if (!server_spec.ok()) return Failed(server_spec.status());
    StatusOr<spec::ResolvedJobSpec> resolved = spec::ResolvedJobSpec::Resolve(*server_spec);
    if (!resolved.ok()) return Failed(resolved.status());
    StatusOr<TrainingPlan> plan = PlanTraining(*resolved);
    if (!plan.ok()) return Failed(plan.status());
    UseThreadsOnThisThread(plan->threads);

    RunEnvironment environment;
    environment.folder = folder_;
    environment.name = job_.spec().name().empty() ? job_.id() : job_.spec().name();
    environment.data_root = options_.data_root;
    environment.data.decode_threads = options_.decode_threads;
    environment.data.cache_dir = options_.cache_dir.empty()
                                     ? (fs::path(options_.state_dir) / "cache").string()
                                     : options_.cache_dir;
    environment.stop = &stop_.flag();
    // A job that ran before (a restart, a shutdown) continues from last.pt.
    environment.resume = true;
    // A cancelled job ends here, so it leaves what it has done for people to look at; an
    // interrupted one writes its results when it resumes and finishes.
    environment.results_when_stopped = [this] { return stop_.cancelled(); };
    JobProgressRecorder recorder(store_, options_, job_.id(), device_, lease_, stop_);
    StatusOr<TrainingRunResult> run = RunTraining(*plan, environment, recorder);
    // Not a failure of the job: another worker has it, or will once the lease is over. The
    // scheduler's fenced requeue then either resumes it or is refused.
    if (!run.ok() && JobStore::IsLeaseLost(run.status())) return Interrupted(run.status());
    if (!run.ok()) return Failed(run.status());
    if (!run->stopped) {
      if (Status recorded = RecordArtifacts(); !recorded.ok()) {
        return JobStore::IsLeaseLost(recorded) ? Interrupted(recorded) : Failed(recorded);
      }
      return RunOutcome::Succeeded();
    }
    RunOutcome outcome = Stopped();
    if (!run->stopped_results.ok()) {
      outcome.reason = absl::StrCat("artifacts: ", run->stopped_results.message());
    }
    return outcome;
  }

 private:
  // The sha256 of every file the run left, so any server reading them from the shared artifact
  // root can tell a damaged or partial copy.
  Status RecordArtifacts() const {
    if (!lease_) return OkStatus();
    SELENE_ASSIGN_OR_RETURN(std::vector<ArtifactRecord> files, DescribeRunFiles(folder_));
    return store_->RecordArtifacts(*lease_, files);
  }

  static RunOutcome Interrupted(const Status& status) {
    return {RunOutcome::Kind::kInterrupted, std::string(status.message())};
  }

  static RunOutcome Failed(const Status& status) {
    return RunOutcome::Failed(std::string(status.message()));
  }

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
      const RunFolder encoder_run = RunFolder::OfJob(options_.state_dir, dependency);
      if (!encoder_run.Has(RunFolder::kBestCheckpoint)) {
        return FailedPreconditionError(
            absl::StrCat("model.encoder_unet.encoder_job_id: encoder job ", dependency,
                         " left no checkpoint at ", encoder_run.best_checkpoint()));
      }
      encoder->set_encoder_checkpoint(encoder_run.best_checkpoint());
      encoder->clear_encoder_job_id();
    }
    return spec;
  }

  JobStore* const store_;
  const JobRunnerOptions& options_;
  const v1::Job& job_;
  const std::string device_;
  const StopRequest& stop_;
  const std::optional<Lease>& lease_;
  const RunFolder folder_;
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

JobRunner::JobRunner(JobStore* store, JobRunnerOptions options)
    : store_(store), options_(std::move(options)) {}

RunOutcome JobRunner::Run(const v1::Job& job, const std::string& device, const StopRequest& stop,
                          const std::optional<Lease>& lease) {
  RunOutcome outcome;
  try {
    outcome = JobRun(store_, options_, job, device, stop, lease).Run();
  } catch (const c10::Error& e) {
    outcome = RunOutcome::Failed(e.what_without_backtrace());
  } catch (const std::exception& e) {
    outcome = RunOutcome::Failed(e.what());
  }
  ReturnFreedMemoryToTheSystem();
  return outcome;
}

}  // namespace selene::jobs
