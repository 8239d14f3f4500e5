#include "server/jobs/sql/postgres_listener.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/jobs/sql/postgres_connection.h"

namespace selene::jobs::sql {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kLastBackoff = absl::Seconds(2);
// PQresetPoll has no timeout of its own (connect_timeout covers blocking connects only).
constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

bool ValidChannel(const std::string& channel) {
  // 63: PostgreSQL's identifier length (NAMEDATALEN - 1); a longer one would be truncated.
  if (channel.empty() || channel.size() > 63) return false;
  if (channel[0] >= '0' && channel[0] <= '9') return false;
  return std::all_of(channel.begin(), channel.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Quoted, so a channel that is a keyword ("select") works too; the validated name has no quote
// to escape, and a quoted lower-case name is the same channel as pg_notify('name', ...).
std::string ListenStatement(const std::string& channel) {
  return absl::StrCat("LISTEN \"", channel, "\"");
}

Status Listen(PGconn* conn, const std::string& location, const std::string& channel) {
  PGresult* result = PQexec(conn, ListenStatement(channel).c_str());
  const bool ok = result != nullptr && PQresultStatus(result) == PGRES_COMMAND_OK;
  PQclear(result);
  if (ok) return OkStatus();
  std::string message = PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  return absl::UnavailableError(
      absl::StrCat("job store ", location, ": listening on ", channel, ": ", message));
}

}  // namespace

StatusOr<std::unique_ptr<PostgresListener>> PostgresListener::Start(
    const std::string& uri, const std::string& password, const std::string& channel,
    NotifyCallback on_notify, ReconnectCallback on_reconnect) {
  const std::string location = RedactPostgresUri(uri);
  if (!ValidChannel(channel)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job store ", location, ": channel \"", channel,
        "\" is not a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)"));
  }
  SELENE_ASSIGN_OR_RETURN(PGconn * conn, ConnectPostgres(uri, password));
  if (Status status = Listen(conn, location, channel); !status.ok()) {
    PQfinish(conn);
    return status;
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    const int error = errno;
    PQfinish(conn);
    return absl::ResourceExhaustedError(
        absl::StrCat("job store ", location, ": listener pipe: ", std::strerror(error)));
  }
  return std::unique_ptr<PostgresListener>(new PostgresListener(
      conn, location, channel, std::move(on_notify), std::move(on_reconnect), wake[0], wake[1]));
}

PostgresListener::PostgresListener(PGconn* conn, std::string location, std::string channel,
                                   NotifyCallback on_notify, ReconnectCallback on_reconnect,
                                   int wake_read, int wake_write)
    : conn_(conn),
      location_(std::move(location)),
      channel_(std::move(channel)),
      on_notify_(std::move(on_notify)),
      on_reconnect_(std::move(on_reconnect)),
      wake_read_(wake_read),
      wake_write_(wake_write),
      thread_([this] { Run(); }) {}

PostgresListener::~PostgresListener() {
  stopping_.store(true, std::memory_order_release);
  // The pipe stays readable from now on, so every later Wait returns at once as well.
  const char byte = 0;
  while (::write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  PQfinish(conn_);
  ::close(wake_read_);
  ::close(wake_write_);
}

bool PostgresListener::Wait(int socket, short events, int timeout_ms) {
  pollfd fds[2] = {{wake_read_, POLLIN, 0}, {socket, events, 0}};
  const int count = socket >= 0 ? 2 : 1;
  while (::poll(fds, count, timeout_ms) < 0 && errno == EINTR) {
  }
  return !stopping();
}

void PostgresListener::DeliverNotifications() {
  while (PGnotify* notify = PQnotifies(conn_)) {
    std::string payload = notify->extra != nullptr ? notify->extra : "";
    PQfreemem(notify);
    if (on_notify_) on_notify_(payload);
  }
}

bool PostgresListener::Reconnect() {
  if (!PQresetStart(conn_)) return false;
  const absl::Time deadline = absl::Now() + kConnectTimeout;
  // As libpq's documentation says: before the first PQresetPoll, wait as for WRITING.
  PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
  while (polling != PGRES_POLLING_OK) {
    if (polling == PGRES_POLLING_FAILED) return false;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    const short events = polling == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    // The socket may change between polls (the next host of a list).
    if (!Wait(PQsocket(conn_), events, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1)) {
      return false;
    }
    polling = PQresetPoll(conn_);
  }
  if (!Listen(conn_, location_, channel_).ok()) return false;
  DeliverNotifications();  // anything PQexec read along with LISTEN's answer
  return true;
}

void PostgresListener::Run() {
  absl::Duration backoff = kFirstBackoff;
  bool listening = true;  // Start did LISTEN
  while (!stopping()) {
    if (!listening || PQstatus(conn_) != CONNECTION_OK) {
      listening = Reconnect();
      if (listening) {
        backoff = kFirstBackoff;
        if (on_reconnect_) on_reconnect_();
        continue;
      }
      if (!Wait(-1, 0, static_cast<int>(absl::ToInt64Milliseconds(backoff)))) return;
      backoff = std::min(backoff * 2, kLastBackoff);
      continue;
    }
    // No timeout: the wake pipe ends the wait when the listener stops, and a server that goes
    // away makes the socket readable (end of file).
    if (!Wait(PQsocket(conn_), POLLIN, -1)) return;
    if (PQconsumeInput(conn_) == 0) {  // the connection is lost
      listening = false;
      continue;
    }
    DeliverNotifications();
  }
}

}  // namespace selene::jobs::sql
