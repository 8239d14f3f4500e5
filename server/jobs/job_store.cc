#include "server/jobs/job_store.h"

#include <algorithm>
#include <limits>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/text_limits.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/jobs/sql/postgres_connection.h"
#include "server/jobs/sql/postgres_listener.h"
#include "server/jobs/sql/sqlite_connection.h"
#include "server/jobs/store_schema.h"

namespace selene::jobs {
namespace {

using sql::Blob;
using sql::SqlConnection;
using sql::SqlRow;
using sql::SqlRows;
using sql::TextOrNull;
constexpr auto kWrite = SqlConnection::TransactionMode::kWrite;
constexpr auto kRead = SqlConnection::TransactionMode::kRead;

// The NOTIFY channel of a PostgreSQL store.
constexpr char kChannel[] = "selene_jobs";
// Marks a lease-lost Aborted, which no retry can mend, apart from a deadlock's.
constexpr char kLeaseLostPayload[] = "selene.jobs/lease_lost";

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

bool IsLegalMove(v1::JobState from, v1::JobState to) {
  switch (from) {
    case v1::JOB_STATE_QUEUED:
      return to == v1::JOB_STATE_RUNNING || to == v1::JOB_STATE_CANCELLED ||
             to == v1::JOB_STATE_FAILED;
    case v1::JOB_STATE_RUNNING:
      return to == v1::JOB_STATE_SUCCEEDED || to == v1::JOB_STATE_FAILED ||
             to == v1::JOB_STATE_CANCELLED || to == v1::JOB_STATE_QUEUED;
    default:
      return false;
  }
}

std::string DefaultReason(v1::JobState to) {
  switch (to) {
    case v1::JOB_STATE_QUEUED:
      return "requeued";
    case v1::JOB_STATE_RUNNING:
      return "started";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "";
  }
}

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(time);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

int64_t TimestampMillis(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

const char* EventKind(const v1::JobEvent& event) {
  switch (event.kind_case()) {
    case v1::JobEvent::kStateChange:
      return "state_change";
    case v1::JobEvent::kEpochEnd:
      return "epoch_end";
    case v1::JobEvent::kStepProgress:
      return "step_progress";
    default:
      return "none";
  }
}

template <typename Message>
Status ParseBlob(const std::string& bytes, Message* out, const std::string& location,
                 absl::string_view what) {
  if (!out->ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("job store ", location, ": ", what,
                                            " does not parse as ", out->GetTypeName()));
  }
  return OkStatus();
}

// Page tokens are opaque to clients but carry the filter they were made for and the position
// (the seq of the last job sent), so a page starts right after the previous one however many
// jobs arrived since.
std::string MakePageToken(v1::JobState state, int64_t last_seq) {
  return absl::WebSafeBase64Escape(absl::StrCat("v1:", static_cast<int>(state), ":", last_seq));
}

StatusOr<int64_t> ParsePageToken(const std::string& token, v1::JobState state) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token \"", ForMessage(token), "\" is not a token ListJobs returned"));
  };
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded)) return invalid();
  const std::vector<absl::string_view> parts = absl::StrSplit(decoded, ':');
  int token_state = 0;
  int64_t last_seq = 0;
  if (parts.size() != 3 || parts[0] != "v1" || !absl::SimpleAtoi(parts[1], &token_state) ||
      !absl::SimpleAtoi(parts[2], &last_seq) || last_seq < 1) {
    return invalid();
  }
  if (token_state != static_cast<int>(state)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token was made for the state filter ",
        StateName(static_cast<v1::JobState>(token_state)), ", not ", StateName(state)));
  }
  return last_seq;
}

Status LeaseLost(const Lease& lease, absl::string_view what) {
  return JobStore::LeaseLostError(lease, what);
}

std::string RandomOrigin() {
  std::random_device device;
  return absl::StrCat(absl::Hex(device(), absl::kZeroPad8), absl::Hex(device(), absl::kZeroPad8));
}

// "<origin> <job id> <sequence>": who committed, which job, which event (0: a cancel request).
std::string NotificationPayload(const std::string& origin, const std::string& job_id,
                                int64_t sequence) {
  return absl::StrCat(origin, " ", job_id, " ", sequence);
}

}  // namespace

// The operations of one transaction of the store: reads and writes of job rows, events and
// history on the connection, with the events committed by the transaction collected for the
// listener. Every method runs inside the transaction JobStore::InTransaction opened.
class StoreTransaction {
 public:
  StoreTransaction(SqlConnection& db, const std::string& origin) : db_(db), origin_(origin) {}

  SqlConnection& db() { return db_; }
  const std::string& location() const { return db_.location(); }
  std::vector<v1::JobEvent>& events() { return events_; }

  // The job with its lease token. `lock`: a write transaction that will change the row locks it
  // first (PostgreSQL), so concurrent servers change a job one after the other.
  StatusOr<v1::Job> LoadJob(const std::string& id, int64_t* lease_token = nullptr,
                            bool lock = true) {
    SELENE_ASSIGN_OR_RETURN(
        SqlRows rows,
        db_.Query(absl::StrCat("SELECT job, last_event_seq, worker, lease_token FROM jobs "
                               "WHERE id = $1",
                               lock ? db_.dialect().lock_rows : ""),
                  {id}));
    if (rows.empty())
      return absl::NotFoundError(absl::StrCat("job ", ForMessage(id), " not found"));
    return JobFromRow(rows[0], 0, lease_token);
  }

  // Columns (job, last_event_seq, worker, lease_token) from `first` on.
  StatusOr<v1::Job> JobFromRow(const SqlRow& row, int first, int64_t* lease_token = nullptr) {
    v1::Job job;
    SELENE_RETURN_IF_ERROR(ParseBlob(row.Bytes(first), &job, location(), "a job"));
    job.set_last_event_sequence(row.Int(first + 1));
    job.set_worker(row.Text(first + 2));
    if (lease_token != nullptr) *lease_token = row.Int(first + 3);
    return job;
  }

  // The job, locked, when `lease` still holds it; Aborted (lease lost) otherwise.
  StatusOr<v1::Job> LoadLeased(const Lease& lease, bool lock = true) {
    int64_t token = 0;
    SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJob(lease.job_id, &token, lock));
    if (job.state() != v1::JOB_STATE_RUNNING) {
      return LeaseLost(lease, absl::StrCat("the job is ", StateName(job.state()), " now"));
    }
    if (token != lease.token || job.worker() != lease.worker) {
      return LeaseLost(
          lease, absl::StrCat("worker ", job.worker(), " holds the job now (token ", token, ")"));
    }
    return job;
  }

  Status SaveJob(const v1::Job& job) {
    return db_
        .Query("UPDATE jobs SET state = $1, job = $2, worker = $3 WHERE id = $4",
               {int64_t{job.state()}, Blob{job.SerializeAsString()}, TextOrNull(job.worker()),
                job.id()})
        .status();
  }

  // Numbers, stamps and stores `event` for `job` (whose last_event_sequence it advances).
  StatusOr<v1::JobEvent> InsertEvent(v1::Job* job, v1::JobEvent event) {
    event.set_job_id(job->id());
    event.set_sequence(job->last_event_sequence() + 1);
    if (!event.has_time()) SetTimestamp(absl::Now(), event.mutable_time());
    SELENE_RETURN_IF_ERROR(
        db_.Query("INSERT INTO job_events (job_id, sequence, kind, time_ms, event) "
                  "VALUES ($1, $2, $3, $4, $5)",
                  {job->id(), event.sequence(), std::string(EventKind(event)),
                   TimestampMillis(event.time()), Blob{event.SerializeAsString()}})
            .status());
    SELENE_RETURN_IF_ERROR(db_.Query("UPDATE jobs SET last_event_seq = $1 WHERE id = $2",
                                     {event.sequence(), job->id()})
                               .status());
    job->set_last_event_sequence(event.sequence());
    SELENE_RETURN_IF_ERROR(TellOtherServers(job->id(), event.sequence()));
    events_.push_back(event);
    return event;
  }

  // A notification the other servers on the database get at commit (PostgreSQL).
  Status TellOtherServers(const std::string& job_id, int64_t sequence) {
    const std::string& notify = db_.dialect().notify;
    if (notify.empty()) return OkStatus();
    return db_.Query(notify, {NotificationPayload(origin_, job_id, sequence)}).status();
  }

  // Checks and applies a state move to `job`, saves it and stores its event. Leaving RUNNING
  // ends the job's lease (its token stays, so the next claim's is larger).
  Status Transition(v1::Job* job, v1::JobState to, const std::string& reason) {
    const v1::JobState from = job->state();
    if (IsTerminal(from)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job->id(), " is ", StateName(from),
                                                        ", a final state; it cannot become ",
                                                        StateName(to)));
    }
    if (!IsLegalMove(from, to)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job->id(), " cannot move from ",
                                                        StateName(from), " to ", StateName(to)));
    }
    const std::string why = reason.empty() ? DefaultReason(to) : reason;
    const absl::Time now = absl::Now();
    job->set_state(to);
    switch (to) {
      case v1::JOB_STATE_RUNNING:
        job->set_attempts(job->attempts() + 1);
        if (!job->has_start_time()) SetTimestamp(now, job->mutable_start_time());
        break;
      case v1::JOB_STATE_QUEUED:
        // Interrupted: whatever ran wrote checkpoints, and the next run continues from them.
        job->set_resume_from_checkpoint(true);
        job->set_resumes(job->resumes() + 1);
        job->clear_device();
        break;
      case v1::JOB_STATE_SUCCEEDED:
        job->clear_error();
        break;
      case v1::JOB_STATE_FAILED:
      case v1::JOB_STATE_CANCELLED:
        job->set_error(why);
        break;
      default:
        break;
    }
    if (IsTerminal(to)) SetTimestamp(now, job->mutable_finish_time());
    SELENE_RETURN_IF_ERROR(SaveJob(*job));
    if (from == v1::JOB_STATE_RUNNING) {
      SELENE_RETURN_IF_ERROR(
          db_.Query("UPDATE jobs SET lease_expires_ms = 0 WHERE id = $1", {job->id()}).status());
    }

    v1::JobEvent event;
    SetTimestamp(now, event.mutable_time());
    v1::StateChange* change = event.mutable_state_change();
    change->set_from_state(from);
    change->set_to_state(to);
    change->set_reason(why);
    return InsertEvent(job, std::move(event)).status();
  }

  // QUEUED -> RUNNING for `worker` on `device` with a new fencing token, the lease expiring
  // after `lease` by the engine's clock (InfiniteDuration: never).
  StatusOr<ClaimedJob> Claim(const std::string& id, const std::string& worker,
                             const std::string& device, absl::Duration lease) {
    int64_t token = 0;
    SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJob(id, &token));
    if (job.state() != v1::JOB_STATE_QUEUED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", ForMessage(id), " is ", StateName(job.state()), ", not QUEUED; cannot start it"));
    }
    job.set_device(device);
    job.set_worker(worker);
    SELENE_RETURN_IF_ERROR(Transition(&job, v1::JOB_STATE_RUNNING,
                                      worker.empty()
                                          ? absl::StrCat("started on ", device)
                                          : absl::StrCat("started on ", device, " of ", worker)));
    ClaimedJob claimed{job, Lease{id, worker, token + 1}};
    SELENE_RETURN_IF_ERROR(
        db_.Query(absl::StrCat("UPDATE jobs SET lease_token = $1, lease_expires_ms = ",
                               LeaseExpiry(lease), " WHERE id = $2"),
                  {claimed.lease.token, id})
            .status());
    claimed.job = std::move(job);
    return claimed;
  }

  // The SQL expression for when a lease of `duration` from now ends (0: never).
  std::string LeaseExpiry(absl::Duration duration) const {
    if (duration == absl::InfiniteDuration()) return "0";
    return absl::StrCat("(", db_.dialect().now_ms, ") + ",
                        std::max<int64_t>(1, absl::ToInt64Milliseconds(duration)));
  }

  // Moves every QUEUED job whose dependency FAILED or was CANCELLED to FAILED, in rounds (the
  // next round reaches their own dependents; every round ends a job, so this stops).
  StatusOr<std::vector<std::string>> FailJobsWithDeadDependencies() {
    std::vector<std::string> failed;
    while (true) {
      SELENE_ASSIGN_OR_RETURN(
          SqlRows doomed,
          db_.Query("SELECT j.id, d.id FROM jobs j JOIN jobs d ON d.id = j.depends_on "
                    "WHERE j.state = $1 AND d.state IN ($2, $3) ORDER BY j.seq",
                    {int64_t{v1::JOB_STATE_QUEUED}, int64_t{v1::JOB_STATE_FAILED},
                     int64_t{v1::JOB_STATE_CANCELLED}}));
      if (doomed.empty()) break;
      for (const SqlRow& row : doomed) {
        const std::string id = row.Text(0);
        const std::string dependency_id = row.Text(1);
        SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJob(id));
        // Another server may have failed or cancelled it while this one waited for the row.
        if (job.state() != v1::JOB_STATE_QUEUED) continue;
        SELENE_ASSIGN_OR_RETURN(v1::Job dependency, LoadJob(dependency_id, nullptr, false));
        const std::string reason =
            dependency.state() == v1::JOB_STATE_CANCELLED
                ? absl::StrCat("encoder job ", dependency_id, " was cancelled")
                : absl::StrCat("encoder job ", dependency_id, " failed: ", dependency.error());
        SELENE_RETURN_IF_ERROR(Transition(&job, v1::JOB_STATE_FAILED, reason));
        failed.push_back(id);
      }
    }
    return failed;
  }

  // The RUNNING job leaves its lease: requeued to resume, or CANCELLED when a cancel waits.
  // Returns whether it was requeued.
  StatusOr<bool> Release(v1::Job* job, const std::string& requeue_reason,
                         absl::string_view cancel_note) {
    if (job->cancel_requested()) {
      const std::string reason = job->cancel_reason().empty() ? "cancelled" : job->cancel_reason();
      SELENE_RETURN_IF_ERROR(
          Transition(job, v1::JOB_STATE_CANCELLED, absl::StrCat(reason, " (", cancel_note, ")")));
      return false;
    }
    SELENE_RETURN_IF_ERROR(Transition(job, v1::JOB_STATE_QUEUED, requeue_reason));
    return true;
  }

  StatusOr<std::vector<std::string>> RequeueExpiredLeases() {
    SELENE_ASSIGN_OR_RETURN(
        SqlRows expired,
        db_.Query(absl::StrCat("SELECT j.id FROM jobs j WHERE j.state = $1 AND "
                               "j.lease_expires_ms > 0 AND j.lease_expires_ms < (",
                               db_.dialect().now_ms, ") ORDER BY j.seq", db_.dialect().skip_locked),
                  {int64_t{v1::JOB_STATE_RUNNING}}));
    std::vector<std::string> requeued;
    for (const SqlRow& row : expired) {
      SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJob(row.Text(0)));
      if (job.state() != v1::JOB_STATE_RUNNING) continue;
      const std::string worker = job.worker();
      SELENE_ASSIGN_OR_RETURN(
          bool again,
          Release(&job,
                  absl::StrCat("worker ", worker,
                               " stopped renewing its lease; resuming from the last checkpoint"),
                  absl::StrCat("worker ", worker, " stopped before the job had stopped")));
      if (again) requeued.push_back(job.id());
    }
    return requeued;
  }

 private:
  SqlConnection& db_;
  const std::string& origin_;
  std::vector<v1::JobEvent> events_;
};

std::string StateName(v1::JobState state) {
  return std::string(absl::StripPrefix(v1::JobState_Name(state), "JOB_STATE_"));
}

Status JobStore::LeaseLostError(const Lease& lease, absl::string_view what) {
  Status status = absl::AbortedError(absl::StrCat("job ", lease.job_id, ": worker ", lease.worker,
                                                  " lost its lease (token ", lease.token,
                                                  "): ", what, "; nothing was written"));
  status.SetPayload(kLeaseLostPayload, absl::Cord("1"));
  return status;
}

bool JobStore::IsLeaseLost(const Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         status.GetPayload(kLeaseLostPayload).has_value();
}

JobStore::JobStore(std::unique_ptr<sql::SqlConnection> db)
    : db_(std::move(db)), origin_(RandomOrigin()) {}

JobStore::~JobStore() { StopFollowingOtherServers(); }

template <typename Body>
auto JobStore::InTransaction(SqlConnection::TransactionMode mode, Body body)
    -> decltype(body(std::declval<StoreTransaction&>())) {
  decltype(body(std::declval<StoreTransaction&>())) result;
  std::vector<v1::JobEvent> committed;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time give_up = absl::Now() + kRetryFor;
    absl::Duration backoff = absl::Milliseconds(20);
    while (true) {
      StoreTransaction txn(*db_, origin_);
      Status status = db_->Begin(mode);
      if (status.ok()) {
        result = body(txn);
        status = result.status();
        if (status.ok()) status = db_->Commit();
        if (!status.ok()) db_->Rollback();
      }
      if (status.ok()) {
        committed = std::move(txn.events());
        break;
      }
      if (IsLeaseLost(status) || !db_->IsRetryable(status) || absl::Now() + backoff > give_up) {
        result = status;
        break;
      }
      // The engine is restarting, or another server's transaction won a deadlock: wait a little
      // and run the whole transaction again (what it read may have changed).
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }
  Notify(committed);
  return result;
}

StatusOr<std::unique_ptr<JobStore>> JobStore::OpenOn(std::unique_ptr<sql::SqlConnection> db) {
  std::unique_ptr<JobStore> store(new JobStore(std::move(db)));
  SELENE_RETURN_IF_ERROR(MigrateStoreSchema(*store->db_));
  return store;
}

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  SELENE_ASSIGN_OR_RETURN(std::unique_ptr<sql::SqliteConnection> db,
                          sql::SqliteConnection::Open(path));
  return OpenOn(std::move(db));
}

StatusOr<std::unique_ptr<JobStore>> JobStore::OpenPostgres(const std::string& uri,
                                                           const std::string& password) {
  SELENE_ASSIGN_OR_RETURN(std::unique_ptr<sql::PostgresConnection> db,
                          sql::PostgresConnection::Open(uri, password));
  SELENE_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, OpenOn(std::move(db)));
  store->postgres_uri_ = uri;
  store->postgres_password_ = password;
  return store;
}

StatusOr<std::unique_ptr<JobStore>> JobStore::OpenReadOnly(const std::string& path) {
  SELENE_ASSIGN_OR_RETURN(std::unique_ptr<sql::SqliteConnection> db,
                          sql::SqliteConnection::OpenReadOnly(path));
  SELENE_ASSIGN_OR_RETURN(const int version, StoreSchemaVersion(*db));
  if (version != kSchemaVersion) {
    return FailedPreconditionError(absl::StrCat("job store ", path, ": schema version ", version,
                                                " needs a migration, which a read-only store "
                                                "cannot do"));
  }
  return std::unique_ptr<JobStore>(new JobStore(std::move(db)));
}

void JobStore::SetEventListener(EventListener listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

Status JobStore::FollowOtherServers(EventListener nudge) {
  if (exclusive()) return OkStatus();
  const std::string origin = origin_;
  auto on_notify = [nudge, origin](const std::string& payload) {
    const std::vector<std::string> parts = absl::StrSplit(payload, ' ');
    int64_t sequence = 0;
    if (parts.size() != 3 || parts[0] == origin || !absl::SimpleAtoi(parts[2], &sequence)) return;
    v1::JobEvent event;
    event.set_job_id(parts[1]);
    event.set_sequence(sequence);
    nudge(event);
  };
  auto on_reconnect = [nudge] { nudge(v1::JobEvent()); };
  SELENE_ASSIGN_OR_RETURN(std::unique_ptr<sql::PostgresListener> listener,
                          sql::PostgresListener::Start(postgres_uri_, postgres_password_, kChannel,
                                                       on_notify, on_reconnect));
  follower_ = std::move(listener);
  return OkStatus();
}

void JobStore::StopFollowingOtherServers() { follower_.reset(); }

void JobStore::Notify(const std::vector<v1::JobEvent>& events) {
  if (events.empty()) return;
  EventListener listener;
  {
    absl::MutexLock lock(&listener_mu_);
    listener = listener_;
  }
  if (!listener) return;
  for (const v1::JobEvent& event : events) listener(event);
}

StatusOr<SubmitResult> JobStore::Submit(const spec::ResolvedJobSpec& resolved,
                                        const std::string& request_id, int32_t priority) {
  const v1::JobSpec& spec = resolved.submitted();
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<SubmitResult> {
    SqlConnection& db = txn.db();
    SubmitResult result;
    if (!request_id.empty()) {
      SELENE_ASSIGN_OR_RETURN(SqlRows seen,
                              db.Query("SELECT id FROM jobs WHERE request_id = $1", {request_id}));
      if (!seen.empty()) {
        SELENE_ASSIGN_OR_RETURN(v1::Job existing, txn.LoadJob(seen[0].Text(0), nullptr, false));
        if (existing.priority() != priority ||
            !google::protobuf::util::MessageDifferencer::Equals(existing.spec(), spec)) {
          return absl::AlreadyExistsError(
              absl::StrCat("request_id \"", ForMessage(request_id), "\" was already used for job ",
                           existing.id(), " with a different spec or priority"));
        }
        result.job = std::move(existing);
        result.created = false;
        return result;
      }
    }

    const std::string depends_on =
        spec.model().has_encoder_unet() ? spec.model().encoder_unet().encoder_job_id() : "";
    if (!depends_on.empty()) {
      SELENE_ASSIGN_OR_RETURN(SqlRows dependency,
                              db.Query("SELECT 1 FROM jobs WHERE id = $1", {depends_on}));
      if (dependency.empty()) {
        return absl::NotFoundError(absl::StrCat("model.encoder_unet.encoder_job_id: job ",
                                                ForMessage(depends_on), " not found"));
      }
    }

    SELENE_ASSIGN_OR_RETURN(SqlRows number, db.Query(db.dialect().next_job_number));
    const int64_t seq = number.empty() ? 1 : number[0].Int(0);

    v1::Job job;
    job.set_id(absl::StrCat("job-", seq));
    job.set_name(spec.name());
    *job.mutable_spec() = spec;
    job.set_state(v1::JOB_STATE_QUEUED);
    job.set_priority(priority);
    job.set_request_id(request_id);
    SetTimestamp(absl::Now(), job.mutable_create_time());
    job.set_depends_on(depends_on);
    job.set_epochs(resolved.proto().training().epochs());
    job.set_monitor(resolved.proto().training().monitor());

    // ON CONFLICT: another server took the same request id since the SELECT above; running the
    // transaction again finds its job.
    SELENE_ASSIGN_OR_RETURN(
        SqlRows inserted,
        db.Query("INSERT INTO jobs (seq, id, state, priority, request_id, depends_on, job) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (request_id) DO NOTHING "
                 "RETURNING seq",
                 {seq, job.id(), int64_t{job.state()}, int64_t{priority}, TextOrNull(request_id),
                  TextOrNull(depends_on), Blob{job.SerializeAsString()}}));
    if (inserted.empty()) {
      return absl::UnavailableError(absl::StrCat("request_id \"", ForMessage(request_id),
                                                 "\" was submitted at the same time elsewhere"));
    }

    v1::JobEvent event;
    event.mutable_state_change()->set_from_state(v1::JOB_STATE_UNSPECIFIED);
    event.mutable_state_change()->set_to_state(v1::JOB_STATE_QUEUED);
    event.mutable_state_change()->set_reason("submitted");
    *event.mutable_time() = job.create_time();
    SELENE_RETURN_IF_ERROR(txn.InsertEvent(&job, std::move(event)).status());
    result.job = std::move(job);
    result.created = true;
    return result;
  });
}

StatusOr<v1::Job> JobStore::Get(const std::string& id) {
  return InTransaction(kRead, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    return txn.LoadJob(id, nullptr, false);
  });
}

StatusOr<JobPage> JobStore::List(v1::JobState state, int32_t page_size,
                                 const std::string& page_token) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", page_size, " must be >= 0 (0 means ", kDefaultPageSize, ")"));
  }
  if (page_size == 0) page_size = kDefaultPageSize;
  if (page_size > kMaxPageSize) page_size = kMaxPageSize;
  int64_t before_seq = std::numeric_limits<int64_t>::max();
  if (!page_token.empty()) {
    SELENE_ASSIGN_OR_RETURN(before_seq, ParsePageToken(page_token, state));
  }
  return InTransaction(kRead, [&](StoreTransaction& txn) -> StatusOr<JobPage> {
    // One more row than the page tells whether another page follows.
    SELENE_ASSIGN_OR_RETURN(
        SqlRows rows,
        txn.db().Query("SELECT seq, job, last_event_seq, worker FROM jobs "
                       "WHERE ($1 = 0 OR state = $1) AND seq < $2 ORDER BY seq DESC LIMIT $3",
                       {int64_t{state}, before_seq, int64_t{page_size} + 1}));
    JobPage page;
    int64_t last_seq = 0;
    for (const SqlRow& row : rows) {
      if (static_cast<int32_t>(page.jobs.size()) == page_size) {
        page.next_page_token = MakePageToken(state, last_seq);
        break;
      }
      last_seq = row.Int(0);
      SELENE_ASSIGN_OR_RETURN(page.jobs.emplace_back(), txn.JobFromRow(row, 1));
    }
    return page;
  });
}

StatusOr<v1::Job> JobStore::Transition(const std::string& id, v1::JobState to,
                                       const std::string& reason) {
  if (to == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", ForMessage(id), ": cannot move to state ", static_cast<int>(to)));
  }
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(id));
    SELENE_RETURN_IF_ERROR(txn.Transition(&job, to, reason));
    return job;
  });
}

StatusOr<v1::Job> JobStore::Transition(const Lease& lease, v1::JobState to,
                                       const std::string& reason) {
  if (to == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(to)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", ForMessage(lease.job_id), ": cannot move to state ", static_cast<int>(to)));
  }
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    int64_t token = 0;
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(lease.job_id, &token));
    // Already made by this lease: a retry after a COMMIT whose answer was lost with the
    // connection. The move happened once; it is not an error to ask again.
    if (job.state() == to && token == lease.token && job.worker() == lease.worker) return job;
    SELENE_ASSIGN_OR_RETURN(job, txn.LoadLeased(lease));
    SELENE_RETURN_IF_ERROR(txn.Transition(&job, to, reason));
    return job;
  });
}

StatusOr<v1::Job> JobStore::Start(const std::string& id, const std::string& device,
                                  const std::string& worker) {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    SELENE_ASSIGN_OR_RETURN(ClaimedJob claimed,
                            txn.Claim(id, worker, device, absl::InfiniteDuration()));
    return claimed.job;
  });
}

StatusOr<std::optional<ClaimedJob>> JobStore::ClaimNext(const std::string& worker,
                                                        const std::string& device,
                                                        absl::Duration lease) {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<std::optional<ClaimedJob>> {
    SELENE_RETURN_IF_ERROR(txn.RequeueExpiredLeases().status());
    SELENE_RETURN_IF_ERROR(txn.FailJobsWithDeadDependencies().status());
    SqlConnection& db = txn.db();
    SELENE_ASSIGN_OR_RETURN(
        SqlRows next,
        db.Query(absl::StrCat("SELECT j.id FROM jobs j LEFT JOIN jobs d ON d.id = j.depends_on "
                              "WHERE j.state = $1 AND (j.depends_on IS NULL OR d.state = $2) "
                              "ORDER BY j.priority DESC, j.seq ASC LIMIT 1",
                              db.dialect().skip_locked),
                 {int64_t{v1::JOB_STATE_QUEUED}, int64_t{v1::JOB_STATE_SUCCEEDED}}));
    if (next.empty()) return std::optional<ClaimedJob>();
    SELENE_ASSIGN_OR_RETURN(ClaimedJob claimed, txn.Claim(next[0].Text(0), worker, device, lease));
    return std::optional<ClaimedJob>(std::move(claimed));
  });
}

StatusOr<v1::Job> JobStore::RenewLease(const Lease& lease, absl::Duration duration) {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadLeased(lease));
    SELENE_RETURN_IF_ERROR(txn.db()
                               .Query(absl::StrCat("UPDATE jobs SET lease_expires_ms = ",
                                                   txn.LeaseExpiry(duration), " WHERE id = $1"),
                                      {lease.job_id})
                               .status());
    return job;
  });
}

Status JobStore::CheckLease(const Lease& lease) {
  return InTransaction(kRead, [&](StoreTransaction& txn) { return txn.LoadLeased(lease, false); })
      .status();
}

StatusOr<std::vector<std::string>> JobStore::RequeueExpiredLeases() {
  return InTransaction(kWrite, [&](StoreTransaction& txn) { return txn.RequeueExpiredLeases(); });
}

StatusOr<v1::Job> JobStore::SetDevice(const std::string& id, const std::string& device) {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(id));
    job.set_device(device);
    SELENE_RETURN_IF_ERROR(txn.SaveJob(job));
    return job;
  });
}

StatusOr<v1::Job> JobStore::RequestCancel(const std::string& id, const std::string& reason) {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::Job> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(id));
    switch (job.state()) {
      case v1::JOB_STATE_QUEUED:
        SELENE_RETURN_IF_ERROR(txn.Transition(&job, v1::JOB_STATE_CANCELLED, reason));
        break;
      case v1::JOB_STATE_RUNNING:
        if (job.cancel_requested()) return job;
        job.set_cancel_requested(true);
        // Kept with the job so the reason survives a crash before the runner stops.
        job.set_cancel_reason(reason);
        SELENE_RETURN_IF_ERROR(txn.SaveJob(job));
        // The worker running it may be another server: it hears of the cancel at once.
        SELENE_RETURN_IF_ERROR(txn.TellOtherServers(id, 0));
        break;
      default:
        return absl::FailedPreconditionError(absl::StrCat("job ", ForMessage(id), " is already ",
                                                          StateName(job.state()),
                                                          "; there is nothing to cancel"));
    }
    return job;
  });
}

namespace {

Status CheckStepProgress(const std::string& id, const v1::JobEvent& event) {
  if (event.kind_case() == v1::JobEvent::KIND_NOT_SET || event.has_state_change() ||
      event.has_epoch_end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", ForMessage(id), ": AppendEvent takes step progress only, not an event of kind \"",
        EventKind(event), "\" (state changes go through Transition, epochs through RecordEpoch)"));
  }
  return OkStatus();
}

Status CheckRunning(const v1::Job& job, absl::string_view what) {
  if (job.state() == v1::JOB_STATE_RUNNING) return OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", ForMessage(job.id()), " is ", StateName(job.state()), ", not RUNNING; ", what));
}

Status CheckEpochNumber(const std::string& id, const v1::EpochEnd& epoch) {
  if (epoch.epoch() >= 1) return OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("job ", ForMessage(id), ": epoch ", epoch.epoch(),
                                                 " must be >= 1 (epochs are 1-based)"));
}

// Stores one finished epoch of `job` (RUNNING and locked): the history row, the job's summary
// fields and the EpochEnd event.
StatusOr<v1::JobEvent> StoreEpoch(StoreTransaction& txn, v1::Job* job, const v1::EpochEnd& epoch) {
  // A run resumed from an earlier checkpoint repeats epochs: the later row replaces the earlier.
  SELENE_RETURN_IF_ERROR(
      txn.db()
          .Query("INSERT INTO epoch_history "
                 "(job_id, epoch, train_loss, val_loss, monitor_value, record) "
                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, epoch) DO UPDATE SET "
                 "train_loss = excluded.train_loss, val_loss = excluded.val_loss, "
                 "monitor_value = excluded.monitor_value, record = excluded.record",
                 {job->id(), epoch.epoch(), epoch.train_loss(), epoch.val_loss(),
                  epoch.monitor_value(), Blob{epoch.SerializeAsString()}})
          .status());
  job->set_current_epoch(epoch.epoch());
  if (epoch.epochs() > 0) job->set_epochs(epoch.epochs());
  auto& latest = *job->mutable_latest_metrics();
  latest.clear();
  latest.insert(epoch.metrics().begin(), epoch.metrics().end());
  latest["train_loss"] = epoch.train_loss();
  latest["val_loss"] = epoch.val_loss();
  if (epoch.is_best()) {
    job->set_best_epoch(epoch.epoch());
    job->set_best_value(epoch.monitor_value());
    if (!epoch.monitor().empty()) job->set_monitor(epoch.monitor());
  }
  SELENE_RETURN_IF_ERROR(txn.SaveJob(*job));
  v1::JobEvent event;
  *event.mutable_epoch_end() = epoch;
  return txn.InsertEvent(job, std::move(event));
}

}  // namespace

StatusOr<v1::JobEvent> JobStore::AppendEvent(const std::string& id, const v1::JobEvent& event) {
  SELENE_RETURN_IF_ERROR(CheckStepProgress(id, event));
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::JobEvent> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(id));
    SELENE_RETURN_IF_ERROR(CheckRunning(job, "no progress to record"));
    return txn.InsertEvent(&job, event);
  });
}

StatusOr<v1::JobEvent> JobStore::AppendEvent(const Lease& lease, const v1::JobEvent& event) {
  SELENE_RETURN_IF_ERROR(CheckStepProgress(lease.job_id, event));
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::JobEvent> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadLeased(lease));
    return txn.InsertEvent(&job, event);
  });
}

StatusOr<v1::JobEvent> JobStore::RecordEpoch(const std::string& id, const v1::EpochEnd& epoch) {
  SELENE_RETURN_IF_ERROR(CheckEpochNumber(id, epoch));
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::JobEvent> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(id));
    SELENE_RETURN_IF_ERROR(CheckRunning(job, absl::StrCat("cannot record epoch ", epoch.epoch())));
    return StoreEpoch(txn, &job, epoch);
  });
}

StatusOr<v1::JobEvent> JobStore::RecordEpoch(const Lease& lease, const v1::EpochEnd& epoch) {
  SELENE_RETURN_IF_ERROR(CheckEpochNumber(lease.job_id, epoch));
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<v1::JobEvent> {
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadLeased(lease));
    return StoreEpoch(txn, &job, epoch);
  });
}

Status JobStore::RecordArtifacts(const Lease& lease, const std::vector<ArtifactRecord>& artifacts) {
  return InTransaction(
             kWrite,
             [&](StoreTransaction& txn) -> StatusOr<bool> {
               SELENE_RETURN_IF_ERROR(txn.LoadLeased(lease).status());
               SqlConnection& db = txn.db();
               SELENE_RETURN_IF_ERROR(
                   db.Query("DELETE FROM artifacts WHERE job_id = $1", {lease.job_id}).status());
               for (const ArtifactRecord& artifact : artifacts) {
                 SELENE_RETURN_IF_ERROR(
                     db.Query("INSERT INTO artifacts (job_id, name, size_bytes, sha256) "
                              "VALUES ($1, $2, $3, $4)",
                              {lease.job_id, artifact.name, artifact.size_bytes, artifact.sha256})
                         .status());
               }
               return true;
             })
      .status();
}

StatusOr<std::vector<ArtifactRecord>> JobStore::Artifacts(const std::string& id) {
  return InTransaction(kRead, [&](StoreTransaction& txn) -> StatusOr<std::vector<ArtifactRecord>> {
    SELENE_RETURN_IF_ERROR(txn.LoadJob(id, nullptr, false).status());
    SELENE_ASSIGN_OR_RETURN(SqlRows rows,
                            txn.db().Query("SELECT name, size_bytes, sha256 FROM artifacts "
                                           "WHERE job_id = $1 ORDER BY name",
                                           {id}));
    std::vector<ArtifactRecord> artifacts;
    for (const SqlRow& row : rows) {
      artifacts.push_back({row.Text(0), row.Int(1), row.Text(2)});
    }
    return artifacts;
  });
}

StatusOr<std::vector<v1::JobEvent>> JobStore::Events(const std::string& id, int64_t after_sequence,
                                                     int64_t limit) {
  if (after_sequence < 0 || limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("job ", ForMessage(id), ": after_sequence ",
                                                   after_sequence, " and limit ", limit,
                                                   " must be >= 0"));
  }
  // The read and the existence check see one snapshot.
  return InTransaction(kRead, [&](StoreTransaction& txn) -> StatusOr<std::vector<v1::JobEvent>> {
    SELENE_RETURN_IF_ERROR(txn.LoadJob(id, nullptr, false).status());
    SELENE_ASSIGN_OR_RETURN(
        SqlRows rows,
        txn.db().Query(
            "SELECT event FROM job_events WHERE job_id = $1 AND sequence > $2 "
            "ORDER BY sequence LIMIT $3",
            {id, after_sequence, limit == 0 ? std::numeric_limits<int64_t>::max() : limit}));
    std::vector<v1::JobEvent> events;
    for (const SqlRow& row : rows) {
      SELENE_RETURN_IF_ERROR(ParseBlob(row.Bytes(0), &events.emplace_back(), location(),
                                       absl::StrCat("an event of job ", id)));
    }
    return events;
  });
}

StatusOr<std::vector<v1::EpochEnd>> JobStore::History(const std::string& id) {
  return InTransaction(kRead, [&](StoreTransaction& txn) -> StatusOr<std::vector<v1::EpochEnd>> {
    SELENE_RETURN_IF_ERROR(txn.LoadJob(id, nullptr, false).status());
    SELENE_ASSIGN_OR_RETURN(
        SqlRows rows,
        txn.db().Query("SELECT record FROM epoch_history WHERE job_id = $1 ORDER BY epoch", {id}));
    std::vector<v1::EpochEnd> epochs;
    for (const SqlRow& row : rows) {
      SELENE_RETURN_IF_ERROR(ParseBlob(row.Bytes(0), &epochs.emplace_back(), location(),
                                       absl::StrCat("an epoch of job ", id)));
    }
    return epochs;
  });
}

StatusOr<std::vector<std::string>> JobStore::FailJobsWithDeadDependencies() {
  return InTransaction(kWrite,
                       [&](StoreTransaction& txn) { return txn.FailJobsWithDeadDependencies(); });
}

StatusOr<std::optional<v1::Job>> JobStore::NextRunnable() {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<std::optional<v1::Job>> {
    SELENE_RETURN_IF_ERROR(txn.FailJobsWithDeadDependencies().status());
    SELENE_ASSIGN_OR_RETURN(
        SqlRows next,
        txn.db().Query("SELECT j.id FROM jobs j LEFT JOIN jobs d ON d.id = j.depends_on "
                       "WHERE j.state = $1 AND (j.depends_on IS NULL OR d.state = $2) "
                       "ORDER BY j.priority DESC, j.seq ASC LIMIT 1",
                       {int64_t{v1::JOB_STATE_QUEUED}, int64_t{v1::JOB_STATE_SUCCEEDED}}));
    if (next.empty()) return std::optional<v1::Job>();
    SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(next[0].Text(0), nullptr, false));
    return std::optional<v1::Job>(std::move(job));
  });
}

StatusOr<std::vector<std::string>> JobStore::RecoverAfterRestart(const std::string& worker) {
  return InTransaction(kWrite, [&](StoreTransaction& txn) -> StatusOr<std::vector<std::string>> {
    SELENE_ASSIGN_OR_RETURN(
        SqlRows running,
        txn.db().Query("SELECT id FROM jobs WHERE state = $1 AND ($2 = '' OR worker = $2) "
                       "ORDER BY seq",
                       {int64_t{v1::JOB_STATE_RUNNING}, worker}));
    std::vector<std::string> requeued;
    for (const SqlRow& row : running) {
      SELENE_ASSIGN_OR_RETURN(v1::Job job, txn.LoadJob(row.Text(0)));
      if (job.state() != v1::JOB_STATE_RUNNING) continue;
      SELENE_ASSIGN_OR_RETURN(
          bool again,
          txn.Release(&job, kRestartReason, "the server restarted before the job had stopped"));
      if (again) requeued.push_back(job.id());
    }
    return requeued;
  });
}

StatusOr<std::map<v1::JobState, int64_t>> JobStore::CountByState() {
  return InTransaction(
      kRead, [&](StoreTransaction& txn) -> StatusOr<std::map<v1::JobState, int64_t>> {
        std::map<v1::JobState, int64_t> counts;
        for (v1::JobState state :
             {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
              v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
          counts[state] = 0;
        }
        SELENE_ASSIGN_OR_RETURN(SqlRows rows,
                                txn.db().Query("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
        for (const SqlRow& row : rows) {
          counts[static_cast<v1::JobState>(row.Int(0))] = row.Int(1);
        }
        return counts;
      });
}

}  // namespace selene::jobs
