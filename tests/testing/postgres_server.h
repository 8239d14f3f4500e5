// A real, private PostgreSQL server for tests of the PostgreSQL job store: initdb into a fresh
// temporary folder, the server listening only on a Unix socket in that folder (nothing on the
// network, nothing shared with another test), one fresh database per test.
//
//   TEST(PostgresStoreTest, ...) {
//     SELENE_POSTGRES_OR_SKIP(server);              // skips when PostgreSQL cannot start
//     const std::string uri = server->CreateDatabase();
//     ...
//   }
//
// or derive the test fixture from PostgresTest (server(), uri()). The server is started once
// per test process (SharedPostgresServer) and stopped at exit.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace selene::testing {

class PostgresServer {
 public:
  // Finds PostgreSQL's programs (the newest /usr/lib/postgresql/<version>/bin, or
  // $SELENE_POSTGRES_BIN), runs initdb into a new temporary folder and starts the server on a
  // socket there. NotFound when PostgreSQL is not installed; otherwise the error says which
  // step failed, with the tail of its log. When the test runs as root (CI), PostgreSQL runs as
  // the `postgres` user, since initdb and postgres refuse root.
  static StatusOr<std::unique_ptr<PostgresServer>> Start();

  // Stops the server at once (immediate shutdown) and removes its folder.
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Creates database `name` ([a-z0-9_], at most 63 characters) and returns uri(name). Fails the
  // running test and returns "" when it cannot.
  std::string CreateDatabase(const std::string& name);
  // A database with a name of its own, from the running test's name and a counter.
  std::string CreateDatabase();

  // "postgresql:///<database>?host=<socket folder>&port=<port>&user=<superuser>". The superuser
  // logs in without a password; other roles need theirs (scram-sha-256).
  std::string uri(const std::string& database) const;

  // Fast shutdown: open sessions are ended (SQLSTATE 57P01), as an operator's restart does.
  Status Stop();
  // Starts the stopped server again on the same data (same socket, same databases).
  Status StartAgain();
  // Stop, then StartAgain.
  Status Restart();

  bool running() const { return pid_ > 0; }
  const std::string& socket_dir() const { return dir_; }
  int port() const { return port_; }
  // The superuser the URIs log in as.
  const std::string& user() const { return user_; }
  // The server's log, last lines first-to-last, for failure messages.
  std::string LogTail(int lines = 30) const;

 private:
  PostgresServer(std::string bin, std::string dir, int port, uid_t uid, gid_t gid);

  // Sends `signal` to the server and waits for it to end; when it has not ended in `timeout_s`,
  // kills it.
  Status Shutdown(int signal, int timeout_s);

  const std::string bin_;  // folder of initdb and postgres
  const std::string dir_;  // the temporary folder: socket, logs, data/
  const int port_;         // names the socket (.s.PGSQL.<port>); nothing listens on TCP
  const std::string user_ = "selene";
  // Who PostgreSQL runs as: the postgres user under root, else -1 (this process's user).
  const uid_t uid_;
  const gid_t gid_;
  pid_t pid_ = -1;  // the postmaster, a child of this process
  int database_counter_ = 0;
};

// The test process's server, started on first use and stopped at exit; the error from
// PostgresServer::Start (every time, without retrying) when it cannot start. Call it from the
// main thread: the server dies with the thread that started it (PR_SET_PDEATHSIG), so a test
// process that crashes leaves no server behind.
StatusOr<PostgresServer*> SharedPostgresServer();

// A test fixture on the shared server: skips the test (with the reason) when PostgreSQL cannot
// start, else gives each test a database of its own.
class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override;
  PostgresServer& server() { return *server_; }
  const std::string& uri() const { return uri_; }

 private:
  PostgresServer* server_ = nullptr;
  std::string uri_;
};

}  // namespace selene::testing

// In a test body: declares `PostgresServer* var`, the shared server, or skips the test with the
// reason it cannot start (PostgreSQL not installed, initdb or the server failing: its log).
#define SELENE_POSTGRES_OR_SKIP(var)                                                              \
  ::selene::testing::PostgresServer* var = nullptr;                                               \
  if (auto selene_postgres_ = ::selene::testing::SharedPostgresServer(); selene_postgres_.ok()) { \
    var = *selene_postgres_;                                                                      \
  } else {                                                                                        \
    GTEST_SKIP() << "no PostgreSQL server: " << selene_postgres_.status().message();              \
  }
