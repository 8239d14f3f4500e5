// Runs one job of the job store to its end: the spec resolved for the device the scheduler gave
// it, then RunTraining (server/jobs/run_training.h) in the job's folder
// (RunFolder::OfJob: <state_dir>/jobs/<job id>), resuming from it, with each epoch and throttled
// step progress recorded in the store. The scheduler calls it on a worker thread per job;
// selene-train runs the same pipeline for a local run.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
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

  // The worker's own view of its lease on the job (a shared store): the store lets the lease go
  // no earlier than `deadline`, measured from before the claim or renewal was sent. Past it
  // another worker may own the job, so the run computes and writes nothing more, even before a
  // heartbeat can tell (a process resumed after SIGSTOP runs its training thread first).
  void HoldLeaseUntil(absl::Time deadline) {
    lease_deadline_ns_.store(absl::ToUnixNanos(deadline));
  }
  bool LeaseOver() const { return absl::Now() > absl::FromUnixNanos(lease_deadline_ns_.load()); }

 private:
  std::atomic<bool> flag_{false};
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> lease_deadline_ns_{absl::ToUnixNanos(absl::InfiniteFuture())};
};

struct RunOutcome {
  enum class Kind {
    kSucceeded,
    kFailed,     // reason says why (a spec field, a missing file, a torch error, ...)
    kCancelled,  // the user's cancel; last.pt holds the work done. reason: artifact problems
    // Server shutdown, or the worker's lease on the job ran out (reason says so); last.pt holds
    // the work done and the job resumes from it.
    kInterrupted,
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
  // Each job's folder is <state_dir>/jobs/<job id>/: the server's --artifact_root, which a fleet
  // of servers shares.
  std::string state_dir;
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
  //
  // `lease`: the claim the scheduler holds on the job. Every store write and every checkpoint is
  // fenced by it, so a worker that lost the job to another writes nothing (the run fails with
  // the lease-lost error); a succeeded run records its files' sha256 with it. Without one (a job
  // started by hand), writes are not fenced and no files are recorded.
  RunOutcome Run(const v1::Job& job, const std::string& device, const StopRequest& stop,
                 const std::optional<Lease>& lease = std::nullopt);

  const JobRunnerOptions& options() const { return options_; }

 private:
  JobStore* const store_;
  const JobRunnerOptions options_;
};

}  // namespace selene::jobs
