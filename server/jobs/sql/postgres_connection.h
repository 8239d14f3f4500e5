// The job store's PostgreSQL driver (libpq): one connection to a server that several Selene
// servers share, so they share one queue. Parameters and results travel in binary, typed, so
// nothing is parsed from text and a blob of protobuf bytes arrives as it was written.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "server/jobs/sql/sql_connection.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace selene::jobs::sql {

// Not thread-safe: one connection runs one statement at a time, and the store serializes its
// use with its own mutex.
//
// A lost connection (PostgreSQL restarted, a network cut) is reconnected once at the next
// Begin, or the next Query or ExecScript outside a transaction, before the statement is sent.
// A connection lost inside a transaction is never reconnected behind the caller's back: the
// statements before the loss are gone, so the statement fails as Unavailable and the caller
// rolls back and runs the whole transaction again (IsRetryable). A COMMIT whose connection is
// lost is Unavailable too, although the server may have committed: a retried transaction must
// tolerate finding its own work done (e.g. an idempotency key).
class PostgresConnection : public SqlConnection {
 public:
  // `uri` is a libpq connection URI ("postgresql://user@host:5432/db?sslmode=require") or a
  // key=value string. A non-empty `password` overrides the URI's; else libpq finds one in the
  // URI, PGPASSWORD or the password file (PGPASSFILE, the URI's passfile, ~/.pgpass). A
  // malformed URI is InvalidArgument, a server that cannot be reached or refuses the login
  // Unavailable, both naming location() and libpq's message.
  static StatusOr<std::unique_ptr<PostgresConnection>> Open(const std::string& uri,
                                                            const std::string& password = "");
  ~PostgresConnection() override;
  PostgresConnection(const PostgresConnection&) = delete;
  PostgresConnection& operator=(const PostgresConnection&) = delete;

  // The URI without its password: safe for messages and logs.
  const std::string& location() const override { return location_; }
  const SqlDialect& dialect() const override;

  // BEGIN ISOLATION LEVEL READ COMMITTED for both modes, whatever the server's default:
  // writers lock the rows they change (dialect().lock_rows) instead of failing on conflicts.
  Status Begin(TransactionMode mode) override;
  // A transaction that failed earlier (PostgreSQL then answers COMMIT with ROLLBACK) is an
  // error, not a silent loss of its writes.
  Status Commit() override;
  void Rollback() override;

  using SqlConnection::Query;
  // Parameters: int64_t as bigint, double as double precision, std::string as text, Blob as
  // bytea, NULL untyped (PostgreSQL infers its type from where it stands); so an integer
  // parameter to a function that takes integer needs CAST($1 AS integer). Result columns:
  // smallint, integer, bigint and oid read as int64_t, real and double precision as double,
  // boolean as 0 or 1, bytea as Blob, text, varchar, char(n) and name as std::string, void
  // (what pg_notify() returns) as NULL. A column of another type (numeric, e.g. sum(bigint); a
  // timestamp) is an error naming it: cast it in the SQL.
  StatusOr<SqlRows> Query(absl::string_view sql, const std::vector<SqlValue>& params) override;
  Status ExecScript(absl::string_view sql) override;

  // Unavailable (a lost connection, a server shutting down or starting) and Aborted (deadlock,
  // serialization failure).
  bool IsRetryable(const Status& status) const override;

 private:
  PostgresConnection(PGconn* conn, std::string location);

  // Outside a transaction: re-opens a connection that is known or found (by reading what the
  // server sent while it was idle) to be lost.
  Status EnsureConnected(absl::string_view doing);
  // Runs a statement without parameters whose result is only its status.
  Status Exec(const std::string& sql, absl::string_view doing);
  // The status for a failed statement (`result` may be null: nothing came back).
  Status Error(const PGresult* result, absl::string_view doing) const;

  PGconn* const conn_;
  const std::string location_;
  bool in_transaction_ = false;
};

// A libpq connection opened the way PostgresConnection::Open opens one (its defaults, errors and
// `password`; the server's notices dropped), for PostgresListener's own connection. The caller
// owns it (PQfinish).
StatusOr<PGconn*> ConnectPostgres(const std::string& uri, const std::string& password);

// `uri` without its password (the userinfo's and a password=... parameter), for messages.
std::string RedactPostgresUri(const std::string& uri);

}  // namespace selene::jobs::sql
