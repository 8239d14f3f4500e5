// The training queue's engine: gives each runnable job of the job store (QUEUED, its encoder job
// SUCCEEDED) a free device slot and runs it on a worker thread of its own, cancels queued and
// running jobs, and on shutdown interrupts running jobs so they checkpoint and resume after the
// restart. Jobs live in the store, not here: a crash loses nothing (Start requeues what ran).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"
#include "selene/v1/training_service.pb.h"
#include "server/jobs/device_pool.h"
#include "server/jobs/job_runner.h"
#include "server/jobs/job_store.h"

namespace selene::jobs {

struct SchedulerOptions {
  // The dispatcher wakes at once on Submit, Cancel, Notify and a job's end; this poll is the
  // fallback that also catches jobs submitted straight into the store.
  absl::Duration poll_interval = absl::Milliseconds(500);
  // Called on the job's worker thread, without the scheduler's lock, once a job the scheduler ran
  // has reached SUCCEEDED, FAILED or CANCELLED (the job as stored then): the server tells the
  // serving registry and its metrics. Jobs that end without running (a queued cancel, a failed
  // encoder job) are not reported here; the store's event listener sees every state change.
  std::function<void(const v1::Job&)> on_job_finished;
  // Called when the scheduler's own store call fails (the job then stays as stored, and the next
  // start recovers it); the server logs it. May be called from any of the scheduler's threads.
  std::function<void(const Status&)> on_error;
  // Called when a heartbeat finds that another worker took a job running here (its lease ran
  // out); the job is stopped. May be called from the heartbeat thread.
  std::function<void(const std::string& job_id)> on_lease_lost;
  // This server's name in the store (--worker_id): the jobs it claims carry it. May be empty
  // for a store the server owns alone.
  std::string worker_id;
  // How long a claimed job stays this worker's without a heartbeat (--lease_s). Heartbeats renew
  // every running job's lease every third of it; a worker that stops renewing (killed, paused,
  // cut off) loses its jobs to the other workers. Only for a shared store: a store this server
  // owns alone (SQLite) gives leases that never expire, and a restart requeues its jobs at once.
  absl::Duration lease = absl::Seconds(30);
};

// Thread-safe. Lock order: the scheduler's lock, then the store's. The scheduler calls some store
// methods under its own lock, so the store's event listener must not call the scheduler.
class Scheduler {
 public:
  // The store, runner and pool must outlive the scheduler.
  Scheduler(JobStore* store, JobRunner* runner, DevicePool* pool, SchedulerOptions options = {});
  // Shuts down (Shutdown without a deadline) if that has not happened.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Requeues the jobs the previous process left RUNNING (store->RecoverAfterRestart: they resume
  // from their last checkpoint), fails jobs whose encoder job is dead, then starts dispatching.
  // Once only: a second call, or one after Shutdown, is FailedPrecondition.
  Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // store->Submit, then wakes the dispatcher. Admission (queue limit, spec validation) is the
  // caller's: store->CountByState() tells how many jobs wait.
  StatusOr<SubmitResult> Submit(const spec::ResolvedJobSpec& spec, const std::string& request_id,
                                int32_t priority = 0) ABSL_LOCKS_EXCLUDED(mu_);

  // A QUEUED job becomes CANCELLED at once (its dependents FAILED); a RUNNING one gets
  // cancel_requested and stops within one training step, keeping last.pt, then becomes CANCELLED
  // with `reason` (default "cancelled"). Returns the job as it is after the request. NotFound for
  // an unknown job, FailedPrecondition for a finished one.
  StatusOr<v1::Job> Cancel(const std::string& id, const std::string& reason = "")
      ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes the dispatcher, e.g. after something else put a job in the store.
  void Notify() ABSL_LOCKS_EXCLUDED(mu_);

  // What JobStore::FollowOtherServers reports: another server changed `nudge.job_id()` (every
  // job when empty). Wakes the dispatcher, and when the job runs here and a cancel was requested
  // through another server, stops it within one step. Never call it under the store's lock.
  void OnOtherServerChange(const v1::JobEvent& nudge) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops dispatching and interrupts every running job: each checkpoints (last.pt) within one
  // step and goes back to QUEUED, to resume at the next Start. Waits for the workers until
  // `deadline`; DeadlineExceeded naming the jobs still stopping if it passes (they are joined by
  // the destructor; a process that exits instead leaves them RUNNING, and the next Start requeues
  // them from their previous checkpoint). Later calls only wait again.
  Status Shutdown(absl::Time deadline = absl::InfiniteFuture()) ABSL_LOCKS_EXCLUDED(mu_);

  // Jobs running now, by id, with their device.
  std::map<std::string, std::string> running_jobs() const ABSL_LOCKS_EXCLUDED(mu_);
  int running_count() const ABSL_LOCKS_EXCLUDED(mu_);

  // Why a shut-down server's running jobs went back to the queue (their StateChange reason).
  static constexpr char kShutdownReason[] =
      "server shutting down; resumes from the last checkpoint";

 private:
  struct RunningJob {
    std::string device;
    Lease lease;
    StopRequest stop;
    std::string cancel_reason;  // guarded by the scheduler's mu_
    bool done = false;          // guarded by the scheduler's mu_; the worker has finished
    std::thread thread;         // joined by whoever takes the entry out of running_
  };

  void DispatchLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Starts runnable jobs while device slots are free.
  void DispatchReady() ABSL_LOCKS_EXCLUDED(mu_);
  void Work(RunningJob* self, v1::Job job) ABSL_LOCKS_EXCLUDED(mu_);
  // Renews the leases of the running jobs every third of the lease until shutdown; a job whose
  // lease was lost stops, and one cancelled through another server is cancelled.
  void HeartbeatLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // The running job's stop request learns that `held` lasts until `deadline`.
  void ExtendLocalLease(const Lease& held, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the running job `id` when the stored job asks for a cancel.
  void ApplyCancelRequest(const v1::Job& stored) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration lease() const;
  // Joins and forgets the workers that have finished.
  void ReapFinished() ABSL_LOCKS_EXCLUDED(mu_);
  void ReportError(const Status& status) const;

  bool WakeOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_ || stopping_; }
  bool AllWorkersDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ShutdownFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  JobRunner* const runner_;
  DevicePool* const pool_;
  const SchedulerOptions options_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<RunningJob>> running_ ABSL_GUARDED_BY(mu_);
  std::thread dispatcher_ ABSL_GUARDED_BY(mu_);
  std::thread heartbeat_ ABSL_GUARDED_BY(mu_);
};

}  // namespace selene::jobs
