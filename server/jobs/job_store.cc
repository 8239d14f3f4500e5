#include "server/jobs/job_store.h"

#include <sqlite3.h>

#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/text_limits.h"
#include "google/protobuf/util/message_differencer.h"

namespace selene::jobs {
namespace {

// Schema migrations: kMigrations[v] takes a file from version v to v + 1; version 0 is an empty
// file. A later schema appends a step here and bumps JobStore::kSchemaVersion.
//
// Queryable columns sit next to the serialized messages (the BLOBs are the truth for everything
// else), so the scheduler's questions are answered by indexes without parsing protos.
// AUTOINCREMENT keeps job numbers from ever being reused, even after rows are deleted by hand.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (0);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the n of "job-<n>", also the submission order
  id TEXT NOT NULL UNIQUE,
  state INTEGER NOT NULL,                 -- selene.v1.JobState
  priority INTEGER NOT NULL,
  request_id TEXT UNIQUE,                 -- NULL when the client gave none
  depends_on TEXT REFERENCES jobs (id),   -- NULL when none
  last_event_seq INTEGER NOT NULL DEFAULT 0,
  job BLOB NOT NULL                       -- selene.v1.Job
);
CREATE INDEX jobs_runnable ON jobs (state, priority DESC, seq);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE INDEX jobs_by_dependency ON jobs (depends_on);
CREATE TABLE job_events (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  sequence INTEGER NOT NULL,
  kind TEXT NOT NULL,                     -- state_change, epoch_end, step_progress
  time_ms INTEGER NOT NULL,               -- Unix time in milliseconds
  event BLOB NOT NULL,                    -- selene.v1.JobEvent
  PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;
CREATE TABLE epoch_history (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  epoch INTEGER NOT NULL,                 -- 1-based
  train_loss REAL,
  val_loss REAL,
  monitor_value REAL,
  record BLOB NOT NULL,                   -- selene.v1.EpochEnd
  PRIMARY KEY (job_id, epoch)
) WITHOUT ROWID;
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == JobStore::kSchemaVersion,
              "one migration per schema version");

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

// The canonical code for an SQLite failure: a file that is not a database, or a damaged one, is
// data loss; a lock held too long by another process is worth retrying.
absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return absl::StatusCode::kDataLoss;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kInternal;
  }
}

Status SqliteError(sqlite3* db, int rc, const std::string& path, absl::string_view doing) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(CodeFor(rc), absl::StrCat("job store ", path, ": ", doing, ": ", detail));
}

// One prepared statement, finalized on scope exit. Bind errors are kept and reported by Step.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path) : db_(db), path_(path) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Status Prepare(absl::string_view sql) {
    sql_ = std::string(sql);
    const int rc =
        sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, path_, absl::StrCat("preparing ", sql_));
    return OkStatus();
  }

  // Parameters are 1-based, as in SQLite.
  void BindInt(int index, int64_t value) { Check(sqlite3_bind_int64(stmt_, index, value)); }
  void BindDouble(int index, double value) { Check(sqlite3_bind_double(stmt_, index, value)); }
  void BindText(int index, absl::string_view value) {
    Check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
  }
  // Empty text binds NULL: optional columns (request_id, depends_on) hold NULL for "none" so the
  // UNIQUE and FOREIGN KEY constraints leave them alone.
  void BindTextOrNull(int index, absl::string_view value) {
    if (value.empty()) {
      Check(sqlite3_bind_null(stmt_, index));
    } else {
      BindText(index, value);
    }
  }
  void BindBlob(int index, const std::string& bytes) {
    Check(sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                            SQLITE_TRANSIENT));
  }

  // True when a row is ready, false when the statement is done.
  StatusOr<bool> Step() {
    if (!bind_status_.ok()) return bind_status_;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, path_, absl::StrCat("running ", sql_));
  }

  // Runs a statement that returns no rows.
  Status Run() {
    SELENE_ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return OkStatus();
  }

  int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Text(int column) {
    const auto* text = sqlite3_column_text(stmt_, column);
    return text == nullptr ? std::string()
                           : std::string(reinterpret_cast<const char*>(text),
                                         sqlite3_column_bytes(stmt_, column));
  }
  std::string Blob(int column) {
    const void* data = sqlite3_column_blob(stmt_, column);
    return data == nullptr
               ? std::string()
               : std::string(static_cast<const char*>(data), sqlite3_column_bytes(stmt_, column));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) {
      bind_status_ = SqliteError(db_, rc, path_, absl::StrCat("binding a value of ", sql_));
    }
  }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
  Status bind_status_;
};

Status Exec(sqlite3* db, const std::string& path, const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return OkStatus();
  const std::string detail = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return Status(CodeFor(rc), absl::StrCat("job store ", path, ": ", detail));
}

// Writers BEGIN IMMEDIATE, taking the write lock up front, so a read-then-write transaction
// cannot fail half way with SQLITE_BUSY because another connection wrote in between; readers
// take a plain (deferred) snapshot. Rolls back unless committed.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  enum Mode { kWrite, kRead };

  Status Begin(Mode mode = kWrite) {
    SELENE_RETURN_IF_ERROR(Exec(db_, path_, mode == kWrite ? "BEGIN IMMEDIATE" : "BEGIN"));
    open_ = true;
    return OkStatus();
  }
  Status Commit() {
    SELENE_RETURN_IF_ERROR(Exec(db_, path_, "COMMIT"));
    open_ = false;
    return OkStatus();
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool open_ = false;
};

template <typename Message>
Status ParseBlob(const std::string& bytes, Message* out, const std::string& path,
                 absl::string_view what) {
  if (!out->ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("job store ", path, ": ", what, " does not parse as ", out->GetTypeName()));
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

}  // namespace

std::string StateName(v1::JobState state) {
  return std::string(absl::StripPrefix(v1::JobState_Name(state), "JOB_STATE_"));
}

JobStore::JobStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

JobStore::~JobStore() { sqlite3_close(db_); }

StatusOr<std::unique_ptr<JobStore>> JobStore::OpenReadOnly(const std::string& path) {
  // A URI, so the path's own '?', '#' and '%' must not read as URI syntax.
  std::string escaped;
  for (const char c : path) {
    if (c == '?' || c == '#' || c == '%') {
      absl::StrAppend(&escaped, "%", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      escaped.push_back(c);
    }
  }
  Status last_error;
  for (const char* mode : {"mode=ro", "immutable=1"}) {
    sqlite3* db = nullptr;
    const std::string uri = absl::StrCat("file:", escaped, "?", mode);
    const int rc = sqlite3_open_v2(
        uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      last_error = SqliteError(db, rc, path, "opening read-only");
      sqlite3_close(db);
      continue;
    }
    std::unique_ptr<JobStore> store(new JobStore(path, db));
    Statement read(db, path);
    Status checked = read.Prepare("SELECT version FROM schema_version");
    StatusOr<bool> row = checked.ok() ? read.Step() : StatusOr<bool>(checked);
    if (!row.ok()) {
      last_error = row.status();
      continue;
    }
    if (!*row || read.Int(0) != kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("job store ", path, ": schema version ", *row ? read.Int(0) : 0,
                       " needs a migration, which a read-only store cannot do"));
    }
    return store;
  }
  return last_error;
}

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  // NOMUTEX: the store's own mutex serializes every use of the connection.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status error = SqliteError(db, rc, path, "opening");
    sqlite3_close(db);
    return error;
  }
  // From here on the store owns the connection and closes it on every error path.
  std::unique_ptr<JobStore> store(new JobStore(path, db));

  // busy_timeout first: the pragmas below already need the file's lock.
  // WAL: readers (an inspecting sqlite3 shell, a backup) never block the server's writes, and a
  // commit is one append. synchronous=NORMAL: in WAL mode a commit then survives the process
  // being killed (kill -9, a crash), since the WAL is in the OS's hands; only an OS crash or
  // power loss can drop the last few commits, and it never corrupts the file. FULL would fsync
  // on every event, for protection against power loss that a training queue does not need.
  SELENE_RETURN_IF_ERROR(Exec(db, path, "PRAGMA busy_timeout = 5000"));
  {
    Statement journal(db, path);
    SELENE_RETURN_IF_ERROR(journal.Prepare("PRAGMA journal_mode = WAL"));
    SELENE_ASSIGN_OR_RETURN(bool row, journal.Step());
    const std::string mode = row ? journal.Text(0) : "";
    if (mode != "wal" && mode != "memory") {
      return absl::FailedPreconditionError(absl::StrCat(
          "job store ", path, ": cannot switch to WAL journaling (got \"", mode, "\")"));
    }
  }
  SELENE_RETURN_IF_ERROR(Exec(db, path, "PRAGMA synchronous = NORMAL"));
  SELENE_RETURN_IF_ERROR(Exec(db, path, "PRAGMA foreign_keys = ON"));

  Transaction txn(db, path);
  SELENE_RETURN_IF_ERROR(txn.Begin());
  int version = 0;
  {
    Statement tables(db, path);
    SELENE_RETURN_IF_ERROR(tables.Prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"));
    bool has_version_table = false;
    std::string other_table;
    while (true) {
      SELENE_ASSIGN_OR_RETURN(bool row, tables.Step());
      if (!row) break;
      const std::string name = tables.Text(0);
      if (name == "schema_version") {
        has_version_table = true;
      } else {
        other_table = name;
      }
    }
    if (!has_version_table && !other_table.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job store ", path,
                       ": an SQLite database but not a Selene job store (it has "
                       "a table \"",
                       other_table, "\" and no schema_version)"));
    }
    if (has_version_table) {
      Statement read(db, path);
      SELENE_RETURN_IF_ERROR(read.Prepare("SELECT version FROM schema_version"));
      SELENE_ASSIGN_OR_RETURN(bool row, read.Step());
      if (!row) {
        return absl::DataLossError(
            absl::StrCat("job store ", path, ": schema_version table is empty"));
      }
      version = static_cast<int>(read.Int(0));
    }
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("job store ", path, ": schema version ", version,
                     " was written by a newer Selene; this build knows up to ", kSchemaVersion));
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    SELENE_RETURN_IF_ERROR(Exec(db, path, kMigrations[v]));
    Statement bump(db, path);
    SELENE_RETURN_IF_ERROR(bump.Prepare("UPDATE schema_version SET version = ?"));
    bump.BindInt(1, v + 1);
    SELENE_RETURN_IF_ERROR(bump.Run());
  }
  SELENE_RETURN_IF_ERROR(txn.Commit());
  return store;
}

void JobStore::SetEventListener(EventListener listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

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

StatusOr<v1::Job> JobStore::LoadJobLocked(const std::string& id) {
  Statement select(db_, path_);
  SELENE_RETURN_IF_ERROR(select.Prepare("SELECT job, last_event_seq FROM jobs WHERE id = ?"));
  select.BindText(1, id);
  SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", ForMessage(id), " not found"));
  v1::Job job;
  SELENE_RETURN_IF_ERROR(ParseBlob(select.Blob(0), &job, path_, absl::StrCat("job ", id)));
  job.set_last_event_sequence(select.Int(1));
  return job;
}

Status JobStore::SaveJobLocked(const v1::Job& job) {
  Statement update(db_, path_);
  SELENE_RETURN_IF_ERROR(update.Prepare("UPDATE jobs SET state = ?, job = ? WHERE id = ?"));
  update.BindInt(1, job.state());
  update.BindBlob(2, job.SerializeAsString());
  update.BindText(3, job.id());
  return update.Run();
}

StatusOr<v1::JobEvent> JobStore::InsertEventLocked(v1::Job* job, v1::JobEvent event) {
  event.set_job_id(job->id());
  event.set_sequence(job->last_event_sequence() + 1);
  if (!event.has_time()) SetTimestamp(absl::Now(), event.mutable_time());

  Statement insert(db_, path_);
  SELENE_RETURN_IF_ERROR(insert.Prepare(
      "INSERT INTO job_events (job_id, sequence, kind, time_ms, event) VALUES (?, ?, ?, ?, ?)"));
  insert.BindText(1, job->id());
  insert.BindInt(2, event.sequence());
  insert.BindText(3, EventKind(event));
  insert.BindInt(4, TimestampMillis(event.time()));
  insert.BindBlob(5, event.SerializeAsString());
  SELENE_RETURN_IF_ERROR(insert.Run());

  Statement bump(db_, path_);
  SELENE_RETURN_IF_ERROR(bump.Prepare("UPDATE jobs SET last_event_seq = ? WHERE id = ?"));
  bump.BindInt(1, event.sequence());
  bump.BindText(2, job->id());
  SELENE_RETURN_IF_ERROR(bump.Run());
  job->set_last_event_sequence(event.sequence());
  return event;
}

Status JobStore::TransitionLocked(v1::Job* job, v1::JobState to, const std::string& reason,
                                  std::vector<v1::JobEvent>* events) {
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
  SELENE_RETURN_IF_ERROR(SaveJobLocked(*job));

  v1::JobEvent event;
  SetTimestamp(now, event.mutable_time());
  v1::StateChange* change = event.mutable_state_change();
  change->set_from_state(from);
  change->set_to_state(to);
  change->set_reason(why);
  SELENE_ASSIGN_OR_RETURN(v1::JobEvent stored, InsertEventLocked(job, std::move(event)));
  events->push_back(std::move(stored));
  return OkStatus();
}

StatusOr<SubmitResult> JobStore::Submit(const spec::ResolvedJobSpec& resolved,
                                        const std::string& request_id, int32_t priority) {
  const v1::JobSpec& spec = resolved.submitted();
  std::vector<v1::JobEvent> events;
  SubmitResult result;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());

    if (!request_id.empty()) {
      Statement seen(db_, path_);
      SELENE_RETURN_IF_ERROR(seen.Prepare("SELECT id FROM jobs WHERE request_id = ?"));
      seen.BindText(1, request_id);
      SELENE_ASSIGN_OR_RETURN(bool row, seen.Step());
      if (row) {
        SELENE_ASSIGN_OR_RETURN(v1::Job existing, LoadJobLocked(seen.Text(0)));
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
      Statement dependency(db_, path_);
      SELENE_RETURN_IF_ERROR(dependency.Prepare("SELECT 1 FROM jobs WHERE id = ?"));
      dependency.BindText(1, depends_on);
      SELENE_ASSIGN_OR_RETURN(bool row, dependency.Step());
      if (!row) {
        return absl::NotFoundError(absl::StrCat("model.encoder_unet.encoder_job_id: job ",
                                                ForMessage(depends_on), " not found"));
      }
    }

    // One more than the largest number ever issued (sqlite_sequence remembers it even when the
    // job with that number is gone).
    int64_t seq = 1;
    {
      Statement last(db_, path_);
      SELENE_RETURN_IF_ERROR(last.Prepare("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"));
      SELENE_ASSIGN_OR_RETURN(bool row, last.Step());
      if (row) seq = last.Int(0) + 1;
    }

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

    Statement insert(db_, path_);
    SELENE_RETURN_IF_ERROR(
        insert.Prepare("INSERT INTO jobs (seq, id, state, priority, request_id, depends_on, job) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)"));
    insert.BindInt(1, seq);
    insert.BindText(2, job.id());
    insert.BindInt(3, job.state());
    insert.BindInt(4, priority);
    insert.BindTextOrNull(5, request_id);
    insert.BindTextOrNull(6, depends_on);
    insert.BindBlob(7, job.SerializeAsString());
    SELENE_RETURN_IF_ERROR(insert.Run());

    v1::JobEvent event;
    event.mutable_state_change()->set_from_state(v1::JOB_STATE_UNSPECIFIED);
    event.mutable_state_change()->set_to_state(v1::JOB_STATE_QUEUED);
    event.mutable_state_change()->set_reason("submitted");
    *event.mutable_time() = job.create_time();
    SELENE_ASSIGN_OR_RETURN(v1::JobEvent stored, InsertEventLocked(&job, std::move(event)));
    events.push_back(std::move(stored));

    SELENE_RETURN_IF_ERROR(txn.Commit());
    result.job = std::move(job);
    result.created = true;
  }
  Notify(events);
  return result;
}

StatusOr<v1::Job> JobStore::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  return LoadJobLocked(id);
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

  absl::MutexLock lock(&mu_);
  Statement select(db_, path_);
  SELENE_RETURN_IF_ERROR(select.Prepare(
      "SELECT seq, job, last_event_seq FROM jobs WHERE (?1 = 0 OR state = ?1) AND seq < ?2 "
      "ORDER BY seq DESC LIMIT ?3"));
  select.BindInt(1, state);
  select.BindInt(2, before_seq);
  select.BindInt(3, int64_t{page_size} + 1);  // one more tells whether another page follows
  JobPage page;
  int64_t last_seq = 0;
  while (true) {
    SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    if (static_cast<int32_t>(page.jobs.size()) == page_size) {
      page.next_page_token = MakePageToken(state, last_seq);
      break;
    }
    last_seq = select.Int(0);
    v1::Job& job = page.jobs.emplace_back();
    SELENE_RETURN_IF_ERROR(
        ParseBlob(select.Blob(1), &job, path_, absl::StrCat("job number ", last_seq)));
    job.set_last_event_sequence(select.Int(2));
  }
  return page;
}

StatusOr<v1::Job> JobStore::Transition(const std::string& id, v1::JobState to,
                                       const std::string& reason) {
  if (to == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", ForMessage(id), ": cannot move to state ", static_cast<int>(to)));
  }
  std::vector<v1::JobEvent> events;
  v1::Job job;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_ASSIGN_OR_RETURN(job, LoadJobLocked(id));
    SELENE_RETURN_IF_ERROR(TransitionLocked(&job, to, reason, &events));
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify(events);
  return job;
}

StatusOr<v1::Job> JobStore::Start(const std::string& id, const std::string& device) {
  std::vector<v1::JobEvent> events;
  v1::Job job;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_ASSIGN_OR_RETURN(job, LoadJobLocked(id));
    if (job.state() != v1::JOB_STATE_QUEUED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", ForMessage(id), " is ", StateName(job.state()), ", not QUEUED; cannot start it"));
    }
    job.set_device(device);
    SELENE_RETURN_IF_ERROR(TransitionLocked(&job, v1::JOB_STATE_RUNNING,
                                            absl::StrCat("started on ", device), &events));
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify(events);
  return job;
}

StatusOr<v1::Job> JobStore::SetDevice(const std::string& id, const std::string& device) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_, path_);
  SELENE_RETURN_IF_ERROR(txn.Begin());
  SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(id));
  job.set_device(device);
  SELENE_RETURN_IF_ERROR(SaveJobLocked(job));
  SELENE_RETURN_IF_ERROR(txn.Commit());
  return job;
}

StatusOr<v1::Job> JobStore::RequestCancel(const std::string& id, const std::string& reason) {
  std::vector<v1::JobEvent> events;
  v1::Job job;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_ASSIGN_OR_RETURN(job, LoadJobLocked(id));
    switch (job.state()) {
      case v1::JOB_STATE_QUEUED:
        SELENE_RETURN_IF_ERROR(TransitionLocked(&job, v1::JOB_STATE_CANCELLED, reason, &events));
        break;
      case v1::JOB_STATE_RUNNING:
        if (job.cancel_requested()) return job;
        job.set_cancel_requested(true);
        // Kept with the job so the reason survives a crash before the runner stops.
        job.set_cancel_reason(reason);
        SELENE_RETURN_IF_ERROR(SaveJobLocked(job));
        break;
      default:
        return absl::FailedPreconditionError(absl::StrCat("job ", ForMessage(id), " is already ",
                                                          StateName(job.state()),
                                                          "; there is nothing to cancel"));
    }
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify(events);
  return job;
}

StatusOr<v1::JobEvent> JobStore::AppendEvent(const std::string& id, const v1::JobEvent& event) {
  if (event.kind_case() == v1::JobEvent::KIND_NOT_SET || event.has_state_change() ||
      event.has_epoch_end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", ForMessage(id), ": AppendEvent takes step progress only, not an event of kind \"",
        EventKind(event), "\" (state changes go through Transition, epochs through RecordEpoch)"));
  }
  v1::JobEvent stored;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(id));
    if (job.state() != v1::JOB_STATE_RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat("job ", ForMessage(id), " is ",
                                                        StateName(job.state()),
                                                        ", not RUNNING; no progress to record"));
    }
    SELENE_ASSIGN_OR_RETURN(stored, InsertEventLocked(&job, event));
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify({stored});
  return stored;
}

StatusOr<std::vector<v1::JobEvent>> JobStore::Events(const std::string& id, int64_t after_sequence,
                                                     int64_t limit) {
  if (after_sequence < 0 || limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("job ", ForMessage(id), ": after_sequence ",
                                                   after_sequence, " and limit ", limit,
                                                   " must be >= 0"));
  }
  absl::MutexLock lock(&mu_);
  // The read and the existence check see one snapshot.
  Transaction txn(db_, path_);
  SELENE_RETURN_IF_ERROR(txn.Begin(Transaction::kRead));
  SELENE_RETURN_IF_ERROR(LoadJobLocked(id).status());
  Statement select(db_, path_);
  SELENE_RETURN_IF_ERROR(
      select.Prepare("SELECT event FROM job_events WHERE job_id = ? AND sequence > ? "
                     "ORDER BY sequence LIMIT ?"));
  select.BindText(1, id);
  select.BindInt(2, after_sequence);
  select.BindInt(3, limit == 0 ? -1 : limit);  // a negative LIMIT is no limit in SQLite
  std::vector<v1::JobEvent> events;
  while (true) {
    SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    SELENE_RETURN_IF_ERROR(ParseBlob(select.Blob(0), &events.emplace_back(), path_,
                                     absl::StrCat("an event of job ", id)));
  }
  SELENE_RETURN_IF_ERROR(txn.Commit());
  return events;
}

StatusOr<v1::JobEvent> JobStore::RecordEpoch(const std::string& id, const v1::EpochEnd& epoch) {
  if (epoch.epoch() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", ForMessage(id), ": epoch ", epoch.epoch(), " must be >= 1 (epochs are 1-based)"));
  }
  v1::JobEvent stored;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(id));
    if (job.state() != v1::JOB_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", ForMessage(id), " is ", StateName(job.state()),
                       ", not RUNNING; cannot record epoch ", epoch.epoch()));
    }

    Statement history(db_, path_);
    SELENE_RETURN_IF_ERROR(history.Prepare(
        "INSERT OR REPLACE INTO epoch_history "
        "(job_id, epoch, train_loss, val_loss, monitor_value, record) VALUES (?, ?, ?, ?, ?, ?)"));
    history.BindText(1, id);
    history.BindInt(2, epoch.epoch());
    history.BindDouble(3, epoch.train_loss());
    history.BindDouble(4, epoch.val_loss());
    history.BindDouble(5, epoch.monitor_value());
    history.BindBlob(6, epoch.SerializeAsString());
    SELENE_RETURN_IF_ERROR(history.Run());

    job.set_current_epoch(epoch.epoch());
    if (epoch.epochs() > 0) job.set_epochs(epoch.epochs());
    auto& latest = *job.mutable_latest_metrics();
    latest.clear();
    latest.insert(epoch.metrics().begin(), epoch.metrics().end());
    latest["train_loss"] = epoch.train_loss();
    latest["val_loss"] = epoch.val_loss();
    if (epoch.is_best()) {
      job.set_best_epoch(epoch.epoch());
      job.set_best_value(epoch.monitor_value());
      if (!epoch.monitor().empty()) job.set_monitor(epoch.monitor());
    }
    SELENE_RETURN_IF_ERROR(SaveJobLocked(job));

    v1::JobEvent event;
    *event.mutable_epoch_end() = epoch;
    SELENE_ASSIGN_OR_RETURN(stored, InsertEventLocked(&job, std::move(event)));
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify({stored});
  return stored;
}

StatusOr<std::vector<v1::EpochEnd>> JobStore::History(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_, path_);
  SELENE_RETURN_IF_ERROR(txn.Begin(Transaction::kRead));
  SELENE_RETURN_IF_ERROR(LoadJobLocked(id).status());
  Statement select(db_, path_);
  SELENE_RETURN_IF_ERROR(
      select.Prepare("SELECT record FROM epoch_history WHERE job_id = ? ORDER BY epoch"));
  select.BindText(1, id);
  std::vector<v1::EpochEnd> epochs;
  while (true) {
    SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    SELENE_RETURN_IF_ERROR(ParseBlob(select.Blob(0), &epochs.emplace_back(), path_,
                                     absl::StrCat("an epoch of job ", id)));
  }
  SELENE_RETURN_IF_ERROR(txn.Commit());
  return epochs;
}

StatusOr<std::vector<std::string>> JobStore::FailJobsWithDeadDependenciesLocked(
    std::vector<v1::JobEvent>* events) {
  std::vector<std::string> failed;
  // Each round fails the direct dependents of dead jobs; the next round reaches their own
  // dependents. Every round ends at least one job, so this stops.
  while (true) {
    std::vector<std::pair<std::string, std::string>> doomed;  // (job, its dependency)
    {
      Statement select(db_, path_);
      SELENE_RETURN_IF_ERROR(
          select.Prepare("SELECT j.id, d.id FROM jobs j JOIN jobs d ON d.id = j.depends_on "
                         "WHERE j.state = ?1 AND d.state IN (?2, ?3) ORDER BY j.seq"));
      select.BindInt(1, v1::JOB_STATE_QUEUED);
      select.BindInt(2, v1::JOB_STATE_FAILED);
      select.BindInt(3, v1::JOB_STATE_CANCELLED);
      while (true) {
        SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        doomed.emplace_back(select.Text(0), select.Text(1));
      }
    }
    if (doomed.empty()) break;
    for (const auto& [id, dependency_id] : doomed) {
      SELENE_ASSIGN_OR_RETURN(v1::Job dependency, LoadJobLocked(dependency_id));
      const std::string reason =
          dependency.state() == v1::JOB_STATE_CANCELLED
              ? absl::StrCat("encoder job ", dependency_id, " was cancelled")
              : absl::StrCat("encoder job ", dependency_id, " failed: ", dependency.error());
      SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(id));
      SELENE_RETURN_IF_ERROR(TransitionLocked(&job, v1::JOB_STATE_FAILED, reason, events));
      failed.push_back(id);
    }
  }
  return failed;
}

StatusOr<std::vector<std::string>> JobStore::FailJobsWithDeadDependencies() {
  std::vector<v1::JobEvent> events;
  std::vector<std::string> failed;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_ASSIGN_OR_RETURN(failed, FailJobsWithDeadDependenciesLocked(&events));
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify(events);
  return failed;
}

StatusOr<std::optional<v1::Job>> JobStore::NextRunnable() {
  std::vector<v1::JobEvent> events;
  std::optional<v1::Job> next;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    SELENE_RETURN_IF_ERROR(FailJobsWithDeadDependenciesLocked(&events).status());
    Statement select(db_, path_);
    SELENE_RETURN_IF_ERROR(
        select.Prepare("SELECT j.id FROM jobs j LEFT JOIN jobs d ON d.id = j.depends_on "
                       "WHERE j.state = ?1 AND (j.depends_on IS NULL OR d.state = ?2) "
                       "ORDER BY j.priority DESC, j.seq ASC LIMIT 1"));
    select.BindInt(1, v1::JOB_STATE_QUEUED);
    select.BindInt(2, v1::JOB_STATE_SUCCEEDED);
    SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (row) {
      SELENE_ASSIGN_OR_RETURN(next, LoadJobLocked(select.Text(0)));
    }
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify(events);
  return next;
}

StatusOr<std::vector<std::string>> JobStore::RecoverAfterRestart() {
  std::vector<v1::JobEvent> events;
  std::vector<std::string> requeued;
  {
    absl::MutexLock lock(&mu_);
    Transaction txn(db_, path_);
    SELENE_RETURN_IF_ERROR(txn.Begin());
    std::vector<std::string> running;
    {
      Statement select(db_, path_);
      SELENE_RETURN_IF_ERROR(select.Prepare("SELECT id FROM jobs WHERE state = ? ORDER BY seq"));
      select.BindInt(1, v1::JOB_STATE_RUNNING);
      while (true) {
        SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        running.push_back(select.Text(0));
      }
    }
    for (const std::string& id : running) {
      SELENE_ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(id));
      if (job.cancel_requested()) {
        const std::string reason = job.cancel_reason().empty() ? "cancelled" : job.cancel_reason();
        SELENE_RETURN_IF_ERROR(TransitionLocked(
            &job, v1::JOB_STATE_CANCELLED,
            absl::StrCat(reason, " (the server restarted before the job had stopped)"), &events));
        continue;
      }
      SELENE_RETURN_IF_ERROR(TransitionLocked(&job, v1::JOB_STATE_QUEUED, kRestartReason, &events));
      requeued.push_back(id);
    }
    SELENE_RETURN_IF_ERROR(txn.Commit());
  }
  Notify(events);
  return requeued;
}

StatusOr<std::map<v1::JobState, int64_t>> JobStore::CountByState() {
  std::map<v1::JobState, int64_t> counts;
  for (v1::JobState state : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
                             v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    counts[state] = 0;
  }
  absl::MutexLock lock(&mu_);
  Statement select(db_, path_);
  SELENE_RETURN_IF_ERROR(select.Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  while (true) {
    SELENE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    counts[static_cast<v1::JobState>(select.Int(0))] = select.Int(1);
  }
  return counts;
}

}  // namespace selene::jobs
