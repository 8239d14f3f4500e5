// One connection to the SQL engine behind the job store: SQLite (a file, the embedded default) or
// PostgreSQL (a shared queue for a fleet of servers). The store's logic is written once against
// this interface; what differs between the engines is here and in the dialect's few clauses.
//
// SQL text uses PostgreSQL's numbered parameters ($1, $2, ...) for both engines. Values travel
// typed (SqlValue), so neither engine guesses a parameter's type.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace selene::jobs::sql {

// Bytes stored as a BLOB (SQLite) or BYTEA (PostgreSQL): serialized protos.
struct Blob {
  std::string bytes;
};

// A parameter or a cell. monostate is NULL. Integer cells of every width read as int64_t,
// booleans as 0 and 1.
using SqlValue = std::variant<std::monostate, int64_t, double, std::string, Blob>;

// Empty text as NULL: optional columns (request_id, depends_on, worker) hold NULL for "none" so
// UNIQUE and FOREIGN KEY constraints leave them alone.
inline SqlValue TextOrNull(absl::string_view text) {
  if (text.empty()) return std::monostate{};
  return std::string(text);
}

// One result row. Accessors convert NULL to 0 or "" and never throw; a cell of another type
// than asked (a bug in the caller's SQL) reads as 0 or "" as well.
class SqlRow {
 public:
  explicit SqlRow(std::vector<SqlValue> cells) : cells_(std::move(cells)) {}
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;   // text cells
  std::string Bytes(int column) const;  // blob cells (text cells too)
  bool IsNull(int column) const;
  int size() const { return static_cast<int>(cells_.size()); }

 private:
  std::vector<SqlValue> cells_;
};

using SqlRows = std::vector<SqlRow>;

// The clauses that differ between the engines.
struct SqlDialect {
  std::string engine;  // "sqlite", "postgresql": in metrics and logs
  // Appended to a SELECT that reads rows a write transaction will change: PostgreSQL locks them
  // (" FOR UPDATE"); SQLite's write transaction already holds the whole file.
  std::string lock_rows;
  // Appended to the runnable-job query that claims a job: another worker's transaction skips
  // the rows this one holds instead of waiting for them (PostgreSQL " FOR UPDATE OF j SKIP
  // LOCKED"; "" for SQLite).
  std::string skip_locked;
  // A query with one row and one column: the number of the next job ("job-<n>"), never issued
  // before, even after rows were deleted by hand.
  std::string next_job_number;
  // An SQL expression for the engine's clock in Unix milliseconds. Leases are timed by it, so
  // the workers of a fleet never compare their own clocks.
  std::string now_ms;
  // A statement with one text parameter that tells the other servers on this database that a job
  // changed (PostgreSQL "SELECT pg_notify('selene_jobs', $1)", delivered at commit); "" when the
  // engine has no other servers to tell (SQLite).
  std::string notify;
};

class SqlConnection {
 public:
  virtual ~SqlConnection() = default;

  // The store's location for messages: the SQLite file's path, or the PostgreSQL URI without
  // its password.
  virtual const std::string& location() const = 0;
  virtual const SqlDialect& dialect() const = 0;

  enum class TransactionMode { kWrite, kRead };
  // SQLite: BEGIN IMMEDIATE for writes (the write lock up front, so a read-then-write cannot
  // fail half way), BEGIN for reads. PostgreSQL: BEGIN (READ COMMITTED; writers lock the rows
  // they change with dialect().lock_rows).
  virtual Status Begin(TransactionMode mode) = 0;
  virtual Status Commit() = 0;
  // Never fails visibly: a broken connection has no transaction left to roll back.
  virtual void Rollback() = 0;

  // Runs one statement with parameters $1..$n = params[0..n-1] and returns its rows (none for
  // statements without a result). Errors name the location and the statement.
  virtual StatusOr<SqlRows> Query(absl::string_view sql, const std::vector<SqlValue>& params) = 0;
  StatusOr<SqlRows> Query(absl::string_view sql) { return Query(sql, {}); }

  // Several statements without parameters or results (a migration).
  virtual Status ExecScript(absl::string_view sql) = 0;

  // Whether a failed transaction may succeed when run again from the start: a deadlock or
  // serialization failure, a lost connection (which the next Begin re-opens), SQLite's busy
  // file. Errors in the request itself (a constraint, bad SQL) are not.
  virtual bool IsRetryable(const Status& status) const = 0;
};

// Codes the drivers give their errors, so the store and its callers can tell them apart:
// Unavailable for a busy file or a lost connection, Aborted for a deadlock or serialization
// failure, AlreadyExists for a unique-constraint violation, ResourceExhausted for a full disk,
// DataLoss for a file that is not a database or a damaged one.

}  // namespace selene::jobs::sql
