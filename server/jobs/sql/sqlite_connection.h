// The job store's embedded engine: one SQLite file in WAL mode, the single-server default.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/jobs/sql/sql_connection.h"

struct sqlite3;

namespace selene::jobs::sql {

// Not thread-safe: the store serializes every use with its own mutex.
class SqliteConnection : public SqlConnection {
 public:
  // Opens or creates the file at `path` (its folder must exist), in WAL mode with foreign keys
  // on. Errors name the path.
  static StatusOr<std::unique_ptr<SqliteConnection>> Open(const std::string& path);

  // Opens an existing file for reading only, for a server that cannot write (a full disk): no
  // WAL recovery and nothing created. Every write fails (FailedPrecondition, "readonly
  // database"). When even the WAL's shared-memory file cannot be made, the file is read as
  // immutable, without commits still in the WAL after a crash.
  static StatusOr<std::unique_ptr<SqliteConnection>> OpenReadOnly(const std::string& path);

  ~SqliteConnection() override;

  const std::string& location() const override { return path_; }
  const SqlDialect& dialect() const override;
  Status Begin(TransactionMode mode) override;
  Status Commit() override;
  void Rollback() override;
  using SqlConnection::Query;
  StatusOr<SqlRows> Query(absl::string_view sql, const std::vector<SqlValue>& params) override;
  Status ExecScript(absl::string_view sql) override;
  bool IsRetryable(const Status& status) const override;

 private:
  SqliteConnection(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

  const std::string path_;
  sqlite3* const db_;
};

}  // namespace selene::jobs::sql
