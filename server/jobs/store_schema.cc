#include "server/jobs/store_schema.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace selene::jobs {
namespace {

// Migrations: kMigrations[v] takes a store from version v to v + 1; version 0 is an empty
// database. A later schema appends a step to both engines and bumps kStoreSchemaVersion.
//
// Queryable columns sit next to the serialized messages (the blobs are the truth for everything
// else), so the scheduler's questions are answered by indexes without parsing protos. Job
// numbers are never reused, even after rows are deleted by hand (SQLite's AUTOINCREMENT,
// PostgreSQL's job_number sequence).
struct EngineSchema {
  const char* list_tables;     // the database's tables, one per row
  const char* migration_lock;  // "" when the transaction already excludes other servers
  const char* migrations[kStoreSchemaVersion];
};

// Version 2: a running job's lease (the worker that holds it, its fencing token, when it expires
// by the engine's clock; 0 never) and the artifacts of succeeded jobs with their sha256.
constexpr EngineSchema kSqlite = {
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    "",
    {R"sql(
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
     R"sql(
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_lease ON jobs (state, lease_expires_ms);
CREATE TABLE artifacts (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  name TEXT NOT NULL,                     -- the file's name in the job's folder
  size_bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,                   -- lowercase hex
  PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
)sql"}};

constexpr EngineSchema kPostgres = {
    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    // Servers that start together queue here; the second finds the schema current.
    "SELECT pg_advisory_xact_lock(7536656)",
    {R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (0);
CREATE SEQUENCE job_number;
CREATE TABLE jobs (
  seq BIGINT PRIMARY KEY,                 -- the n of "job-<n>" (from job_number), the order
  id TEXT NOT NULL UNIQUE,
  state INTEGER NOT NULL,                 -- selene.v1.JobState
  priority INTEGER NOT NULL,
  request_id TEXT UNIQUE,                 -- NULL when the client gave none
  depends_on TEXT REFERENCES jobs (id),   -- NULL when none
  last_event_seq BIGINT NOT NULL DEFAULT 0,
  job BYTEA NOT NULL                      -- selene.v1.Job
);
CREATE INDEX jobs_runnable ON jobs (state, priority DESC, seq);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE INDEX jobs_by_dependency ON jobs (depends_on);
CREATE TABLE job_events (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  sequence BIGINT NOT NULL,
  kind TEXT NOT NULL,                     -- state_change, epoch_end, step_progress
  time_ms BIGINT NOT NULL,                -- Unix time in milliseconds
  event BYTEA NOT NULL,                   -- selene.v1.JobEvent
  PRIMARY KEY (job_id, sequence)
);
CREATE TABLE epoch_history (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  epoch INTEGER NOT NULL,                 -- 1-based
  train_loss DOUBLE PRECISION,
  val_loss DOUBLE PRECISION,
  monitor_value DOUBLE PRECISION,
  record BYTEA NOT NULL,                  -- selene.v1.EpochEnd
  PRIMARY KEY (job_id, epoch)
);
)sql",
     R"sql(
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_expires_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_lease ON jobs (state, lease_expires_ms);
CREATE TABLE artifacts (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  name TEXT NOT NULL,                     -- the file's name in the job's folder
  size_bytes BIGINT NOT NULL,
  sha256 TEXT NOT NULL,                   -- lowercase hex
  PRIMARY KEY (job_id, name)
);
)sql"}};

const EngineSchema& SchemaFor(const sql::SqlConnection& db) {
  return db.dialect().engine == "postgresql" ? kPostgres : kSqlite;
}

// The version in the store, 0 for an empty database; an error for a database that holds other
// tables but no schema_version.
StatusOr<int> ReadVersion(sql::SqlConnection& db, const EngineSchema& schema) {
  SELENE_ASSIGN_OR_RETURN(sql::SqlRows tables, db.Query(schema.list_tables));
  bool has_version_table = false;
  std::string other_table;
  for (const sql::SqlRow& row : tables) {
    if (row.Text(0) == "schema_version") {
      has_version_table = true;
    } else {
      other_table = row.Text(0);
    }
  }
  if (!has_version_table) {
    if (other_table.empty()) return 0;
    return FailedPreconditionError(
        absl::StrCat("job store ", db.location(), ": a ", db.dialect().engine,
                     " database but not a Selene job store (it has a table \"", other_table,
                     "\" and no schema_version)"));
  }
  SELENE_ASSIGN_OR_RETURN(sql::SqlRows version, db.Query("SELECT version FROM schema_version"));
  if (version.empty()) {
    return absl::DataLossError(
        absl::StrCat("job store ", db.location(), ": schema_version table is empty"));
  }
  return static_cast<int>(version[0].Int(0));
}

}  // namespace

StatusOr<int> StoreSchemaVersion(sql::SqlConnection& db) { return ReadVersion(db, SchemaFor(db)); }

Status MigrateStoreSchema(sql::SqlConnection& db, int target) {
  const EngineSchema& schema = SchemaFor(db);
  SELENE_RETURN_IF_ERROR(db.Begin(sql::SqlConnection::TransactionMode::kWrite));
  const auto migrate = [&]() -> Status {
    if (*schema.migration_lock != '\0')
      SELENE_RETURN_IF_ERROR(db.Query(schema.migration_lock).status());
    SELENE_ASSIGN_OR_RETURN(const int version, ReadVersion(db, schema));
    if (version > kStoreSchemaVersion) {
      return FailedPreconditionError(absl::StrCat(
          "job store ", db.location(), ": schema version ", version,
          " was written by a newer Selene; this build knows up to ", kStoreSchemaVersion));
    }
    for (int v = version; v < target; ++v) {
      SELENE_RETURN_IF_ERROR(db.ExecScript(schema.migrations[v]));
      SELENE_RETURN_IF_ERROR(
          db.Query("UPDATE schema_version SET version = $1", {int64_t{v + 1}}).status());
    }
    return db.Commit();
  };
  Status migrated = migrate();
  if (!migrated.ok()) db.Rollback();
  return migrated;
}

}  // namespace selene::jobs
