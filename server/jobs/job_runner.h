// Runs one job of the job store to its end: the spec resolved for the device the scheduler gave
// it, then RunTraining (server/jobs/run_training.h) in the job's folder
// (RunFolder::OfJob: <state_dir>/jobs/<job id>), resuming from it, with each epoch and throttled
// step progress recorded in the store. The scheduler calls it on a worker thread per job;
// selene-train runs the same pipeline for a local run.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "common/status.h"
#include "selene/v1/training_service.pb.h"
#include "server/jobs/job_store.h"

namespace selene::jobs {

// Why a running job is asked to stop. The Trainer checks flag() before every step; when it stops,
// cancelled() tells the two meanings apart: a user's cancel ends the job (CANCELLED), a server
// shutdown only interrupts it (back to QUEUED, resuming from last.pt). A cancel wins over a
// shutdown whatever their order, so a job the user cancelled is never queued again.
class StopRequest {
 public:
  void Cancel() {
    cancelled_.store(true);
    flag_.store(true);
  }
  void Interrupt() { flag_.store(true); }

  bool requested() const { return flag_.load(); }
  bool cancelled() const { return cancelled_.load(); }
  const std::atomic<bool>& flag() const { return flag_; }

 private:
  std::atomic<bool> flag_{false};
  std::atomic<bool> cancelled_{false};
};

struct RunOutcome {
  enum class Kind {
    kSucceeded,
    kFailed,       // reason says why (a spec field, a missing file, a torch error, ...)
    kCancelled,    // the user's cancel; last.pt holds the work done. reason: artifact problems
    kInterrupted,  // server shutdown; last.pt holds the work done and the job resumes from it
  };
  Kind kind = Kind::kFailed;
  std::string reason;

  static RunOutcome Succeeded() { return {Kind::kSucceeded, ""}; }
  static RunOutcome Failed(std::string reason) { return {Kind::kFailed, std::move(reason)}; }
};

std::string RunOutcomeKindName(RunOutcome::Kind kind);  // "succeeded", "failed", ...

// One training step of a running job, for metrics (step time, images trained).
struct TrainingStepReport {
  std::string job_id;
  std::string device;  // "cpu", "cuda:0"
  int64_t images = 0;  // in the step's batch
  double seconds = 0;  // the step's wall time, waiting for its batch included
};

struct JobRunnerOptions {
  std::string state_dir;  // each job's folder is <state_dir>/jobs/<job id>/
  std::string data_root;  // data.path of file data sets is relative to it
  std::string cache_dir;  // decoded data sets persist here; "" = <state_dir>/cache
  // Intra-op threads of each training job on the CPU. 0: the spec's training.threads when set,
  // else every hardware thread. Set it when other work (serving, other jobs) shares the cores.
  int training_threads = 0;
  int decode_threads = 0;  // 0 = every hardware thread
  // At most one StepProgress event per interval (the first step of a run always sends one).
  absl::Duration progress_interval = absl::Milliseconds(500);
  // Called after every training step of every job (optional), on the job's thread; must be
  // quick and not throw.
  std::function<void(const TrainingStepReport&)> on_training_step;
};

// Thread-safe: Run may be called for different jobs on different threads at once.
class JobRunner {
 public:
  // `store` must outlive the runner.
  JobRunner(JobStore* store, JobRunnerOptions options);

  // Runs `job` (RUNNING in the store, started on `device`) until it ends or `stop` is requested,
  // recording its epochs and progress in the store. Does not change the job's state: the caller
  // moves it according to the outcome. Never throws: torch errors and any std::exception become
  // kFailed with their message.
  //
  // Training on the CPU narrows the calling thread's OpenMP team to the job's thread count (other
  // threads keep theirs), so call it on a thread of its own.
  RunOutcome Run(const v1::Job& job, const std::string& device, const StopRequest& stop);

  const JobRunnerOptions& options() const { return options_; }

 private:
  JobStore* const store_;
  const JobRunnerOptions options_;
};

}  // namespace selene::jobs
