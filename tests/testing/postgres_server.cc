#include "tests/testing/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/testing/files.h"
#include "tests/testing/loopback.h"

namespace selene::testing {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kSameUser = static_cast<uid_t>(-1);
constexpr char kNotInstalled[] =
    "PostgreSQL is not installed (deploy/install-deps.sh installs postgresql)";

// The newest /usr/lib/postgresql/<version>/bin with initdb and postgres (Debian's layout: each
// major version in a folder of its own, none on PATH), or $SELENE_POSTGRES_BIN.
StatusOr<std::string> FindPostgresBin() {
  auto complete = [](const fs::path& bin) {
    std::error_code error;
    return fs::exists(bin / "initdb", error) && fs::exists(bin / "postgres", error);
  };
  if (const char* bin = std::getenv("SELENE_POSTGRES_BIN"); bin != nullptr && *bin != '\0') {
    if (complete(bin)) return std::string(bin);
    return absl::NotFoundError(
        absl::StrCat("SELENE_POSTGRES_BIN=", bin, " has no initdb and postgres"));
  }
  std::string best;
  double best_version = -1;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/usr/lib/postgresql", error)) {
    const double version = std::strtod(entry.path().filename().c_str(), nullptr);  // "15", "9.6"
    if (version > best_version && complete(entry.path() / "bin")) {
      best = (entry.path() / "bin").string();
      best_version = version;
    }
  }
  if (best.empty()) return absl::NotFoundError(kNotInstalled);
  return best;
}

std::string Tail(const std::string& path, int lines) {
  std::vector<std::string> all = absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  if (static_cast<int>(all.size()) > lines) all.erase(all.begin(), all.end() - lines);
  return absl::StrJoin(all, "\n");
}

// Starts argv (argv[0] a path) in `cwd` with stdout and stderr to `log_path`, as uid:gid unless
// uid is kSameUser. The child gets SIGKILL when the calling thread ends, so a test process that
// dies leaves nothing running. -1 when fork fails.
pid_t Spawn(std::vector<std::string> argv, const std::string& log_path, const std::string& cwd,
            uid_t uid, gid_t gid) {
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The child: async-signal-safe calls only until exec.
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int null = ::open("/dev/null", O_RDONLY);
  if (log < 0 || null < 0) ::_exit(127);
  ::dup2(null, STDIN_FILENO);
  ::dup2(log, STDOUT_FILENO);
  ::dup2(log, STDERR_FILENO);
  // Nothing of the test's (its connections, its servers' sockets) stays open in PostgreSQL.
  if (::close_range(3, ~0U, 0) != 0) {
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::chdir(cwd.c_str()) != 0) ::_exit(127);  // postgres' user may not reach the test's cwd
  if (uid != kSameUser && (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
    ::_exit(126);
  }
  // After setuid, which clears it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  ::execv(args[0], args.data());
  ::_exit(127);
}

// The exit status (-N for signal N) once `pid` has ended within `timeout`.
std::optional<int> WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (done < 0) return -1;  // not our child any more
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// Runs a command to its end; an error with its log's tail when it fails.
Status Run(std::vector<std::string> argv, const std::string& log_path, const std::string& cwd,
           uid_t uid, gid_t gid) {
  const std::string command = absl::StrJoin(argv, " ");
  const pid_t pid = Spawn(std::move(argv), log_path, cwd, uid, gid);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork for ", command, " failed"));
  const std::optional<int> exit = WaitForExit(pid, absl::Minutes(2));
  if (!exit.has_value()) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::DeadlineExceededError(
        absl::StrCat(command, " ran for 2 minutes:\n", Tail(log_path, 30)));
  }
  if (*exit != 0) {
    return absl::InternalError(
        absl::StrCat(command, " failed (exit ", *exit, "):\n", Tail(log_path, 30)));
  }
  return OkStatus();
}

// Under root, PostgreSQL runs as `postgres`, which must be able to walk down to its folder.
Status CheckReachable(const std::string& dir, uid_t uid, gid_t gid) {
  for (fs::path path = fs::path(dir).parent_path(); !path.empty(); path = path.parent_path()) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) break;
    const bool searchable = (info.st_mode & S_IXOTH) != 0 ||
                            (info.st_uid == uid && (info.st_mode & S_IXUSR) != 0) ||
                            (info.st_gid == gid && (info.st_mode & S_IXGRP) != 0);
    if (!searchable) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL runs as the postgres user (initdb refuses root), which cannot reach ", dir,
          ": ", path.string(),
          " is not searchable by others; point TMPDIR to a folder it can "
          "reach, e.g. /tmp"));
    }
    if (path == path.root_path()) break;
  }
  return OkStatus();
}

std::string PercentEncode(const std::string& text) {
  std::string encoded;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded.push_back(static_cast<char>(c));
    } else {
      encoded += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return encoded;
}

bool ValidDatabaseName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') return false;
  }
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  SELENE_ASSIGN_OR_RETURN(const std::string bin, FindPostgresBin());
  uid_t uid = kSameUser;
  gid_t gid = static_cast<gid_t>(-1);
  if (::geteuid() == 0) {
    const passwd* postgres = ::getpwnam("postgres");
    if (postgres == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and there is no postgres user to run PostgreSQL as (initdb refuses "
          "root; Debian's postgresql package makes that user)");
    }
    uid = postgres->pw_uid;
    gid = postgres->pw_gid;
  }
  const std::string dir = MakeTempDir("selene-postgres");
  if (dir.empty()) return absl::InternalError("cannot make a temporary folder for PostgreSQL");
  // From here the server object owns the folder and removes it, whatever fails next.
  std::unique_ptr<PostgresServer> server(
      new PostgresServer(bin, dir, UnusedLoopbackPort(), uid, gid));
  if (uid != kSameUser) {
    SELENE_RETURN_IF_ERROR(CheckReachable(dir, uid, gid));
    if (::chown(dir.c_str(), uid, gid) != 0) {
      return absl::InternalError(absl::StrCat("chown postgres ", dir, " failed"));
    }
  }
  ::chmod(dir.c_str(), 0700);  // initdb wants its data private; the socket stays private too

  const std::string data = dir + "/data";
  // No locale (C), UTF-8 text; no fsync: a test's data need not survive a power cut.
  SELENE_RETURN_IF_ERROR(Run({bin + "/initdb", "--pgdata=" + data, "--username=" + server->user_,
                              "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"},
                             dir + "/initdb.log", dir, uid, gid));
  // Appended to and rewritten in place, so the files keep their owner (postgres under root).
  {
    std::ofstream conf(data + "/postgresql.conf", std::ios::app);
    conf << "\n# selene::testing::PostgresServer: a Unix socket only, in the test's folder.\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << absl::StrReplaceAll(dir, {{"'", "''"}}) << "'\n"
         << "port = " << server->port_ << "\n"
         << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
         << "shared_buffers = 16MB\nmax_connections = 60\n";
    std::ofstream hba(data + "/pg_hba.conf", std::ios::trunc);
    hba << "# The superuser without a password (the socket's folder is private); every other\n"
        << "# role with its password, so tests can prove passwords reach the server.\n"
        << "local all " << server->user_ << " trust\n"
        << "local all all scram-sha-256\n";
    if (!conf || !hba)
      return absl::InternalError(absl::StrCat("cannot write the config in ", data));
  }
  SELENE_RETURN_IF_ERROR(server->StartAgain());
  return server;
}

PostgresServer::PostgresServer(std::string bin, std::string dir, int port, uid_t uid, gid_t gid)
    : bin_(std::move(bin)), dir_(std::move(dir)), port_(port), uid_(uid), gid_(gid) {}

PostgresServer::~PostgresServer() {
  if (running()) Shutdown(SIGQUIT, 30).IgnoreError();  // immediate: nothing here needs keeping
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

std::string PostgresServer::uri(const std::string& database) const {
  return absl::StrCat("postgresql:///", database, "?host=", PercentEncode(dir_), "&port=", port_,
                      "&user=", user_);
}

std::string PostgresServer::LogTail(int lines) const { return Tail(dir_ + "/postgres.log", lines); }

Status PostgresServer::StartAgain() {
  if (running()) return absl::FailedPreconditionError("PostgreSQL is already running");
  pid_ =
      Spawn({bin_ + "/postgres", "-D", dir_ + "/data"}, dir_ + "/postgres.log", dir_, uid_, gid_);
  if (pid_ < 0) return absl::InternalError("fork for postgres failed");
  const std::string port = absl::StrCat(port_);
  const char* keywords[] = {"host", "port", "dbname", "user", nullptr};
  const char* values[] = {dir_.c_str(), port.c_str(), "postgres", user_.c_str(), nullptr};
  const absl::Time deadline = absl::Now() + absl::Minutes(1);
  while (PQpingParams(keywords, values, 0) != PQPING_OK) {
    if (const std::optional<int> exit = WaitForExit(pid_, absl::ZeroDuration())) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat("postgres exited (", *exit, ") while starting:\n", LogTail()));
    }
    if (absl::Now() >= deadline) {
      Shutdown(SIGQUIT, 10).IgnoreError();
      return absl::DeadlineExceededError(
          absl::StrCat("postgres did not accept connections within a minute:\n", LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return OkStatus();
}

Status PostgresServer::Shutdown(int signal, int timeout_s) {
  if (!running()) return OkStatus();
  ::kill(pid_, signal);
  std::optional<int> exit = WaitForExit(pid_, absl::Seconds(timeout_s));
  Status status = OkStatus();
  if (!exit.has_value()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    status = absl::DeadlineExceededError(absl::StrCat("postgres did not stop within ", timeout_s,
                                                      " s and was killed:\n", LogTail()));
  }
  pid_ = -1;
  return status;
}

Status PostgresServer::Stop() { return Shutdown(SIGINT, 60); }  // SIGINT: fast shutdown

Status PostgresServer::Restart() {
  SELENE_RETURN_IF_ERROR(Stop());
  return StartAgain();
}

std::string PostgresServer::CreateDatabase(const std::string& name) {
  if (!ValidDatabaseName(name)) {
    ADD_FAILURE() << "database name \"" << name << "\" is not [a-z0-9_]{1,63}";
    return "";
  }
  PGconn* conn = PQconnectdb(uri("postgres").c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, absl::StrCat("CREATE DATABASE \"", name, "\"").c_str());
    if (PQresultStatus(result) != PGRES_COMMAND_OK) error = PQresultErrorMessage(result);
    PQclear(result);
  }
  PQfinish(conn);
  if (!error.empty()) {
    ADD_FAILURE() << "creating database " << name << " on " << uri("postgres") << ": " << error;
    return "";
  }
  return uri(name);
}

std::string PostgresServer::CreateDatabase() {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      test != nullptr ? absl::StrCat(test->test_suite_name(), "_", test->name()) : "test";
  for (char& c : name) c = absl::ascii_isalnum(c) ? absl::ascii_tolower(c) : '_';
  name = absl::StrCat(name.substr(0, 50), "_", ++database_counter_);
  return CreateDatabase(name);
}

StatusOr<PostgresServer*> SharedPostgresServer() {
  // Destroyed at exit, which stops the server and removes its folder.
  static StatusOr<std::unique_ptr<PostgresServer>> shared = PostgresServer::Start();
  if (!shared.ok()) return shared.status();
  return shared->get();
}

void PostgresTest::SetUp() {
  StatusOr<PostgresServer*> server = SharedPostgresServer();
  if (!server.ok()) GTEST_SKIP() << "no PostgreSQL server: " << server.status().message();
  server_ = *server;
  uri_ = server_->CreateDatabase();
  ASSERT_FALSE(uri_.empty());
}

}  // namespace selene::testing
