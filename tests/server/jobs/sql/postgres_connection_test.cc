// Tests for server/jobs/sql/postgres_connection.h against a real, private PostgreSQL server
// (tests/testing/postgres_server.h; skipped with the reason when it cannot start): values of
// every type there and back, the error codes the store relies on, transactions, and a connection
// that outlives a server restart.
#include "server/jobs/sql/postgres_connection.h"

#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/status_matchers.h"

namespace selene::jobs::sql {
namespace {

using ::selene::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class PostgresConnectionTest : public ::selene::testing::PostgresTest {
 protected:
  std::unique_ptr<PostgresConnection> Connect(const std::string& password = "") {
    StatusOr<std::unique_ptr<PostgresConnection>> conn = PostgresConnection::Open(uri(), password);
    EXPECT_OK(conn);
    return conn.ok() ? std::move(conn).value() : nullptr;
  }

  int64_t Count(PostgresConnection& conn, const std::string& table) {
    StatusOr<SqlRows> rows = conn.Query("SELECT count(*) FROM " + table);
    EXPECT_OK(rows);
    return rows.ok() && rows->size() == 1 ? (*rows)[0].Int(0) : -1;
  }
};

TEST_F(PostgresConnectionTest, RoundTripsEveryValueTypeThroughTypedParameters) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_OK(conn->Query(
      "CREATE TABLE t (k integer PRIMARY KEY, i bigint, d double precision, s text, b bytea)"));
  const std::string utf8 = "h\xC3\xA9llo \xE2\x98\x83 \xE6\x97\xA5\xE6\x9C\xAC";  // héllo ☃ 日本
  const std::string blob("\0\x01\xff\0\x80zero\0", 10);
  const std::string insert = "INSERT INTO t VALUES ($1, $2, $3, $4, $5)";
  ASSERT_OK(conn->Query(
      insert, {int64_t{1}, std::numeric_limits<int64_t>::min(), -0.25, utf8, Blob{blob}}));
  ASSERT_OK(conn->Query(
      insert, {int64_t{2}, std::numeric_limits<int64_t>::max(), 1e300, std::string(), Blob{}}));
  ASSERT_OK(conn->Query(
      insert, {int64_t{3}, int64_t{-1}, 5e-324, std::string("plain"), Blob{std::string(1, '\0')}}));
  // NULL for every column type: the server infers each parameter's type from its column.
  ASSERT_OK(conn->Query(insert, {int64_t{4}, std::monostate{}, std::monostate{}, std::monostate{},
                                 std::monostate{}}));

  StatusOr<SqlRows> rows = conn->Query("SELECT k, i, d, s, b FROM t ORDER BY k");
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 4u);
  const SqlRows& r = *rows;
  EXPECT_EQ(r[0].Int(1), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(r[0].Double(2), -0.25);
  EXPECT_EQ(r[0].Text(3), utf8);
  EXPECT_EQ(r[0].Text(4), "");  // a Blob cell, not text
  EXPECT_EQ(r[0].Bytes(4), blob);
  EXPECT_EQ(r[1].Int(1), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(r[1].Double(2), 1e300);
  EXPECT_EQ(r[1].Text(3), "");
  EXPECT_FALSE(r[1].IsNull(3));  // empty text is not NULL
  EXPECT_EQ(r[1].Bytes(4), "");
  EXPECT_FALSE(r[1].IsNull(4));
  EXPECT_EQ(r[2].Int(1), -1);
  EXPECT_EQ(r[2].Double(2), 5e-324);  // the smallest denormal survives the binary form
  EXPECT_EQ(r[2].Text(3), "plain");
  EXPECT_EQ(r[2].Bytes(4), std::string(1, '\0'));
  for (int column = 1; column <= 4; ++column) EXPECT_TRUE(r[3].IsNull(column)) << column;
  EXPECT_FALSE(r[3].IsNull(0));

  // Parameters compare with the stored values as they were written.
  StatusOr<SqlRows> found = conn->Query("SELECT k FROM t WHERE i = $1 AND s = $2 AND b = $3",
                                        {std::numeric_limits<int64_t>::min(), utf8, Blob{blob}});
  ASSERT_OK(found);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].Int(0), 1);
}

TEST_F(PostgresConnectionTest, ReadsEveryIntegerWidthRealsBooleansAndTextTypes) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  StatusOr<SqlRows> rows = conn->Query(
      "SELECT CAST(-2 AS smallint), CAST(-70000 AS integer), CAST(-5000000000 AS bigint), "
      "CAST(4000000000 AS oid), true, false, CAST(1.5 AS real), CAST('v' AS varchar(5)), "
      "CAST('ab' AS char(3)), CAST('nm' AS name), NULL, CAST(NULL AS bytea), 'literal'");
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  const SqlRow& row = (*rows)[0];
  EXPECT_EQ(row.Int(0), -2);
  EXPECT_EQ(row.Int(1), -70000);
  EXPECT_EQ(row.Int(2), -5000000000);
  EXPECT_EQ(row.Int(3), 4000000000);  // oid is unsigned
  EXPECT_EQ(row.Int(4), 1);
  EXPECT_EQ(row.Int(5), 0);
  EXPECT_EQ(row.Double(6), 1.5);
  EXPECT_EQ(row.Text(7), "v");
  EXPECT_EQ(row.Text(8), "ab ");  // char(n) pads
  EXPECT_EQ(row.Text(9), "nm");
  EXPECT_TRUE(row.IsNull(10));
  EXPECT_TRUE(row.IsNull(11));
  EXPECT_EQ(row.Text(12), "literal");
}

TEST_F(PostgresConnectionTest, ColumnOfAnUnreadTypeIsAnErrorNamingIt) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  // sum(bigint) is numeric (oid 1700): the store must cast it.
  EXPECT_THAT(conn->Query("SELECT sum(x) AS total FROM (VALUES (CAST(1 AS bigint))) AS v(x)"),
              StatusIs(StatusCode::kInternal,
                       AllOf(HasSubstr("total"), HasSubstr("1700"), HasSubstr("SELECT sum(x)"))));
  StatusOr<SqlRows> cast =
      conn->Query("SELECT CAST(sum(x) AS bigint) FROM (VALUES (CAST(1 AS bigint))) AS v(x)");
  ASSERT_OK(cast);
  EXPECT_EQ((*cast)[0].Int(0), 1);
}

TEST_F(PostgresConnectionTest, DialectClausesRunOnPostgres) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  const SqlDialect& dialect = conn->dialect();
  EXPECT_EQ(dialect.engine, "postgresql");
  ASSERT_OK(conn->ExecScript(
      "CREATE SEQUENCE job_number; CREATE TABLE jobs (id bigint PRIMARY KEY, state text);"
      "INSERT INTO jobs VALUES (1, 'QUEUED'), (2, 'QUEUED');"));
  StatusOr<SqlRows> first = conn->Query(dialect.next_job_number);
  StatusOr<SqlRows> second = conn->Query(dialect.next_job_number);
  ASSERT_OK(first);
  ASSERT_OK(second);
  EXPECT_EQ((*first)[0].Int(0), 1);
  EXPECT_EQ((*second)[0].Int(0), 2);

  StatusOr<SqlRows> now = conn->Query("SELECT " + dialect.now_ms);
  ASSERT_OK(now);
  EXPECT_GT((*now)[0].Int(0), int64_t{1'600'000'000'000});  // milliseconds since 1970, not s

  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  StatusOr<SqlRows> claimed =
      conn->Query("SELECT j.id FROM jobs AS j WHERE j.state = 'QUEUED' ORDER BY j.id LIMIT 1" +
                  dialect.skip_locked);
  ASSERT_OK(claimed);
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].Int(0), 1);
  // Another server's claim skips the row this transaction holds.
  auto other = Connect();
  ASSERT_NE(other, nullptr);
  ASSERT_OK(other->Begin(SqlConnection::TransactionMode::kWrite));
  StatusOr<SqlRows> next =
      other->Query("SELECT j.id FROM jobs AS j WHERE j.state = 'QUEUED' ORDER BY j.id LIMIT 1" +
                   dialect.skip_locked);
  ASSERT_OK(next);
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ((*next)[0].Int(0), 2);
  ASSERT_OK(other->Commit());
  ASSERT_OK(conn->Query("SELECT state FROM jobs WHERE id = 1" + dialect.lock_rows));
  // pg_notify() returns void, which reads as NULL.
  StatusOr<SqlRows> notified = conn->Query(dialect.notify, {std::string("job-1")});
  ASSERT_OK(notified);
  ASSERT_EQ(notified->size(), 1u);
  EXPECT_TRUE((*notified)[0].IsNull(0));
  ASSERT_OK(conn->Commit());
}

TEST_F(PostgresConnectionTest, UniqueViolationIsAlreadyExistsAndNotRetryable) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_OK(conn->Query("CREATE TABLE t (request_id text UNIQUE)"));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES ($1)", {std::string("r1")}));
  const Status status = conn->Query("INSERT INTO t VALUES ($1)", {std::string("r1")}).status();
  EXPECT_THAT(status, StatusIs(StatusCode::kAlreadyExists,
                               AllOf(HasSubstr(conn->location()), HasSubstr("INSERT INTO t"),
                                     HasSubstr("23505"))));
  EXPECT_FALSE(conn->IsRetryable(status));
  // NULLs are not duplicates of each other (TextOrNull's reason to exist).
  EXPECT_OK(conn->Query("INSERT INTO t VALUES ($1)", {TextOrNull("")}));
  EXPECT_OK(conn->Query("INSERT INTO t VALUES ($1)", {TextOrNull("")}));
}

TEST_F(PostgresConnectionTest, BadSqlIsInternalNamingTheStatementsFirstLine) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  const Status status = conn->Query("SELEC 1\nFROM nowhere").status();
  EXPECT_THAT(status,
              StatusIs(StatusCode::kInternal,
                       AllOf(HasSubstr("job store " + conn->location()), HasSubstr("SELEC 1"),
                             Not(HasSubstr("nowhere")), HasSubstr("syntax error"))));
  EXPECT_FALSE(conn->IsRetryable(status));
  EXPECT_THAT(conn->ExecScript("CREATE TABLE a (x int); CREATE TABLE a (x int);"),
              StatusIs(StatusCode::kInternal, HasSubstr("already exists")));
  // A script runs as one transaction: the first CREATE went with the second.
  EXPECT_THAT(conn->Query("SELECT * FROM a"), StatusIs(StatusCode::kInternal));
  // The connection is still usable after errors.
  EXPECT_OK(conn->Query("SELECT 1"));
}

TEST_F(PostgresConnectionTest, RollbackDiscardsAndCommitKeeps) {
  auto conn = Connect();
  auto other = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_OK(conn->Query("CREATE TABLE t (x bigint)"));

  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES ($1)", {int64_t{1}}));
  EXPECT_EQ(Count(*conn, "t"), 1);
  EXPECT_EQ(Count(*other, "t"), 0);  // not committed
  conn->Rollback();
  EXPECT_EQ(Count(*conn, "t"), 0);

  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES ($1)", {int64_t{2}}));
  ASSERT_OK(conn->Commit());
  EXPECT_EQ(Count(*other, "t"), 1);

  // Nested Begin and a Commit without Begin are caller bugs.
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kRead));
  EXPECT_THAT(conn->Begin(SqlConnection::TransactionMode::kRead),
              StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(conn->Commit());
  EXPECT_THAT(conn->Commit(), StatusIs(StatusCode::kFailedPrecondition));
  conn->Rollback();  // harmless outside a transaction
  EXPECT_OK(conn->Query("SELECT 1"));
}

TEST_F(PostgresConnectionTest, CommitOfAFailedTransactionIsAnErrorAndKeepsNothing) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_OK(conn->Query("CREATE TABLE t (x bigint PRIMARY KEY)"));
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES (1)"));
  EXPECT_THAT(conn->Query("INSERT INTO t VALUES (1)"), StatusIs(StatusCode::kAlreadyExists));
  // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error.
  EXPECT_THAT(conn->Commit(), StatusIs(StatusCode::kInternal, HasSubstr("rolled back")));
  EXPECT_EQ(Count(*conn, "t"), 0);
}

TEST_F(PostgresConnectionTest, SerializationFailureIsAbortedAndRetryable) {
  auto conn = Connect();
  auto other = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_OK(conn->Query("CREATE TABLE t (id bigint PRIMARY KEY, v bigint)"));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES (1, 0)"));
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  // Allowed as the first statement after BEGIN; the store itself stays READ COMMITTED.
  ASSERT_OK(conn->Query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"));
  ASSERT_OK(conn->Query("SELECT v FROM t WHERE id = 1"));  // the snapshot is taken here
  ASSERT_OK(other->Query("UPDATE t SET v = 1 WHERE id = 1"));
  const Status status = conn->Query("UPDATE t SET v = 2 WHERE id = 1").status();
  EXPECT_THAT(status, StatusIs(StatusCode::kAborted, HasSubstr("40001")));
  EXPECT_TRUE(conn->IsRetryable(status));
  conn->Rollback();
}

TEST_F(PostgresConnectionTest, DeadlockIsAbortedForOneOfTheTwo) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_OK(
      a->ExecScript("CREATE TABLE t (id bigint PRIMARY KEY, v bigint);"
                    "INSERT INTO t VALUES (1, 0), (2, 0);"));
  for (PostgresConnection* conn : {a.get(), b.get()}) {
    ASSERT_OK(conn->Query("SET deadlock_timeout = '50ms'"));  // the default second is slow
    ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  }
  ASSERT_OK(a->Query("UPDATE t SET v = 1 WHERE id = 1"));
  ASSERT_OK(b->Query("UPDATE t SET v = 1 WHERE id = 2"));
  // Each now waits for the row the other holds, in whichever order they get there: PostgreSQL
  // aborts one (its locks go with the error) and the other goes on.
  Status a_status;
  std::thread a_thread([&] { a_status = a->Query("UPDATE t SET v = 2 WHERE id = 2").status(); });
  const Status b_status = b->Query("UPDATE t SET v = 2 WHERE id = 1").status();
  a_thread.join();
  const Status& failed = a_status.ok() ? b_status : a_status;
  EXPECT_NE(a_status.ok(), b_status.ok()) << a_status << " / " << b_status;
  EXPECT_THAT(failed, StatusIs(StatusCode::kAborted, HasSubstr("40P01")));
  EXPECT_TRUE(a->IsRetryable(failed));
  a->Rollback();
  b->Rollback();
}

TEST_F(PostgresConnectionTest, PasswordArgumentOverridesAndNeverShows) {
  auto admin = Connect();
  ASSERT_NE(admin, nullptr);
  ASSERT_OK(admin->Query("CREATE ROLE pw_user LOGIN PASSWORD 'p@ss w0rd'"));
  // The fixture's URI ends in &user=<superuser>; a later user= wins.
  const std::string user_uri = uri() + "&user=pw_user";

  StatusOr<std::unique_ptr<PostgresConnection>> good =
      PostgresConnection::Open(user_uri + "&password=wrong-secret", "p@ss w0rd");
  ASSERT_OK(good);
  EXPECT_THAT((*good)->location(), Not(HasSubstr("wrong-secret")));
  StatusOr<SqlRows> who = (*good)->Query("SELECT current_user");
  ASSERT_OK(who);
  EXPECT_EQ((*who)[0].Text(0), "pw_user");

  StatusOr<std::unique_ptr<PostgresConnection>> bad =
      PostgresConnection::Open(user_uri + "&password=wrong-secret");
  EXPECT_THAT(bad, StatusIs(StatusCode::kUnavailable,
                            AllOf(HasSubstr("pw_user"), Not(HasSubstr("wrong-secret")))));

  // A password file named in the URI (libpq's own passfile parameter).
  ::selene::testing::TempDir dir("selene-pgpass");
  const std::string passfile = dir / "pgpass";
  std::ofstream(passfile) << "*:*:*:pw_user:p@ss w0rd\n";
  ::chmod(passfile.c_str(), 0600);  // libpq ignores a file others can read
  EXPECT_OK(PostgresConnection::Open(user_uri + "&passfile=" + passfile));
}

TEST_F(PostgresConnectionTest, ReconnectsOutsideATransactionAfterTheServerRestarts) {
  auto conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_OK(conn->Query("CREATE TABLE t (x bigint)"));
  ASSERT_OK(server().Restart());
  // The connection died with the old server; the next statement outside a transaction finds
  // that out before it sends anything, reconnects and runs.
  EXPECT_OK(conn->Query("INSERT INTO t VALUES (1)"));
  ASSERT_OK(server().Restart());
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES (2)"));
  ASSERT_OK(conn->Commit());
  EXPECT_EQ(Count(*conn, "t"), 2);

  // Down: Begin says Unavailable, retryable, naming the location; back up, it works again.
  ASSERT_OK(server().Stop());
  const Status down = conn->Begin(SqlConnection::TransactionMode::kWrite);
  EXPECT_THAT(down, StatusIs(StatusCode::kUnavailable, HasSubstr(conn->location())));
  EXPECT_TRUE(conn->IsRetryable(down));
  ASSERT_OK(server().StartAgain());
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  conn->Rollback();
}

TEST_F(PostgresConnectionTest, ConnectionLostInsideATransactionIsUnavailableUntilRollback) {
  auto conn = Connect();
  auto admin = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_NE(admin, nullptr);
  ASSERT_OK(conn->Query("CREATE TABLE t (x bigint)"));
  StatusOr<SqlRows> pid = conn->Query("SELECT pg_backend_pid()");
  ASSERT_OK(pid);
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES (1)"));
  ASSERT_OK(admin->Query("SELECT pg_terminate_backend(CAST($1 AS integer))", {(*pid)[0].Int(0)}));

  // Never reconnected behind the caller's back: the INSERT above is gone with the connection.
  const Status lost = conn->Query("INSERT INTO t VALUES (2)").status();
  EXPECT_THAT(lost, StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(conn->IsRetryable(lost));
  EXPECT_THAT(conn->Commit(), StatusIs(StatusCode::kUnavailable));
  conn->Rollback();
  // The caller's retry of the whole transaction reconnects at Begin.
  ASSERT_OK(conn->Begin(SqlConnection::TransactionMode::kWrite));
  ASSERT_OK(conn->Query("INSERT INTO t VALUES (3)"));
  ASSERT_OK(conn->Commit());
  StatusOr<SqlRows> rows = admin->Query("SELECT x FROM t");
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].Int(0), 3);
}

// No server needed below.

TEST(PostgresConnectionOpenTest, MissingSocketIsUnavailableNamingTheLocationWithoutPassword) {
  ::selene::testing::TempDir dir("selene-no-postgres");
  const std::string uri =
      "postgresql://selene:hunter2@/jobs?host=" + dir.path() + "&port=5999&password=hunter3";
  StatusOr<std::unique_ptr<PostgresConnection>> conn = PostgresConnection::Open(uri, "hunter4");
  EXPECT_THAT(
      conn, StatusIs(StatusCode::kUnavailable,
                     AllOf(HasSubstr("postgresql://selene@/jobs?host=" + dir.path() + "&port=5999"),
                           HasSubstr(".s.PGSQL.5999"), Not(HasSubstr("hunter")))));
}

TEST(PostgresConnectionOpenTest, MalformedUriIsInvalidArgument) {
  EXPECT_THAT(PostgresConnection::Open("postgresql://[::1/jobs"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("parsing the connection URI")));
  EXPECT_THAT(PostgresConnection::Open("host=/tmp no_such_option=1 password=hunter2"),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("no_such_option"), Not(HasSubstr("hunter2")))));
}

TEST(PostgresConnectionOpenTest, RedactsEveryFormOfPassword) {
  EXPECT_EQ(RedactPostgresUri("postgresql://selene:secret@db.example:5432/jobs"),
            "postgresql://selene@db.example:5432/jobs");
  EXPECT_EQ(RedactPostgresUri("postgres://u:p%40ss@h1:1,h2:2/db?sslmode=require&password=x"),
            "postgres://u@h1:1,h2:2/db?sslmode=require");
  EXPECT_EQ(RedactPostgresUri("postgresql:///db?pass%77ord=x&host=/tmp/s"),
            "postgresql:///db?host=/tmp/s");
  EXPECT_EQ(RedactPostgresUri("postgresql://h/db?password=x"), "postgresql://h/db");
  EXPECT_EQ(RedactPostgresUri("postgresql://h/db"), "postgresql://h/db");
  EXPECT_EQ(RedactPostgresUri("postgresql://user@h"), "postgresql://user@h");
  EXPECT_EQ(RedactPostgresUri("host=db port=5432 password='se cret' dbname='my db'"),
            "dbname='my db' host=db port=5432");
  EXPECT_THAT(RedactPostgresUri("host=db password='unterminated"), Not(HasSubstr("unterminated")));
}

}  // namespace
}  // namespace selene::jobs::sql
