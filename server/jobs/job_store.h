// The durable job store: every job, its events and its per-epoch history in one SQLite file, so
// a server that crashes or is killed keeps every job across the restart. The scheduler, the
// runner and the TrainingService all go through this class; it enforces the job life cycle
// (legal state moves only, terminal states never change) and numbers each job's events.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"
#include "selene/v1/training_service.pb.h"
#include "spec/resolved_job_spec.h"

struct sqlite3;

namespace selene::jobs {

// "QUEUED", "RUNNING", ...: the state's name without the JOB_STATE_ prefix.
std::string StateName(v1::JobState state);

struct SubmitResult {
  v1::Job job;
  bool created = false;  // false: request_id matched an earlier submission, which is returned
};

struct JobPage {
  std::vector<v1::Job> jobs;    // newest first
  std::string next_page_token;  // empty on the last page
};

// Thread-safe: one SQLite connection behind a mutex. Each method is one SQLite transaction, so a
// job row and the events describing its change are written together or not at all. Jobs that
// `Get`, `List` and the others return carry last_event_sequence.
//
// Only one process should open a file at a time (the server); SQLite's locking keeps a second
// reader (the sqlite3 shell, a backup) safe, and busy_timeout makes it wait rather than fail.
class JobStore {
 public:
  // Version of the tables this build writes. An older file is migrated on Open; a newer one is
  // refused (FailedPrecondition naming both versions).
  static constexpr int kSchemaVersion = 1;
  static constexpr int32_t kDefaultPageSize = 50;
  static constexpr int32_t kMaxPageSize = 500;
  // StateChange reason of the jobs RecoverAfterRestart requeues.
  static constexpr char kRestartReason[] = "server restarted; resuming from the last checkpoint";

  // Called after every event the store commits (state changes included), outside the store's
  // lock. Calls may come from several threads at once and out of sequence order: treat one as a
  // nudge to read Events(job_id, last seen sequence).
  using EventListener = std::function<void(const v1::JobEvent&)>;

  // Opens or creates the store at `path` (its folder must exist). A file that is not a Selene
  // job store (random bytes, another program's database, a newer schema) or cannot be opened is
  // an error naming the path.
  static StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);

  // Opens an existing store for reading only, for a server that cannot write (a full disk):
  // no WAL recovery, no migration, nothing created. Reads work; every write fails
  // (FailedPrecondition, "readonly database"). When even the WAL's shared-memory file cannot be
  // made, the file is read as immutable, without commits still in the WAL after a crash.
  static StatusOr<std::unique_ptr<JobStore>> OpenReadOnly(const std::string& path);

  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  const std::string& path() const { return path_; }

  void SetEventListener(EventListener listener) ABSL_LOCKS_EXCLUDED(listener_mu_);

  // Queues a job: state QUEUED, id "job-<n>" (n one more than any id ever issued by this file),
  // first event UNSPECIFIED -> QUEUED "submitted". depends_on comes from
  // spec.model.encoder_unet.encoder_job_id; an unknown job there is NotFound naming it.
  // A non-empty request_id seen before returns that job with created = false when the spec and
  // priority are the same, and is AlreadyExists naming the request id and its job otherwise.
  // The spec is stored as it was submitted (ResolvedJobSpec::submitted); its resolved epochs
  // and monitor are the job's.
  StatusOr<SubmitResult> Submit(const spec::ResolvedJobSpec& spec, const std::string& request_id,
                                int32_t priority = 0);

  // NotFound naming the id when there is no such job.
  StatusOr<v1::Job> Get(const std::string& id);

  // Jobs newest first, optionally only those in `state` (UNSPECIFIED: all). page_size 0 means
  // kDefaultPageSize, larger than kMaxPageSize means kMaxPageSize, negative is InvalidArgument.
  // page_token is "" or a next_page_token returned for the same state filter (InvalidArgument
  // otherwise); pages neither repeat nor skip jobs when new jobs arrive in between.
  StatusOr<JobPage> List(v1::JobState state = v1::JOB_STATE_UNSPECIFIED,
                         int32_t page_size = kDefaultPageSize, const std::string& page_token = "");

  // Moves a job to `to` and appends the StateChange event, together. Legal moves:
  // QUEUED -> RUNNING | CANCELLED | FAILED, RUNNING -> SUCCEEDED | FAILED | CANCELLED | QUEUED
  // (QUEUED again: interrupted, marked resume_from_checkpoint). Anything else, and any move out
  // of a terminal state, is FailedPrecondition naming the job and both states.
  // -> RUNNING counts an attempt and sets start_time the first time; terminal states set
  // finish_time; FAILED and CANCELLED keep `reason` as the job's error. An empty reason gets a
  // default ("started", "succeeded", "failed", "cancelled", "requeued").
  StatusOr<v1::Job> Transition(const std::string& id, v1::JobState to,
                               const std::string& reason = "");

  // QUEUED -> RUNNING on `device` ("cpu", "cuda:0"), in one transaction with the event.
  StatusOr<v1::Job> Start(const std::string& id, const std::string& device);

  // Records where a job runs (or ran).
  StatusOr<v1::Job> SetDevice(const std::string& id, const std::string& device);

  // Cancels a QUEUED job at once. A RUNNING job gets cancel_requested (persisted) and stays
  // RUNNING until its runner stops and moves it to CANCELLED; asking again changes nothing.
  // A terminal job is FailedPrecondition naming it and its state.
  StatusOr<v1::Job> RequestCancel(const std::string& id, const std::string& reason = "");

  // Appends an event other than StateChange and EpochEnd (those change the job too: use
  // Transition and RecordEpoch), i.e. StepProgress, to a RUNNING job (FailedPrecondition
  // otherwise). Returns the event as stored, with its sequence number and time (now, if the
  // event had none).
  StatusOr<v1::JobEvent> AppendEvent(const std::string& id, const v1::JobEvent& event);

  // The job's events with sequence > after_sequence, oldest first, at most `limit` of them
  // (0: all). NotFound for an unknown job.
  StatusOr<std::vector<v1::JobEvent>> Events(const std::string& id, int64_t after_sequence = 0,
                                             int64_t limit = 0);

  // One finished epoch of a RUNNING job (FailedPrecondition otherwise; epoch must be >= 1):
  // stores the history row (replacing the row of the same epoch, which a run resumed from an
  // earlier checkpoint repeats), appends the EpochEnd event and updates the job's
  // current_epoch, latest_metrics (the metrics plus "train_loss" and "val_loss") and, when
  // is_best, best_epoch, best_value and monitor. Returns the stored event.
  StatusOr<v1::JobEvent> RecordEpoch(const std::string& id, const v1::EpochEnd& epoch);

  // The job's per-epoch history, by epoch.
  StatusOr<std::vector<v1::EpochEnd>> History(const std::string& id);

  // The job to run next: QUEUED, with no dependency or a SUCCEEDED one, highest priority first,
  // then first submitted; nullopt when none. Runs FailJobsWithDeadDependencies first (in the
  // same transaction) so a job never waits on a dependency that cannot succeed. Does not start
  // the job: call Start, which fails if the job was cancelled in between.
  StatusOr<std::optional<v1::Job>> NextRunnable();

  // Moves every QUEUED job whose dependency FAILED or was CANCELLED to FAILED, with the reason
  // "encoder job job-3 failed: <its error>" or "encoder job job-3 was cancelled"; jobs that
  // depend on those fail in turn. Returns the failed jobs' ids in submission order.
  StatusOr<std::vector<std::string>> FailJobsWithDeadDependencies();

  // For server start: every RUNNING job (its runner died with the old process) goes back to
  // QUEUED with reason kRestartReason, resumes + 1 and resume_from_checkpoint, and its device
  // cleared (as any RUNNING -> QUEUED move); a RUNNING job with cancel_requested becomes
  // CANCELLED instead, with its cancel_reason. Returns the ids of
  // the requeued jobs in submission order.
  StatusOr<std::vector<std::string>> RecoverAfterRestart();

  // Number of jobs in each state; every state from QUEUED to CANCELLED is present, 0 or more.
  StatusOr<std::map<v1::JobState, int64_t>> CountByState();

 private:
  JobStore(std::string path, sqlite3* db);

  StatusOr<v1::Job> LoadJobLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Status SaveJobLocked(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Numbers, stamps and stores `event` for job `job` (whose last_event_sequence it advances).
  StatusOr<v1::JobEvent> InsertEventLocked(v1::Job* job, v1::JobEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks and applies a state move to `job`, saves it and stores its event in `events`.
  Status TransitionLocked(v1::Job* job, v1::JobState to, const std::string& reason,
                          std::vector<v1::JobEvent>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  StatusOr<std::vector<std::string>> FailJobsWithDeadDependenciesLocked(
      std::vector<v1::JobEvent>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(const std::vector<v1::JobEvent>& events) ABSL_LOCKS_EXCLUDED(mu_, listener_mu_);

  const std::string path_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
  absl::Mutex listener_mu_;
  EventListener listener_ ABSL_GUARDED_BY(listener_mu_);
};

}  // namespace selene::jobs
