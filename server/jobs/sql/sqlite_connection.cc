#include "server/jobs/sql/sqlite_connection.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace selene::jobs::sql {
namespace {

// The canonical code for an SQLite failure: a file that is not a database, or a damaged one, is
// data loss; a lock held too long by another process is worth retrying.
StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return StatusCode::kDataLoss;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return StatusCode::kUnavailable;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return StatusCode::kFailedPrecondition;
    case SQLITE_FULL:
      return StatusCode::kResourceExhausted;
    case SQLITE_CONSTRAINT:
      return (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                 ? StatusCode::kAlreadyExists
                 : StatusCode::kFailedPrecondition;
    default:
      return StatusCode::kInternal;
  }
}

Status SqliteError(sqlite3* db, int rc, const std::string& path, absl::string_view doing) {
  // The extended code tells a unique violation from other constraints.
  const int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(CodeFor(extended), absl::StrCat("job store ", path, ": ", doing, ": ", detail));
}

// The statement's first line, enough to recognise it in a message.
std::string Abbreviated(absl::string_view sql) {
  const size_t end = sql.find('\n');
  return std::string(sql.substr(0, end));
}

Status Exec(sqlite3* db, const std::string& path, absl::string_view sql) {
  char* error = nullptr;
  const std::string text(sql);
  const int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return OkStatus();
  const std::string detail = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return Status(CodeFor(sqlite3_extended_errcode(db)),
                absl::StrCat("job store ", path, ": ", Abbreviated(sql), ": ", detail));
}

class Statement {
 public:
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* stmt_ = nullptr;
};

int Bind(sqlite3_stmt* stmt, int index, const SqlValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return sqlite3_bind_int64(stmt, index, *i);
  if (const auto* d = std::get_if<double>(&value)) return sqlite3_bind_double(stmt, index, *d);
  if (const auto* text = std::get_if<std::string>(&value)) {
    return sqlite3_bind_text(stmt, index, text->data(), static_cast<int>(text->size()),
                             SQLITE_TRANSIENT);
  }
  if (const auto* blob = std::get_if<Blob>(&value)) {
    // A non-null pointer even for no bytes: SQLite stores a NULL for a null pointer.
    return sqlite3_bind_blob(stmt, index, blob->bytes.empty() ? "" : blob->bytes.data(),
                             static_cast<int>(blob->bytes.size()), SQLITE_TRANSIENT);
  }
  return sqlite3_bind_null(stmt, index);
}

SqlValue Cell(sqlite3_stmt* stmt, int column) {
  switch (sqlite3_column_type(stmt, column)) {
    case SQLITE_INTEGER:
      return static_cast<int64_t>(sqlite3_column_int64(stmt, column));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, column);
    case SQLITE_TEXT: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
      return std::string(text, sqlite3_column_bytes(stmt, column));
    }
    case SQLITE_BLOB: {
      const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, column));
      const int size = sqlite3_column_bytes(stmt, column);
      return Blob{data == nullptr ? std::string() : std::string(data, size)};
    }
    default:
      return std::monostate{};
  }
}

}  // namespace

const SqlDialect& SqliteConnection::dialect() const {
  // sqlite_sequence remembers the largest number AUTOINCREMENT issued even when that job's row
  // is gone; the write transaction that asks holds the file, so no one else takes the number.
  static const SqlDialect kDialect{
      "sqlite",
      "",
      "",
      "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0) + 1",
      "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
      ""};
  return kDialect;
}

SqliteConnection::~SqliteConnection() { sqlite3_close(db_); }

StatusOr<std::unique_ptr<SqliteConnection>> SqliteConnection::Open(const std::string& path) {
  sqlite3* db = nullptr;
  // NOMUTEX: the store's own mutex serializes every use of the connection.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status error = SqliteError(db, rc, path, "opening");
    sqlite3_close(db);
    return error;
  }
  // From here on the connection owns the handle and closes it on every error path.
  std::unique_ptr<SqliteConnection> connection(new SqliteConnection(path, db));

  // busy_timeout first: the pragmas below already need the file's lock.
  // WAL: readers (an inspecting sqlite3 shell, a backup) never block the server's writes, and a
  // commit is one append. synchronous=NORMAL: in WAL mode a commit then survives the process
  // being killed (kill -9, a crash), since the WAL is in the OS's hands; only an OS crash or
  // power loss can drop the last few commits, and it never corrupts the file. FULL would fsync
  // on every event, for protection against power loss that a training queue does not need.
  SELENE_RETURN_IF_ERROR(Exec(db, path, "PRAGMA busy_timeout = 5000"));
  SELENE_ASSIGN_OR_RETURN(SqlRows journal, connection->Query("PRAGMA journal_mode = WAL"));
  const std::string mode = journal.empty() ? "" : journal[0].Text(0);
  if (mode != "wal" && mode != "memory") {
    return FailedPreconditionError(
        absl::StrCat("job store ", path, ": cannot switch to WAL journaling (got \"", mode, "\")"));
  }
  SELENE_RETURN_IF_ERROR(Exec(db, path, "PRAGMA synchronous = NORMAL"));
  SELENE_RETURN_IF_ERROR(Exec(db, path, "PRAGMA foreign_keys = ON"));
  return connection;
}

StatusOr<std::unique_ptr<SqliteConnection>> SqliteConnection::OpenReadOnly(
    const std::string& path) {
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
    std::unique_ptr<SqliteConnection> connection(new SqliteConnection(path, db));
    // Reading proves the mode works (mode=ro fails here when the WAL index cannot be made).
    StatusOr<SqlRows> probe = connection->Query("SELECT COUNT(*) FROM sqlite_master");
    if (!probe.ok()) {
      last_error = probe.status();
      continue;
    }
    return connection;
  }
  return last_error;
}

Status SqliteConnection::Begin(TransactionMode mode) {
  return Exec(db_, path_, mode == TransactionMode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
}

Status SqliteConnection::Commit() { return Exec(db_, path_, "COMMIT"); }

void SqliteConnection::Rollback() { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

StatusOr<SqlRows> SqliteConnection::Query(absl::string_view sql,
                                          const std::vector<SqlValue>& params) {
  Statement statement;
  int rc =
      sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &statement.stmt_, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteError(db_, rc, path_, absl::StrCat("preparing ", Abbreviated(sql)));
  }
  // "$1" is a named parameter to SQLite: look each one up by its name, so the SQL text is
  // PostgreSQL's and a parameter may appear in any order or more than once.
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string name = absl::StrCat("$", i + 1);
    const int index = sqlite3_bind_parameter_index(statement.stmt_, name.c_str());
    if (index == 0) continue;  // not used by this statement
    rc = Bind(statement.stmt_, index, params[i]);
    if (rc != SQLITE_OK) {
      return SqliteError(db_, rc, path_, absl::StrCat("binding ", name, " of ", Abbreviated(sql)));
    }
  }
  SqlRows rows;
  const int columns = sqlite3_column_count(statement.stmt_);
  while (true) {
    rc = sqlite3_step(statement.stmt_);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      return SqliteError(db_, rc, path_, absl::StrCat("running ", Abbreviated(sql)));
    }
    std::vector<SqlValue> cells;
    cells.reserve(columns);
    for (int c = 0; c < columns; ++c) cells.push_back(Cell(statement.stmt_, c));
    rows.emplace_back(std::move(cells));
  }
  return rows;
}

Status SqliteConnection::ExecScript(absl::string_view sql) { return Exec(db_, path_, sql); }

bool SqliteConnection::IsRetryable(const Status& status) const {
  return status.code() == StatusCode::kUnavailable;
}

}  // namespace selene::jobs::sql
