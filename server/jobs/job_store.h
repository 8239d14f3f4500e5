// The durable job store: every job, its events, its per-epoch history, the lease of a running
// job and the artifacts of a finished one, in SQL: one SQLite file (the embedded default, one
// server) or one PostgreSQL database shared by a fleet of servers. A server that crashes or is
// killed keeps every job. The scheduler, the runner and the TrainingService all go through this
// class; it enforces the job life cycle (legal state moves only, terminal states never change),
// numbers each job's events, and fences every write of a running job by its lease.
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
#include "absl/time/time.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"
#include "selene/v1/training_service.pb.h"
#include "server/jobs/sql/sql_connection.h"
#include "spec/resolved_job_spec.h"

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

namespace sql {
class PostgresListener;
}  // namespace sql
class StoreTransaction;  // the operations of one transaction (job_store.cc)

// A worker's hold on a running job. The token (a fencing token) grows with every claim of the
// job, so a worker that lost its lease (paused, partitioned, presumed dead) and comes back holds
// an old token, and the store refuses its writes.
struct Lease {
  std::string job_id;
  std::string worker;
  int64_t token = 0;
};

struct ClaimedJob {
  v1::Job job;  // RUNNING, on the claimed device, with worker set
  Lease lease;
};

// A file of a finished run, as recorded when the job succeeded: any server that reads it from the
// shared artifact root checks it against this.
struct ArtifactRecord {
  std::string name;  // in the job's folder: "best.pt", "report.md", ...
  int64_t size_bytes = 0;
  std::string sha256;  // lowercase hex
};

// Thread-safe: one connection behind a mutex. Each method is one transaction, so a job row and
// the events describing its change are written together or not at all; a transaction that fails
// for a reason worth retrying (a lost PostgreSQL connection, a deadlock, SQLite's busy file) is
// run again from the start for up to kRetryFor. Jobs that `Get`, `List` and the others return
// carry last_event_sequence.
//
// SQLite: only one server should open a file at a time (the server locks its state dir); SQLite's
// locking keeps a second reader (the sqlite3 shell, a backup) safe. PostgreSQL: any number of
// servers share the database; claims skip the rows another server holds.
class JobStore {
 public:
  // Version of the tables this build writes. An older store is migrated on Open; a newer one is
  // refused (FailedPrecondition naming both versions).
  static constexpr int kSchemaVersion = 2;
  // How long a failing transaction is retried before its error is returned (a PostgreSQL restart
  // takes a few seconds).
  static constexpr absl::Duration kRetryFor = absl::Seconds(30);
  static constexpr int32_t kDefaultPageSize = 50;
  static constexpr int32_t kMaxPageSize = 500;
  // StateChange reason of the jobs RecoverAfterRestart requeues.
  static constexpr char kRestartReason[] = "server restarted; resuming from the last checkpoint";

  // Called after every event the store commits (state changes included), outside the store's
  // lock. Calls may come from several threads at once and out of sequence order: treat one as a
  // nudge to read Events(job_id, last seen sequence).
  using EventListener = std::function<void(const v1::JobEvent&)>;

  // Opens or creates the SQLite store at `path` (its folder must exist). A file that is not a
  // Selene job store (random bytes, another program's database, a newer schema) or cannot be
  // opened is an error naming the path.
  static StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);

  // Opens the PostgreSQL store at `uri` ("postgresql://user@host/db"), creating or migrating its
  // tables. `password` (from --store_password_file) overrides the URI's; PGPASSFILE works too.
  // Errors name the URI without its password.
  static StatusOr<std::unique_ptr<JobStore>> OpenPostgres(const std::string& uri,
                                                          const std::string& password = "");

  // A store on any connection (tests run the same suite on both engines through this).
  static StatusOr<std::unique_ptr<JobStore>> OpenOn(std::unique_ptr<sql::SqlConnection> db);

  // Opens an existing store for reading only, for a server that cannot write (a full disk):
  // no WAL recovery, no migration, nothing created. Reads work; every write fails
  // (FailedPrecondition, "readonly database"). When even the WAL's shared-memory file cannot be
  // made, the file is read as immutable, without commits still in the WAL after a crash.
  static StatusOr<std::unique_ptr<JobStore>> OpenReadOnly(const std::string& path);

  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // The SQLite file's path, or the PostgreSQL URI without its password.
  const std::string& location() const { return db_->location(); }
  const std::string& engine() const { return db_->dialect().engine; }
  // Whether one server owns the store (SQLite): then every RUNNING job at start is that server's
  // own, and RecoverAfterRestart requeues them all at once instead of waiting for their leases.
  bool exclusive() const { return db_->dialect().notify.empty(); }

  void SetEventListener(EventListener listener) ABSL_LOCKS_EXCLUDED(listener_mu_);

  // Follows what the other servers on this database commit (PostgreSQL's LISTEN/NOTIFY): for
  // each of their events, and for each cancel they request, `nudge` gets a JobEvent with the
  // job_id, the sequence (0 for a cancel request) and no kind; the content is in the store. After
  // the notification connection was lost and came back, `nudge` gets an event with an empty
  // job_id: anything may have changed. A no-op for SQLite, which has no other servers. Calls
  // come from the listener's own thread.
  Status FollowOtherServers(EventListener nudge);
  // Stops the listener FollowOtherServers started: no call of `nudge` runs after it returns.
  void StopFollowingOtherServers();

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

  // The same move for the worker holding `lease`: FailedPrecondition as above, and Aborted
  // (IsLeaseLost) when the lease is no longer the job's, which then stays as the new owner left it.
  // Leaving RUNNING ends the lease. Asking again for a move this lease made returns the job as
  // it is (a retry whose first COMMIT did happen, though its answer was lost).
  StatusOr<v1::Job> Transition(const Lease& lease, v1::JobState to, const std::string& reason = "");

  // QUEUED -> RUNNING on `device` ("cpu", "cuda:0"), in one transaction with the event, for
  // `worker`, with a lease that never expires. For a caller that runs a job by hand and writes
  // without a lease; workers ClaimNext.
  StatusOr<v1::Job> Start(const std::string& id, const std::string& device,
                          const std::string& worker = "");

  // The job `worker` runs next, claimed in one transaction: requeues jobs whose lease expired
  // and fails jobs whose dependency is dead (as RequeueExpiredLeases and
  // FailJobsWithDeadDependencies), then picks as NextRunnable and starts it on `device` with a
  // lease that expires after `lease` unless renewed (by the engine's clock). On PostgreSQL,
  // workers claiming at once skip each other's rows (FOR UPDATE SKIP LOCKED), so a job goes to
  // one worker. nullopt when nothing is runnable.
  StatusOr<std::optional<ClaimedJob>> ClaimNext(const std::string& worker,
                                                const std::string& device, absl::Duration lease);

  // Extends a running job's lease to `lease` from now. Returns the job (cancel_requested tells
  // the worker that a cancel arrived through another server). Aborted (IsLeaseLost) when the
  // lease is no longer the job's.
  StatusOr<v1::Job> RenewLease(const Lease& lease, absl::Duration duration);

  // OK while `lease` holds its job; Aborted (IsLeaseLost) once it does not. Changes nothing.
  Status CheckLease(const Lease& lease);

  // Every RUNNING job whose lease expired goes back to QUEUED to resume from its last checkpoint
  // (reason names the worker), or to CANCELLED when a cancel was requested. Returns the requeued
  // ids in submission order.
  StatusOr<std::vector<std::string>> RequeueExpiredLeases();

  // Aborted with a message naming the job, the worker and what happened to the lease.
  static bool IsLeaseLost(const Status& status);
  // The error IsLeaseLost recognises: `lease` is lost because of `what`.
  static Status LeaseLostError(const Lease& lease, absl::string_view what);

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
  // The same, fenced by `lease` (Aborted when it was lost).
  StatusOr<v1::JobEvent> AppendEvent(const Lease& lease, const v1::JobEvent& event);

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
  // The same, fenced by `lease` (Aborted when it was lost).
  StatusOr<v1::JobEvent> RecordEpoch(const Lease& lease, const v1::EpochEnd& epoch);

  // Records the files a run left in its folder (replacing the job's earlier records), fenced by
  // `lease`: the runner calls it before moving the job to SUCCEEDED.
  Status RecordArtifacts(const Lease& lease, const std::vector<ArtifactRecord>& artifacts);
  // The job's recorded files by name; empty for a job that recorded none (it ran before the
  // store kept them, or has not finished). NotFound for an unknown job.
  StatusOr<std::vector<ArtifactRecord>> Artifacts(const std::string& id);

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

  // For server start: every RUNNING job of `worker` ("" = every RUNNING job, for a store this
  // server owns alone) goes back to QUEUED with reason kRestartReason (its runner died with the
  // old process), resumes + 1 and resume_from_checkpoint, and its device cleared (as any
  // RUNNING -> QUEUED move); a RUNNING job with cancel_requested becomes CANCELLED instead, with
  // its cancel_reason. Returns the ids of the requeued jobs in submission order.
  StatusOr<std::vector<std::string>> RecoverAfterRestart(const std::string& worker = "");

  // Number of jobs in each state; every state from QUEUED to CANCELLED is present, 0 or more.
  StatusOr<std::map<v1::JobState, int64_t>> CountByState();

 private:
  explicit JobStore(std::unique_ptr<sql::SqlConnection> db);

  // Runs `body` in one transaction on the connection, under mu_, again from the start while it
  // fails for a retryable reason (for up to kRetryFor); commits when it succeeds. Events that
  // the transaction records are delivered to the listener after the commit.
  template <typename Body>
  auto InTransaction(sql::SqlConnection::TransactionMode mode, Body body)
      -> decltype(body(std::declval<StoreTransaction&>())) ABSL_LOCKS_EXCLUDED(mu_);
  void Notify(const std::vector<v1::JobEvent>& events) ABSL_LOCKS_EXCLUDED(mu_, listener_mu_);

  absl::Mutex mu_;
  const std::unique_ptr<sql::SqlConnection> db_ ABSL_PT_GUARDED_BY(mu_);
  // For FollowOtherServers (PostgreSQL only).
  std::string postgres_uri_;
  std::string postgres_password_;
  // Marks this store's own notifications, which its listener skips.
  const std::string origin_;
  std::unique_ptr<sql::PostgresListener> follower_;
  absl::Mutex listener_mu_;
  EventListener listener_ ABSL_GUARDED_BY(listener_mu_);
};

}  // namespace selene::jobs
